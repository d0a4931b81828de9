"""Flow control: header parsing, the retry policy's delays, pacing, and the governor's decisions on scripted answers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from fake_time import NEXT_HOUR, START, FakeTime, gaps_between

from jira_lab.errors import JiraConnectionError, QuotaExhaustedError
from jira_lab.ratelimit import (
    BURST,
    NO_REASON,
    PER_ISSUE_WRITE,
    QUOTA_GLOBAL,
    Answer,
    FlowEvent,
    Pacer,
    RateGovernor,
    RetryPolicy,
    TruncatedBody,
    is_idempotent,
    parse_rate_limit_entries,
    parse_reset,
    parse_retry_after,
    read_quota,
    request_priority,
)


class FixedRandom(random.Random):
    """Jitter pinned at one point of its range (0: the low end, 0.5: the middle, 1: the high end)."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def answer(status: int, headers: dict[str, str] | None = None, body: object = None) -> Answer:
    return Answer(status, httpx.Headers(headers or {}), body)


class Script:
    """An attempt function that plays answers (or raises errors) in order, noting the clock at each attempt."""

    def __init__(self, time: FakeTime, outcomes: Iterable[Answer | Exception]) -> None:
        self.time = time
        self.outcomes = list(outcomes)
        self.sent_at: list[float] = []

    async def __call__(self) -> Answer:
        self.sent_at.append(self.time())
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def governor(
    time: FakeTime, *, policy: RetryPolicy | None = None, rng: random.Random | None = None, concurrency: int = 4
) -> tuple[RateGovernor, list[FlowEvent]]:
    events: list[FlowEvent] = []
    return (
        RateGovernor(
            policy or RetryPolicy(),
            max_concurrency=concurrency,
            clock=time,
            sleep=time.sleep,
            rng=rng or FixedRandom(0.5),
            on_event=events.append,
        ),
        events,
    )


def run(gov: RateGovernor, attempt: Callable[[], Awaitable[Answer]], *, idempotent: bool = True) -> Answer:
    return asyncio.run(gov.run(attempt, endpoint="GET getServerInfo", request="GET /serverInfo", idempotent=idempotent))


# -- headers ---------------------------------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = START.timestamp()
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after(format_datetime(START + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(START - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-02T11:00:00Z",
        "2026-03-02T11:00Z",  # the older format without seconds (JRACLOUD-69262)
        "2026-03-02T11:00:00.000+0000",
        "2026-03-02T12:00:00+01:00",
        "2026-03-02T11:00",  # no offset: UTC
    ],
)
def test_reset_reads_iso_times_with_or_without_seconds(value: str) -> None:
    assert parse_reset(value) == NEXT_HOUR


def test_an_unreadable_reset_is_none() -> None:
    assert parse_reset("next hour") is None
    assert parse_reset(None) is None


def test_structured_rate_limit_entries_are_read_in_any_order() -> None:
    entries = parse_rate_limit_entries('"jira-burst-based";r=0;t=1, "global-app-quota";r=12;t=30;x=y')
    assert entries == {"jira-burst-based": {"r": 0.0, "t": 1.0}, "global-app-quota": {"r": 12.0, "t": 30.0}}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/rest/api/3/issue/10001", True),
        ("POST", "/rest/api/3/search/jql", True),
        ("POST", "/rest/api/3/search/approximate-count", True),
        ("POST", "/rest/api/3/comment/list", True),
        ("POST", "/rest/api/3/worklog/list", True),
        ("POST", "/rest/api/3/issue/10001/changelog/list", True),
        ("POST", "/rest/api/3/issue/bulkfetch", True),
        ("POST", "/rest/api/3/changelog/bulkfetch", True),
        ("POST", "/rest/api/3/permissions/check", True),
        ("POST", "/rest/api/3/issue", False),
        ("POST", "/rest/api/3/issue/10001/comment", False),
        ("PUT", "/rest/api/3/issue/10001", False),
        ("DELETE", "/rest/api/3/issue/10001/worklog/5", False),
    ],
)
def test_only_reads_count_as_idempotent(method: str, path: str, expected: bool) -> None:
    assert is_idempotent(method, path) is expected


def test_quota_headers_near_the_limit_are_read() -> None:
    headers = httpx.Headers(
        {
            "X-RateLimit-Limit": "65000",
            "X-RateLimit-Remaining": "1200",
            "X-RateLimit-NearLimit": "true",
            "RateLimit-Policy": '"global-app-quota";q=65000;w=3600',
            "RateLimit": '"global-app-quota";r=1200;t=50',
        }
    )
    reading = read_quota(headers, START.timestamp(), 0.2)
    assert reading is not None
    assert (reading.near, reading.remaining, reading.seconds_to_reset) == (True, 1200.0, 50.0)


