"""The Jira client against the simulated cloud: both base URLs, rate limits, faults, errors, concurrency, sync use.

Everything runs in fake time: the client's sleep records the delay and moves the clock the simulated cloud reads, so
a 50 s quota pause takes no real time and the cloud's buckets and quota see the time the client waited.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import random
import threading
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fake_time import NEXT_HOUR, FakeTime, gaps_between

from jira_lab.client import JiraClient, SyncJiraClient, gateway_base_url, mask_url
from jira_lab.errors import (
    JiraApiError,
    JiraConnectionError,
    MissingScopeError,
    QuotaExhaustedError,
)
from jira_lab.operations import operation
from jira_lab.pagination import (
    array_pages,
    changelogs_by_issue_ids,
    iter_items,
    legacy_offset_pages,
    offset_limit_pages,
    page_bean_pages,
    search_pages,
    since_pages,
    worklogs_by_ids,
)
from jira_lab.ratelimit import BURST, NO_REASON, QUOTA_GLOBAL, FlowEvent, RetryPolicy
from jira_lab.sim import SimCloud
from jira_lab.sim.faults import Fault, Faults, RandomFault
from jira_lab.sim.generator import generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Site

SCOPES = ["read:jira-work", "read:jira-user", "manage:jira-configuration"]
ALL_ISSUES = "created >= 2000-01-01"


@dataclass(frozen=True)
class Sent:
    """One request as the transport saw it."""

    at: float
    method: str
    host: str
    path: str
    status: int | None  # None: the connection failed
    headers: httpx.Headers


class Recorder(httpx.AsyncBaseTransport):
    """Wraps the cloud's transport: logs every request with the fake time, and counts requests in flight.

    With ``overlap`` each request yields to the event loop a few times, as a network round trip would, so that
    concurrent requests really overlap (the in-process cloud otherwise answers before anything else can run).
    """

    def __init__(self, cloud: SimCloud, time: FakeTime, *, overlap: bool = False) -> None:
        self.inner = cloud.transport()
        self.time = time
        self.overlap = overlap
        self.sent: list[Sent] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.overlap:
                for _ in range(5):
                    await asyncio.sleep(0)
            at = self.time()
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError:
                self.sent.append(Sent(at, request.method, request.url.host, request.url.path, None, httpx.Headers()))
                raise
            self.sent.append(
                Sent(at, request.method, request.url.host, request.url.path, response.status_code, response.headers)
            )
            return response
        finally:
            self.in_flight -= 1

    def statuses(self) -> list[int | None]:
        return [s.status for s in self.sent]


class Bearer(httpx.Auth):
    """A gateway access token, as a 3LO app sends it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@pytest.fixture(scope="module")
def site() -> Site:
    """The tiny generated site; read only."""
    return generate_site("tiny", 0)


def analyst(site: Site) -> tuple[str, httpx.BasicAuth, str]:
    """The analyst's account id, Basic credentials and API token (the analyst sees everything on the site)."""
    user = site.users[site.accounts["analyst"]]
    assert user.email is not None and user.api_token is not None
    return user.account_id, httpx.BasicAuth(user.email, user.api_token), user.api_token


