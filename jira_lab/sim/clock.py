"""Time for the simulated cloud: a clock is a callable returning seconds since the Unix epoch, like :func:`time.time`.

:class:`~jira_lab.sim.cloud.SimCloud` takes one (``clock=``) and everything time-dependent reads it: token expiry,
rate-limit buckets and quotas, the ``worklog/updated``/``worklog/deleted`` quiet minute, and the times changes are
stamped with (:mod:`jira_lab.sim.mutations`). Tests pass a :class:`FakeClock` and move it by hand, so nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jira_lab.sim.builder import EPOCH

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def clock_time(seconds: float) -> datetime:
    """A clock reading as the UTC datetime Jira stores: whole milliseconds, the precision Jira keeps.

    Milliseconds are truncated the way the ``worklog/updated`` feed truncates the clock, so a change stamped at a
    reading and that feed's cut-off computed from the same reading agree to the millisecond.
    """
    return _UNIX_EPOCH + timedelta(milliseconds=int(seconds * 1000))


class FakeClock:
    """A clock the test moves by hand; it starts at ``start`` (default :data:`~jira_lab.sim.builder.EPOCH`).

    Generated sites hold nothing later than EPOCH, so the default start is just after their data.
    """

    def __init__(self, start: float | datetime = EPOCH) -> None:
        #: seconds since the Unix epoch
        self.now = start.timestamp() if isinstance(start, datetime) else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new reading; a clock never goes back."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; cannot advance by {seconds} s")
        self.now += seconds
        return self.now

    def time(self) -> datetime:
        """The current reading as Jira stores times (UTC, whole milliseconds)."""
        return clock_time(self.now)

    def __repr__(self) -> str:
        return f"FakeClock({self.time().isoformat()})"