def test_a_low_remaining_quota_counts_as_near_without_the_near_limit_header() -> None:
    low = httpx.Headers({"X-RateLimit-Limit": "65000", "X-RateLimit-Remaining": "100"})
    plenty = httpx.Headers({"X-RateLimit-Limit": "65000", "X-RateLimit-Remaining": "60000"})
    now = START.timestamp()
    low_reading, plenty_reading = read_quota(low, now, 0.2), read_quota(plenty, now, 0.2)
    assert low_reading is not None and low_reading.near
    # without a reset header the quota resets at the top of the UTC hour
    assert low_reading.seconds_to_reset == pytest.approx((NEXT_HOUR - START).total_seconds())
    assert plenty_reading is not None and not plenty_reading.near


def test_burst_headers_and_basic_traffic_say_nothing_about_the_quota() -> None:
    burst = httpx.Headers(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "RateLimit-Policy": '"jira-burst-based";q=100;w=1'}
    )
    assert read_quota(burst, START.timestamp(), 0.2) is None
    assert read_quota(httpx.Headers({"content-type": "application/json"}), START.timestamp(), 0.2) is None


# -- the policy's delays ---------------------------------------------------------------------------------------------


def test_backoff_doubles_from_two_seconds_up_to_the_cap() -> None:
    policy = RetryPolicy()
    # jitter pinned at its middle (x1.0): Atlassian's recipe, base 2 s doubling, capped at 30 s
    assert [policy.backoff(retry, FixedRandom(0.5)) for retry in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_backoff_jitter_stays_within_its_range() -> None:
    policy = RetryPolicy()
    rng = random.Random(42)
    for retry in range(1, 8):
        nominal = min(30.0, 2.0 * 2 ** (retry - 1))
        for _ in range(50):
            delay = policy.backoff(retry, rng)
            assert 0.7 * nominal <= delay <= min(30.0, 1.3 * nominal)


def test_retry_after_is_a_minimum_that_jitter_only_lengthens() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = [policy.after_retry_after(5.0, rng) for _ in range(200)]
    assert min(delays) >= 5.0
    assert max(delays) <= 6.5
    assert len(set(delays)) > 100  # spread out, so concurrent retries do not come back together


def test_a_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=(1.2, 1.3))
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=0)


