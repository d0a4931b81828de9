"""The simulated worklog endpoints: per-issue pages, one worklog by id, the updated/deleted feeds, ``worklog/list``.

The site is built by hand, the clock is injected (``SimCloud(clock=...)``), and every expectation is read off the
site description with Jira's rules: a restricted worklog is seen only by members of its group or role, the feeds
hold back what changed in the minute before the request, and the deleted feed needs only access to Jira.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from paging import walk_issue_items
from site_clients import HandBuiltSite, add_accounts
from spec import assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.model import Worklog

SITE_URL = "https://tiny.atlassian.net"
WORKLOGS = "/rest/api/3/issue/{issueIdOrKey}/worklog"
WORKLOG = "/rest/api/3/issue/{issueIdOrKey}/worklog/{id}"
UPDATED = "/rest/api/3/worklog/updated"
DELETED = "/rest/api/3/worklog/deleted"
WORKLOG_LIST = "/rest/api/3/worklog/list"
BASE = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# worklog i of ENG-1 is created this many minutes after BASE (so creation order is not id order)
MINUTES = [7, 3, 11, 1, 9, 5, 2, 12]
BULK_PUBLIC, BULK_DEVELOPERS, BULK_ROLE = 1100, 40, 20


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class WorklogSite(HandBuiltSite):
    clock: FakeClock
    #: worklog ids by who may see them: "public", "developers" (group), "role" (Developers role), "secret" (level)
    kinds: dict[str, list[int]] = field(default_factory=dict)
    #: the first issue's worklogs, the ones the per-issue tests page through
    timesheet: list[int] = field(default_factory=list)
    #: worklogs updated during the minute before NOW (all unrestricted)
    recent: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    deleted_recently: list[int] = field(default_factory=list)

    def worklog(self, worklog_id: int) -> Worklog:
        found = self.builder.site.worklog(worklog_id)
        assert found is not None
        return found

    def visible_to(self, name: str) -> set[int]:
        """Jira's rule on this site: everyone with product access browses ENG; group and role restrictions are
        met by their members only (dora's administrator rights change nothing); the Secret level holds ann."""
        if name == "eve":
            return set()
        kinds = ["public"]
        if name in {"ann", "bob"}:
            kinds.append("developers")
        if name in {"ann", "carl"}:
            kinds.append("role")
        if name == "ann":
            kinds.append("secret")
        return {worklog_id for kind in kinds for worklog_id in self.kinds[kind]}


def build_site() -> WorklogSite:
    """ENG-1: a timesheet of 8 worklogs; ENG-2: a bulk of 1160 worklogs updated in shuffled order, plus a few
    updated during the last minute; ENG-3: at the Secret level (only ann). Eve has no Jira product access."""
    b = SiteBuilder("tiny")
    names = ["ann", "bob", "carl", "dora", "eve"]
    users = add_accounts(b, names)
    jira_users = b.group("jira-users", members=[users[n] for n in names if n != "eve"])
    admins = b.group("jira-administrators", members=[users["ann"], users["dora"]])
    developers = b.group("developers", members=[users["ann"], users["bob"]])
    contractors = b.group("contractors", members=[users["carl"]])
    b.application_role("jira-software", "Jira Software", [jira_users])
    b.global_permission("ADMINISTER", admins)
    role = b.role("Developers")
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("applicationRole", None))])
    security = b.security_scheme("Confidentiality")
    secret = b.security_level(security, "Secret", [Holder("user", users["ann"])])
    eng = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=scheme, security_scheme=security)
    b.role_actor(eng, role, users=[users["ann"]], groups=[contractors])
    clock = FakeClock(NOW)
    site = WorklogSite(b, SimCloud(b.site, clock=clock), users, clock)
    site.kinds = {"public": [], "developers": [], "role": [], "secret": []}
    restrictions = {
        "public": None,
        "developers": Visibility("group", developers),
        "role": Visibility("role", "Developers"),
    }
    cycle = ["public", "developers", "role"]

    timesheet = b.issue(eng, "Timesheet", reporter=users["ann"])
    for i, minutes in enumerate(MINUTES):
        kind = cycle[i % 3]
        worklog_id = b.worklog(
            timesheet,
            users["ann"],
            3600,
            text=f"work {i}",
            visibility=restrictions[kind],
            created=BASE + timedelta(minutes=minutes),
            started=BASE + timedelta(hours=i),
        )
        site.kinds[kind].append(worklog_id)
        site.timesheet.append(worklog_id)

    bulk = b.issue(eng, "Bulk", reporter=users["ann"])
    plan = ["public"] * BULK_PUBLIC + ["developers"] * BULK_DEVELOPERS + ["role"] * BULK_ROLE
    seconds = list(range(len(plan)))
    random.Random(7).shuffle(seconds)
    for kind, offset in zip(plan, seconds, strict=True):
        moment = BASE + timedelta(days=1, seconds=offset)
        worklog_id = b.worklog(bulk, users["bob"], 60, visibility=restrictions[kind], created=moment)
        site.kinds[kind].append(worklog_id)
    for age in (timedelta(seconds=30), timedelta(milliseconds=59_999), timedelta(0)):
        worklog_id = b.worklog(bulk, users["bob"], 60, created=BASE)
        site.worklog(worklog_id).updated = NOW - age
        site.recent.append(worklog_id)
    settled = b.worklog(bulk, users["bob"], 60, created=BASE)
    site.worklog(settled).updated = NOW - timedelta(seconds=60)  # exactly a minute old: returned
    site.kinds["public"].append(settled)

    restricted = b.issue(eng, "Restricted", reporter=users["ann"], security_level=secret)
    site.kinds["secret"].append(b.worklog(restricted, users["ann"], 600, created=BASE + timedelta(days=2)))
    return site


