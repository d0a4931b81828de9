"""Flow control for Jira Cloud requests: retries, backoff, pacing and the quota pause, all in one place.

:class:`RateGovernor` runs every request a :class:`~jira_lab.client.JiraClient` sends. It follows Atlassian's
"build an app that respects rate limits" recipe (``shared/reference/jira-semantics.md`` §3.1):

* **Only idempotent reads are retried**: ``GET`` and the ``POST`` endpoints that only read (:func:`is_idempotent`).
  A write is never repeated, because its first attempt may have taken effect.
* **A 429 is handled by its ``RateLimit-Reason``**:

  - ``jira-burst-based`` (or ``jira-per-issue-on-write``): retry after ``Retry-After`` (seconds or an HTTP date).
    That value is a *minimum*, so jitter only lengthens it (×[1, 1.3]). Without it, retry after exponential backoff
    (base 2 s, doubling, capped at 30 s, jitter ×[0.7, 1.3]). After a burst refusal, that endpoint is paced from
    then on at its steady rate (``X-RateLimit-Limit`` per second). The pace slows further while 429s keep coming
    and eases back once they stop.
  - A quota (``jira-quota-global-based``, ``jira-quota-tenant-based``), or any other or missing reason: Jira refuses
    every request until the reset, with no gradual throttling. So the **whole client** pauses until
    ``X-RateLimit-Reset`` (and for at least ``Retry-After``) and reports the pause through the event callback. If
    the reset is farther away than :attr:`RetryPolicy.max_quota_wait`, it raises
    :class:`~jira_lab.errors.QuotaExhaustedError` instead, so a load stops and can be resumed after the reset.
* **Near the quota** (``X-RateLimit-NearLimit: true``, a ``RateLimit: "…-quota";r=…;t=…`` entry, or
  ``X-RateLimit-Remaining`` under 20 % of ``X-RateLimit-Limit``), every request is paced so the remaining points
  last until the reset.
* **5xx answers, dropped connections, timeouts and cut bodies** are retried with the same capped exponential
  backoff. A 503's ``Retry-After`` counts as a minimum.
* Anything else goes back to the caller, which raises it with Jira's own messages.
* **Priorities**: a freed slot of the concurrency cap goes to the waiting request of the lowest
  :func:`request_priority` level (0 unless set), first come first served within a level. A load's per-issue reads
  are many and independent; the walks that find them (search pages, the worklog feed, changelog chunks) are chains
  of pages, each asked for once the last has come. Queued behind hundreds of per-issue reads, every link of a chain
  would wait its turn; ahead of them, the chains keep finding work while the reads fill the other slots.

Time comes only from the injected ``clock`` and passes only through the injected async ``sleep``, so tests run in
fake time. The clock gives seconds since the epoch, like :func:`time.time`, because quota resets are wall-clock
times. Jitter comes from the injected ``rng``. :class:`RequestStats` counts what happened, for the load summary.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from jira_lab.errors import JiraConnectionError, QuotaExhaustedError

logger = logging.getLogger("jira_lab.client")

#: Seconds since the Unix epoch, like :func:`time.time`.
Clock = Callable[[], float]
#: An async sleep, like :func:`asyncio.sleep`.
Sleep = Callable[[float], Awaitable[None]]

QUOTA_GLOBAL = "jira-quota-global-based"
QUOTA_TENANT = "jira-quota-tenant-based"
BURST = "jira-burst-based"
PER_ISSUE_WRITE = "jira-per-issue-on-write"
#: How a 429 without ``RateLimit-Reason`` is counted in :attr:`RequestStats.throttled`.
NO_REASON = "unknown"
#: Reasons that limit one endpoint (or one issue's writes). Every other reason, known or not, stops the whole app.
ENDPOINT_REASONS = frozenset({BURST, PER_ISSUE_WRITE})

HOUR = 3600.0

#: ``POST`` endpoints that only read, so repeating them is harmless.
_READ_ONLY_POSTS = tuple(
    re.compile(pattern)
    for pattern in (
        r"^/rest/api/[23]/search/jql$",
        r"^/rest/api/[23]/search/approximate-count$",
        r"^/rest/api/[23]/search$",  # removed (410), so repeating it changes nothing
        r"^/rest/api/[23]/.+/list$",  # comment/list, worklog/list, issue/{id}/changelog/list ...
        r"^/rest/api/[23]/(?:issue|changelog)/bulkfetch$",
        r"^/rest/api/[23]/permissions/(?:check|project)$",
    )
)
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_priority: ContextVar[int] = ContextVar("jira_lab_request_priority", default=0)


@contextmanager
def request_priority(level: int) -> Iterator[None]:
    """Requests sent in this block (by this task, and by the tasks it starts) wait for a slot behind every request of
    a lower level; 0, the default, goes first."""
    if level < 0:
        raise ValueError(f"a request priority is 0 or more, not {level}")
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


#: Transport failures worth another attempt: the request or its answer was lost on the way.
RETRYABLE_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)
#: 5xx statuses worth another attempt (501 and 505 say the request can never work).
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})


def is_idempotent(method: str, path: str) -> bool:
    """Whether a request only reads, so it may be sent again after a failure.

    Args:
        method: the HTTP method.
        path: the API path (``/rest/api/3/...``), without the gateway or site prefix or the query.
    """
    method = method.upper()
    if method in _IDEMPOTENT_METHODS:
        return True
    return method == "POST" and any(pattern.match(path) for pattern in _READ_ONLY_POSTS)


# -- configuration -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry and how to pace; the defaults follow Atlassian's published recipe.

    Args:
        max_retries: retries of one request after a 429 or a transient failure, on top of its first attempt.
        backoff_base: the first backoff in seconds, doubled on each retry.
        backoff_cap: the longest backoff in seconds.
        jitter: the range the backoff is multiplied by; ``Retry-After`` is a minimum, so only the upper bound
            stretches it.
        max_quota_wait: the longest quota pause to sit out, in seconds. When the quota resets later than that,
            :class:`~jira_lab.errors.QuotaExhaustedError` is raised so the load stops and resumes later.
        max_quota_pauses: quota pauses one request may sit out before its 429 is raised.
        near_limit_fraction: below this share of ``X-RateLimit-Limit`` remaining, the quota is "near".
        near_limit_interval: the pace (seconds between requests) near the quota when Jira gives no numbers to
            compute one.
        max_pace_interval: the slowest pace, so pacing never stands in for the quota pause.
        burst_headroom: a throttled endpoint is paced this much below its steady rate (1.05: 5 % slower).
        ease_factor: a throttled endpoint's pace is slowed by this factor on each further 429, and sped up by it
            (back to its steady rate) after a second's worth of answers without one.
    """

    max_retries: int = 6
    backoff_base: float = 2.0
    backoff_cap: float = 30.0
    jitter: tuple[float, float] = (0.7, 1.3)
    max_quota_wait: float = 900.0
    max_quota_pauses: int = 3
    near_limit_fraction: float = 0.2
    near_limit_interval: float = 0.1
    max_pace_interval: float = 5.0
    burst_headroom: float = 1.05
    ease_factor: float = 1.5

    def __post_init__(self) -> None:
        low, high = self.jitter
        if not 0 < low <= 1 <= high:
            raise ValueError(f"jitter must be a range (low, high) with 0 < low <= 1 <= high, not {self.jitter}")
        if self.max_retries < 0 or self.max_quota_pauses < 0:
            raise ValueError("max_retries and max_quota_pauses must not be negative")
        if min(self.backoff_base, self.backoff_cap, self.max_pace_interval) <= 0 or self.max_quota_wait < 0:
            raise ValueError("backoff_base, backoff_cap and max_pace_interval must be positive, max_quota_wait >= 0")
        if self.burst_headroom < 1 or self.ease_factor <= 1 or not 0 < self.near_limit_fraction < 1:
            raise ValueError("burst_headroom must be >= 1, ease_factor > 1, near_limit_fraction in (0, 1)")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (from 1) when Jira said nothing: capped, jittered."""
        exponential = min(self.backoff_cap, self.backoff_base * 2.0 ** (retry - 1))
        return min(self.backoff_cap, exponential * rng.uniform(*self.jitter))

    def after_retry_after(self, retry_after: float, rng: random.Random) -> float:
        """Seconds to wait when Jira said ``Retry-After``: never less, stretched by up to the jitter's upper bound."""
        return retry_after * rng.uniform(1.0, self.jitter[1])


