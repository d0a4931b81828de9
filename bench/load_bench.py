"""How fast ``jira_lab.load`` loads the ``large`` simulated site, against the API's minimum and a naive script.

The simulated site is served over real loopback HTTP from a **separate process** (so the loader and the simulator
do not share a GIL), with 50 ms of latency per request and a burst limit of 100 requests per second per endpoint
(:class:`jira_lab.sim.limits.RateLimits`, no hourly quota: Basic auth is exempt from it). The analyst, who sees
everything, loads it with Basic auth into a fresh DuckDB file. Printed:

* **requests** made, and the **minimum** the API needs for this site's shape: for each resource, the fewest requests
  its documented page limits allow to read every row once (computed from the site's data below, in
  :func:`minimum_requests`), and the ratio;
* **wall time**, and the **rate-limit floor**: requests / 100 per second, and the ratio;
* **rows per second** written to DuckDB, and the loader's **peak memory** (max RSS);
* a **naive baseline** measured in the same run against the same server: one search walk, then per issue its
  comments, its worklogs and its changelog, one request after another. It runs on a random sample of issues and is
  **extrapolated** to every issue (labelled so), and the ratio of its time to the loader's.

Run: ``uv run python bench/load_bench.py [--site large] [--seed 0] [--latency 0.05] [--rate 100] [--sample 200]``
(about two minutes on 2 cores, most of it the naive sample and building the site twice).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from jira_lab.auth import basic_auth
from jira_lab.client import JiraClient
from jira_lab.load import aload
from jira_lab.sim import PermissionEngine, SimCloud
from jira_lab.sim.api.changelogs import MAX_BULK_CHANGELOG_ISSUES, MAX_BULK_MAX_RESULTS, MAX_CHANGELOG_PAGE
from jira_lab.sim.api.comments import MAX_COMMENTS_PER_PAGE
from jira_lab.sim.api.groups import MEMBERS_MAX_PAGE
from jira_lab.sim.api.issue_items import MAX_IDS as BULK_IDS
from jira_lab.sim.api.search import MAX_HEAVY_PAGE, SEARCH_VIEW_LIMIT
from jira_lab.sim.api.users import USERS_MAX_PAGE
from jira_lab.sim.api.worklogs import FEED_PAGE_SIZE, MAX_WORKLOGS_PER_PAGE
from jira_lab.sim.generator import generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Site
from jira_lab.sim.server import serve, settle_heap

AUDIT_PAGE = 1000
PROJECTS_PAGE = 100
SECURITY_PAGE = 100


# -- the simulated site, in its own process ----------------------------------------------------------------------


def serve_site(size: str, seed: int, latency: float, rate: float, pipe: Connection) -> None:
    """Child process: build the site, serve it on loopback, and send what the parent needs to know about it.

    The parent never builds the site itself, so the loader's peak memory is the loader's alone. Sent: the site URL,
    the analyst's credentials, the site's figures, the minimum requests and the naive script's request count. Then
    it serves until told ``"stop"``; asked ``"cpu"``, it answers the CPU seconds it has used so far.
    """
    site = generate_site(size, seed)
    limits = RateLimits(steady_rates={"GET": rate, "POST": rate}, endpoint_rates={}, hourly_points=None)
    cloud = SimCloud(site, limits=limits)
    analyst = site.users[site.accounts["analyst"]]
    facts = {
        "email": analyst.email,
        "api_token": analyst.api_token,
        "issues": len(site.issues),
        "comments": sum(len(i.comments) for i in site.issues.values()),
        "worklogs": sum(len(i.worklogs) for i in site.issues.values()),
        "histories": sum(len(i.changelog) for i in site.issues.values()),
        "projects": list(site.projects),
        "minimum": minimum_requests(site, analyst.account_id),
        "naive_per_issue": naive_per_issue_requests(site, analyst.account_id),
    }
    settle_heap()
    with serve(cloud, latency=latency) as urls:
        pipe.send({**facts, "url": urls.site_url()})
        while pipe.recv() != "stop":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            pipe.send(usage.ru_utime + usage.ru_stime)


# -- the minimum -------------------------------------------------------------------------------------------------


def pages(count: int, size: int) -> int:
    return math.ceil(count / size)


def minimum_requests(site: Site, account: str) -> dict[str, int]:
    """The fewest requests that read every row this account may see, resource by resource, by the page limits."""
    engine = PermissionEngine(site).snapshot()
    issues = [i for i in site.issues.values() if engine.can_browse_issue(account, i)]
    comments = [sum(engine.can_see_item(account, i, c.visibility) for c in i.comments) for i in issues]
    worklogs = [sum(engine.can_see_item(account, i, w.visibility) for w in i.worklogs) for i in issues]
    histories = sum(len(i.changelog) for i in issues)
    viewable = [p for p in site.projects.values() if engine.can_view_project(account, p)]
    levels = [level for scheme in site.security_schemes.values() for level in scheme.levels]
    truncated_worklogs = [w for w in worklogs if w > SEARCH_VIEW_LIMIT]
    return {
        "who and when (myself, serverInfo)": 2,
        "issues (search/jql, heavy fields)": pages(len(issues), MAX_HEAVY_PAGE),
        "comments beyond the 20 embedded": sum(
            pages(c - SEARCH_VIEW_LIMIT, MAX_COMMENTS_PER_PAGE) for c in comments if c > SEARCH_VIEW_LIMIT
        ),
        # per truncated issue, or the change feed (every visible id) and a list of the ids not embedded
        "worklogs beyond the 20 embedded": min(
            sum(pages(w - SEARCH_VIEW_LIMIT, MAX_WORKLOGS_PER_PAGE) for w in truncated_worklogs),
            pages(sum(worklogs), FEED_PAGE_SIZE)
            + pages(sum(w - SEARCH_VIEW_LIMIT for w in truncated_worklogs), FEED_PAGE_SIZE),
        ),
        "changelogs (bulkfetch)": max(
            pages(len(issues), MAX_BULK_CHANGELOG_ISSUES), pages(histories, MAX_BULK_MAX_RESULTS)
        ),
        "audit records": pages(len(site.audit_records), AUDIT_PAGE),
        "users (and the empty page ending them)": pages(len(site.users), USERS_MAX_PAGE) + 1,
        "groups": 1,
        "group members": sum(max(1, pages(len(m), MEMBERS_MAX_PAGE)) for m in site.group_members.values()),
        "application roles": 1,
        "projects": pages(len(viewable), PROJECTS_PAGE),
        "project roles and actors": len(viewable) * (1 + len(site.project_roles)),
        "permission schemes with grants": 1,
        "each project's permission scheme": len(viewable),
        "issue security (schemes, levels, members, projects)": 1
        + pages(len(levels), SECURITY_PAGE)
        + pages(sum(len(lv.members) for lv in levels), SECURITY_PAGE)
        + pages(sum(p.security_scheme_id is not None for p in viewable), SECURITY_PAGE),
        "fields": 1,
        "own permissions (mypermissions, permissions/check)": 1 + pages(len(viewable), BULK_IDS),
    }


# -- the naive baseline --------------------------------------------------------------------------------------------


@dataclass
class Naive:
    search_requests: int
    search_seconds: float
    sample: int
    sample_requests: int
    sample_seconds: float
    issues: int
    requests_all: int

    @property
    def extrapolated_seconds(self) -> float:
        return self.search_seconds + self.sample_seconds / self.sample * self.issues


def walk_offset(http: httpx.Client, path: str, key: str) -> int:
    """Every page of one per-issue list (``startAt``/``total``), one after another; returns the requests made."""
    start, requests = 0, 0
    while True:
        body = http.get(path, params={"startAt": start}).raise_for_status().json()
        requests += 1
        found = body.get(key) or body.get("values") or []
        total = body.get("total")
        if not found or body.get("isLast") is True or (isinstance(total, int) and start + len(found) >= total):
            return requests
        start += len(found)


def naive_per_issue_requests(site: Site, account: str) -> int:
    """Requests the naive script makes per issue for every issue the account sees: comments, worklogs, changelog."""
    engine = PermissionEngine(site).snapshot()
    return sum(
        max(1, pages(sum(engine.can_see_item(account, i, c.visibility) for c in i.comments), MAX_COMMENTS_PER_PAGE))
        + max(1, pages(sum(engine.can_see_item(account, i, w.visibility) for w in i.worklogs), MAX_WORKLOGS_PER_PAGE))
        + max(1, pages(len(i.changelog), MAX_CHANGELOG_PAGE))
        for i in site.issues.values()
        if engine.can_browse_issue(account, i)
    )


def naive_baseline(
    site_url: str, auth: httpx.Auth, project_ids: list[int], per_issue_requests: int, sample: int, seed: int
) -> Naive:
    """What most scripts do: search, then per issue its comments, worklogs and changelog, sequentially."""
    with httpx.Client(base_url=site_url, auth=auth, timeout=60) as http:
        started = time.perf_counter()
        ids: list[str] = []
        token: str | None = None
        search_requests = 0
        while True:
            body: dict[str, Any] = {"jql": f"project in ({', '.join(map(str, project_ids))})", "fields": ["*navigable"]}
            if token:
                body["nextPageToken"] = token
            answer = http.post("/rest/api/3/search/jql", json=body).raise_for_status().json()
            search_requests += 1
            ids += [issue["id"] for issue in answer["issues"]]
            token = answer.get("nextPageToken")
            if not token:
                break
        search_seconds = time.perf_counter() - started
        chosen = random.Random(seed).sample(ids, min(sample, len(ids)))
        started = time.perf_counter()
        sample_requests = 0
        for issue_id in chosen:
            sample_requests += walk_offset(http, f"/rest/api/3/issue/{issue_id}/comment", "comments")
            sample_requests += walk_offset(http, f"/rest/api/3/issue/{issue_id}/worklog", "worklogs")
            sample_requests += walk_offset(http, f"/rest/api/3/issue/{issue_id}/changelog", "values")
        sample_seconds = time.perf_counter() - started
    return Naive(
        search_requests,
        search_seconds,
        len(chosen),
        sample_requests,
        sample_seconds,
        len(ids),
        search_requests + per_issue_requests,
    )


# -- the run -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--site", default="large")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every request")
    parser.add_argument("--rate", type=float, default=100.0, help="burst limit, requests per second per endpoint")
    parser.add_argument("--sample", type=int, default=200, help="issues the naive baseline reads one by one")
    parser.add_argument("--concurrency", type=int, default=16, help="the loader's requests in flight")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(
        target=serve_site, args=(args.site, args.seed, args.latency, args.rate, child), daemon=True
    )
    server.start()
    built = time.perf_counter()
    facts: dict[str, Any] = parent.recv()
    site_url = str(facts["url"])
    auth = basic_auth(facts["email"], facts["api_token"])
    print(
        f"site {args.site!r} (seed {args.seed}): {facts['issues']} issues, {facts['comments']} comments, "
        f"{facts['worklogs']} worklogs, {facts['histories']} changelog histories; ready in "
        f"{time.perf_counter() - built:.1f} s"
    )
    print(
        f"served from another process at {site_url}: {args.latency * 1000:.0f} ms latency, "
        f"{args.rate:.0f} requests/s burst"
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            db = Path(folder) / "large.duckdb"

            async def run() -> Any:
                async with JiraClient.for_site(site_url, auth=auth, max_concurrency=args.concurrency) as client:
                    return await aload(db, client, progress=False)

            parent.send("cpu")
            sim_before = float(parent.recv())
            own_before = resource.getrusage(resource.RUSAGE_SELF)
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            summary = asyncio.run(run())
            wall = time.perf_counter() - started
            own_after = resource.getrusage(resource.RUSAGE_SELF)
            parent.send("cpu")
            sim_cpu = float(parent.recv()) - sim_before
            own_cpu = own_after.ru_utime + own_after.ru_stime - own_before.ru_utime - own_before.ru_stime
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            # the load's framing process has exited and been waited for (the simulator's process runs on)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            framing_cpu = children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
            framing_mb = children.ru_maxrss / 1024 if framing_cpu > 0 else 0.0
            size_mb = db.stat().st_size / 2**20
        minimum: dict[str, int] = facts["minimum"]
        floor = summary.requests / args.rate
        naive = naive_baseline(site_url, auth, facts["projects"], facts["naive_per_issue"], args.sample, args.seed)
    finally:
        parent.send("stop")
        server.join(timeout=30)

    least = sum(minimum.values())
    print()
    print("jira_lab.load (analyst, Basic auth, a new file)")
    print(
        f"  requests made            {summary.requests:>8}   (429s {summary.rate_limited}, retries {summary.retries})"
    )
    print(f"  minimum the API needs    {least:>8}   ratio {summary.requests / least:.3f}  (target <= 1.15)")
    print(f"  wall time                {wall:>8.1f} s")
    print(
        f"  rate-limit floor         {floor:>8.1f} s (requests / {args.rate:.0f} per s)   "
        f"ratio {wall / floor:.3f}  (target <= 1.3)"
    )
    print(
        f"  rows written             {summary.rows:>8}   {summary.rows / wall:,.0f} rows/s into DuckDB "
        f"({size_mb:.0f} MB file)"
    )
    print(
        f"  peak memory (max RSS)    {peak_mb + framing_mb:>8.0f} MB  (target < 1536): {peak_mb:.0f} MB loader "
        f"+ {framing_mb:.0f} MB framing process"
    )
    per_request = sim_cpu / summary.requests * 1000
    cpu = (
        f"{own_cpu:>8.1f} s loader + {framing_cpu:.1f} s framing process, {sim_cpu:.1f} s simulator "
        f"({per_request:.0f} ms a request)"
    )
    print(f"  CPU time                 {cpu}")
    print("  minimum by resource:")
    for name, count in minimum.items():
        print(f"    {name:<52}{count:>6}")
    print()
    print("naive baseline (search, then per issue comments, worklogs, changelog; one request at a time)")
    print(f"  search walk              {naive.search_requests:>8} requests in {naive.search_seconds:.1f} s (measured)")
    print(
        f"  per-issue reads          {naive.sample_requests:>8} requests for {naive.sample} random issues in "
        f"{naive.sample_seconds:.1f} s (measured)"
    )
    print(f"  all {naive.issues} issues      {naive.requests_all:>8} requests (counted from the site's data)")
    print(f"  EXTRAPOLATED wall time   {naive.extrapolated_seconds:>8.0f} s")
    print(f"  naive / jira_lab.load    {naive.extrapolated_seconds / wall:>8.1f} x faster (target >= 20)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
