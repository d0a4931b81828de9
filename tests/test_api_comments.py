"""The simulated comment endpoints: per-issue pages, one comment by id, and ``POST /comment/list``.

The site is built by hand so that every expectation reads off its description: who is in which group or role, which
comment is restricted to what, and Jira's rule that a restricted comment is seen only by members of its group or
role (an administrator is no exception).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from paging import walk_issue_items
from site_clients import HandBuiltSite, add_accounts
from spec import assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.api.comments import MAX_COMMENTS_PER_PAGE

SITE_URL = "https://tiny.atlassian.net"
COMMENTS = "/rest/api/3/issue/{issueIdOrKey}/comment"
COMMENT = "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"
COMMENT_LIST = "/rest/api/3/comment/list"
BASE = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
# comment i of the open issue is created this many minutes after BASE, so that creation order is not id order
MINUTES = [7, 3, 11, 1, 9, 5, 2, 12, 4]


@dataclass
class CommentSite(HandBuiltSite):
    developers: str
    open_issue: int
    secret_issue: int
    ops_issue: int
    created: dict[int, datetime] = field(default_factory=dict)
    public: list[int] = field(default_factory=list)
    developers_only: list[int] = field(default_factory=list)
    role_only: list[int] = field(default_factory=list)
    secret_public: int = 0
    secret_developers: int = 0
    ops_public: int = 0

    def in_created_order(self, ids: list[int]) -> list[int]:
        return sorted(ids, key=lambda cid: (self.created[cid], cid))


def build_site() -> CommentSite:
    """ENG: everyone browses; ann and bob are developers; ann and carl (through the contractors group) hold the
    Developers role; dora is a Jira administrator outside both; eve only reaches the Secret security level."""
    b = SiteBuilder("tiny")
    names = ["ann", "bob", "carl", "dora", "eve"]
    users = add_accounts(b, names)
    everyone = b.group("jira-users", members=users.values())
    admins = b.group("jira-administrators", members=[users["ann"], users["dora"]])
    developers = b.group("developers", members=[users["ann"], users["bob"]])
    contractors = b.group("contractors", members=[users["carl"]])
    b.application_role("jira-software", "Jira Software", [everyone])
    b.global_permission("ADMINISTER", admins)
    role = b.role("Developers")
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", everyone))])
    ops_scheme = b.permission_scheme("Ops only", grants=[("BROWSE_PROJECTS", Holder("group", developers))])
    security = b.security_scheme("Confidentiality")
    secret = b.security_level(security, "Secret", [Holder("user", users["ann"]), Holder("user", users["eve"])])
    eng = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=scheme, security_scheme=security)
    ops = b.project("OPS", "Operations", lead=users["ann"], permission_scheme=ops_scheme)
    b.role_actor(eng, role, users=[users["ann"]], groups=[contractors])

    open_issue = b.issue(eng, "Open issue", reporter=users["ann"])
    secret_issue = b.issue(eng, "Secret issue", reporter=users["ann"], security_level=secret)
    ops_issue = b.issue(ops, "Ops issue", reporter=users["ann"])
    site = CommentSite(b, SimCloud(b.site), users, developers, open_issue, secret_issue, ops_issue)

    kinds: list[tuple[list[int], Visibility | None]] = [
        (site.public, None),
        (site.developers_only, Visibility("group", developers)),
        (site.role_only, Visibility("role", "Developers")),
    ]
    for i, minutes in enumerate(MINUTES):
        bucket, visibility = kinds[i % 3]
        created = BASE + timedelta(minutes=minutes)
        comment_id = b.comment(open_issue, users["ann"], f"comment {i} <b>", visibility=visibility, created=created)
        site.created[comment_id] = created
        bucket.append(comment_id)
    site.secret_public = b.comment(secret_issue, users["ann"], "secret, unrestricted")
    site.secret_developers = b.comment(
        secret_issue, users["ann"], "secret, developers", visibility=Visibility("group", developers)
    )
    site.ops_public = b.comment(ops_issue, users["ann"], "ops")
    return site


@pytest.fixture
def tiny() -> CommentSite:
    return build_site()


def expected_open_issue_comments(site: CommentSite, name: str) -> list[int]:
    """Jira's rule, read off the site description: public comments, plus developer-group comments for members of
    developers, plus role comments for actors of the Developers role (directly or through a group)."""
    seen = list(site.public)
    if name in {"ann", "bob"}:
        seen += site.developers_only
    if name in {"ann", "carl"}:
        seen += site.role_only
    return site.in_created_order(seen)


def walk_comments(client: httpx.Client, issue: str, page_size: int, **params: str) -> list[dict[str, Any]]:
    """Every page of an issue's comments; each page's ``maxResults`` is the size asked for."""
    return walk_issue_items(client, "comment", issue, page_size, check_max_results=True, **params)


@pytest.mark.parametrize("name", ["ann", "bob", "carl", "dora", "eve"])
def test_pages_hold_exactly_the_comments_the_caller_may_see(tiny: CommentSite, name: str) -> None:
    expected = expected_open_issue_comments(tiny, name)
    with tiny.client(name) as client:
        pages = walk_comments(client, "ENG-1", page_size=2)

    assert len(pages) == math.ceil(len(expected) / 2)
    assert {page["total"] for page in pages} == {len(expected)}
    assert [int(c["id"]) for page in pages for c in page["comments"]] == expected


def test_two_users_see_different_comments_on_the_same_issue(tiny: CommentSite) -> None:
    with tiny.client("bob") as bob, tiny.client("carl") as carl:
        bob_ids = {int(c["id"]) for c in bob.get("/rest/api/3/issue/ENG-1/comment").json()["comments"]}
        carl_ids = {int(c["id"]) for c in carl.get("/rest/api/3/issue/ENG-1/comment").json()["comments"]}

    assert bob_ids - carl_ids == set(tiny.developers_only)
    assert carl_ids - bob_ids == set(tiny.role_only)


def test_an_administrator_outside_the_role_and_group_sees_no_restricted_comment(tiny: CommentSite) -> None:
    role_comment = tiny.role_only[0]
    with tiny.client("dora") as dora:
        listed = dora.get("/rest/api/3/issue/ENG-1/comment").json()
        single = dora.get(f"/rest/api/3/issue/ENG-1/comment/{role_comment}")

    assert [int(c["id"]) for c in listed["comments"]] == tiny.in_created_order(tiny.public)
    assert listed["total"] == len(tiny.public)
    assert single.status_code == 404


def test_order_by_created_descending_reverses_the_page(tiny: CommentSite) -> None:
    expected = expected_open_issue_comments(tiny, "ann")
    with tiny.client("ann") as ann:
        descending = walk_comments(ann, "ENG-1", page_size=4, orderBy="-created")
        ascending = walk_comments(ann, "ENG-1", page_size=4, orderBy="+created")
        plain = walk_comments(ann, "ENG-1", page_size=4, orderBy="created")

    assert [int(c["id"]) for page in descending for c in page["comments"]] == expected[::-1]
    assert [int(c["id"]) for page in ascending for c in page["comments"]] == expected
    assert [int(c["id"]) for page in plain for c in page["comments"]] == expected


@pytest.mark.parametrize("order_by", ["updated", "id", "-updated", "CREATED"])
def test_order_by_anything_but_created_is_a_400(tiny: CommentSite, order_by: str) -> None:
    with tiny.client("ann") as ann:
        response = ann.get("/rest/api/3/issue/ENG-1/comment", params={"orderBy": order_by})

    assert response.status_code == 400
    assert_response_matches_spec("GET", COMMENTS, response)


def test_max_results_is_lowered_to_the_server_cap(tiny: CommentSite) -> None:
    with tiny.client("ann") as ann:
        capped = ann.get("/rest/api/3/issue/ENG-1/comment", params={"maxResults": 5000}).json()
        default = ann.get("/rest/api/3/issue/ENG-1/comment").json()

    assert capped["maxResults"] == MAX_COMMENTS_PER_PAGE == 100
    assert default["maxResults"] == 100
    assert len(capped["comments"]) == len(expected_open_issue_comments(tiny, "ann"))


def test_a_renamed_group_shows_its_new_name_with_the_same_identifier(tiny: CommentSite) -> None:
    tiny.builder.site.groups[tiny.developers].name = "engineering"
    comment_id = tiny.developers_only[0]
    with tiny.client("bob") as bob:
        comment = bob.get(f"/rest/api/3/issue/ENG-1/comment/{comment_id}").json()

    assert comment["visibility"] == {"type": "group", "value": "engineering", "identifier": tiny.developers}


def test_a_role_restriction_is_rendered_with_the_role_name(tiny: CommentSite) -> None:
    with tiny.client("carl") as carl:
        response = carl.get(f"/rest/api/3/issue/ENG-1/comment/{tiny.role_only[0]}")

    comment = assert_response_matches_spec("GET", COMMENT, response)
    assert comment["visibility"] == {"type": "role", "value": "Developers", "identifier": "Developers"}


def test_a_hidden_comment_is_a_404_indistinguishable_from_a_missing_one(tiny: CommentSite) -> None:
    hidden = tiny.role_only[0]
    missing = max(tiny.created) + 1000
    with tiny.client("bob") as bob:
        hidden_response = bob.get(f"/rest/api/3/issue/ENG-1/comment/{hidden}")
        missing_response = bob.get(f"/rest/api/3/issue/ENG-1/comment/{missing}")
        other_issue = bob.get(f"/rest/api/3/issue/ENG-1/comment/{tiny.ops_public}")

    assert hidden_response.status_code == missing_response.status_code == other_issue.status_code == 404
    messages = [
        r.json()["errorMessages"][0].replace(str(i), "<id>")
        for r, i in ((hidden_response, hidden), (missing_response, missing), (other_issue, tiny.ops_public))
    ]
    assert len(set(messages)) == 1
    assert_response_matches_spec("GET", COMMENT, hidden_response)


def test_a_hidden_or_missing_issue_is_a_404_with_jiras_message(tiny: CommentSite) -> None:
    with tiny.client("bob") as bob:
        secret = bob.get("/rest/api/3/issue/ENG-2/comment")
        secret_by_id = bob.get(f"/rest/api/3/issue/{tiny.secret_issue}/comment/{tiny.secret_public}")
        missing = bob.get("/rest/api/3/issue/ENG-99/comment")

    for response in (secret, secret_by_id, missing):
        assert response.status_code == 404
        assert response.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]


def test_issue_security_and_visibility_both_apply(tiny: CommentSite) -> None:
    with tiny.client("eve") as eve, tiny.client("ann") as ann:
        eve_ids = [int(c["id"]) for c in eve.get("/rest/api/3/issue/ENG-2/comment").json()["comments"]]
        ann_ids = [int(c["id"]) for c in ann.get(f"/rest/api/3/issue/{tiny.secret_issue}/comment").json()["comments"]]

    assert eve_ids == [tiny.secret_public]  # in the level, but not a developer
    assert ann_ids == [tiny.secret_public, tiny.secret_developers]


def test_an_anonymous_caller_cannot_browse_the_project(tiny: CommentSite) -> None:
    with tiny.anonymous() as anonymous:
        response = anonymous.get("/rest/api/3/issue/ENG-1/comment")

    assert response.status_code == 404


def test_expand_rendered_body_adds_html(tiny: CommentSite) -> None:
    comment_id = tiny.public[0]
    index = sorted(tiny.created).index(comment_id)  # ids follow the order the comments were written in
    with tiny.client("ann") as ann:
        plain = ann.get(f"/rest/api/3/issue/ENG-1/comment/{comment_id}").json()
        rendered = ann.get(f"/rest/api/3/issue/ENG-1/comment/{comment_id}", params={"expand": "renderedBody"}).json()
        page = ann.get("/rest/api/3/issue/ENG-1/comment", params={"expand": "renderedBody"}).json()

    assert "renderedBody" not in plain
    assert rendered["renderedBody"] == f"<p>comment {index} &lt;b&gt;</p>"
    assert all(c["renderedBody"].startswith("<p>comment ") for c in page["comments"])


def test_comment_list_omits_hidden_and_missing_ids(tiny: CommentSite) -> None:
    requested = [*tiny.public, *tiny.developers_only, *tiny.role_only, tiny.ops_public, tiny.secret_public, 999999]
    with tiny.client("carl") as carl:
        response = carl.post(COMMENT_LIST, json={"ids": requested})

    page = assert_response_matches_spec("POST", COMMENT_LIST, response)
    expected = sorted([*tiny.public, *tiny.role_only])  # carl: no developers group, no OPS, not in the Secret level
    assert [int(c["id"]) for c in page["values"]] == expected
    assert page["total"] == len(expected)
    assert page["isLast"] is True
    assert page["startAt"] == 0


def test_comment_list_as_two_users(tiny: CommentSite) -> None:
    ids = [tiny.ops_public, tiny.secret_developers, tiny.developers_only[0]]
    with tiny.client("bob") as bob, tiny.client("eve") as eve:
        bob_values = bob.post(COMMENT_LIST, json={"ids": ids}, params={"expand": "renderedBody,properties"}).json()
        eve_values = eve.post(COMMENT_LIST, json={"ids": ids}).json()

    assert [int(c["id"]) for c in bob_values["values"]] == sorted([tiny.ops_public, tiny.developers_only[0]])
    assert all("renderedBody" in c and c["properties"] == [] for c in bob_values["values"])
    assert eve_values["values"] == []
    assert eve_values["total"] == 0


@pytest.mark.parametrize(
    "body",
    [{"ids": list(range(1, 1002))}, {}, {"ids": []}, {"ids": ["ten"]}, {"ids": [True]}, {"identifiers": [1]}],
    ids=["1001 ids", "no ids", "empty ids", "words", "booleans", "wrong key"],
)
def test_comment_list_rejects_bad_requests(tiny: CommentSite, body: dict[str, Any]) -> None:
    with tiny.client("ann") as ann:
        response = ann.post(COMMENT_LIST, json=body)

    assert response.status_code == 400
    assert_response_matches_spec("POST", COMMENT_LIST, response)


def test_comment_list_accepts_exactly_1000_ids(tiny: CommentSite) -> None:
    ids = [*tiny.public, *range(1, 1001 - len(tiny.public))]
    with tiny.client("ann") as ann:
        response = ann.post(COMMENT_LIST, json={"ids": ids})

    assert response.status_code == 200
    assert [int(c["id"]) for c in response.json()["values"]] == sorted(tiny.public)


def test_the_gateway_serves_the_same_comments_with_a_read_jira_work_token(tiny: CommentSite) -> None:
    with tiny.gateway("bob", ["read:jira-work"]) as gateway:
        pages = walk_comments(gateway, "ENG-1", page_size=5)
        listed = gateway.post(COMMENT_LIST, json={"ids": tiny.role_only})

    assert [int(c["id"]) for page in pages for c in page["comments"]] == expected_open_issue_comments(tiny, "bob")
    assert pages[0]["comments"][0]["self"].startswith(f"{SITE_URL}/rest/api/3/issue/{tiny.open_issue}/comment/")
    assert listed.json()["values"] == []


def test_comment_list_reads_a_string_of_digits_as_an_id(tiny: CommentSite) -> None:
    with tiny.client("ann") as ann:
        response = ann.post(COMMENT_LIST, json={"ids": [str(tiny.public[0]), tiny.public[0]]})

    assert [int(c["id"]) for c in response.json()["values"]] == [tiny.public[0]]