@pytest.fixture(scope="module")
def tiny() -> WorklogSite:
    """One site for the read-only tests (building 1,160 worklogs once keeps the file fast)."""
    return build_site()


@pytest.fixture
def fresh() -> WorklogSite:
    """A site of its own, for tests that delete worklogs or move the clock."""
    return build_site()


def walk_feed(client: httpx.Client, template: str, since: int = 0) -> list[dict[str, Any]]:
    """Every page of a SINCE feed, following ``nextPage`` until ``lastPage``."""
    response = client.get(template, params={"since": since})
    pages: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, response.text
        page = assert_response_matches_spec("GET", template, response)
        pages.append(page)
        if page["lastPage"]:
            return pages
        assert len(pages) < 10, "the feed does not end"
        response = client.get(page["nextPage"])


def feed_ids(pages: list[dict[str, Any]]) -> list[int]:
    """The ids in feed order; the item at a page's ``until`` opens the next page too (``since`` is inclusive)."""
    ids: list[int] = []
    for page in pages:
        ids.extend(v["worklogId"] for v in page["values"] if not ids or v["worklogId"] != ids[-1])
    return ids


def settled_updates(site: WorklogSite, ids: set[int]) -> list[int]:
    """Ids ordered by update time, without those updated in the minute before NOW."""
    cutoff = NOW - timedelta(minutes=1)
    kept = [site.worklog(i) for i in ids if site.worklog(i).updated <= cutoff]
    return [w.id for w in sorted(kept, key=lambda w: (w.updated, w.id))]


# -- per issue -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ann", "bob", "carl", "dora"])
def test_issue_worklog_pages_hold_what_the_caller_may_see_oldest_first(tiny: WorklogSite, name: str) -> None:
    visible = tiny.visible_to(name)
    expected = [
        w.id for w in sorted((tiny.worklog(i) for i in tiny.timesheet if i in visible), key=lambda w: w.created)
    ]
    with tiny.client(name) as client:
        pages = walk_issue_items(client, "worklog", "ENG-1", page_size=2)

    assert len(pages) == math.ceil(len(expected) / 2)
    assert {page["total"] for page in pages} == {len(expected)}
    assert [int(w["id"]) for page in pages for w in page["worklogs"]] == expected