# -- headers -------------------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now``: delay-seconds or an HTTP date; ``None`` if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


_OFFSET_WITHOUT_COLON = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_reset(value: str | None) -> datetime | None:
    """``X-RateLimit-Reset``: an ISO 8601 time, with or without seconds (``2026-01-01T01:01Z``, the older format
    JRACLOUD-69262 documents), with ``Z`` or an offset; a time without offset is UTC. ``None`` if unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET_WITHOUT_COLON.sub(r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_rate_limit_entries(value: str | None) -> dict[str, dict[str, float]]:
    """The structured ``RateLimit`` / ``RateLimit-Policy`` header: ``"name";k=v;k=v, ...`` by policy name.

    Entries come in no fixed order; parameters that are not numbers are skipped.
    """
    entries: dict[str, dict[str, float]] = {}
    for entry in (value or "").split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        name = name.strip('"')
        if not name:
            continue
        numbers: dict[str, float] = {}
        for param in params:
            key, _, raw = param.partition("=")
            try:
                numbers[key.strip()] = float(raw)
            except ValueError:
                continue
        entries[name] = numbers
    return entries


def _header(headers: httpx.Headers, name: str) -> str | None:
    """A header, or its ``Beta-`` twin from Atlassian's rollout."""
    value: str | None = headers.get(name)
    if value is None:
        value = headers.get(f"Beta-{name}")
    return value


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class QuotaReading:
    """What an answer says about the hourly points quota."""

    near: bool
    remaining: float | None
    seconds_to_reset: float | None


