"""Latency per request on the loopback server (jira_lab.sim.server): waited concurrently, outside the cloud's lock.

Nothing here asserts how long something took, except a lower bound a sleep cannot undercut: concurrency is shown
with an injected sleep that holds every request until all of them are waiting at once, which only a server that
waits for them concurrently can satisfy.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from jira_lab.sim import Holder, SimCloud, SiteBuilder
from jira_lab.sim.clock import FakeClock
from jira_lab.sim.mutations import SiteMutator
from jira_lab.sim.server import Latency, serve

CONCURRENT = 50
SERVER_INFO = "/rest/api/3/serverInfo"


def build_cloud() -> SimCloud:
    b = SiteBuilder("latency")
    ann = b.user("Ann Analyst", api_token="ann-token")
    users = b.group("jira-software-users", members=[ann])
    b.application_role("jira-software", "Jira Software", [users])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", users))])
    eng = b.project("ENG", "Engineering", lead=ann, permission_scheme=scheme)
    b.issue(eng, "First", reporter=ann)
    b.site.accounts["admin"] = ann
    return SimCloud(b.site, clock=FakeClock())


def lock_is_free(lock: threading.RLock) -> bool:
    """Whether another thread could take ``lock`` now (an RLock's own thread always can)."""
    result: list[bool] = []

    def probe() -> None:
        taken = lock.acquire(blocking=False)
        if taken:
            lock.release()
        result.append(taken)

    prober = threading.Thread(target=probe)
    prober.start()
    prober.join()
    return result[0]


class GatheringSleep:
    """A sleep that holds each request until ``expected`` requests are waiting at once (or gives up after 10 s)."""

    def __init__(self, cloud: SimCloud, expected: int) -> None:
        self.cloud = cloud
        self.expected = expected
        self.delays: list[float] = []
        self.waiting = 0
        self.most_waiting = 0
        self.lock_was_free: list[bool] = []
        self._everyone: asyncio.Event | None = None
        self._gave_up = False

    async def __call__(self, delay: float) -> None:
        if self._everyone is None:
            self._everyone = asyncio.Event()  # made on the server's event loop
        self.delays.append(delay)
        self.lock_was_free.append(lock_is_free(self.cloud.lock))
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        if self.waiting == self.expected:
            self._everyone.set()
        try:
            if not self._gave_up:
                await asyncio.wait_for(self._everyone.wait(), timeout=10)
        except TimeoutError:
            self._gave_up = True  # most_waiting stays below expected and the test says so, without waiting again
        finally:
            self.waiting -= 1


class RecordingSleep:
    """A sleep that only records what it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def get_concurrently(base_url: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        return list(await asyncio.gather(*(client.get(SERVER_INFO) for _ in range(count))))


def test_concurrent_requests_wait_out_their_latency_together_outside_the_lock() -> None:
    cloud = build_cloud()
    sleep = GatheringSleep(cloud, CONCURRENT)
    with serve(cloud, latency=0.05, sleep=sleep) as urls:
        responses = asyncio.run(get_concurrently(urls.site_url(), CONCURRENT))
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    assert sleep.most_waiting == CONCURRENT  # all of them were waiting at the same time: latency paid once
    assert sleep.delays == [0.05] * CONCURRENT
    assert all(sleep.lock_was_free)


def test_the_cloud_answers_after_the_latency_not_before() -> None:
    """A change made while a request is on its way is in the answer, as with a request still in transit."""
    cloud = build_cloud()
    mutator = SiteMutator.for_cloud(cloud)

    async def change_in_transit(delay: float) -> None:
        mutator.create_issue("ENG", "Filed while the request travelled")

    with serve(cloud, latency=0.05, sleep=change_in_transit) as urls:
        response = httpx.get(
            f"{urls.site_url()}/rest/api/3/search/jql",
            params={"jql": "project = ENG", "fields": "summary"},
            auth=("ann.analyst@latency.example", "ann-token"),
        )
    assert sorted(issue["key"] for issue in response.json()["issues"]) == ["ENG-1", "ENG-2"]


def test_jittered_latency_is_seeded_and_bounded() -> None:
    cloud = build_cloud()
    runs = []
    for _ in range(2):
        sleep = RecordingSleep()
        with serve(cloud, latency=Latency(0.05, jitter=0.02, seed=7), sleep=sleep) as urls, httpx.Client() as client:
            for _ in range(20):
                assert client.get(urls.site_url() + SERVER_INFO).status_code == 200
        runs.append(sleep.delays)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 20
    assert all(0.03 <= delay <= 0.07 for delay in runs[0])
    other_seed = Latency(0.05, jitter=0.02, seed=8).delays()
    assert [next(other_seed) for _ in range(20)] != runs[0]


def test_without_latency_the_server_never_sleeps() -> None:
    cloud = build_cloud()
    for latency in (None, 0, Latency(0.0)):
        sleep = RecordingSleep()
        with serve(cloud, latency=latency, sleep=sleep) as urls:
            assert httpx.get(urls.site_url() + SERVER_INFO).status_code == 200
        assert sleep.delays == []


def test_the_real_sleep_delays_each_answer_by_at_least_the_latency() -> None:
    cloud = build_cloud()
    with serve(cloud, latency=0.05) as urls, httpx.Client() as client:
        client.get(urls.site_url() + SERVER_INFO)  # connect first: only the request itself is timed
        started = time.perf_counter()
        response = client.get(urls.site_url() + SERVER_INFO)
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.05


@pytest.mark.parametrize(
    ("seconds", "jitter", "message"),
    [(-0.01, 0.0, "negative"), (0.05, -0.01, "negative"), (0.01, 0.02, "must not exceed")],
)
def test_an_impossible_latency_is_refused(seconds: float, jitter: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Latency(seconds, jitter)
