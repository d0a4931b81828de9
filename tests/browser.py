"""Fixtures for tests in a real browser: JupyterLab on loopback, Debian's Chromium driven by Playwright.

A test module uses them with ``pytest_plugins = ["browser"]`` (and imports nothing from here at run time: the plugin
is imported by pytest, so that its module is loaded once):

* ``jupyter_lab`` — starts a JupyterLab server (:func:`start_jupyter_lab`) on ``127.0.0.1`` with token auth, no browser
  of its own, a given root directory, private Jupyter/IPython directories, and the tests' Python environment (the
  ``python3`` kernel is this interpreter); stopped with its kernels when the test ends. Readiness is read from the
  server's own log lines, never polled.
* ``browser`` — a fresh Playwright :class:`BrowserContext` (no cookies, no storage) in ``chromium``: one headless
  Chromium for the test module, launched from the Debian package (``/usr/bin/chromium``, or ``$JIRA_LAB_CHROMIUM``) with
  a fresh profile. Playwright's own browser downloads are never used (they cannot work here: only package registries
  are reachable); ``.ci/run`` installs the package. Playwright's actions and ``expect`` wait up to :data:`STEP_MS`
  for a page state.
* Screenshots on failure: when a test using ``browser`` fails, a PNG of every page still open, the pages' console
  messages and the logs of the servers the test registered (:func:`keep_log_on_failure`) are kept in
  ``test-artifacts/<test name>/`` at the top of the checkout (or under ``$JIRA_LAB_TEST_ARTIFACTS``). That folder is
  ignored by git; a passing test leaves nothing there.

A browser or JupyterLab that cannot start fails the test with what to do, never skips it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Playwright, expect, sync_playwright

#: the Debian package's Chromium (`apt-get install chromium`)
CHROMIUM = Path(os.environ.get("JIRA_LAB_CHROMIUM", "/usr/bin/chromium"))
#: what a sandboxed, offline, root CI machine needs: no sandbox (root), no GPU, and none of Chromium's own traffic
#: to Google's hosts (on a closed network those connections are refused, many at a time)
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(os.environ.get("JIRA_LAB_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
#: bounds, not waits: generous for a busy 2-core machine, short enough to fail well inside CI's time
START_TIMEOUT = 120.0
STEP_MS = 90_000
_LOG_KEY = pytest.StashKey[list[Path]]()
_REPORT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


# -- outcome of the test, for the artifacts -------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item, so fixtures can tell in teardown whether the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORT_KEY, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORT_KEY, {})
    return any(report.failed for report in reports.values())


def artifact_dir(request: pytest.FixtureRequest) -> Path:
    """Where a failing test's artifacts go: ``test-artifacts/<test name>/``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    return ARTIFACTS / name


def keep_log_on_failure(request: pytest.FixtureRequest, log: Path) -> None:
    """Copy ``log`` (a server's output) into the test's artifacts if the test fails."""
    request.node.stash.setdefault(_LOG_KEY, []).append(log)


@pytest.fixture(autouse=True)
def _save_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    logs = request.node.stash.get(_LOG_KEY, [])
    if logs and _failed(request):
        target = artifact_dir(request)
        target.mkdir(parents=True, exist_ok=True)
        for log in logs:
            if log.exists():
                shutil.copy(log, target / f"{log.parent.name}-{log.name}")


# -- Chromium ---------------------------------------------------------------------------------------------------------
# Module scope, not session: while Playwright's sync driver runs, the main thread counts as running an asyncio loop,
# so `asyncio.run` in the test modules that follow would fail ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (the Node.js program inside the wheel); it launches no browser of its own."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """One headless Debian Chromium for the test module (Playwright gives it a fresh, temporary profile)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: install Debian's package (`apt-get install chromium`, as "
            ".ci/run does) or point $JIRA_LAB_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS), timeout=START_TIMEOUT * 1000
        )
    except Error as error:
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {error}", pytrace=False)
    yield browser
    browser.close()