def read_quota(headers: httpx.Headers, now: float, near_fraction: float) -> QuotaReading | None:
    """The quota state an answer reports, or ``None`` when it reports none (Basic traffic is exempt from the quota).

    ``X-RateLimit-Limit``/``Remaining`` describe the quota when ``RateLimit-Policy`` names one, when
    ``X-RateLimit-NearLimit`` is present (Jira documents it for the quota only), or, with no policy named, when the
    limit is at least 1000: documented quotas start at 65,000 points, documented burst rates stop at 200 per second.
    """
    policies = parse_rate_limit_entries(_header(headers, "RateLimit-Policy"))
    quota_entries = {
        name: params
        for name, params in parse_rate_limit_entries(_header(headers, "RateLimit")).items()
        if "quota" in name
    }
    near_header = headers.get("X-RateLimit-NearLimit")
    limit = _number(headers.get("X-RateLimit-Limit"))
    remaining = _number(headers.get("X-RateLimit-Remaining"))
    names_quota = any("quota" in name for name in policies)
    names_burst = any("burst" in name for name in policies)
    headers_are_quota = limit is not None and (
        names_quota or near_header is not None or (not names_burst and limit >= 1000)
    )
    if not quota_entries and not headers_are_quota:
        return None
    seconds: float | None = None
    for params in quota_entries.values():
        if "r" in params:
            remaining = params["r"] if remaining is None else min(remaining, params["r"])
        if "t" in params:
            seconds = params["t"]
    near = near_header is not None and near_header.strip().lower() == "true"
    # Jira adds the "r" of a quota entry only once about 80 % of it is used
    near = near or any("r" in params for params in quota_entries.values())
    if headers_are_quota and limit and remaining is not None:
        near = near or remaining < near_fraction * limit
    if seconds is None:
        reset = parse_reset(headers.get("X-RateLimit-Reset"))
        # the points quota resets at the top of each UTC hour
        seconds = reset.timestamp() - now if reset is not None else HOUR - now % HOUR
    return QuotaReading(near, remaining, max(0.0, seconds))


# -- events and counters -------------------------------------------------------------------------------------------

EventKind = Literal["retry", "slow_down", "quota_pause", "quota_exhausted"]


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """Something the client did about rate limits or failures, for progress displays and logs.

    Attributes:
        kind: ``retry`` (a request is sent again after ``delay``), ``slow_down`` (requests are now paced
            ``delay`` seconds apart), ``quota_pause`` (every request waits until ``until``) or
            ``quota_exhausted`` (the load stops; resume after ``until``).
        message: a sentence for people.
        delay: seconds, as the kind says.
        until: when a quota pause ends.
        request: ``"METHOD URL"`` of the request concerned (secrets masked), if one is.
    """

    kind: EventKind
    message: str
    delay: float = 0.0
    until: datetime | None = None
    request: str = ""


