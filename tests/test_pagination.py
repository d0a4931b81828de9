"""Every pagination style walked to the end against the simulated site, and the guards against pages that loop.

Expected values come from the site's own data: the analyst sees everything on a generated site, so every walk must
return exactly what the site holds.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from jira_lab.client import JiraClient
from jira_lab.errors import PaginationError
from jira_lab.pagination import (
    ISSUE_BULKFETCH_MAX_IDS,
    Page,
    array_pages,
    changelogs_by_issue_ids,
    chunked,
    comments_by_ids,
    issues_by_ids,
    iter_items,
    legacy_offset_pages,
    offset_limit_pages,
    page_bean_pages,
    search_pages,
    since_pages,
    token_pages,
    worklogs_by_ids,
)
from jira_lab.sim import SimCloud
from jira_lab.sim.generator import SiteSize, generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.render import epoch_ms

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # later than anything a generated site holds, past the quiet minute
SCOPES = ["read:jira-work", "read:jira-user", "manage:jira-configuration"]
ALL_ISSUES = "created >= 2000-01-01"


class Counting(httpx.AsyncBaseTransport):
    """The cloud's transport, noting each request (method, host, path, query) and the most in flight at once."""

    def __init__(self, cloud: SimCloud, *, overlap: bool = False, rewrite: Callable[[Any], Any] | None = None) -> None:
        self.inner = cloud.transport()
        self.overlap = overlap
        self.rewrite = rewrite
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.overlap:
                for _ in range(5):
                    await asyncio.sleep(0)
            response = await self.inner.handle_async_request(request)
            if self.rewrite is None:
                return response
            await response.aread()
            body = self.rewrite(json.loads(response.content))
            headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
            return httpx.Response(response.status_code, headers=headers, json=body)
        finally:
            self.in_flight -= 1

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


class Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@pytest.fixture(scope="module")
def site() -> Site:
    """The tiny generated site; read only."""
    return generate_site("tiny", 0)


@pytest.fixture(scope="module")
def worklog_site() -> Site:
    """A site with more worklogs than one page of the worklog feeds (1000) holds; read only."""
    return generate_site(
        SiteSize(projects=2, issues=40, comments=40, worklogs=2300, changelog_items=40, users=8, groups=8), 0
    )


