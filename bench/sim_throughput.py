"""Requests per second the simulated Jira Cloud answers, over real loopback HTTP and in process.

Two workloads, each sent by a few concurrent clients (one thread and one ``httpx.Client`` each, keep-alive on):

* ``search/jql x100``: ``POST /rest/api/3/search/jql`` for a page of 100 issues with the fields ``summary``,
  ``status``, ``updated`` and ``comment`` (the embedded comments make it a large answer);
* ``serverInfo``: ``GET /rest/api/3/serverInfo``, a small answer: dispatch and HTTP overhead.

Both go through the API gateway path with the site's analyst's Bearer token. Each is measured first in process
(``SimCloud.transport()``, the baseline) and then over HTTP on ``127.0.0.1`` (:func:`jira_lab.sim.server.serve`), and
the ratio loopback / in process is printed. Every measurement is bounded by ``--duration`` seconds and
``--max-requests`` requests; the script then stops the server and exits. Clients and server share one process (and
its GIL), as they do in the demo and the tests.

Run: ``uv run python bench/sim_throughput.py [--site large|demo|small|tiny] [--seed N] [--clients N]
[--duration S] [--max-requests N]``
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from jira_lab.sim import SimCloud
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.server import serve

SEARCH_FIELDS = ["summary", "status", "updated", "comment"]
PAGE = 100
WARMUP_REQUESTS = 3


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    #: fails loudly if an answer is not what the workload means to measure
    check: Callable[[httpx.Response], None]


@dataclass(slots=True)
class Measurement:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _check_ok(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")


def _check_full_page(response: httpx.Response) -> None:
    _check_ok(response)
    issues = response.json()["issues"]
    if len(issues) != PAGE:
        raise RuntimeError(f"expected a page of {PAGE} issues, got {len(issues)}")


def busiest_project_key(site: Site) -> str:
    """The project with the most issues: its first page is full."""
    counts = Counter(issue.project_id for issue in site.issues.values())
    project_id, count = counts.most_common(1)[0]
    if count < PAGE:
        raise SystemExit(f"site {site.name!r} has no project with {PAGE} issues; use --site large or demo")
    return site.projects[project_id].key


def workloads(site: Site) -> list[Workload]:
    search = {
        "jql": f"project = {busiest_project_key(site)} ORDER BY key ASC",
        "maxResults": PAGE,
        "fields": SEARCH_FIELDS,
    }
    return [
        Workload(f"search/jql x{PAGE}", "POST", "/rest/api/3/search/jql", search, _check_full_page),
        Workload("serverInfo", "GET", "/rest/api/3/serverInfo", None, _check_ok),
    ]


def measure(
    make_client: Callable[[], httpx.Client], workload: Workload, clients: int, duration: float, max_requests: int
) -> Measurement:
    """Send ``workload`` from ``clients`` threads until ``duration`` seconds or ``max_requests`` requests."""
    result = Measurement()
    lock = threading.Lock()
    per_client = max(1, max_requests // clients)
    sessions = [make_client() for _ in range(clients)]
    for session in sessions:  # connect and warm caches outside the timed window
        for _ in range(WARMUP_REQUESTS):
            workload.check(session.request(workload.method, workload.path, json=workload.body))
    start = time.perf_counter()
    deadline = start + duration

    def client_loop(session: httpx.Client) -> None:
        latencies: list[float] = []
        try:
            while len(latencies) < per_client and time.perf_counter() < deadline:
                sent = time.perf_counter()
                response = session.request(workload.method, workload.path, json=workload.body)
                latencies.append(time.perf_counter() - sent)
                _check_ok(response)
        except Exception as error:  # reported with the figures, never swallowed
            with lock:
                result.failures.append(repr(error))
        with lock:
            result.latencies.extend(latencies)

    threads = [threading.Thread(target=client_loop, args=(s,), daemon=True) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 60)
    result.seconds = time.perf_counter() - start
    result.requests = len(result.latencies)
    for session in sessions:
        session.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", default="large", help="generated site size: large (default), demo, small, tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement at most (default 3)")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests per measurement at most")
    args = parser.parse_args(argv)

    built = time.perf_counter()
    site = generate_site(args.site, args.seed)
    cloud = SimCloud(site)  # no rate limits, no faults: the simulator's own speed
    analyst = site.accounts["analyst"]
    token = cloud.mint_access_token(analyst, ["read:jira-work", "read:jira-user"])
    headers = {"Authorization": f"Bearer {token}"}
    print(
        f"site {site.name!r} (seed {args.seed}): {len(site.issues)} issues, "
        f"{sum(len(i.comments) for i in site.issues.values())} comments, built in {time.perf_counter() - built:.1f} s"
    )
    print(
        f"{args.clients} concurrent clients; each measurement stops after {args.duration:g} s "
        f"or {args.max_requests} requests"
    )
    plan = workloads(site)

    def in_process() -> httpx.Client:
        return httpx.Client(transport=cloud.transport(), base_url=cloud.gateway_url(site), headers=headers)

    baseline = {w.name: measure(in_process, w, args.clients, args.duration, args.max_requests) for w in plan}
    with serve(cloud, port=0) as urls:
        print(f"loopback server at {urls.base}")

        def over_loopback() -> httpx.Client:
            return httpx.Client(base_url=urls.gateway_url(site), headers=headers, timeout=60)

        loopback = {w.name: measure(over_loopback, w, args.clients, args.duration, args.max_requests) for w in plan}

    print()
    print(f"{'workload':<18} {'in-process req/s':>17} {'loopback req/s':>15} {'ratio':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for workload in plan:
        base, wire = baseline[workload.name], loopback[workload.name]
        ratio = wire.per_second / base.per_second if base.per_second else float("nan")
        print(
            f"{workload.name:<18} {base.per_second:>17.1f} {wire.per_second:>15.1f} {ratio:>7.2f} "
            f"{wire.percentile_ms(0.5):>8.1f} {wire.percentile_ms(0.95):>8.1f}"
        )
    print("(ratio = loopback / in-process; p50/p95 = loopback latency per request)")
    failures = [
        f"{name} {kind}: {f}"
        for kind, runs in (("in-process", baseline), ("loopback", loopback))
        for name, m in runs.items()
        for f in m.failures
    ]
    if failures:
        raise SystemExit("failed requests:\n" + "\n".join(failures[:10]))
    in_process_mean = {name: statistics.fmean(m.latencies) * 1000 for name, m in baseline.items() if m.latencies}
    print("in-process mean latency ms: " + ", ".join(f"{k} {v:.1f}" for k, v in in_process_mean.items()))


if __name__ == "__main__":
    main()