EventSink = Callable[[FlowEvent], None]


@dataclass(slots=True)
class RequestStats:
    """Counters for the load summary.

    Attributes:
        requests: HTTP requests sent (every attempt counts).
        retries: attempts that repeated an earlier one.
        throttled: 429 answers by ``RateLimit-Reason`` (``"unknown"`` when there was none).
        server_errors: 5xx answers.
        transport_errors: dropped connections, timeouts and other transport failures.
        truncated_bodies: answers whose body arrived cut short.
        quota_pauses: times the whole client paused for the quota.
        waited_seconds: time spent waiting: backoff, pacing and quota pauses (overlapping waits add up).
        max_in_flight: the most requests in flight at once.
    """

    requests: int = 0
    retries: int = 0
    throttled: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    transport_errors: int = 0
    truncated_bodies: int = 0
    quota_pauses: int = 0
    waited_seconds: float = 0.0
    max_in_flight: int = 0

    def snapshot(self) -> RequestStats:
        """An independent copy."""
        return replace(self, throttled=dict(self.throttled))


# -- answers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer whose body was read in full and decoded (JSON, text, or ``None`` when empty), or left as its
    bytes for a ``settle`` step (see :meth:`RateGovernor.run`)."""

    status: int
    headers: httpx.Headers
    body: Any


class TruncatedBody(Exception):
    """An answer's body arrived incomplete (it does not parse); raised by an attempt so that it is retried."""


# -- pacing --------------------------------------------------------------------------------------------------------


class Pacer:
    """Spaces request starts at least ``interval`` seconds apart, in the order they ask (a leaky-bucket schedule).

    Reservations are made without awaiting, so concurrent tasks on one event loop get distinct slots. A pacer
    started because of an answer just received is given ``first_slot``: one interval after that answer, as if a
    request had just gone out.
    """

    def __init__(self, interval: float, first_slot: float = -math.inf) -> None:
        self.interval = interval
        self._next_slot = first_slot

    def reserve(self, now: float) -> float:
        """Book the next slot; returns the seconds to wait for it."""
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.interval
        return slot - now


@dataclass(slots=True)
class _EndpointPace:
    """An endpoint throttled by a burst limit: paced by ``pacer``, never faster than ``floor``.

    ``generation`` counts changes of pace, so a 429 can tell whether its request was sent at the current pace.
    """

    pacer: Pacer
    floor: float
    generation: int = 0
    successes: int = 0