def site_client(
    cloud: SimCloud, site: Site, time: FakeTime, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> JiraClient:
    options.setdefault("rng", random.Random(1))
    return JiraClient.for_site(
        cloud.site_url(site),
        auth=analyst(site)[1],
        transport=transport or cloud.transport(),
        clock=time,
        sleep=time.sleep,
        **options,
    )


def gateway_client(
    cloud: SimCloud, site: Site, time: FakeTime, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> tuple[JiraClient, str]:
    token = cloud.mint_access_token(site.accounts["analyst"], options.pop("token_scopes", SCOPES), sites=[site])
    options.setdefault("rng", random.Random(1))
    client = JiraClient.for_cloud(
        site.cloud_id,
        auth=Bearer(token),
        transport=transport or cloud.transport(),
        clock=time,
        sleep=time.sleep,
        **options,
    )
    return client, token


def burst_limits(rate: float, **options: Any) -> RateLimits:
    """Only a burst bucket of ``rate`` requests/s per endpoint (one second deep), no quota."""
    return RateLimits(
        steady_rates={"GET": rate, "POST": rate}, endpoint_rates={}, hourly_points=None, burst_seconds=1.0, **options
    )


def quota_limits(points: int, **options: Any) -> RateLimits:
    """Only an hourly points quota (the burst buckets far out of reach)."""
    return RateLimits(steady_rates={"GET": 1e6, "POST": 1e6}, endpoint_rates={}, hourly_points=points, **options)


# -- base URLs -------------------------------------------------------------------------------------------------------


def test_the_gateway_and_the_site_url_give_the_same_answers(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    gateway, _ = gateway_client(cloud, site, time)
    assert gateway.base_url == cloud.gateway_url(site) == gateway_base_url(site.cloud_id)
    basic = site_client(cloud, site, time)
    assert basic.base_url == cloud.site_url(site)

    async def project_ids(client: JiraClient) -> list[str]:
        async with client:
            return [p["id"] async for p in iter_items(page_bean_pages(client, "/rest/api/3/project/search"))]

    via_gateway = asyncio.run(project_ids(gateway))
    via_site = asyncio.run(project_ids(basic))
    assert via_gateway == via_site
    assert sorted(int(i) for i in via_site) == sorted(site.projects)


def test_jira_urls_are_rebased_onto_the_clients_own_base_url() -> None:
    client = JiraClient.for_cloud("abc-123", auth=Bearer("t"))
    assert client.base_url == "https://api.atlassian.com/ex/jira/abc-123"
    assert client.relative("https://tiny.atlassian.net/rest/api/3/worklog/updated?since=5") == (
        "/rest/api/3/worklog/updated?since=5"
    )
    assert client.relative("https://api.atlassian.com/ex/jira/abc-123/rest/api/3/group/bulk?startAt=50") == (
        "/rest/api/3/group/bulk?startAt=50"
    )
    assert client.relative("http://127.0.0.1:8080/site/tiny/rest/api/3/user?accountId=x") == (
        "/rest/api/3/user?accountId=x"
    )
    assert client.relative("rest/api/3/field") == "/rest/api/3/field"
    with pytest.raises(ValueError, match="not a Jira REST API path"):
        client.relative("https://evil.example/steal")
    with pytest.raises(ValueError):
        JiraClient("ftp://x.atlassian.net")


def test_the_default_transport_keeps_a_pool_as_large_as_the_concurrency_cap() -> None:
    client = JiraClient("https://tiny.atlassian.net", max_concurrency=7)
    assert (client.limits.max_connections, client.limits.max_keepalive_connections) == (7, 7)
    assert client.governor.max_concurrency == 7


# -- 429s ------------------------------------------------------------------------------------------------------------


def test_a_burst_429_waits_at_least_its_retry_after_and_then_paces_the_endpoint(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time, limits=burst_limits(2.0))
    recorder = Recorder(cloud, time)
    events: list[FlowEvent] = []
    client = site_client(cloud, site, time, recorder, on_event=events.append)

    async def twelve() -> list[Any]:
        async with client:
            return [await client.get("/rest/api/3/serverInfo") for _ in range(12)]

    answers = asyncio.run(twelve())
    assert all(a["deploymentType"] == "Cloud" for a in answers)
    refused = [i for i, s in enumerate(recorder.sent) if s.status == 429]
    assert refused, "a bucket of 2 requests/s must refuse 12 back-to-back requests"
    for i in refused:
        retry_after = float(recorder.sent[i].headers["Retry-After"])
        assert recorder.sent[i + 1].at - recorder.sent[i].at >= retry_after
    assert client.stats.throttled == {BURST: len(refused)}
    # once paced at the bucket's rate, requests no longer run into it
    first_paced = refused[0] + 1
    gaps = gaps_between([s.at for s in recorder.sent[first_paced:]])
    assert all(gap >= 1 / 2.0 for gap in gaps)
    assert len(refused) <= 2
    assert any(e.kind == "slow_down" for e in events)


class Neighbour(Recorder):
    """Another app on the same site: before each of our first ``rounds`` requests it empties the endpoint's burst
    bucket (Jira's buckets are per site and endpoint, shared by every caller)."""

    def __init__(self, cloud: SimCloud, time: FakeTime, *, rounds: int, burst: int) -> None:
        super().__init__(cloud, time)
        self.cloud = cloud
        self.rounds = rounds
        self.burst = burst

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.rounds > 0:
            self.rounds -= 1
            for _ in range(self.burst):
                self.cloud.handle(httpx.Request(request.method, request.url))
        return await super().handle_async_request(request)


def test_429s_without_retry_after_are_retried_after_growing_delays(site: Site) -> None:
    time = FakeTime()
    # no Retry-After on any 429: the client has to find its own delays while a neighbour keeps the bucket empty
    cloud = SimCloud(site, clock=time, limits=burst_limits(10.0, omit_retry_after_every=1))
    neighbour = Neighbour(cloud, time, rounds=5, burst=30)
    client = site_client(cloud, site, time, neighbour)

    asyncio.run(client.get("/rest/api/3/serverInfo"))
    attempts = neighbour.sent
    assert [s.status for s in attempts] == [429, 429, 429, 429, 429, 200]
    assert all("Retry-After" not in s.headers for s in attempts[:-1])
    gaps = gaps_between([s.at for s in attempts])
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps))
    # never sooner than the recipe's backoff with the lowest jitter (2 s, 4 s, 8 s ...), never beyond its cap
    assert all(0.7 * min(30.0, 2.0 * 2**k) <= gap <= 30.0 for k, gap in enumerate(gaps))
    assert client.stats.throttled == {BURST: 5} and client.stats.retries == 5


def test_a_429_without_reason_pauses_the_whole_client_until_its_reset(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time, limits=burst_limits(2.0, omit_retry_after_every=1, omit_reason_too=True))
    recorder = Recorder(cloud, time)
    events: list[FlowEvent] = []
    client = site_client(cloud, site, time, recorder, on_event=events.append)

    async def three() -> None:
        async with client:
            for _ in range(3):
                await client.get("/rest/api/3/serverInfo")

    asyncio.run(three())
    refused = next(i for i, s in enumerate(recorder.sent) if s.status == 429)
    reset = datetime.fromisoformat(recorder.sent[refused].headers["X-RateLimit-Reset"])
    assert recorder.sent[refused + 1].at >= reset.timestamp()
    assert client.stats.throttled == {NO_REASON: 1}
    assert [e.kind for e in events] == ["quota_pause"]


@pytest.mark.parametrize("legacy_reset_format", [False, True], ids=["with-seconds", "without-seconds"])
def test_a_quota_429_pauses_every_request_until_the_reset(site: Site, legacy_reset_format: bool) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time, limits=quota_limits(30, legacy_reset_format=legacy_reset_format))
    recorder = Recorder(cloud, time, overlap=True)
    events: list[FlowEvent] = []
    client, _ = gateway_client(cloud, site, time, recorder, max_concurrency=4, on_event=events.append)

    async def forty() -> list[Any]:
        async with client:
            return await asyncio.gather(*(client.get("/rest/api/3/serverInfo") for _ in range(40)))

    answers = asyncio.run(forty())
    assert len(answers) == 40 and all(a["deploymentType"] == "Cloud" for a in answers)
    quota_refusals = [s for s in recorder.sent if s.status == 429]
    assert quota_refusals and all(s.headers["RateLimit-Reason"] == QUOTA_GLOBAL for s in quota_refusals)
    first_refusal = quota_refusals[0].at
    # nothing is sent between the refusal and the reset (requests already in flight with it aside)
    assert all(s.at <= first_refusal or s.at >= NEXT_HOUR.timestamp() for s in recorder.sent)
    assert recorder.sent[-1].at >= NEXT_HOUR.timestamp()
    pauses = [e for e in events if e.kind == "quota_pause"]
    assert len(pauses) == 1
    assert pauses[0].until is not None and NEXT_HOUR <= pauses[0].until < NEXT_HOUR + timedelta(seconds=1)
    assert client.stats.quota_pauses == 1


