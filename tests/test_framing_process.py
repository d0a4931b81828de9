"""The framing process: search pages framed in a process of their own, the thread when it dies, gone with its parent."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from jira_lab.framing_process import FramingProcess
from jira_lab.resources.issues import FRAMES_KEY

PAGE = orjson.dumps(
    {
        "issues": [
            {
                "id": "10001",
                "key": "ENG-1",
                "fields": {
                    "summary": "a page of one issue",
                    "project": {"id": "10000", "key": "ENG"},
                    "created": "2026-01-05T09:00:00.000+0000",
                    "updated": "2026-01-06T09:00:00.000+0000",
                    "comment": {
                        "comments": [{"id": "20001", "body": None, "created": "2026-01-05T10:00:00.000+0000"}],
                        "total": 1,
                        "maxResults": 1,
                        "startAt": 0,
                    },
                },
            }
        ],
        "isLast": True,
    }
)
OPTIONS: dict[str, Any] = {"reread_worklogs": False, "site_id": "site", "principal_id": "me", "load_id": 1}


def test_a_dead_framing_process_leaves_the_pages_to_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    with ThreadPoolExecutor(max_workers=1) as thread:
        framing = FramingProcess(thread, enabled=True)
        try:
            first = asyncio.run(framing.decode(PAGE, **OPTIONS))
            assert framing.pages_in_process == 1
            workers = multiprocessing.active_children()
            assert len(workers) == 1
            os.kill(workers[0].pid or 0, signal.SIGKILL)
            with caplog.at_level(logging.WARNING, logger="jira_lab.load"):
                second = asyncio.run(framing.decode(PAGE, **OPTIONS))
                third = asyncio.run(framing.decode(PAGE, **OPTIONS))
        finally:
            framing.close()
    assert framing.pages_in_process == 1
    assert "framing search pages on the loader's thread" in caplog.text
    for body in (second, third):
        assert body["issues"] == first["issues"] == [10001]
        assert body[FRAMES_KEY].comments.equals(first[FRAMES_KEY].comments)
        assert body[FRAMES_KEY].comments.height == 1


def test_the_framing_process_is_not_started_for_a_small_load_nor_when_refused() -> None:
    with ThreadPoolExecutor(max_workers=1) as thread:
        for enabled in (None, False):
            framing = FramingProcess(thread, enabled=enabled)
            body = asyncio.run(framing.decode(PAGE, **OPTIONS))
            framing.close()
            assert body["issues"] == [10001]
            assert framing.pages_in_process == 0
    assert multiprocessing.active_children() == []


def _gone(pid: int) -> bool:
    """Whether the process has exited (a zombie nobody has reaped yet has exited too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_the_framing_process_ends_when_its_loader_is_killed() -> None:
    script = (
        "import asyncio, multiprocessing, sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from jira_lab.framing_process import FramingProcess\n"
        "framing = FramingProcess(ThreadPoolExecutor(max_workers=1), enabled=True)\n"
        "asyncio.run(framing.decode(b'{\"issues\": []}', reread_worklogs=False, site_id='s', principal_id='p'))\n"
        "print(*[child.pid for child in multiprocessing.active_children()], flush=True)\n"
        "sys.stdin.read()\n"
    )
    loader = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert loader.stdout is not None
        worker = int(loader.stdout.readline())
        assert not _gone(worker)
    finally:
        loader.kill()  # SIGKILL: no shutdown, no atexit
        loader.wait()
    # the worker is not our child: all we can do is watch it go (its watcher thread ends it at once)
    deadline = time.monotonic() + 30
    while not _gone(worker):
        assert time.monotonic() < deadline, f"the framing process {worker} outlived its loader"
        time.sleep(0.05)