class _Slots:
    """The concurrency cap: a semaphore whose freed slots go to the waiters of the lowest priority level first."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}

    async def acquire(self, level: int) -> None:
        if self._free > 0 and not any(self._waiting.values()):
            self._free -= 1
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(level, deque())
        queue.append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.cancelled():
                with suppress(ValueError):  # release() may have dropped it already
                    queue.remove(handed)
            else:
                self.release()  # the slot was handed over just as the waiter was cancelled: pass it on
            raise

    def release(self) -> None:
        for level in sorted(self._waiting):
            queue = self._waiting[level]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes straight to the waiter: _free stays as it is
                    return
        self._free += 1


# -- the governor --------------------------------------------------------------------------------------------------


class RateGovernor:
    """Runs requests under the retry policy, the concurrency cap, the pacing and the quota pause.

    One governor serves one client: the quota pause and the pacing are shared by every request it sends.

    Args:
        policy: retry and pacing settings.
        max_concurrency: requests in flight at once.
        clock: seconds since the epoch.
        sleep: the async sleep to wait with.
        rng: the source of jitter.
        on_event: called with each :class:`FlowEvent` (on the client's event loop thread).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        max_concurrency: int,
        clock: Clock,
        sleep: Sleep,
        rng: random.Random,
        on_event: EventSink | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.policy = policy
        self.max_concurrency = max_concurrency
        self.clock = clock
        self._sleep = sleep
        self.rng = rng
        self.on_event = on_event
        self.stats = RequestStats()
        self._slots = _Slots(max_concurrency)
        self._in_flight = 0
        self._paused_until = -math.inf
        self._exhausted: tuple[float, str, datetime] | None = None
        self._quota_pacer: Pacer | None = None
        self._quota_cost = 1.0
        self._last_remaining: float | None = None
        self._endpoints: dict[str, _EndpointPace] = {}

    # -- public --------------------------------------------------------------------------------------------------
    async def run(
        self,
        attempt: Callable[[], Awaitable[Answer]],
        *,
        endpoint: str,
        request: str,
        idempotent: bool,
        settle: Callable[[Answer], Awaitable[Answer]] | None = None,
    ) -> Answer:
        """Send a request through ``attempt`` until it succeeds, fails for good, or runs out of retries.

        Args:
            attempt: sends the request once and reads its answer; raises an httpx transport error or
                :class:`TruncatedBody` when the answer was lost.
            endpoint: the key its burst limit is kept under (Jira's is method + operation).
            request: ``"METHOD URL"`` with secrets masked, for events and errors.
            idempotent: whether it may be sent again.
            settle: finishes a successful (2xx) answer once its place under the concurrency cap is given back,
                for work that may wait (a large body decoded in another process) while other requests go out;
                raises :class:`TruncatedBody` to have the request sent again.

        Returns:
            The last answer: a success, or the error answer to raise (retries exhausted or not retryable).

        Raises:
            QuotaExhaustedError: the quota resets later than the policy's ``max_quota_wait``.
            JiraConnectionError: the request kept failing in transport.
        """
        retries = 0
        quota_pauses = 0
        while True:
            generation, outcome = await self._attempt_once(attempt, endpoint, request, settle)
            if isinstance(outcome, Exception):
                if not idempotent or retries >= self.policy.max_retries:
                    raise JiraConnectionError(request, retries + 1, outcome) from outcome
                retries += 1
                await self._retry_after(self.policy.backoff(retries, self.rng), request, _describe(outcome))
                continue
            answer = outcome
            if answer.status < 400:
                self._observe(endpoint, answer.headers)
                return answer
            if answer.status == 429:
                pause = self._throttled(endpoint, answer.headers, generation, retries + 1, request)
                if pause is None:
                    # the whole client pauses; waiting it out does not use up this request's retries
                    if not idempotent or quota_pauses >= self.policy.max_quota_pauses:
                        return answer
                    quota_pauses += 1
                    self.stats.retries += 1
                    continue
                if not idempotent or retries >= self.policy.max_retries:
                    return answer
                retries += 1
                await self._retry_after(pause, request, f"429 {answer.headers.get('RateLimit-Reason', '')}".strip())
                continue
            if answer.status in RETRYABLE_STATUSES:
                self.stats.server_errors += 1
                if not idempotent or retries >= self.policy.max_retries:
                    return answer
                retries += 1
                delay = self.policy.backoff(retries, self.rng)
                retry_after = parse_retry_after(answer.headers.get("Retry-After"), self.clock())
                if retry_after is not None:
                    delay = max(delay, self.policy.after_retry_after(retry_after, self.rng))
                await self._retry_after(delay, request, f"{answer.status}")
                continue
            return answer

    def endpoint_interval(self, endpoint: str) -> float | None:
        """The pace (seconds between requests) an endpoint is held to, or ``None`` if it is not throttled."""
        pace = self._endpoints.get(endpoint)
        return pace.pacer.interval if pace is not None else None

    @property
    def quota_interval(self) -> float | None:
        """The pace every request is held to near the quota, or ``None``."""
        return self._quota_pacer.interval if self._quota_pacer is not None else None

    @property
    def paused_until(self) -> datetime | None:
        """When the current quota pause ends, or ``None`` when the client is not paused."""
        if self._paused_until <= self.clock():
            return None
        return datetime.fromtimestamp(self._paused_until, UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait through the injected sleep, counting the time waited."""
        if seconds <= 0:
            return
        self.stats.waited_seconds += seconds
        await self._sleep(seconds)

    # -- one attempt ---------------------------------------------------------------------------------------------
    async def _attempt_once(
        self,
        attempt: Callable[[], Awaitable[Answer]],
        endpoint: str,
        request: str,
        settle: Callable[[Answer], Awaitable[Answer]] | None,
    ) -> tuple[int, Answer | Exception]:
        """One attempt; returns the endpoint's pace generation it was sent at, and its answer or lost-answer error."""
        generation, outcome = await self._send_once(attempt, endpoint, request)
        if settle is None or not isinstance(outcome, Answer) or not 200 <= outcome.status < 300:
            return generation, outcome
        try:
            return generation, await settle(outcome)
        except TruncatedBody as error:
            self.stats.truncated_bodies += 1
            return generation, error

    async def _send_once(
        self, attempt: Callable[[], Awaitable[Answer]], endpoint: str, request: str
    ) -> tuple[int, Answer | Exception]:
        await self._wait_for_turn(endpoint, request)
        await self._slots.acquire(_priority.get())
        try:
            # a pause may have begun while this request waited for a slot
            await self._wait_out_pause(request)
            pace = self._endpoints.get(endpoint)
            generation = pace.generation if pace is not None else -1
            self.stats.requests += 1
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            try:
                return generation, await attempt()
            except TruncatedBody as error:
                self.stats.truncated_bodies += 1
                return generation, error
            except RETRYABLE_TRANSPORT_ERRORS as error:
                self.stats.transport_errors += 1
                return generation, error
            finally:
                self._in_flight -= 1
        finally:
            self._slots.release()

    async def _wait_for_turn(self, endpoint: str, request: str) -> None:
        await self._wait_out_pause(request)
        if self._quota_pacer is not None:
            await self.sleep(self._quota_pacer.reserve(self.clock()))
        pace = self._endpoints.get(endpoint)
        if pace is not None:
            await self.sleep(pace.pacer.reserve(self.clock()))

    async def _wait_out_pause(self, request: str) -> None:
        while True:
            self._raise_if_exhausted(request)
            remaining = self._paused_until - self.clock()
            if remaining <= 0:
                return
            await self.sleep(remaining)

    def _raise_if_exhausted(self, request: str) -> None:
        if self._exhausted is None:
            return
        until, reason, reset_at = self._exhausted
        if self.clock() >= until:
            self._exhausted = None  # the quota has reset: a client kept alive may go on
            return
        raise QuotaExhaustedError(reason, reset_at, request=request)

    async def _retry_after(self, delay: float, request: str, why: str) -> None:
        self.stats.retries += 1
        self._emit(FlowEvent("retry", f"{why}: retrying {request} in {delay:.1f} s", delay=delay, request=request))
        await self.sleep(delay)

    # -- 429s ----------------------------------------------------------------------------------------------------
    def _throttled(
        self, endpoint: str, headers: httpx.Headers, generation: int, retry: int, request: str
    ) -> float | None:
        """Record a 429; the seconds before retrying it, or ``None`` when the whole client paused instead."""
        now = self.clock()
        reason = (headers.get("RateLimit-Reason") or "").strip() or NO_REASON
        self.stats.throttled[reason] = self.stats.throttled.get(reason, 0) + 1
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        if reason in ENDPOINT_REASONS:
            if reason == BURST:
                # a per-issue write limit is about one issue, so the endpoint keeps its pace for the others
                self._slow_endpoint(endpoint, _number(headers.get("X-RateLimit-Limit")), generation, request)
            if retry_after is not None:
                return self.policy.after_retry_after(retry_after, self.rng)
            return self.policy.backoff(retry, self.rng)
        self._pause_for_quota(reason, headers, retry_after, now, retry, request)
        return None

    def _pause_for_quota(
        self, reason: str, headers: httpx.Headers, retry_after: float | None, now: float, retry: int, request: str
    ) -> None:
        reset = parse_reset(headers.get("X-RateLimit-Reset"))
        if retry_after is None and reset is None:
            # nothing says when it ends (seen on gateway 429s): back off, but for the whole client
            wait = self.policy.backoff(retry, self.rng)
        else:
            # both are minimums; the later one wins (a client clock behind Jira's only makes the pause longer)
            wait = max(retry_after or 0.0, reset.timestamp() - now if reset is not None else 0.0)
        until = now + wait
        until_time = datetime.fromtimestamp(until, UTC)
        if wait > self.policy.max_quota_wait:
            self._exhausted = (until, reason, until_time)
            self._emit(
                FlowEvent(
                    "quota_exhausted",
                    f"Jira's rate-limit quota ({reason}) is used up until {_iso(until_time)}, {wait:.0f} s away, "
                    f"longer than the {self.policy.max_quota_wait:.0f} s this client may wait: stopping; "
                    "run the load again after that time to resume",
                    delay=wait,
                    until=until_time,
                    request=request,
                )
            )
            raise QuotaExhaustedError(reason, until_time, request=request)
        already_paused = self._paused_until > now
        previous_end = self._paused_until
        self._paused_until = max(self._paused_until, until)
        # concurrent refusals report the same reset (give or take a rounded Retry-After): tell it once
        if not already_paused or until > previous_end + 1.0:
            if not already_paused:
                self.stats.quota_pauses += 1
            self._emit(
                FlowEvent(
                    "quota_pause",
                    f"Jira's rate-limit quota ({reason}) is used up: pausing every request until "
                    f"{_iso(until_time)} ({wait:.0f} s)",
                    delay=wait,
                    until=until_time,
                    request=request,
                )
            )

    def _slow_endpoint(self, endpoint: str, rate: float | None, generation: int, request: str) -> None:
        pace = self._endpoints.get(endpoint)
        if pace is None:
            floor = self.policy.burst_headroom / rate if rate and rate > 0 else self.policy.near_limit_interval
            pace = self._endpoints[endpoint] = _EndpointPace(Pacer(floor, self.clock() + floor), floor)
        elif generation == pace.generation:
            # sent at the current pace and still refused (other clients share the bucket): slow down further;
            # requests sent before the pace changed were already in flight and say nothing about it
            pace.pacer.interval = min(self.policy.max_pace_interval, pace.pacer.interval * self.policy.ease_factor)
            pace.generation += 1
        else:
            return
        pace.successes = 0
        interval = pace.pacer.interval
        self._emit(
            FlowEvent(
                "slow_down",
                f"burst limit on {endpoint}: pacing it at {1 / interval:.1f} requests/s",
                delay=interval,
                request=request,
            )
        )

    # -- successes -----------------------------------------------------------------------------------------------
    def _observe(self, endpoint: str, headers: httpx.Headers) -> None:
        self._ease_endpoint(endpoint)
        now = self.clock()
        reading = read_quota(headers, now, self.policy.near_limit_fraction)
        if reading is None:
            return
        if reading.remaining is not None:
            if self._last_remaining is not None and reading.remaining < self._last_remaining:
                # what the points since the previous answer cost: a running estimate of one request's cost
                cost = self._last_remaining - reading.remaining
                self._quota_cost = 0.8 * self._quota_cost + 0.2 * max(1.0, cost)
            self._last_remaining = reading.remaining
        if not reading.near:
            self._quota_pacer = None
            return
        interval = self._near_limit_interval(reading)
        if self._quota_pacer is None:
            self._quota_pacer = Pacer(interval, now + interval)
            self._emit(
                FlowEvent(
                    "slow_down",
                    f"near Jira's rate-limit quota: pacing every request {interval:.2f} s apart until it resets",
                    delay=interval,
                )
            )
        else:
            self._quota_pacer.interval = interval

    def _near_limit_interval(self, reading: QuotaReading) -> float:
        """Spread what is left of the quota over the time to its reset."""
        if reading.remaining is None or reading.seconds_to_reset is None:
            return self.policy.near_limit_interval
        requests_left = max(1.0, reading.remaining / self._quota_cost)
        return min(self.policy.max_pace_interval, reading.seconds_to_reset / requests_left)

    def _ease_endpoint(self, endpoint: str) -> None:
        pace = self._endpoints.get(endpoint)
        if pace is None or pace.pacer.interval <= pace.floor:
            return
        pace.successes += 1
        if pace.successes >= 1.0 / pace.pacer.interval:
            pace.pacer.interval = max(pace.floor, pace.pacer.interval / self.policy.ease_factor)
            pace.successes = 0
            pace.generation += 1

    def _emit(self, event: FlowEvent) -> None:
        level = logging.WARNING if event.kind.startswith("quota") else logging.INFO
        logger.log(logging.DEBUG if event.kind == "retry" else level, "%s", event.message)
        if self.on_event is not None:
            self.on_event(event)


def _describe(error: Exception) -> str:
    if isinstance(error, TruncatedBody):
        return "the answer's body arrived cut short"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