def basic(cloud: SimCloud, site: Site, transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> JiraClient:
    user = site.users[site.accounts["analyst"]]
    assert user.email is not None and user.api_token is not None
    return JiraClient.for_site(
        cloud.site_url(site),
        auth=httpx.BasicAuth(user.email, user.api_token),
        transport=transport or cloud.transport(),
        clock=cloud.clock,
        **options,
    )


def gateway(cloud: SimCloud, site: Site, transport: httpx.AsyncBaseTransport | None = None) -> JiraClient:
    token = cloud.mint_access_token(site.accounts["analyst"], SCOPES, sites=[site])
    return JiraClient.for_cloud(
        site.cloud_id, auth=Bearer(token), transport=transport or cloud.transport(), clock=cloud.clock
    )


def cloud_for(site: Site) -> SimCloud:
    return SimCloud(site, clock=lambda: NOW.timestamp())


def walk(pages: AsyncIterator[Page]) -> list[Page]:
    async def collect() -> list[Page]:
        return [page async for page in pages]

    return asyncio.run(collect())


def items(pages: list[Page]) -> list[Any]:
    return [item for page in pages for item in page.items]


# -- OFS-PageBean ----------------------------------------------------------------------------------------------------


def test_page_bean_pages_walk_every_group(site: Site) -> None:
    cloud = cloud_for(site)
    pages = walk(page_bean_pages(basic(cloud, site), "/rest/api/3/group/bulk", max_results=5))
    assert sorted(g["groupId"] for g in items(pages)) == sorted(site.groups)
    assert len(pages) == math.ceil(len(site.groups) / 5)
    assert pages[-1].body["isLast"] is True


def test_page_bean_pages_walk_every_member_of_every_group(site: Site) -> None:
    cloud = cloud_for(site)
    client = basic(cloud, site)
    for group_id, members in site.group_members.items():
        pages = walk(
            page_bean_pages(
                client,
                "/rest/api/3/group/member",
                params={"groupId": group_id, "includeInactiveUsers": True},
                max_results=3,
            )
        )
        assert sorted(u["accountId"] for u in items(pages)) == sorted(m for m in members if m in site.users)


def page_server(pages: list[Any]) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering the given bodies in turn, whatever is asked (the last one for ever after)."""
    answers = list(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        body = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(200, json=body)

    return handler


def fake_client(handler: Callable[[httpx.Request], httpx.Response]) -> JiraClient:
    return JiraClient("https://fake.atlassian.net", transport=httpx.MockTransport(handler))


def test_page_bean_pages_without_is_last_stop_at_the_total() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        start = int(request.url.params["startAt"])
        values = list(range(start, min(start + 2, 5)))  # Jira gives 2 a page whatever was asked
        return httpx.Response(200, json={"startAt": start, "total": 5, "values": values})

    pages = walk(page_bean_pages(fake_client(handler), "/rest/api/3/x", max_results=50))
    assert items(pages) == [0, 1, 2, 3, 4]
    assert [r.url.params["startAt"] for r in sent] == ["0", "2", "4"]


def test_a_page_bean_server_ignoring_start_at_is_stopped() -> None:
    same = {"startAt": 0, "isLast": False, "values": [{"id": 1}, {"id": 2}]}
    with pytest.raises(PaginationError, match="same page twice"):
        walk(page_bean_pages(fake_client(page_server([same])), "/rest/api/3/x"))


# -- OFS-legacy ------------------------------------------------------------------------------------------------------


def test_legacy_pages_walk_every_comment_and_worklog_of_every_issue(site: Site) -> None:
    cloud = cloud_for(site)
    client = basic(cloud, site)
    for issue in site.issues.values():
        comments = walk(legacy_offset_pages(client, f"/rest/api/3/issue/{issue.id}/comment", "comments", max_results=7))
        assert [int(c["id"]) for c in items(comments)] == [
            c.id for c in sorted(issue.comments, key=lambda c: (c.created, c.id))
        ]
        worklogs = walk(
            legacy_offset_pages(client, f"/rest/api/3/issue/{issue.key}/worklog", "worklogs", max_results=4)
        )
        assert sorted(int(w["id"]) for w in items(worklogs)) == sorted(w.id for w in issue.worklogs)


def test_legacy_pages_advance_by_what_came_when_jira_lowers_the_page_size(site: Site) -> None:
    cloud = cloud_for(site)
    busiest = max(site.issues.values(), key=lambda i: len(i.comments))
    assert len(busiest.comments) > 100  # more than the comment endpoint's largest page
    transport = Counting(cloud)
    pages = walk(
        legacy_offset_pages(
            basic(cloud, site, transport), f"/rest/api/3/issue/{busiest.id}/comment", "comments", max_results=1000
        )
    )
    assert len(items(pages)) == len(busiest.comments)
    assert [r.url.params["startAt"] for r in transport.requests] == ["0", str(len(pages[0].items))]


# -- OFS-array -------------------------------------------------------------------------------------------------------


def test_array_pages_walk_every_user_until_an_empty_page(site: Site) -> None:
    cloud = cloud_for(site)
    pages = walk(array_pages(basic(cloud, site), "/rest/api/3/users/search", max_results=5))
    assert [u["accountId"] for u in items(pages)] == list(site.users)
    assert pages[-1].items == [] and all(p.items for p in pages[:-1])
    assert len(pages) == math.ceil(len(site.users) / 5) + 1


def test_an_array_server_ignoring_start_at_is_stopped() -> None:
    with pytest.raises(PaginationError):
        walk(array_pages(fake_client(page_server([[{"accountId": "a"}]])), "/rest/api/3/users/search"))


# -- TOKEN -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_token_pages_walk_every_issue(site: Site, method: str) -> None:
    cloud = cloud_for(site)
    transport = Counting(cloud)
    client = basic(cloud, site, transport)
    if method == "GET":
        pages = walk(token_pages(client, "/rest/api/3/search/jql", "issues", params={"jql": ALL_ISSUES}, max_results=7))
        tokens_in_query = [r.url.params.get("nextPageToken") for r in transport.requests]
        assert tokens_in_query[0] is None and all(tokens_in_query[1:])
    else:
        pages = walk(search_pages(client, ALL_ISSUES, fields=["summary"], max_results=7))
        tokens_in_body = [json.loads(r.content).get("nextPageToken") for r in transport.requests]
        assert tokens_in_body[0] is None and all(tokens_in_body[1:])
    ids = [int(i["id"]) for i in items(pages)]
    assert sorted(ids) == sorted(site.issues) and len(ids) == len(set(ids))
    assert len(pages) == math.ceil(len(site.issues) / 7)
    assert pages[-1].body["isLast"] is True and "nextPageToken" not in pages[-1].body


def test_changelog_bulkfetch_walks_every_history_with_the_token_in_the_body(site: Site) -> None:
    cloud = cloud_for(site)
    transport = Counting(cloud)
    pages = walk(changelogs_by_issue_ids(basic(cloud, site, transport), list(site.issues), max_results=13))
    histories: dict[int, list[int]] = {}
    for entry in items(pages):  # one issue's histories can span pages: merge them
        histories.setdefault(int(entry["issueId"]), []).extend(int(h["id"]) for h in entry["changeHistories"])
    expected = {i.id: sorted(h.id for h in i.changelog) for i in site.issues.values() if i.changelog}
    assert {k: sorted(v) for k, v in histories.items()} == expected
    total = sum(len(v) for v in expected.values())
    assert len(transport.requests) == math.ceil(total / 13)


def test_a_repeated_token_is_stopped() -> None:
    page = {"issues": [{"id": "1"}], "nextPageToken": "again", "isLast": False}
    with pytest.raises(PaginationError, match="same nextPageToken"):
        walk(token_pages(fake_client(page_server([page])), "/rest/api/3/search/jql", "issues"))


def test_a_page_that_is_not_last_but_has_no_token_is_an_error() -> None:
    page = {"issues": [{"id": "1"}], "isLast": False}
    with pytest.raises(PaginationError, match="no nextPageToken"):
        walk(token_pages(fake_client(page_server([page])), "/rest/api/3/search/jql", "issues"))


# -- OFFSET-LIMIT ----------------------------------------------------------------------------------------------------


def test_offset_limit_pages_walk_every_audit_record(site: Site) -> None:
    cloud = cloud_for(site)
    pages = walk(offset_limit_pages(basic(cloud, site), "/rest/api/3/auditing/record", limit=25))
    ids = [r["id"] for r in items(pages)]
    assert sorted(ids) == sorted(r.id for r in site.audit_records) and len(ids) == len(set(ids))
    assert len(pages) == math.ceil(len(site.audit_records) / 25)


# -- SINCE -----------------------------------------------------------------------------------------------------------


def all_worklogs(site: Site) -> dict[int, int]:
    return {w.id: epoch_ms(w.updated) for i in site.issues.values() for w in i.worklogs}


def test_since_pages_walk_the_whole_worklog_feed_once_each(worklog_site: Site) -> None:
    cloud = cloud_for(worklog_site)
    pages = walk(since_pages(basic(cloud, worklog_site), "/rest/api/3/worklog/updated"))
    ids = [v["worklogId"] for v in items(pages)]
    expected = all_worklogs(worklog_site)
    assert len(expected) > 2000 and len(pages) == math.ceil(len(expected) / 1000)
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))  # the overlap at each `until` is dropped
    assert pages[-1].body["lastPage"] is True
    assert pages[-1].body["until"] == max(expected.values())  # the cursor to resume from


def test_since_pages_start_where_asked(worklog_site: Site) -> None:
    cloud = cloud_for(worklog_site)
    expected = all_worklogs(worklog_site)
    since = sorted(expected.values())[1500]
    pages = walk(since_pages(basic(cloud, worklog_site), "/rest/api/3/worklog/updated", since=since))
    assert sorted(v["worklogId"] for v in items(pages)) == sorted(i for i, t in expected.items() if t >= since)


def test_the_deleted_feed_lists_every_deleted_worklog(worklog_site: Site) -> None:
    cloud = cloud_for(worklog_site)
    pages = walk(since_pages(basic(cloud, worklog_site), "/rest/api/3/worklog/deleted"))
    assert sorted(v["worklogId"] for v in items(pages)) == sorted(d.id for d in worklog_site.deleted_worklogs)


def test_a_next_page_on_the_site_url_is_followed_through_the_gateway(worklog_site: Site) -> None:
    cloud = cloud_for(worklog_site)
    site_url = cloud.site_url(worklog_site)

    def to_site_url(body: Any) -> Any:
        # Jira may build nextPage on the site URL even for a call made through the gateway
        if isinstance(body, dict) and isinstance(body.get("nextPage"), str):
            path = httpx.URL(body["nextPage"]).raw_path.decode()
            body["nextPage"] = site_url + path[path.index("/rest/") :]
        return body

    transport = Counting(cloud, rewrite=to_site_url)
    pages = walk(since_pages(gateway(cloud, worklog_site, transport), "/rest/api/3/worklog/updated"))
    assert all(p.body["nextPage"].startswith(site_url) for p in pages)
    assert {r.url.host for r in transport.requests} == {"api.atlassian.com"}
    assert all(r.url.path.startswith(f"/ex/jira/{worklog_site.cloud_id}/rest/") for r in transport.requests)
    assert sorted(v["worklogId"] for v in items(pages)) == sorted(all_worklogs(worklog_site))


def test_a_feed_page_that_does_not_move_until_is_stopped() -> None:
    stuck = {"values": [{"worklogId": 1, "updatedTime": 5}], "since": 5, "until": 5, "lastPage": False}
    with pytest.raises(PaginationError, match="does not move past since"):
        walk(since_pages(fake_client(page_server([stuck])), "/rest/api/3/worklog/updated", since=5))


# -- IDS -------------------------------------------------------------------------------------------------------------


def test_comments_by_ids_chunk_the_ids_and_return_every_comment(site: Site) -> None:
    cloud = cloud_for(site)
    transport = Counting(cloud)
    ids = sorted(c.id for i in site.issues.values() for c in i.comments)
    pages = walk(comments_by_ids(basic(cloud, site, transport), ids + ids[:10], chunk_size=64))
    assert [int(c["id"]) for c in items(pages)] == ids  # in order, the repeated ids asked for only once
    assert [len(json.loads(r.content)["ids"]) for r in transport.requests] == [len(c) for c in chunked(ids, 64)]


def test_worklogs_and_issues_by_ids_return_every_one(site: Site) -> None:
    cloud = cloud_for(site)
    transport = Counting(cloud)
    client = basic(cloud, site, transport)
    worklog_ids = sorted(w.id for i in site.issues.values() for w in i.worklogs)
    worklogs = walk(worklogs_by_ids(client, worklog_ids, chunk_size=30))
    assert sorted(int(w["id"]) for w in items(worklogs)) == worklog_ids
    keys = [issue.key for issue in site.issues.values()]
    issues = walk(issues_by_ids(client, keys, fields=["summary"], chunk_size=7))
    assert sorted(i["key"] for i in items(issues)) == sorted(keys)
    bulk = [r for r in transport.requests if r.url.path.endswith("/issue/bulkfetch")]
    assert len(bulk) == math.ceil(len(keys) / 7)


def test_id_chunks_are_fetched_concurrently_within_the_cap_and_come_back_in_order(site: Site) -> None:
    cloud = cloud_for(site)
    transport = Counting(cloud, overlap=True)
    ids = sorted(c.id for i in site.issues.values() for c in i.comments)
    pages = walk(comments_by_ids(basic(cloud, site, transport, max_concurrency=3), ids, chunk_size=10))
    assert transport.max_in_flight == 3
    assert [int(c["id"]) for c in items(pages)] == ids


def test_chunk_sizes_beyond_what_jira_accepts_are_refused(site: Site) -> None:
    client = basic(cloud_for(site), site)
    with pytest.raises(ValueError, match="between 1 and 100"):
        issues_by_ids(client, [1], chunk_size=ISSUE_BULKFETCH_MAX_IDS + 1)
    with pytest.raises(ValueError):
        comments_by_ids(client, [1], chunk_size=0)


def test_chunked_keeps_order_and_drops_repeats() -> None:
    assert list(chunked([3, 1, 3, 2, 5, 1, 4], 2)) == [[3, 1], [2, 5], [4]]
    assert list(chunked([], 5)) == []


def test_iter_items_flattens_pages(site: Site) -> None:
    cloud = cloud_for(site)

    async def ids() -> list[str]:
        return [
            g["groupId"]
            async for g in iter_items(page_bean_pages(basic(cloud, site), "/rest/api/3/group/bulk", max_results=4))
        ]

    assert sorted(asyncio.run(ids())) == sorted(site.groups)
