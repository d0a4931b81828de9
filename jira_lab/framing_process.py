"""A process of its own that decodes and frames a large load's search pages, beside the loader's event loop.

A large load is bound by one core's worth of Python: the event loop (HTTP), the framer thread and the DuckDB writer
thread take turns holding the interpreter lock, and search pages are most of the bytes a load decodes and frames
(on the large simulated site, 260 MB of its 470 MB). Decoded and framed in another process, they leave the lock to
the rest. What comes back (the frames, pickled as Arrow, and the page's ids) is about half the size of the answer
and costs the loader little to unpickle.

The process starts only once a load has read :data:`START_AFTER_BYTES` of search pages, so small loads (tests, the
demo) never pay for starting it; pages are framed on the loader's framer thread until it is ready. If it dies, the
load goes on framing on the thread. It exits with the process that started it, even one killed with ``kill -9``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from functools import partial
from typing import Any

from jira_lab.resources.issues import decode_walk_page

logger = logging.getLogger("jira_lab.load")

#: Bytes of search pages read before the process is started: about eight pages of a large site's issues.
START_AFTER_BYTES = 16_000_000


def _exit_with_parent() -> None:
    """Initializer of the worker: a watcher thread that ends the worker when its parent is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)  # the parent died without shutting the pool down (e.g. kill -9): nobody waits for our answers

    threading.Thread(target=watch, name="jira-lab-parent-watch", daemon=True).start()


def _ready() -> bool:
    return True


class FramingProcess:
    """Decodes and frames search pages (:func:`~jira_lab.resources.issues.decode_walk_page`): in a worker process
    once the load has shown it is large, on ``fallback`` (the loader's framer thread) until then.

    Args:
        fallback: where pages are framed while the process is not (yet, or any more) there.
        enabled: ``True`` starts the process at once (and the first page waits until it is ready), ``False``
            never starts it, ``None`` starts it after :data:`START_AFTER_BYTES` (pages go on being framed on the
            thread until it is ready).
    """

    def __init__(self, fallback: Executor, *, enabled: bool | None = None) -> None:
        self._fallback = fallback
        self._enabled = enabled
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[bool] | None = None
        self._seen_bytes = 0
        #: pages framed in the process
        self.pages_in_process = 0
        if enabled:
            self._start()

    async def decode(self, content: bytes, **options: Any) -> Any:
        """:func:`~jira_lab.resources.issues.decode_walk_page` of ``content``, wherever it runs best now."""
        self._seen_bytes += len(content)
        if self._enabled is None and self._pool is None and self._seen_bytes >= START_AFTER_BYTES:
            self._start()
        work = partial(decode_walk_page, content, **options)
        loop = asyncio.get_running_loop()
        if self._enabled and self._ready is not None and not self._ready.done():
            with suppress(BrokenProcessPool):  # handled below
                await asyncio.wrap_future(self._ready)
        if self._pool is not None and self._ready is not None and self._ready.done():
            try:
                body = await loop.run_in_executor(self._pool, work)
            except BrokenProcessPool:
                logger.warning("the framing process stopped; framing search pages on the loader's thread")
                self._stop()
            else:
                self.pages_in_process += 1
                return body
        return await loop.run_in_executor(self._fallback, work)

    def close(self) -> None:
        """Stop the process (waiting for it, so that it is reaped)."""
        self._stop()

    def _start(self) -> None:
        try:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_with_parent
            )
            self._ready = self._pool.submit(_ready)
        except (OSError, RuntimeError) as error:  # no processes here (a sandbox): frame on the thread
            logger.warning("cannot start a framing process (%s); framing search pages on the loader's thread", error)
            self._pool = None
        self._enabled = self._enabled if self._pool is not None else False

    def _stop(self) -> None:
        pool, self._pool, self._ready = self._pool, None, None
        self._enabled = False
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