@pytest.fixture
def browser(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A fresh browsing context (no cookies, no storage) of the module's Chromium; its pages are kept on failure."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)
    console: list[str] = []
    context.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    context.on("page", lambda page: page.on("pageerror", lambda error: console.append(f"pageerror: {error}")))
    try:
        yield context
    finally:
        if _failed(request):
            _save_pages(context, console, artifact_dir(request))
        context.close()


def _save_pages(context: BrowserContext, console: list[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for number, page in enumerate(context.pages):
        with contextlib.suppress(Error):  # a page that crashed still lets the others be kept
            page.screenshot(path=target / f"page-{number}.png", full_page=True)
            (target / f"page-{number}.url").write_text(page.url + "\n")
    (target / "console.log").write_text("\n".join(console) + "\n")


# -- JupyterLab -------------------------------------------------------------------------------------------------------
def free_port() -> int:
    """A port nobody listens on now (the server is told to take exactly it, or fail)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class JupyterLab:
    """A running JupyterLab server."""

    process: subprocess.Popen[str]
    base_url: str
    token: str
    root: Path
    log: Path
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue, repr=False)

    def url(self, path: str) -> str:
        """The address of ``path`` (``lab/tree/x.ipynb``), logged in with the token."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> str:
        """The first log line from now on matching ``pattern``; fails if the server exits or stays silent."""
        found = re.compile(pattern)
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"JupyterLab logged no line matching {pattern!r} within {timeout:g} s; see {self.log}")
            if line is None:
                pytest.fail(
                    f"JupyterLab exited (status {self.process.wait()}) before {pattern!r}:\n{_tail(self.log)}",
                    pytrace=False,
                )
            if found.search(line):
                return line

    def stop(self) -> None:
        """Shut the server and its kernels down (the API's shutdown); whatever of them is left is killed."""
        # kernels run in sessions of their own (jupyter_client starts them so), so they are found by parentage now,
        # while the server still lives, to be killed by their ids should the shutdown leave any behind
        kernels = _descendants(self.process.pid)
        if self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{self.base_url}/api/shutdown",
                    headers={"Authorization": f"token {self.token}"},
                    timeout=10,
                )
            with contextlib.suppress(subprocess.TimeoutExpired):  # then it is killed below
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the server's own group (start_new_session)
        self.process.wait(timeout=30)
        for pid, started in kernels:
            if _process_stat(pid)[1:] == (started,):  # still that process, not a new one given the same id
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def _process_stat(pid: int) -> tuple[int, int] | tuple[()]:
    """The parent id and start time of process ``pid`` (Linux's /proc), or ``()`` if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ()
    fields = stat.rsplit(")", 1)[1].split()  # after the name, which may hold spaces and parentheses
    return int(fields[1]), int(fields[19])


def _descendants(pid: int) -> list[tuple[int, int]]:
    """The processes below ``pid``, children first, each as (id, start time)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        stat = _process_stat(int(entry.name)) if entry.name.isdigit() else ()
        if stat:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: list[tuple[int, int]] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop(0)
        found.append(child)
        pending.extend(children.get(child[0], []))
    return found


@contextlib.contextmanager
def start_jupyter_lab(root: Path, *, env: dict[str, str], workdir: Path) -> Iterator[JupyterLab]:
    """Run JupyterLab on loopback over ``root`` until the block ends.

    Args:
        root: the directory the server shows (its notebooks).
        env: extra environment variables for the server and so for its kernels.
        workdir: where its private config, data and runtime directories and its log go.

    Fails the test (with the server's log) if it does not start within :data:`START_TIMEOUT`.
    """
    port = free_port()
    token = secrets.token_hex(24)
    dirs = {name: workdir / name for name in ("config", "data", "runtime", "ipython")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    # JupyterLab asks on first start whether to fetch Jupyter's news from the internet; there is no internet here
    (dirs["config"] / "labconfig").mkdir(exist_ok=True)
    (dirs["config"] / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    server_env = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_LAB_", "JUPYTER", "IPYTHON"))}
    server_env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
        PYTHONUNBUFFERED="1",
        **env,
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # CI runs as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.log_level=INFO",
    ]
    log = workdir / "jupyterlab.log"
    try:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    except OSError as error:
        pytest.fail(f"JupyterLab could not be started ({' '.join(command[:3])}): {error}", pytrace=False)
    lab = JupyterLab(process, f"http://127.0.0.1:{port}", token, root, log)
    assert process.stdout is not None
    pump = threading.Thread(target=_pump, args=(process.stdout, log, lab._lines), name="jupyterlab-log", daemon=True)
    pump.start()
    try:
        lab.wait_for_line(rf"http://127\.0\.0\.1:{port}/")
        yield lab
    finally:
        lab.stop()
        pump.join(timeout=30)


@pytest.fixture
def jupyter_lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., JupyterLab]]:
    """Start JupyterLab: ``jupyter_lab(root, env={...})``; its log is kept if the test fails; stopped afterwards."""
    with contextlib.ExitStack() as running:

        def start(root: Path, *, env: dict[str, str]) -> JupyterLab:
            workdir = Path(tempfile.mkdtemp(prefix="jupyter-", dir=tmp_path))
            keep_log_on_failure(request, workdir / "jupyterlab.log")
            return running.enter_context(start_jupyter_lab(root, env=env, workdir=workdir))

        yield start


def _pump(stream: IO[str], log: Path, lines: queue.Queue[str | None]) -> None:
    """Copy the server's output to its log file and hand each line to whoever waits for one."""
    with log.open("w") as out:
        for line in stream:
            out.write(line)
            out.flush()
            lines.put(line)
    lines.put(None)


def _tail(log: Path, lines: int = 40) -> str:
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:]) if log.exists() else ""