def test_a_quota_reset_beyond_the_longest_wait_raises_quota_exhausted(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time, limits=quota_limits(5))
    recorder = Recorder(cloud, time)
    client, token = gateway_client(cloud, site, time, recorder, retry=RetryPolicy(max_quota_wait=10))

    async def until_it_stops() -> int:
        async with client:
            for count in range(100):
                try:
                    await client.get("/rest/api/3/serverInfo")
                except QuotaExhaustedError as error:
                    assert NEXT_HOUR <= error.reset_at < NEXT_HOUR + timedelta(seconds=1)
                    assert error.reason == QUOTA_GLOBAL
                    assert "run the load again after" in str(error)
                    assert token not in str(error)
                    sent = len(recorder.sent)
                    with pytest.raises(QuotaExhaustedError):
                        await client.get("/rest/api/3/serverInfo")
                    assert len(recorder.sent) == sent  # stopped: nothing more goes out before the reset
                    return count
        raise AssertionError("the quota never ran out")

    assert asyncio.run(until_it_stops()) == 5
    assert time() < NEXT_HOUR.timestamp()  # it stopped instead of sitting out the quota


def test_near_the_quota_every_request_is_paced_so_the_quota_lasts_until_the_reset(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time, limits=quota_limits(40))
    recorder = Recorder(cloud, time)
    events: list[FlowEvent] = []
    client, _ = gateway_client(
        cloud, site, time, recorder, retry=RetryPolicy(max_pace_interval=60), on_event=events.append
    )

    async def forty() -> None:
        async with client:
            for _ in range(40):
                await client.get("/rest/api/3/serverInfo")

    asyncio.run(forty())
    assert 429 not in recorder.statuses()
    near = next(i for i, s in enumerate(recorder.sent) if s.headers.get("X-RateLimit-NearLimit") == "true")
    gaps = gaps_between([s.at for s in recorder.sent])
    assert all(gap == 0 for gap in gaps[:near])
    assert all(gap > 0 for gap in gaps[near:])
    # the last points are spread over the time left, not spent at once nor stretched far past the reset
    assert NEXT_HOUR.timestamp() - 15 <= recorder.sent[-1].at <= NEXT_HOUR.timestamp() + 15
    assert [e.kind for e in events] == ["slow_down"]


