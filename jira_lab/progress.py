"""Progress of a load: one bar per resource, a quiet mode, or a callback of your own.

:class:`Progress` is what :func:`jira_lab.load.load` reports to. ``progress=True`` draws one ``tqdm.auto`` bar per
resource (issues, comments, worklogs, changelog histories ...): widgets in a notebook, text on the terminal's stderr.
``progress=False`` is quiet. A callable receives every :class:`ProgressEvent` instead, to drive a widget or a log.

Bars count rows written to DuckDB, not requests, so they move when data is safely committed. Notes (a quota pause,
a load resumed) go above the bars without breaking them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tqdm.auto import tqdm  # type: ignore[import-untyped]

EventKind = Literal["advance", "finish", "note"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Something a load reports.

    Attributes:
        kind: ``advance`` (``count`` more rows of ``resource`` committed), ``finish`` (``resource`` is done; ``total``
            rows in all) or ``note`` (a sentence for people, in ``message``).
        resource: what the rows are, e.g. ``issues``, ``comments``; empty for a note.
        count: rows this event adds.
        total: rows of ``resource`` so far.
        message: the note.
    """

    kind: EventKind
    resource: str = ""
    count: int = 0
    total: int = 0
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]
#: ``True``: bars; ``False``/``None``: quiet; a callable: events.
ProgressOption = bool | ProgressCallback | None


class Progress:
    """Counts rows per resource and shows them as bars, hands them to a callback, or stays quiet.

    Thread-safe: the loader reports from its event loop and from its database writer.

    Args:
        option: ``True`` for tqdm bars, ``False``/``None`` for nothing, or a callable receiving each event.
        bar_options: extra keyword arguments for every ``tqdm`` bar (tests pass ``file=``).
    """

    def __init__(self, option: ProgressOption = True, **bar_options: Any) -> None:
        self._callback: ProgressCallback | None = option if callable(option) else None
        self._bars_enabled = option is True
        self._bar_options = bar_options
        self._bars: dict[str, Any] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def quiet(self) -> bool:
        return not self._bars_enabled and self._callback is None

    @property
    def totals(self) -> dict[str, int]:
        """Rows counted so far, per resource."""
        with self._lock:
            return dict(self._totals)

    def advance(self, resource: str, count: int) -> None:
        """``count`` more rows of ``resource`` were committed."""
        if count <= 0:
            return
        with self._lock:
            total = self._totals.get(resource, 0) + count
            self._totals[resource] = total
            if self._bars_enabled:
                self._bar(resource).update(count)
        if self._callback is not None:
            self._callback(ProgressEvent("advance", resource, count, total))

    def finish(self, resource: str) -> None:
        """``resource`` will not move any more."""
        with self._lock:
            total = self._totals.get(resource, 0)
            bar = self._bars.pop(resource, None)
            if bar is not None:
                bar.close()
        if self._callback is not None:
            self._callback(ProgressEvent("finish", resource, 0, total))

    def note(self, message: str) -> None:
        """Tell people something without disturbing the bars."""
        if self._bars_enabled:
            with self._lock:
                tqdm.write(message, file=self._bar_options.get("file"))
        if self._callback is not None:
            self._callback(ProgressEvent("note", message=message))

    def close(self) -> None:
        """Close every bar still open."""
        with self._lock:
            bars, self._bars = self._bars, {}
        for bar in bars.values():
            bar.close()

    def _bar(self, resource: str) -> Any:
        bar = self._bars.get(resource)
        if bar is None:
            options = {"unit": " rows", "dynamic_ncols": True, "leave": False, **self._bar_options}
            if "file" not in options:
                # no bars on a stderr that is not a terminal (CI logs, pipes); notebooks still get their widgets
                options["disable"] = None
            bar = self._bars[resource] = tqdm(desc=f"{resource:<16}", **options)
        return bar