def test_started_after_is_inclusive_and_started_before_exclusive(tiny: WorklogSite) -> None:
    # timesheet worklog i started i hours after BASE; ann sees them all
    after, before = ms(BASE + timedelta(hours=2)), ms(BASE + timedelta(hours=5))
    expected = sorted(tiny.timesheet[2:5], key=lambda i: tiny.worklog(i).created)
    with tiny.client("ann") as ann:
        page = ann.get("/rest/api/3/issue/ENG-1/worklog", params={"startedAfter": after, "startedBefore": before})

    assert [int(w["id"]) for w in page.json()["worklogs"]] == expected
    assert page.json()["total"] == 3


def test_issue_worklog_max_results_defaults_to_and_is_capped_at_5000(tiny: WorklogSite) -> None:
    with tiny.client("ann") as ann:
        default = ann.get("/rest/api/3/issue/ENG-2/worklog").json()
        capped = ann.get("/rest/api/3/issue/ENG-2/worklog", params={"maxResults": 100000}).json()

    assert default["maxResults"] == capped["maxResults"] == 5000
    bulk_issue = tiny.worklog(tiny.recent[0]).issue_id
    assert default["total"] == len(tiny.builder.site.issues[bulk_issue].worklogs)  # ann sees every ENG-2 worklog


@pytest.mark.parametrize("param", ["startAt", "maxResults"])
def test_a_non_numeric_page_parameter_is_a_404_as_the_spec_says(tiny: WorklogSite, param: str) -> None:
    with tiny.client("ann") as ann:
        response = ann.get("/rest/api/3/issue/ENG-1/worklog", params={param: "ten"})

    assert response.status_code == 404
    assert_response_matches_spec("GET", WORKLOGS, response)


def test_a_hidden_issue_is_a_404(tiny: WorklogSite) -> None:
    with tiny.client("dora") as dora:
        listed = dora.get("/rest/api/3/issue/ENG-3/worklog")
        single = dora.get(f"/rest/api/3/issue/ENG-3/worklog/{tiny.kinds['secret'][0]}")

    for response in (listed, single):
        assert response.status_code == 404
        assert response.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]


def test_a_hidden_worklog_by_id_is_a_404_like_a_missing_one(tiny: WorklogSite) -> None:
    role_worklog = next(i for i in tiny.timesheet if i in tiny.kinds["role"])
    public_worklog = next(i for i in tiny.timesheet if i in tiny.kinds["public"])
    with tiny.client("bob") as bob:
        hidden = bob.get(f"/rest/api/3/issue/ENG-1/worklog/{role_worklog}")
        missing = bob.get("/rest/api/3/issue/ENG-1/worklog/1")
        shown = bob.get(f"/rest/api/3/issue/ENG-1/worklog/{public_worklog}")

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["errorMessages"][0].replace(str(role_worklog), "1") == missing.json()["errorMessages"][0]
    body = assert_response_matches_spec("GET", WORKLOG, shown)
    assert body["id"] == str(public_worklog)
    assert "visibility" not in body


# -- worklog/updated ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ann", "bob", "carl", "dora"])
def test_updated_feed_walks_to_the_end_with_what_the_caller_may_see(tiny: WorklogSite, name: str) -> None:
    expected = settled_updates(tiny, tiny.visible_to(name))
    with tiny.client(name) as client:
        pages = walk_feed(client, UPDATED)

    assert len(pages) == math.ceil(len(expected) / 1000) > 1
    assert all(len(page["values"]) == 1000 for page in pages[:-1])
    assert feed_ids(pages) == expected
    for page, following in itertools.pairwise(pages):
        assert page["until"] == page["values"][-1]["updatedTime"]
        assert following["since"] == page["until"]
        assert following["values"][0] == page["values"][-1]
    assert pages[-1]["until"] == ms(tiny.worklog(expected[-1]).updated)