# -- transient faults ------------------------------------------------------------------------------------------------

FAULTS = Faults(
    random=(
        RandomFault(0.06, Fault.server_error(503)),
        RandomFault(0.04, Fault.server_error(500)),
        RandomFault(0.03, Fault.server_error(502, retry_after=3)),
        RandomFault(0.05, Fault.connection_reset()),
        RandomFault(0.03, Fault.connection_reset(after_handler=True)),
        RandomFault(0.03, Fault.disconnect()),
        RandomFault(0.05, Fault.truncated_body()),
        RandomFault(0.05, Fault.truncated_body(declared_length=False)),
        RandomFault(0.03, Fault.slow(60)),
    ),
    seed=4,
)


async def everything(client: JiraClient, site: Site) -> dict[str, Any]:
    """Walk every pagination style once, keeping what came back."""
    issue_ids = sorted(site.issues)
    busiest = sorted(site.issues.values(), key=lambda i: (-len(i.comments), i.id))[:3]
    result: dict[str, Any] = {
        "issues": [i async for i in iter_items(search_pages(client, ALL_ISSUES, fields=["summary"], max_results=7))],
        "groups": [g async for g in iter_items(page_bean_pages(client, "/rest/api/3/group/bulk", max_results=5))],
        "users": [u async for u in iter_items(array_pages(client, "/rest/api/3/users/search", max_results=5))],
        "audit": [r async for r in iter_items(offset_limit_pages(client, "/rest/api/3/auditing/record", limit=40))],
        "comments": [
            c
            for issue in busiest
            async for c in iter_items(
                legacy_offset_pages(client, f"/rest/api/3/issue/{issue.id}/comment", "comments", max_results=25)
            )
        ],
        "changelogs": [
            h async for h in iter_items(changelogs_by_issue_ids(client, issue_ids, max_results=17, chunk_size=10))
        ],
    }
    feed = [v async for v in iter_items(since_pages(client, "/rest/api/3/worklog/updated"))]
    result["worklogs"] = [
        w async for w in iter_items(worklogs_by_ids(client, [v["worklogId"] for v in feed], chunk_size=20))
    ]
    return result