def test_a_pacer_spaces_starts_in_the_order_they_ask() -> None:
    pacer = Pacer(0.5)
    assert [pacer.reserve(100.0) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert pacer.reserve(200.0) == 0.0  # idle long enough: no wait


# -- the governor ----------------------------------------------------------------------------------------------------


def test_a_burst_429_is_retried_after_retry_after_and_slows_its_endpoint() -> None:
    time = FakeTime()
    gov, events = governor(time, rng=FixedRandom(1.0))
    script = Script(
        time,
        [answer(429, {"Retry-After": "3", "RateLimit-Reason": BURST, "X-RateLimit-Limit": "100"}), answer(200)],
    )
    assert run(gov, script).status == 200
    assert script.sent_at[1] - script.sent_at[0] >= 3.0
    assert script.sent_at[1] - script.sent_at[0] == pytest.approx(3.0 * 1.3)  # jitter pinned at its high end
    assert gov.stats.throttled == {BURST: 1}
    assert gov.stats.retries == 1
    # paced a little below the endpoint's steady rate of 100 requests/s from now on
    assert gov.endpoint_interval("GET getServerInfo") == pytest.approx(1.05 / 100)
    assert [e.kind for e in events] == ["slow_down", "retry"]


def test_a_per_issue_write_429_does_not_slow_the_whole_endpoint() -> None:
    time = FakeTime()
    gov, _ = governor(time)
    per_issue = answer(429, {"Retry-After": "2", "RateLimit-Reason": PER_ISSUE_WRITE, "X-RateLimit-Limit": "20"})
    script = Script(time, [per_issue, answer(200)])
    assert run(gov, script).status == 200
    assert script.sent_at[1] - script.sent_at[0] >= 2.0
    assert gov.endpoint_interval("GET getServerInfo") is None
    assert gov.stats.throttled == {PER_ISSUE_WRITE: 1}


def test_429s_without_retry_after_back_off_exponentially() -> None:
    time = FakeTime()
    gov, _ = governor(time)
    throttled = answer(429, {"RateLimit-Reason": BURST})
    script = Script(time, [throttled, throttled, throttled, throttled, answer(200)])
    assert run(gov, script).status == 200
    gaps = gaps_between(script.sent_at)
    assert gaps == pytest.approx([2.0, 4.0, 8.0, 16.0], abs=0.2)  # the pacing of a rate Jira did not give is tiny


def test_server_errors_are_retried_with_capped_backoff_and_a_503_retry_after_is_a_minimum() -> None:
    time = FakeTime()
    gov, _ = governor(time)
    script = Script(time, [answer(502), answer(503, {"Retry-After": "20"}), answer(500), answer(200, body=[1])])
    assert run(gov, script).body == [1]
    gaps = gaps_between(script.sent_at)
    assert gaps[0] == pytest.approx(2.0) and gaps[2] == pytest.approx(8.0)
    assert 20.0 <= gaps[1] <= 20.0 * 1.3
    assert gov.stats.server_errors == 3


def test_lost_answers_are_retried_until_the_retries_run_out() -> None:
    time = FakeTime()
    gov, _ = governor(time, policy=RetryPolicy(max_retries=2))
    request = httpx.Request("GET", "https://x.atlassian.net/rest/api/3/serverInfo")
    script = Script(
        time,
        [
            httpx.ReadError("connection reset by peer", request=request),
            TruncatedBody("Expecting value"),
            httpx.RemoteProtocolError("peer closed connection", request=request),
        ],
    )
    with pytest.raises(JiraConnectionError) as raised:
        run(gov, script)
    assert raised.value.attempts == 3
    assert len(script.sent_at) == 3
    assert (gov.stats.transport_errors, gov.stats.truncated_bodies) == (2, 1)


def test_a_write_is_never_repeated() -> None:
    time = FakeTime()
    gov, _ = governor(time)
    script = Script(time, [answer(503), answer(200)])
    assert run(gov, script, idempotent=False).status == 503
    assert len(script.sent_at) == 1
    request = httpx.Request("POST", "https://x.atlassian.net/rest/api/3/issue")
    dropped = Script(time, [httpx.ReadError("reset", request=request), answer(201)])
    with pytest.raises(JiraConnectionError):
        run(gov, dropped, idempotent=False)
    assert len(dropped.sent_at) == 1


def test_other_client_errors_come_back_at_once() -> None:
    time = FakeTime()
    gov, _ = governor(time)
    script = Script(time, [answer(404, body={"errorMessages": ["gone"]}), answer(200)])
    assert run(gov, script).status == 404
    assert len(script.sent_at) == 1 and time.sleeps == []


def test_a_quota_429_pauses_every_request_until_the_reset() -> None:
    time = FakeTime()
    gov, events = governor(time)
    quota = answer(
        429, {"Retry-After": "50", "X-RateLimit-Reset": "2026-03-02T11:00:00Z", "RateLimit-Reason": QUOTA_GLOBAL}
    )
    first = Script(time, [quota, answer(200)])
    second = Script(time, [answer(200)])

    async def both() -> None:
        await gov.run(first, endpoint="a", request="GET /a", idempotent=True)
        # another request on another endpoint, after the 429: it waits for the same reset
        await gov.run(second, endpoint="b", request="GET /b", idempotent=True)

    asyncio.run(both())
    assert first.sent_at[1] >= NEXT_HOUR.timestamp()
    assert second.sent_at[0] >= NEXT_HOUR.timestamp()
    pauses = [e for e in events if e.kind == "quota_pause"]
    assert len(pauses) == 1 and pauses[0].until == NEXT_HOUR
    assert gov.stats.quota_pauses == 1 and gov.stats.throttled == {QUOTA_GLOBAL: 1}


def test_a_quota_reset_too_far_away_stops_resumably() -> None:
    time = FakeTime()
    gov, events = governor(time, policy=RetryPolicy(max_quota_wait=10))
    quota = answer(429, {"X-RateLimit-Reset": "2026-03-02T11:00Z", "RateLimit-Reason": QUOTA_GLOBAL})
    script = Script(time, [quota])
    with pytest.raises(QuotaExhaustedError) as raised:
        run(gov, script)
    assert raised.value.reset_at == NEXT_HOUR
    assert raised.value.status == 429 and raised.value.reason == QUOTA_GLOBAL
    assert events[-1].kind == "quota_exhausted"
    # until the reset, nothing more is sent: every request stops at once
    later = Script(time, [answer(200)])
    with pytest.raises(QuotaExhaustedError):
        run(gov, later)
    assert later.sent_at == []
    # after the reset the same client may go on
    time.now = NEXT_HOUR.timestamp()
    assert run(gov, later).status == 200


def test_a_429_with_no_reason_and_no_times_pauses_the_whole_client_with_backoff() -> None:
    time = FakeTime()
    gov, events = governor(time)
    script = Script(time, [answer(429), answer(200)])
    assert run(gov, script).status == 200
    assert script.sent_at[1] - script.sent_at[0] == pytest.approx(2.0)
    assert gov.stats.throttled == {NO_REASON: 1}
    assert [e.kind for e in events] == ["quota_pause"]


def test_a_request_sent_at_the_current_pace_and_refused_again_slows_the_endpoint_further() -> None:
    time = FakeTime()
    gov, _ = governor(time, rng=FixedRandom(0.0))
    burst = answer(429, {"Retry-After": "1", "RateLimit-Reason": BURST, "X-RateLimit-Limit": "10"})
    script = Script(time, [burst, burst, answer(200)])
    run(gov, script)
    # the second 429 came to a request sent at the new pace: slow down by the ease factor
    assert gov.endpoint_interval("GET getServerInfo") == pytest.approx(1.05 / 10 * 1.5)


def test_refusals_of_requests_already_in_flight_do_not_slow_the_endpoint_twice() -> None:
    time = FakeTime()
    gov, events = governor(time, rng=FixedRandom(0.0))
    burst = answer(429, {"Retry-After": "1", "RateLimit-Reason": BURST, "X-RateLimit-Limit": "10"})
    gate = asyncio.Event()

    def held(outcomes: list[Answer]) -> Callable[[], Awaitable[Answer]]:
        async def attempt() -> Answer:
            await gate.wait()  # all three are in flight together when the burst limit answers
            return outcomes.pop(0)

        return attempt

    async def three() -> None:
        tasks = [
            asyncio.create_task(gov.run(held([burst, answer(200)]), endpoint="e", request="GET /e", idempotent=True))
            for _ in range(3)
        ]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(three())
    assert gov.stats.throttled == {BURST: 3}
    assert gov.endpoint_interval("e") == pytest.approx(1.05 / 10)
    assert [e.kind for e in events].count("slow_down") == 1


def test_near_the_quota_every_request_is_paced_to_last_until_the_reset() -> None:
    time = FakeTime()
    gov, events = governor(time)
    near = answer(
        200,
        {
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": "100",
            "X-RateLimit-NearLimit": "true",
            "RateLimit": '"global-app-quota";r=100;t=50',
        },
    )
    run(gov, Script(time, [near]))
    # 100 points left for 50 s, one point a request so far: a request every 0.5 s
    assert gov.quota_interval == pytest.approx(0.5)
    later = Script(time, [answer(200), answer(200), answer(200)])
    for _ in range(3):
        run(gov, later)
    gaps = gaps_between(later.sent_at)
    assert gaps == pytest.approx([0.5, 0.5])
    assert [e.kind for e in events] == ["slow_down"]
    relaxed = answer(200, {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "990"})
    run(gov, Script(time, [relaxed]))
    assert gov.quota_interval is None


def test_the_concurrency_cap_holds_in_the_governor() -> None:
    time = FakeTime()
    gov, _ = governor(time, concurrency=3)
    in_flight = 0
    peak = 0

    async def attempt() -> Answer:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        return answer(200)

    async def many() -> None:
        await asyncio.gather(*(gov.run(attempt, endpoint="e", request="GET /e", idempotent=True) for _ in range(20)))

    asyncio.run(many())
    assert peak == 3
    assert gov.stats.max_in_flight == 3 and gov.stats.requests == 20


def test_a_settle_step_runs_after_the_slot_is_given_back() -> None:
    """The first request's settle step waits for the second request to be sent: with one slot, it can only finish
    if its slot was given back before it settled."""
    time = FakeTime()
    gov, _ = governor(time, concurrency=1)
    second_sent = asyncio.Event()
    steps: list[str] = []

    async def first() -> Answer:
        steps.append("first sent")
        return answer(200, body=b"raw")

    async def second() -> Answer:
        steps.append("second sent")
        second_sent.set()
        return answer(200, body=b"raw")

    async def settle(got: Answer) -> Answer:
        if not second_sent.is_set():
            await second_sent.wait()
        steps.append("settled")
        return answer(got.status, body=got.body.decode())

    async def scenario() -> tuple[Answer, Answer]:
        return await asyncio.wait_for(
            asyncio.gather(
                gov.run(first, endpoint="e", request="GET /a", idempotent=True, settle=settle),
                gov.run(second, endpoint="e", request="GET /b", idempotent=True, settle=settle),
            ),
            timeout=10,  # only a guard: with the slot held while settling, the two would wait for each other
        )

    answers = asyncio.run(scenario())
    assert [a.body for a in answers] == ["raw", "raw"]
    assert steps == ["first sent", "second sent", "settled", "settled"]


def test_a_settle_step_that_finds_the_body_cut_sends_the_request_again_and_skips_error_answers() -> None:
    time = FakeTime()
    gov, _ = governor(time)
    script = Script(time, [answer(200, body=b"{cut"), answer(200, body=b"{}"), answer(404, body={"errorMessages": []})])
    settled: list[bytes] = []

    async def settle(got: Answer) -> Answer:
        settled.append(got.body)
        if got.body == b"{cut":
            raise TruncatedBody("cut")
        return answer(got.status, body={})

    async def two() -> tuple[Answer, Answer]:
        ok = await gov.run(script, endpoint="e", request="GET /e", idempotent=True, settle=settle)
        missing = await gov.run(script, endpoint="e", request="GET /e", idempotent=True, settle=settle)
        return ok, missing

    ok, missing = asyncio.run(two())
    assert ok.body == {} and len(script.sent_at) == 3
    assert gov.stats.truncated_bodies == 1 and gov.stats.requests == 3
    assert missing.status == 404 and settled == [b"{cut", b"{}"]  # the 404 is not settled


def _gated_requests(gov: RateGovernor, levels: list[int]) -> Callable[[], Coroutine[Any, Any, list[int]]]:
    """One request holding the only slot until ``gate`` is set, then one request per level queued in that order."""
    order: list[int] = []
    gate = asyncio.Event()

    def attempt_for(tag: int) -> Callable[[], Awaitable[Answer]]:
        async def attempt() -> Answer:
            if tag < 0:
                await gate.wait()
            order.append(tag)
            return answer(200)

        return attempt

    async def send(tag: int, level: int) -> None:
        with request_priority(level):
            await gov.run(attempt_for(tag), endpoint="e", request="GET /e", idempotent=True)

    async def scenario() -> list[int]:
        holder = asyncio.ensure_future(send(-1, 0))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(send(tag, level)) for tag, level in enumerate(levels)]
        for _ in range(3):
            await asyncio.sleep(0)  # every request is queued for the slot now
        gate.set()
        await asyncio.gather(holder, *waiting)
        return order

    return scenario