def test_updated_feed_holds_back_the_last_minute_until_it_has_passed(fresh: WorklogSite) -> None:
    with fresh.client("dora") as dora:
        since = ms(NOW - timedelta(minutes=5))
        before = dora.get(UPDATED, params={"since": since}).json()
        fresh.clock.advance(60)
        after = dora.get(UPDATED, params={"since": since}).json()

    settled = [i for i in fresh.kinds["public"] if fresh.worklog(i).updated >= NOW - timedelta(minutes=5)]
    assert [v["worklogId"] for v in before["values"]] == settled
    assert {v["worklogId"] for v in after["values"]} == {*settled, *fresh.recent}
    assert before["lastPage"] is after["lastPage"] is True


def test_updated_feed_follows_update_times_changed_between_reads(fresh: WorklogSite) -> None:
    """The feed keeps its order between pages; a worklog updated (here: set directly) must move in it all the same."""
    moved = fresh.kinds["public"][0]
    with fresh.client("dora") as dora:
        before = settled_updates(fresh, fresh.visible_to("dora"))
        assert feed_ids(walk_feed(dora, UPDATED)) == before
        fresh.worklog(moved).updated = NOW - timedelta(minutes=2)  # from the oldest to among the latest
        after = feed_ids(walk_feed(dora, UPDATED))

    assert after == settled_updates(fresh, fresh.visible_to("dora")) != before
    assert after.index(moved) > before.index(moved)


def test_updated_feed_values_carry_update_times_and_empty_properties(tiny: WorklogSite) -> None:
    since = ms(BASE + timedelta(days=2))
    with tiny.client("ann") as ann:
        page = ann.get(UPDATED, params={"since": since}).json()

    secret_worklog = tiny.worklog(tiny.kinds["secret"][0])
    first = page["values"][0]
    assert first == {"worklogId": secret_worklog.id, "updatedTime": ms(secret_worklog.updated), "properties": []}
    assert page["since"] == since
    assert page["self"] == f"{SITE_URL}{UPDATED}?since={since}"


def test_two_users_get_different_updated_feeds(tiny: WorklogSite) -> None:
    with tiny.client("bob") as bob, tiny.client("carl") as carl:
        bob_ids = set(feed_ids(walk_feed(bob, UPDATED)))
        carl_ids = set(feed_ids(walk_feed(carl, UPDATED)))

    assert bob_ids - carl_ids == set(tiny.kinds["developers"])
    assert carl_ids - bob_ids == set(tiny.kinds["role"])


def test_next_page_is_followed_through_the_gateway(tiny: WorklogSite) -> None:
    base = f"https://api.atlassian.com/ex/jira/{tiny.builder.site.cloud_id}"
    with tiny.gateway("carl", ["read:jira-work"]) as gateway:
        pages = walk_feed(gateway, UPDATED)

    first = pages[0]
    assert first["nextPage"] == f"{base}{UPDATED}?since={first['until']}"
    assert urlsplit(first["nextPage"]).query == f"since={first['until']}"
    assert feed_ids(pages) == settled_updates(tiny, tiny.visible_to("carl"))


def test_an_empty_updated_feed_is_the_last_page(tiny: WorklogSite) -> None:
    since = ms(NOW + timedelta(days=1))
    with tiny.client("ann") as ann:
        page = ann.get(UPDATED, params={"since": since})

    body = assert_response_matches_spec("GET", UPDATED, page)
    assert body["values"] == []
    assert body["lastPage"] is True
    assert body["since"] == body["until"] == since


def test_a_caller_without_jira_access_gets_no_updated_worklogs(tiny: WorklogSite) -> None:
    with tiny.client("eve") as eve:
        page = eve.get(UPDATED).json()

    assert page["values"] == []


# -- worklog/deleted ------------------------------------------------------------------------------------------------
def delete_some(site: WorklogSite) -> None:
    """Delete one worklog of each kind a day before NOW, and one public worklog 10 seconds before NOW."""
    when = NOW - timedelta(days=1)
    for offset, kind in enumerate(["public", "developers", "role", "secret"]):
        worklog_id = site.kinds[kind][0]
        site.builder.site.delete_worklog(worklog_id, when + timedelta(minutes=offset))
        site.kinds[kind].remove(worklog_id)
        site.deleted.append(worklog_id)
    recent = site.kinds["public"].pop(0)
    site.builder.site.delete_worklog(recent, NOW - timedelta(seconds=10))
    site.deleted_recently.append(recent)