def test_faults_are_retried_and_the_result_equals_a_clean_run(site: Site) -> None:
    clean_time = FakeTime()
    clean = asyncio.run(everything(site_client(SimCloud(site, clock=clean_time), site, clean_time), site))

    time = FakeTime()
    cloud = SimCloud(site, clock=time, faults=FAULTS)
    client = site_client(cloud, site, time, timeout=30.0)
    faulty = asyncio.run(everything(client, site))

    assert faulty == clean
    assert len(clean["issues"]) == len(site.issues) and len(clean["worklogs"]) == sum(
        len(i.worklogs) for i in site.issues.values()
    )
    assert cloud.fault_injector is not None
    injected = Counter(
        "cut-declared" if f.fault.kind == "truncated_body" and f.fault.declared_length else f.fault.kind
        for f in cloud.fault_injector.injected
    )
    assert set(injected) == {"server_error", "connection_reset", "disconnect", "truncated_body", "cut-declared", "slow"}
    stats = client.stats
    assert stats.retries == sum(injected.values())  # every fault cost exactly one retry
    assert stats.server_errors == injected["server_error"]
    assert stats.truncated_bodies == injected["truncated_body"]
    # a cut body whose length was announced fails while being read, like a dropped connection
    assert stats.transport_errors == (
        injected["connection_reset"] + injected["disconnect"] + injected["slow"] + injected["cut-declared"]
    )


def test_a_request_that_keeps_failing_gives_up_with_a_clear_error(site: Site) -> None:
    time = FakeTime()
    always = Faults(random=(RandomFault(1.0, Fault.connection_reset()),))
    cloud = SimCloud(site, clock=time, faults=always)
    client = site_client(cloud, site, time, retry=RetryPolicy(max_retries=3))
    with pytest.raises(JiraConnectionError) as raised:
        asyncio.run(client.get("/rest/api/3/serverInfo", params={"access_token": "s3cret"}))
    assert raised.value.attempts == 4
    assert "ReadError" in str(raised.value) and "s3cret" not in str(raised.value)
    assert len(time.sleeps) == 3


def test_writes_are_sent_once_even_when_they_fail() -> None:
    sent: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, json={"code": 503, "message": "Service Unavailable"})

    time = FakeTime()
    client = JiraClient(
        "https://tiny.atlassian.net", transport=httpx.MockTransport(flaky), clock=time, sleep=time.sleep
    )
    with pytest.raises(JiraApiError) as raised:
        asyncio.run(client.post("/rest/api/3/issue", json={"fields": {"summary": "x"}}))
    assert raised.value.status == 503 and raised.value.messages == ["Service Unavailable"]
    assert len(sent) == 1
    # the same endpoint may be declared idempotent by a caller who knows better
    with pytest.raises(JiraApiError):
        asyncio.run(client.post("/rest/api/3/issue", json={}, idempotent=True))
    assert len(sent) == 1 + 1 + RetryPolicy().max_retries


# -- errors ----------------------------------------------------------------------------------------------------------