def test_a_freed_slot_goes_to_the_lowest_priority_level_first_and_in_order_within_a_level() -> None:
    time = FakeTime()
    gov, _ = governor(time, concurrency=1)
    scenario = _gated_requests(gov, [2, 1, 0, 1, 0, 2])
    order = asyncio.run(scenario())
    # tags are the positions in the queue: level 0 (tags 2, 4), then level 1 (1, 3), then level 2 (0, 5)
    assert order == [-1, 2, 4, 1, 3, 0, 5]
    assert gov.stats.requests == 7


def test_a_request_cancelled_while_it_waits_for_a_slot_leaves_no_trace() -> None:
    time = FakeTime()
    gov, _ = governor(time, concurrency=1)
    order: list[str] = []
    gate = asyncio.Event()

    async def attempt(tag: str) -> Answer:
        if tag == "holder":
            await gate.wait()
        order.append(tag)
        return answer(200)

    async def send(tag: str, level: int) -> None:
        with request_priority(level):
            await gov.run(lambda: attempt(tag), endpoint="e", request="GET /e", idempotent=True)

    async def scenario() -> None:
        holder = asyncio.ensure_future(send("holder", 0))
        await asyncio.sleep(0)
        doomed = asyncio.ensure_future(send("doomed", 0))
        later = asyncio.ensure_future(send("later", 1))
        await asyncio.sleep(0)
        doomed.cancel()
        gate.set()
        await asyncio.gather(holder, later)
        # the slot is free again: a new request gets it at once
        await send("after", 0)

    asyncio.run(scenario())
    assert order == ["holder", "later", "after"]


def test_request_priority_is_scoped_to_its_block_and_refuses_negative_levels() -> None:
    time = FakeTime()
    gov, _ = governor(time, concurrency=1)
    scenario = _gated_requests(gov, [0, 0])
    assert asyncio.run(scenario()) == [-1, 0, 1]
    with pytest.raises(ValueError, match="0 or more"), request_priority(-1):
        pass