@pytest.mark.parametrize("name", ["ann", "bob", "dora"])
def test_deleted_feed_lists_every_deleted_id_to_anyone_with_jira_access(fresh: WorklogSite, name: str) -> None:
    delete_some(fresh)
    with fresh.client(name) as client:
        pages = walk_feed(client, DELETED)

    assert feed_ids(pages) == fresh.deleted  # deleted a minute apart, in this order
    values = pages[0]["values"]
    assert values[0]["updatedTime"] == ms(NOW - timedelta(days=1))
    assert pages[-1]["lastPage"] is True


def test_deleted_feed_holds_back_the_last_minute(fresh: WorklogSite) -> None:
    delete_some(fresh)
    with fresh.client("ann") as ann:
        fresh.clock.advance(61)
        page = ann.get(DELETED, params={"since": ms(NOW - timedelta(days=2))}).json()

    assert [v["worklogId"] for v in page["values"]] == [*fresh.deleted, *fresh.deleted_recently]


def test_deleted_worklogs_leave_the_updated_feed_and_worklog_list(fresh: WorklogSite) -> None:
    delete_some(fresh)
    gone = fresh.deleted[0]
    with fresh.client("ann") as ann:
        updated = set(feed_ids(walk_feed(ann, UPDATED)))
        listed = ann.post(WORKLOG_LIST, json={"ids": [gone]}).json()

    assert gone not in updated
    assert listed == []


def test_a_caller_without_jira_access_gets_no_deleted_ids(fresh: WorklogSite) -> None:
    delete_some(fresh)
    with fresh.client("eve") as eve:
        page = eve.get(DELETED).json()

    assert page["values"] == []
    assert page["lastPage"] is True


# -- worklog/list ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ann", "bob", "carl", "dora", "eve"])
def test_worklog_list_omits_what_the_caller_may_not_see(tiny: WorklogSite, name: str) -> None:
    requested = [*tiny.timesheet, tiny.kinds["secret"][0], 1, 2]
    expected = sorted(set(requested) & tiny.visible_to(name))
    with tiny.client(name) as client:
        response = client.post(WORKLOG_LIST, json={"ids": requested})

    body = assert_response_matches_spec("POST", WORKLOG_LIST, response)
    assert [int(w["id"]) for w in body] == expected


def test_worklog_list_takes_1000_ids_and_expands_properties(tiny: WorklogSite) -> None:
    ids = sorted(tiny.kinds["public"])[:1000]
    with tiny.client("dora") as dora:
        response = dora.post(WORKLOG_LIST, json={"ids": ids}, params={"expand": "properties"})

    body = response.json()
    assert [int(w["id"]) for w in body] == ids
    assert all(w["properties"] == [] for w in body)


@pytest.mark.parametrize(
    "body",
    [{"ids": list(range(1, 1002))}, {"ids": []}, {}, {"ids": [1.5]}],
    ids=["1001 ids", "empty", "no ids", "not integers"],
)
def test_worklog_list_rejects_bad_requests(tiny: WorklogSite, body: dict[str, Any]) -> None:
    with tiny.client("ann") as ann:
        response = ann.post(WORKLOG_LIST, json=body)

    assert response.status_code == 400
    assert_response_matches_spec("POST", WORKLOG_LIST, response)


def test_worklog_visibility_shows_the_groups_current_name(fresh: WorklogSite) -> None:
    restricted = next(i for i in fresh.timesheet if i in fresh.kinds["developers"])
    visibility = fresh.worklog(restricted).visibility
    assert visibility is not None
    fresh.builder.site.groups[visibility.identifier].name = "engineering"
    with fresh.client("bob") as bob:
        body = bob.post(WORKLOG_LIST, json={"ids": [restricted]}).json()

    assert body[0]["visibility"] == {"type": "group", "value": "engineering", "identifier": visibility.identifier}