def raw_error(cloud: SimCloud, site: Site, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """What the simulated site itself answers, fetched without jira_lab's client."""
    with httpx.Client(transport=cloud.transport(), base_url=cloud.site_url(site), auth=analyst(site)[1]) as http:
        answer: dict[str, Any] = http.request(method, path, json=body).json()
        return answer


def test_client_errors_carry_jiras_messages_and_the_masked_request(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    recorder = Recorder(cloud, time)
    client = site_client(cloud, site, time, recorder)
    expected = raw_error(cloud, site, "GET", "/rest/api/3/issue/NOPE-999")
    with pytest.raises(JiraApiError) as raised:
        asyncio.run(client.get("/rest/api/3/issue/NOPE-999", params={"expand": "names", "access_token": "s3cret"}))
    error = raised.value
    assert error.status == 404
    assert error.messages == expected["errorMessages"] and error.messages
    assert error.request == (f"GET {cloud.site_url(site)}/rest/api/3/issue/NOPE-999?expand=names&access_token=***")
    _, auth, api_token = analyst(site)
    basic_header = auth._auth_header  # what goes over the wire
    for secret in ("s3cret", api_token, basic_header, basic_header.split()[-1]):
        assert secret not in str(error) and secret not in repr(error)
    assert len(recorder.sent) == 1  # a 404 is not retried


def test_field_errors_of_a_400_are_kept_and_a_400_is_not_retried(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    recorder = Recorder(cloud, time)
    client = site_client(cloud, site, time, recorder)
    expected = raw_error(cloud, site, "POST", "/rest/api/3/comment/list", {"ids": []})
    with pytest.raises(JiraApiError) as raised:
        asyncio.run(client.post("/rest/api/3/comment/list", json={"ids": []}))
    assert raised.value.status == 400
    assert raised.value.errors == expected["errors"] and raised.value.errors
    assert raised.value.messages == expected["errorMessages"]
    assert len(recorder.sent) == 1


def test_the_removed_search_says_so(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    client = site_client(cloud, site, time)
    expected = raw_error(cloud, site, "GET", "/rest/api/3/search")
    with pytest.raises(JiraApiError) as raised:
        asyncio.run(client.get("/rest/api/3/search", params={"jql": ALL_ISSUES}))
    assert raised.value.status == 410
    assert raised.value.messages == expected["errorMessages"]
    assert "search/jql" in str(raised.value)


def test_a_gateway_scope_mismatch_names_the_missing_scopes(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    client, token = gateway_client(cloud, site, time, token_scopes=["read:jira-work"], scopes=["read:jira-work"])
    with pytest.raises(MissingScopeError) as raised:
        asyncio.run(client.get("/rest/api/3/users/search"))
    needed = operation("GET", "/rest/api/3/users/search")
    assert raised.value.missing == tuple(sorted(needed.classic_scopes - {"read:jira-work"}))
    assert "read:jira-user" in str(raised.value) and token not in str(raised.value)


def test_a_scope_mismatch_with_unknown_token_scopes_names_every_scope_the_operation_needs(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    client, _ = gateway_client(cloud, site, time, token_scopes=["read:jira-work"])
    assert client.scopes is None
    with pytest.raises(MissingScopeError) as raised:
        asyncio.run(client.get("/rest/api/3/auditing/record"))
    needed = operation("GET", "/rest/api/3/auditing/record")
    assert set(raised.value.missing) in (set(needed.classic_scopes), set(needed.granular_scopes))
    assert "unknown" in str(raised.value)


def test_mask_url_hides_credentials_and_keeps_the_rest() -> None:
    masked = mask_url("https://ann:pw@x.atlassian.net/rest/api/3/x?jql=a%20b&api_token=t&nextPageToken=abc&key=K-1")
    assert masked == "https://x.atlassian.net/rest/api/3/x?jql=a%20b&api_token=***&nextPageToken=***&key=K-1"


# -- concurrency -----------------------------------------------------------------------------------------------------


def test_the_concurrency_cap_holds_at_the_transport(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time)
    recorder = Recorder(cloud, time, overlap=True)
    client = site_client(cloud, site, time, recorder, max_concurrency=4)

    async def all_issues() -> list[Any]:
        async with client:
            return await asyncio.gather(*(client.get(f"/rest/api/3/issue/{i}") for i in sorted(site.issues)))

    issues = asyncio.run(all_issues())
    assert [int(i["id"]) for i in issues] == sorted(site.issues)
    assert recorder.max_in_flight == 4
    assert client.stats.max_in_flight == 4 and client.stats.requests == len(site.issues)


# -- the blocking facade ---------------------------------------------------------------------------------------------


def sync_client(cloud: SimCloud, site: Site) -> SyncJiraClient:
    return SyncJiraClient.for_site(cloud.site_url(site), auth=analyst(site)[1], transport=cloud.transport())


def client_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "jira-lab-client")


def test_the_sync_facade_works_from_plain_code(site: Site) -> None:
    cloud = SimCloud(site)
    before = client_threads()
    with sync_client(cloud, site) as client:
        assert client.get("/rest/api/3/serverInfo")["deploymentType"] == "Cloud"
        ids = [
            int(i["id"])
            for page in client.iterate(search_pages(client.aio, ALL_ISSUES, max_results=7))
            for i in page.items
        ]
        assert sorted(ids) == sorted(site.issues)

        async def two_at_once() -> tuple[Any, Any]:
            return await asyncio.gather(client.aio.get("/rest/api/3/myself"), client.aio.get("/rest/api/3/serverInfo"))

        myself, _ = client.run(two_at_once())
        assert myself["accountId"] == site.accounts["analyst"]
        with pytest.raises(JiraApiError):
            client.get("/rest/api/3/issue/NOPE-1")
        assert client.stats.requests >= 5
    assert client_threads() == before  # closing stops the private loop's thread
    with pytest.raises(RuntimeError, match="closed"):
        client.get("/rest/api/3/serverInfo")


def test_a_sync_client_dropped_without_closing_stops_its_thread(site: Site) -> None:
    before = client_threads()
    client = sync_client(SimCloud(site), site)
    assert client.get("/rest/api/3/serverInfo")["deploymentType"] == "Cloud"
    assert client_threads() == before + 1
    del client
    gc.collect()
    assert client_threads() == before


@pytest.mark.anyio
async def test_the_sync_facade_works_inside_a_running_event_loop(site: Site) -> None:
    """A notebook cell runs inside the kernel's loop: there ``asyncio.run`` fails, the sync facade must not."""
    assert asyncio.get_running_loop().is_running()
    probe = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="running event loop"):
        asyncio.run(probe)
    probe.close()

    cloud = SimCloud(site)
    with sync_client(cloud, site) as client:
        assert client.get("/rest/api/3/serverInfo")["deploymentType"] == "Cloud"
        groups = [
            g["groupId"]
            for g in client.iterate(iter_items(page_bean_pages(client.aio, "/rest/api/3/group/bulk", max_results=5)))
        ]
        assert sorted(groups) == sorted(site.groups)
        # an early stop closes the generator on the client's loop
        first = next(iter(client.iterate(search_pages(client.aio, ALL_ISSUES, max_results=3))))
        assert len(first.items) == 3


def test_events_reach_the_callback_from_the_sync_facade(site: Site) -> None:
    time = FakeTime()
    cloud = SimCloud(site, clock=time, limits=burst_limits(1.0))
    events: list[FlowEvent] = []
    with SyncJiraClient.for_site(
        cloud.site_url(site),
        auth=analyst(site)[1],
        transport=cloud.transport(),
        clock=time,
        sleep=time.sleep,
        on_event=events.append,
    ) as client:
        for _ in range(3):
            client.get("/rest/api/3/serverInfo")
        assert client.stats.throttled.get(BURST, 0) >= 1
    assert {"retry", "slow_down"} <= {e.kind for e in events}


def test_credentials_never_show_in_reprs(site: Site) -> None:
    cloud = SimCloud(site)
    client, token = gateway_client(cloud, site, FakeTime())
    _, auth, api_token = analyst(site)
    basic = JiraClient.for_site(cloud.site_url(site), auth=auth)
    for text in (repr(client), repr(basic), json.dumps(client.stats.throttled)):
        assert token not in text and api_token not in text
        assert base64.b64encode(api_token.encode()).decode() not in text
