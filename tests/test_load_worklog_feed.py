"""How a covering load of every project completes the worklogs of issues whose embedded worklogs were truncated.

Two ways exist (:func:`jira_lab.load.worklog_strategy`): per-issue pages, or the ``worklog/updated`` feed plus
``worklog/list`` for the ids the search pages did not embed. The feed is a chain of pages, so the loader reads it
beside the walks, but never further ahead than the truncated issues seen so far would cost per issue. Checked here:
the feed really is read while the walks still run, the ids not embedded are listed in as few requests as
``worklog/list`` allows, the feed is not read further than that bound when per-issue pages win, and either way the
worklogs stored are exactly those the permission engine says the principal may see.
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from site_clients import CountingTransport, add_accounts, api_token

from jira_lab import store
from jira_lab.auth import basic_auth
from jira_lab.client import JiraClient
from jira_lab.load import load
from jira_lab.sim import PermissionEngine, SimCloud, Site
from jira_lab.sim.builder import EPOCH, SiteBuilder
from jira_lab.sim.generator import SiteSize, generate_site
from jira_lab.sim.model import Holder

SEARCH = "POST /rest/api/3/search/jql"
FEED = "GET /rest/api/3/worklog/updated"
LIST = "POST /rest/api/3/worklog/list"
#: search pages let through before the rest wait for the first feed request
SEARCHES_BEFORE_HOLD = 2
HOLD_TIMEOUT = 20.0


class RecordingTransport(CountingTransport):
    """Notes every request; optionally holds search pages after the first few until the worklog feed has been asked
    for (so a test can tell whether the feed is read mid-walk)."""

    def __init__(self, cloud: SimCloud, *, hold_searches: bool = False) -> None:
        super().__init__(cloud)
        self.hold_searches = hold_searches
        self.feed_asked = asyncio.Event()
        self.searches_held = 0
        self.hold_timed_out = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = f"{request.method} {request.url.path}"
        if name == FEED:
            self.feed_asked.set()
        held = self.hold_searches and name == SEARCH and self.seen.count(SEARCH) >= SEARCHES_BEFORE_HOLD
        if held and not self.feed_asked.is_set():
            self.searches_held += 1
            try:
                await asyncio.wait_for(self.feed_asked.wait(), HOLD_TIMEOUT)
            except TimeoutError:
                self.hold_timed_out = True
        return await super().handle_async_request(request)


def visible_worklogs(site: Site, account: str) -> set[int]:
    engine = PermissionEngine(site).snapshot()
    return {
        w.id
        for issue in site.issues.values()
        if engine.can_browse_issue(account, issue)
        for w in issue.worklogs
        if engine.can_see_item(account, issue, w.visibility)
    }


def load_as(site: Site, email: str, token: str, db: Path, transport: RecordingTransport, **options: Any) -> int:
    client = JiraClient(f"https://{site.name}.atlassian.net", auth=basic_auth(email, token), transport=transport)
    summary = load(db, client, progress=False, **options)
    return summary.load_id


def stored_worklogs(db: Path) -> tuple[set[int], str | None]:
    conn = store.connect(db, read_only=True)
    try:
        ids = {int(row[0]) for row in conn.execute("SELECT id FROM worklogs WHERE deleted_at IS NULL").fetchall()}
        strategy = store.get_load(conn, 1).options["figures"].get("worklog_strategy")
    finally:
        conn.close()
    return ids, strategy


def test_the_feed_is_read_beside_the_walks_and_the_ids_not_embedded_are_listed_in_full_requests(
    tmp_path: Path,
) -> None:
    # 24 of the analyst's issues have more than 20 worklogs: per-issue pages would cost 24 requests, the feed 6
    site = generate_site(
        SiteSize(projects=2, issues=80, comments=100, worklogs=2400, changelog_items=100, users=12, groups=10), 0
    )
    analyst = site.users[site.accounts["analyst"]]
    assert analyst.email is not None and analyst.api_token is not None
    transport = RecordingTransport(SimCloud(site), hold_searches=True)

    load_as(site, analyst.email, analyst.api_token, tmp_path / "feed.duckdb", transport, search_page_size=10)

    truth = visible_worklogs(site, analyst.account_id)
    stored, strategy = stored_worklogs(tmp_path / "feed.duckdb")
    assert strategy == "feed"
    assert stored == truth
    # the walks were held until the feed was asked for: it was read while they still ran
    assert transport.searches_held > 0 and not transport.hold_timed_out
    assert transport.seen.index(FEED) < max(i for i, name in enumerate(transport.seen) if name == SEARCH)
    # every feed page once, then one worklog/list request per 1000 ids the search pages did not embed
    engine = PermissionEngine(site).snapshot()
    beyond = sum(
        max(0, sum(engine.can_see_item(analyst.account_id, i, w.visibility) for w in i.worklogs) - 20)
        for i in site.issues.values()
        if engine.can_browse_issue(analyst.account_id, i)
    )
    assert transport.seen.count(LIST) == math.ceil(beyond / 1000)
    assert transport.seen.count(FEED) == math.ceil(len(truth) / 1000)


def test_when_per_issue_pages_win_the_feed_is_not_read_further_than_they_cost(tmp_path: Path) -> None:
    # two issues with 25 worklogs and 250 with 20: per-issue costs 2 requests, the feed (5050 ids) 8
    b = SiteBuilder("perissue")
    users = add_accounts(b, ["ann"])
    everyone = b.group("jira-users", members=users.values())
    b.application_role("jira-software", "Jira Software", [everyone])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", everyone))])
    project = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=scheme)
    for index in range(252):
        issue = b.issue(project, f"issue {index}", reporter=users["ann"], created=EPOCH + timedelta(hours=index))
        for _ in range(25 if index < 2 else 20):
            b.worklog(issue, users["ann"], 600)
    email = b.site.users[users["ann"]].email
    assert email is not None
    transport = RecordingTransport(SimCloud(b.site))

    load_as(b.site, email, api_token("ann"), tmp_path / "per-issue.duckdb", transport)

    stored, strategy = stored_worklogs(tmp_path / "per-issue.duckdb")
    assert strategy == "per_issue"
    assert stored == visible_worklogs(b.site, users["ann"]) and len(stored) == 5050
    assert transport.seen.count(FEED) <= 2 < math.ceil(5050 / 1000)
    assert sum(name.endswith("/worklog") for name in transport.seen) == 2
    assert LIST not in transport.seen
