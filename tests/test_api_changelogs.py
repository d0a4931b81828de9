"""The simulated changelog endpoints: one issue's histories paged or by id, and ``changelog/bulkfetch``.

The site is built by hand: histories of several issues are created at interleaved times (and some at the same
moment) so that ``changelog/bulkfetch``'s order, by date then issue id, and its pages that split one issue's
histories can be read off the description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts, gateway_client
from spec import assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder
from jira_lab.sim.builder import EPOCH
from jira_lab.sim.generator import analyst_id, generate_site, technical_user_id
from jira_lab.sim.model import ChangeItem, ChangelogHistory

CHANGELOG = "/rest/api/3/issue/{issueIdOrKey}/changelog"
CHANGELOG_LIST = "/rest/api/3/issue/{issueIdOrKey}/changelog/list"
BULK = "/rest/api/3/changelog/bulkfetch"
ISSUES = 6
HISTORIES_PER_ISSUE = 7


@dataclass
class ChangelogSite(HandBuiltSite):
    issues: list[int] = field(default_factory=list)
    secret_issue: int = 0

    def histories(self, issue_ids: list[int]) -> list[ChangelogHistory]:
        return [h for i in issue_ids for h in self.builder.site.issues[i].changelog]


def build_site() -> ChangelogSite:
    """ENG is browsed by everyone in jira-users (ann, bob); its last issue sits at a level only ann belongs to.
    History j of issue i is created at minute 10*j + (i % 3): three issues share each moment, so ties are broken by
    issue id. Even histories change the status, odd ones the summary and the assignee."""
    b = SiteBuilder("tiny")
    names = ["ann", "bob"]
    users = add_accounts(b, names)
    everyone = b.group("jira-users", members=users.values())
    b.application_role("jira-software", "Jira Software", [everyone])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", everyone))])
    security = b.security_scheme("Confidentiality")
    secret = b.security_level(security, "Secret", [Holder("user", users["ann"])])
    eng = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=scheme, security_scheme=security)
    site = ChangelogSite(b, SimCloud(b.site), users)
    for i in range(ISSUES):
        level = secret if i == ISSUES - 1 else None
        issue_id = b.issue(eng, f"issue {i}", reporter=users["ann"], security_level=level, created=EPOCH)
        site.issues.append(issue_id)
        for j in range(HISTORIES_PER_ISSUE):
            when = EPOCH + timedelta(minutes=10 * j + i % 3)
            if j % 2 == 0:
                items = [ChangeItem("status", "jira", "status", "10000", "To Do", "3", "In Progress")]
            else:
                items = [
                    ChangeItem("summary", "jira", "summary", None, f"old {j}", None, f"new {j}"),
                    ChangeItem("assignee", "jira", "assignee", None, None, users["bob"], "Bob"),
                ]
            b.change(issue_id, users["ann"], items, created=when)
    site.secret_issue = site.issues[-1]
    return site


@pytest.fixture(scope="module")
def shared() -> ChangelogSite:
    return build_site()


def bulk_order(history: ChangelogHistory) -> tuple[Any, int, int]:
    return history.created, history.issue_id, history.id


# -- GET .../changelog ---------------------------------------------------------------------------------------------
def test_an_issues_changelog_pages_oldest_first_to_the_end(shared: ChangelogSite) -> None:
    issue = shared.builder.site.issues[shared.issues[0]]
    client = shared.client("bob")
    seen: list[int] = []
    start = 0
    for _ in range(20):
        response = client.get(CHANGELOG.format(issueIdOrKey=issue.key), params={"startAt": start, "maxResults": 3})
        page = assert_response_matches_spec("GET", CHANGELOG, response)
        assert page["total"] == HISTORIES_PER_ISSUE
        seen += [int(h["id"]) for h in page["values"]]
        if page["isLast"]:
            assert "nextPage" not in page
            break
        assert page["nextPage"].endswith(f"/changelog?startAt={start + 3}&maxResults=3")
        start += len(page["values"])
    assert seen == [h.id for h in sorted(issue.changelog, key=lambda h: (h.created, h.id))]


def test_changelog_items_carry_jiras_fields(shared: ChangelogSite) -> None:
    issue = shared.builder.site.issues[shared.issues[0]]
    page = shared.client("ann").get(CHANGELOG.format(issueIdOrKey=issue.id)).json()
    assert page["maxResults"] == 100
    first, second = page["values"][:2]
    assert first["items"] == [
        {
            "field": "status",
            "fieldtype": "jira",
            "fieldId": "status",
            "from": "10000",
            "fromString": "To Do",
            "to": "3",
            "toString": "In Progress",
        }
    ]
    # an empty side has `from`/`to` null and no display string
    assert second["items"][1] == {
        "field": "assignee",
        "fieldtype": "jira",
        "fieldId": "assignee",
        "from": None,
        "to": shared.builder.site.issues[shared.issues[0]].changelog[1].items[1].to_value,
        "toString": "Bob",
    }
    assert first["author"]["displayName"] == "Ann"
    assert first["created"] == "2026-01-05T09:00:00.000+0000"


def test_a_hidden_issues_changelog_is_a_404_like_a_missing_one(shared: ChangelogSite) -> None:
    secret_key = shared.builder.site.issues[shared.secret_issue].key
    assert shared.client("ann").get(CHANGELOG.format(issueIdOrKey=secret_key)).status_code == 200
    for reference in (secret_key, "ENG-999"):
        response = shared.client("bob").get(CHANGELOG.format(issueIdOrKey=reference))
        assert response.status_code == 404
        assert response.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]


# -- POST .../changelog/list ---------------------------------------------------------------------------------------
def test_changelogs_by_id_returns_the_requested_histories_of_that_issue(shared: ChangelogSite) -> None:
    issue = shared.builder.site.issues[shared.issues[1]]
    other = shared.builder.site.issues[shared.issues[2]]
    wanted = [issue.changelog[4].id, issue.changelog[1].id, other.changelog[0].id, 99999]
    response = shared.client("bob").post(CHANGELOG_LIST.format(issueIdOrKey=issue.key), json={"changelogIds": wanted})
    body = assert_response_matches_spec("POST", CHANGELOG_LIST, response)
    assert [int(h["id"]) for h in body["histories"]] == [issue.changelog[1].id, issue.changelog[4].id]
    assert (body["total"], body["startAt"]) == (2, 0)


def test_changelogs_by_id_needs_ids(shared: ChangelogSite) -> None:
    response = shared.client("bob").post(CHANGELOG_LIST.format(issueIdOrKey=shared.issues[0]), json={})
    assert response.status_code == 400


# -- POST changelog/bulkfetch --------------------------------------------------------------------------------------
def bulk_walk(client: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(200):
        response = client.post(BULK, json={**body, **({"nextPageToken": token} if token else {})})
        pages.append(assert_response_matches_spec("POST", BULK, response))
        token = pages[-1].get("nextPageToken")
        if token is None:
            return pages
    raise AssertionError("changelog/bulkfetch never reached its last page")


@pytest.mark.parametrize("page_size", [1, 4, 5, 1000])
def test_bulkfetch_pages_merge_by_issue_into_every_visible_history_exactly_once(
    shared: ChangelogSite, page_size: int
) -> None:
    keys = [shared.builder.site.issues[i].key for i in shared.issues]
    pages = bulk_walk(shared.client("bob"), {"issueIdsOrKeys": keys, "maxResults": page_size})
    merged: dict[int, list[int]] = {}
    in_order: list[int] = []
    for page in pages:
        assert sum(len(entry["changeHistories"]) for entry in page["issueChangeLogs"]) <= page_size
        issue_ids = [entry["issueId"] for entry in page["issueChangeLogs"]]
        assert len(issue_ids) == len(set(issue_ids))  # one entry per issue on a page
        for entry in page["issueChangeLogs"]:
            merged.setdefault(int(entry["issueId"]), []).extend(int(h["id"]) for h in entry["changeHistories"])
        in_order += [int(h["id"]) for entry in page["issueChangeLogs"] for h in entry["changeHistories"]]
    visible = [i for i in shared.issues if i != shared.secret_issue]  # bob is not at the Secret level
    expected = sorted(shared.histories(visible), key=bulk_order)
    assert sorted(in_order) == sorted(h.id for h in expected)
    assert len(in_order) == len(set(in_order))
    assert merged == {i: [h.id for h in expected if h.issue_id == i] for i in visible}
    if page_size == 1:
        # one history a page: the pages list the histories by date, then issue id
        assert in_order == [h.id for h in expected]
    if page_size < len(expected):
        assert len(pages) == -(-len(expected) // page_size)
        pages_of_issue = {
            i: sum(str(i) in {e["issueId"] for e in page["issueChangeLogs"]} for page in pages) for i in visible
        }
        assert max(pages_of_issue.values()) > 1  # an issue's histories span pages


def test_bulkfetch_sees_a_history_added_between_walks_of_the_same_issues() -> None:
    # the simulator keeps each walk's order between its pages; a history added since must still be listed, in order
    site = build_site()
    body = {"issueIdsOrKeys": [str(i) for i in site.issues[:3]], "maxResults": 4}
    before = [
        h["id"]
        for page in bulk_walk(site.client("bob"), body)
        for e in page["issueChangeLogs"]
        for h in e["changeHistories"]
    ]
    first = site.builder.site.issues[site.issues[0]]
    added = site.builder.change(
        first.id,
        site.users["bob"],
        [ChangeItem("summary", "jira", "summary", None, "a", None, "b")],
        created=first.changelog[0].created + timedelta(seconds=1),
    )
    one_a_page = {**body, "maxResults": 1}  # one history a page: the pages list them in bulkfetch's order
    after = [
        h["id"]
        for page in bulk_walk(site.client("bob"), one_a_page)
        for e in page["issueChangeLogs"]
        for h in e["changeHistories"]
    ]
    expected = sorted(site.histories(site.issues[:3]), key=bulk_order)
    assert [int(i) for i in after] == [h.id for h in expected]
    assert set(after) - set(before) == {str(added)}


def test_bulkfetch_takes_ids_and_keys_and_shows_ann_the_secret_issue(shared: ChangelogSite) -> None:
    references = [str(shared.issues[0]), shared.builder.site.issues[shared.secret_issue].key, "ENG-999", "99999"]
    pages = bulk_walk(shared.client("ann"), {"issueIdsOrKeys": references})
    (page,) = pages
    assert {int(entry["issueId"]) for entry in page["issueChangeLogs"]} == {shared.issues[0], shared.secret_issue}


def test_bulkfetch_filters_items_by_field_id(shared: ChangelogSite) -> None:
    keys = [shared.builder.site.issues[i].key for i in shared.issues[:2]]
    pages = bulk_walk(shared.client("bob"), {"issueIdsOrKeys": keys, "fieldIds": ["assignee"], "maxResults": 3})
    histories = [h for page in pages for entry in page["issueChangeLogs"] for h in entry["changeHistories"]]
    odd = [h for h in shared.histories(shared.issues[:2]) if any(item.field_id == "assignee" for item in h.items)]
    assert sorted(int(h["id"]) for h in histories) == sorted(h.id for h in odd)
    assert all([item["fieldId"] for item in h["items"]] == ["assignee"] for h in histories)


@pytest.mark.parametrize(
    "body",
    [
        {"issueIdsOrKeys": []},
        {},
        {"issueIdsOrKeys": [str(10000 + i) for i in range(1001)]},
        {"issueIdsOrKeys": ["ENG-1"], "fieldIds": [f"f{i}" for i in range(11)]},
        {"issueIdsOrKeys": ["ENG-1"], "maxResults": 0},
        {"issueIdsOrKeys": ["ENG-1"], "maxResults": 10001},
    ],
)
def test_bulkfetch_refuses_what_its_request_bean_does_not_allow(shared: ChangelogSite, body: dict[str, Any]) -> None:
    response = shared.client("ann").post(BULK, json=body)
    assert response.status_code == 400
    assert_response_matches_spec("POST", BULK, response)


def test_bulkfetch_accepts_1000_issues(shared: ChangelogSite) -> None:
    references = [str(shared.issues[0])] + [f"ENG-{1000 + i}" for i in range(999)]
    response = shared.client("ann").post(BULK, json={"issueIdsOrKeys": references})
    assert response.status_code == 200
    assert len(response.json()["issueChangeLogs"][0]["changeHistories"]) == HISTORIES_PER_ISSUE


def test_bulkfetch_tokens_are_bound_to_their_request_and_caller(shared: ChangelogSite) -> None:
    keys = [shared.builder.site.issues[i].key for i in shared.issues[:2]]
    token = shared.client("ann").post(BULK, json={"issueIdsOrKeys": keys, "maxResults": 2}).json()["nextPageToken"]
    for name, body in [
        ("ann", {"issueIdsOrKeys": keys[:1], "maxResults": 2}),
        ("bob", {"issueIdsOrKeys": keys, "maxResults": 2}),
        ("ann", {"issueIdsOrKeys": keys, "maxResults": 2, "fieldIds": ["status"]}),
    ]:
        response = shared.client(name).post(BULK, json={**body, "nextPageToken": token})
        assert response.status_code == 400
    garbage = shared.client("ann").post(BULK, json={"issueIdsOrKeys": keys, "nextPageToken": "garbage"})
    assert garbage.status_code == 400
    same = shared.client("ann").post(BULK, json={"issueIdsOrKeys": keys, "maxResults": 5, "nextPageToken": token})
    assert same.status_code == 200  # the page size may change between pages


def test_bulkfetch_is_not_for_anonymous_callers(shared: ChangelogSite) -> None:
    anonymous = shared.anonymous()
    response = anonymous.post(BULK, json={"issueIdsOrKeys": [str(shared.issues[0])]})
    assert response.status_code == 401


def test_on_a_generated_site_bulkfetch_gives_each_user_the_histories_of_the_issues_they_browse() -> None:
    site = generate_site("tiny", 0)
    cloud = SimCloud(site)
    engine = cloud.engines[site.cloud_id]
    keys = [issue.key for issue in site.issues.values()]
    for account_id in (analyst_id(site), technical_user_id(site)):
        client = gateway_client(cloud, site, account_id, {"read:jira-work"})
        merged: dict[int, list[int]] = {}
        for page in bulk_walk(client, {"issueIdsOrKeys": keys, "maxResults": 5}):
            for entry in page["issueChangeLogs"]:
                merged.setdefault(int(entry["issueId"]), []).extend(int(h["id"]) for h in entry["changeHistories"])
        expected = {
            issue.id: [h.id for h in sorted(issue.changelog, key=bulk_order)]
            for issue in site.issues.values()
            if issue.changelog and engine.can_browse_issue(account_id, issue)
        }
        assert merged == expected
