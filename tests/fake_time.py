"""A fake clock for the client's retry and pacing tests: time moves only when somebody sleeps."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

# 50 s before the top of a UTC hour, so quota tests can cross it; later than anything a generated site holds
START = datetime(2026, 3, 2, 10, 59, 10, tzinfo=UTC)
NEXT_HOUR = datetime(2026, 3, 2, 11, 0, 0, tzinfo=UTC)


class FakeTime:
    """A clock that moves only when someone sleeps; sleeping ``d`` leaves it at least ``d`` later than it was."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start.timestamp()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


def gaps_between(times: list[float]) -> list[float]:
    """Seconds between successive moments."""
    return [later - earlier for earlier, later in itertools.pairwise(times)]
