"""The simulated issue endpoints: ``search/jql`` (GET and POST), ``search/approximate-count``, the removed ``search``,
``GET /issue/{issueIdOrKey}`` and ``issue/bulkfetch``.

The site is built by hand, and every expected set of issues is read off its description (who belongs to which group,
which issue sits at which security level), then cross-checked against the permission engine where that is the
clearer statement of Jira's rule. Nothing expected is copied from an answer of the code under test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts, gateway_client
from spec import assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.api.search import MAX_SNAPSHOTS
from jira_lab.sim.builder import EPOCH
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import ChangeItem, Issue, Site

SITE_URL = "https://tiny.atlassian.net"
SEARCH = "/rest/api/3/search/jql"
COUNT = "/rest/api/3/search/approximate-count"
ISSUE = "/rest/api/3/issue/{issueIdOrKey}"
BULK = "/rest/api/3/issue/bulkfetch"
UNBOUNDED = "Unbounded JQL queries are not allowed here. Add a search restriction to the query."
#: a query each user may run (a project the caller cannot browse "does not exist" for its JQL)
SMALL_JQL = {"ann": "project in (ENG, HR)", "bob": "project in (ENG, OPS)", "carl": "project = OPS"}
ENG_ISSUES = 30
OPS_ISSUES = 12
HR_ISSUES = 5
BIG_ISSUES = 1050
#: the ENG issues (by index) placed at the Secret security level
SECRET_INDEXES = set(range(0, ENG_ISSUES, 4))
BUSY_COMMENTS = 25
BUSY_WORKLOGS = 23
BUSY_HISTORIES = 30


@dataclass
class IssueSite(HandBuiltSite):
    clock: list[float]
    groups: dict[str, str]
    eng: list[int] = field(default_factory=list)
    ops: list[int] = field(default_factory=list)
    hr: list[int] = field(default_factory=list)
    big: list[int] = field(default_factory=list)
    busy: int = 0
    picker_user: str = ""
    picker_group: str = ""

    @property
    def secret(self) -> set[int]:
        return {self.eng[i] for i in SECRET_INDEXES}

    def issue(self, issue_id: int) -> Issue:
        return self.builder.site.issues[issue_id]


def build_site() -> IssueSite:
    """ENG is browsed by developers (ann, bob); its Secret level holds the secret group (ann) and each issue's
    reporter (bob reports one secret issue). OPS is browsed by ops (bob, carl). HR is browsed by ann alone (a user
    grant). PUB is browsed by anyone and holds 1050 issues. dora has product access and browses nothing; eve is
    inactive."""
    b = SiteBuilder("tiny")
    names = ["ann", "bob", "carl", "dora", "eve"]
    users = add_accounts(b, names)
    b.site.users[users["eve"]].active = False
    groups = {
        "everyone": b.group("jira-users", members=users.values()),
        "developers": b.group("developers", members=[users["ann"], users["bob"]]),
        "ops": b.group("ops", members=[users["bob"], users["carl"]]),
        "secret": b.group("secret", members=[users["ann"]]),
    }
    b.application_role("jira-software", "Jira Software", [groups["everyone"]])
    eng_scheme = b.permission_scheme("ENG", grants=[("BROWSE_PROJECTS", Holder("group", groups["developers"]))])
    ops_scheme = b.permission_scheme("OPS", grants=[("BROWSE_PROJECTS", Holder("group", groups["ops"]))])
    hr_scheme = b.permission_scheme("HR", grants=[("BROWSE_PROJECTS", Holder("user", users["ann"]))])
    public_scheme = b.permission_scheme("Public", grants=[("BROWSE_PROJECTS", Holder("anyone"))])
    security = b.security_scheme("Confidentiality")
    secret = b.security_level(security, "Secret", [Holder("group", groups["secret"]), Holder("reporter")])
    eng = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=eng_scheme, security_scheme=security)
    ops = b.project("OPS", "Operations", lead=users["bob"], permission_scheme=ops_scheme)
    hr = b.project("HR", "People", lead=users["ann"], permission_scheme=hr_scheme)
    pub = b.project("PUB", "Public", lead=users["ann"], permission_scheme=public_scheme)
    picker_user = b.custom_field("Approver", "user")
    picker_group = b.custom_field("Team", "group", multi=True)

    clock = [(EPOCH + timedelta(days=3650)).timestamp()]
    site = IssueSite(b, SimCloud(b.site, clock=lambda: clock[0]), users, clock, groups)
    site.picker_user, site.picker_group = picker_user, picker_group
    for i in range(ENG_ISSUES):
        level = secret if i in SECRET_INDEXES else None
        reporter = users["bob"] if i == 4 else users["ann"]  # bob sees this secret issue as its reporter
        site.eng.append(b.issue(eng, f"ENG issue {i}", reporter=reporter, security_level=level))
    site.ops += [b.issue(ops, f"OPS issue {i}", reporter=users["bob"]) for i in range(OPS_ISSUES)]
    site.hr += [b.issue(hr, f"HR issue {i}", reporter=users["ann"]) for i in range(HR_ISSUES)]
    start = EPOCH + timedelta(days=100)
    site.big += [
        b.issue(pub, f"Public {i}", reporter=users["ann"], created=start + timedelta(minutes=i))
        for i in range(BIG_ISSUES)
    ]
    busy = site.eng[1]
    site.busy = busy
    for i in range(BUSY_COMMENTS):
        visibility = Visibility("group", groups["secret"]) if i % 3 == 0 else None
        b.comment(busy, users["ann"], f"comment {i}", visibility=visibility)
    for i in range(BUSY_WORKLOGS):
        visibility = Visibility("group", groups["secret"]) if i % 2 == 0 else None
        b.worklog(busy, users["ann"], 600, visibility=visibility)
    for i in range(BUSY_HISTORIES):
        b.change(busy, users["ann"], [ChangeItem("summary", "jira", "summary", None, f"s{i}", None, f"s{i + 1}")])
    issue = b.site.issues[site.eng[2]]
    issue.custom_fields = {picker_user: users["bob"], picker_group: [groups["ops"], groups["developers"]]}
    issue.labels = ["backend", "urgent"]
    return site


@pytest.fixture(scope="module")
def shared() -> IssueSite:
    """A site no test of this module changes."""
    return build_site()


@pytest.fixture
def fresh() -> IssueSite:
    """A site the test may change."""
    return build_site()


def ids_of(page: dict[str, Any]) -> list[int]:
    return [int(issue["id"]) for issue in page["issues"]]


def walk(client: httpx.Client, jql: str, *, method: str = "GET", **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a search, following nextPageToken until isLast; checks each page against the spec."""
    token: str | None = None
    for _ in range(2000):
        if method == "GET":
            query = {"jql": jql, **params, **({"nextPageToken": token} if token else {})}
            response = client.get(SEARCH, params=query)
        else:
            body = {"jql": jql, **params, **({"nextPageToken": token} if token else {})}
            response = client.post(SEARCH, json=body)
        assert response.status_code == 200, response.text
        page = assert_response_matches_spec(method, SEARCH, response)
        yield page
        assert "total" not in page
        if page["isLast"]:
            assert "nextPageToken" not in page
            return
        token = page["nextPageToken"]
    raise AssertionError("the search never reached its last page")


def walked_ids(client: httpx.Client, jql: str, **kwargs: Any) -> list[int]:
    return [issue_id for page in walk(client, jql, **kwargs) for issue_id in ids_of(page)]


def key_desc(site: IssueSite, ids: set[int]) -> list[int]:
    """Jira's default order read off the keys: project key descending, then issue number descending."""

    def key(issue_id: int) -> tuple[str, int]:
        project, number = site.issue(issue_id).key.rsplit("-", 1)
        return project, int(number)

    return sorted(ids, key=key, reverse=True)


def visible_to(site: IssueSite, name: str, ids: list[int]) -> set[int]:
    engine = site.cloud.engines[site.builder.site.cloud_id]
    return {i for i in ids if engine.can_browse_issue(site.users[name], site.issue(i))}


# -- search/jql: walking ------------------------------------------------------------------------------------------
def expected_small(site: IssueSite, name: str) -> set[int]:
    """ENG/OPS/HR issues each user may see, from the site's description."""
    eng_open = set(site.eng) - site.secret
    return {
        "ann": set(site.eng) | set(site.hr),
        "bob": eng_open | {site.eng[4]} | set(site.ops),
        "carl": set(site.ops),
        "dora": set(),
    }[name]


@pytest.mark.parametrize("name", ["ann", "bob", "carl", "dora"])
def test_walking_a_search_to_its_end_yields_each_visible_issue_once_newest_key_first(
    shared: IssueSite, name: str
) -> None:
    expected = expected_small(shared, name)
    assert expected == visible_to(shared, name, shared.eng + shared.ops + shared.hr)  # the engine agrees
    everything = walked_ids(shared.client(name), "created >= -36500d", maxResults=70)
    assert everything == key_desc(shared, expected | set(shared.big))
    if name in SMALL_JQL:
        assert walked_ids(shared.client(name), SMALL_JQL[name], maxResults=7) == key_desc(shared, expected)


def test_get_and_post_walk_the_same_pages(shared: IssueSite) -> None:
    client = shared.client("bob")
    by_get = [ids_of(page) for page in walk(client, SMALL_JQL["bob"], maxResults=5)]
    by_post = [ids_of(page) for page in walk(client, SMALL_JQL["bob"], method="POST", maxResults=5)]
    assert by_get == by_post
    assert all(len(page) == 5 for page in by_get[:-1]) and 1 <= len(by_get[-1]) <= 5


def test_two_users_get_different_answers_to_the_same_call(shared: IssueSite) -> None:
    params: dict[str, str | int] = {"jql": "project = ENG", "maxResults": 100}
    ann = set(ids_of(shared.client("ann").get(SEARCH, params=params).json()))
    bob = set(ids_of(shared.client("bob").get(SEARCH, params=params).json()))
    bobs_secret = {shared.eng[4]}  # he reported it, and the level admits reporters
    assert ann == set(shared.eng)
    assert bob == set(shared.eng) - shared.secret | bobs_secret
    assert ann - bob == shared.secret - bobs_secret


def test_anonymous_callers_see_only_what_anyone_may_browse(shared: IssueSite) -> None:
    found = walked_ids(shared.anonymous(), "created >= -36500d", maxResults=5000)
    assert set(found) == set(shared.big)


def test_an_inactive_account_cannot_search(shared: IssueSite) -> None:
    response = shared.client("eve").get(SEARCH, params={"jql": "project = PUB"})
    assert response.status_code == 401


def test_order_by_created_ascending_walks_in_creation_order(shared: IssueSite) -> None:
    found = walked_ids(shared.client("carl"), "project = PUB ORDER BY created ASC", maxResults=1000, fields="key")
    assert found == shared.big  # created one minute apart, in id order


def test_ids_only_pages_hold_just_the_id_or_also_the_key(shared: IssueSite) -> None:
    page = shared.client("ann").get(SEARCH, params={"jql": "project = HR"}).json()
    assert page["issues"] == [{"id": str(i)} for i in key_desc(shared, set(shared.hr))]
    with_keys = shared.client("ann").get(SEARCH, params={"jql": "project = HR", "fields": "key"}).json()
    assert [(int(i["id"]), i["key"]) for i in with_keys["issues"]] == [
        (i, shared.issue(i).key) for i in key_desc(shared, set(shared.hr))
    ]


# -- search/jql: page sizes --------------------------------------------------------------------------------------
def first_page(site: IssueSite, **params: Any) -> dict[str, Any]:
    response = site.client("ann").get(SEARCH, params={"jql": "project = PUB", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_ids_only_searches_return_up_to_5000_issues_a_page(shared: IssueSite) -> None:
    page = first_page(shared, maxResults=5000)
    assert len(page["issues"]) == BIG_ISSUES and page["isLast"]
    assert len(first_page(shared)["issues"]) == 50  # the default


@pytest.mark.parametrize(
    ("params", "cap"),
    [
        ({"fields": "summary,status,updated"}, 1000),
        ({"fields": "summary,comment"}, 100),
        ({"fields": "worklog"}, 100),
        ({"fields": "*all"}, 100),
        ({"fields": "summary", "expand": "changelog"}, 100),
        ({"expand": "changelog"}, 100),
    ],
)
def test_pages_with_fields_are_smaller_and_heavier_fields_smaller_still(
    shared: IssueSite, params: dict[str, str], cap: int
) -> None:
    page = first_page(shared, maxResults=5000, **params)
    assert len(page["issues"]) == cap
    assert not page["isLast"] and page["nextPageToken"]


@pytest.mark.parametrize("value", ["0", "-1", "5001"])
def test_max_results_outside_1_to_5000_is_refused(shared: IssueSite, value: str) -> None:
    response = shared.client("ann").get(SEARCH, params={"jql": "project = PUB", "maxResults": value})
    assert response.status_code == 400
    assert response.json() == {"errorMessages": ["The maxResults parameter must be between 1 and 5,000."], "errors": {}}
    posted = shared.client("ann").post(SEARCH, json={"jql": "project = PUB", "maxResults": int(value)})
    assert posted.status_code == 400


# -- search/jql: refusals ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("jql", ["", "order by key desc", "ORDER BY created"])
def test_unbounded_jql_is_refused_on_every_search_endpoint(shared: IssueSite, jql: str) -> None:
    client = shared.client("ann")
    for response in (
        client.get(SEARCH, params={"jql": jql}),
        client.post(SEARCH, json={"jql": jql}),
        client.post(COUNT, json={"jql": jql}),
    ):
        assert response.status_code == 400
        assert response.json() == {"errorMessages": [UNBOUNDED], "errors": {}}
    assert client.get(SEARCH).json()["errorMessages"] == [UNBOUNDED]
    assert client.post(SEARCH, json={"jql": None}).json()["errorMessages"] == [UNBOUNDED]


def test_a_query_the_simulator_does_not_evaluate_is_a_400_naming_the_clause(shared: IssueSite) -> None:
    response = shared.client("ann").get(SEARCH, params={"jql": "project = ENG AND assignee = currentUser()"})
    assert response.status_code == 400
    body = assert_response_matches_spec("GET", SEARCH, response)
    (message,) = body["errorMessages"]
    assert message.startswith("Error in the JQL Query: The field 'assignee' is not supported")


def test_a_project_the_caller_cannot_browse_does_not_exist_for_its_jql(shared: IssueSite) -> None:
    assert shared.client("ann").get(SEARCH, params={"jql": "project = HR"}).status_code == 200
    hidden = shared.client("bob").get(SEARCH, params={"jql": "project = HR"})
    missing = shared.client("bob").get(SEARCH, params={"jql": "project = NOPE"})
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["errorMessages"] == ["The value 'HR' does not exist for the field 'project'."]
    assert missing.json()["errorMessages"] == ["The value 'NOPE' does not exist for the field 'project'."]


def test_a_hidden_issue_key_is_refused_like_a_missing_one(shared: IssueSite) -> None:
    secret_key = shared.issue(shared.eng[0]).key
    assert ids_of(shared.client("ann").get(SEARCH, params={"jql": f"key = {secret_key}"}).json()) == [shared.eng[0]]
    hidden = shared.client("bob").get(SEARCH, params={"jql": f"key = {secret_key}"}).json()
    missing = shared.client("bob").get(SEARCH, params={"jql": "key = ENG-999"}).json()
    assert hidden["errorMessages"] == [f"An issue with key '{secret_key}' does not exist for field 'key'."]
    assert missing["errorMessages"] == ["An issue with key 'ENG-999' does not exist for field 'key'."]


@pytest.mark.parametrize(
    "body",
    [{"jql": "project = PUB", "startAt": 0}, {"jql": ["project = PUB"]}, {"jql": "project = PUB", "maxResults": "x"}],
)
def test_a_post_body_the_search_bean_cannot_hold_is_refused(shared: IssueSite, body: dict[str, Any]) -> None:
    response = shared.client("ann").post(SEARCH, json=body)
    assert response.status_code == 400
    assert response.json()["errorMessages"] == [
        "Invalid request payload. Refer to the REST API documentation and try again."
    ]


def test_the_post_search_reads_only_its_body(shared: IssueSite) -> None:
    response = shared.client("ann").post(f"{SEARCH}?maxResults=1", json={"jql": "project = PUB"})
    assert len(response.json()["issues"]) == 50


# -- search/jql: tokens ------------------------------------------------------------------------------------------
def second_page_token(site: IssueSite, name: str = "ann", jql: str = "project = PUB") -> str:
    page = site.client(name).get(SEARCH, params={"jql": jql, "maxResults": 10}).json()
    token: str = page["nextPageToken"]
    return token


def refused_token(site: IssueSite, token: str, *, name: str = "ann", jql: str = "project = PUB") -> None:
    response = site.client(name).get(SEARCH, params={"jql": jql, "maxResults": 10, "nextPageToken": token})
    assert response.status_code == 400, response.text
    assert response.json() == {"errorMessages": ["The provided nextPageToken is invalid or has expired."], "errors": {}}


def test_garbage_and_edited_tokens_are_refused(shared: IssueSite) -> None:
    token = second_page_token(shared)
    refused_token(shared, "not-a-token")
    data, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    payload["p"] = 0
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    refused_token(shared, f"{edited}.{signature}")


def test_a_token_is_bound_to_its_query_and_its_caller(shared: IssueSite) -> None:
    token = second_page_token(shared)
    refused_token(shared, token, jql="project = PUB ORDER BY created")
    refused_token(shared, token, name="bob")


def test_a_bad_token_is_reported_before_a_bad_page_size(shared: IssueSite) -> None:
    response = shared.client("ann").get(SEARCH, params={"jql": "project = PUB", "maxResults": 0, "nextPageToken": "x"})
    assert response.json()["errorMessages"] == ["The provided nextPageToken is invalid or has expired."]


def test_tokens_expire_after_seven_days(fresh: IssueSite) -> None:
    token = second_page_token(fresh)
    fresh.clock[0] += 6 * 24 * 3600
    ok = fresh.client("ann").get(SEARCH, params={"jql": "project = PUB", "maxResults": 10, "nextPageToken": token})
    assert ok.status_code == 200
    fresh.clock[0] += 2 * 24 * 3600
    refused_token(fresh, token)


def test_relative_dates_keep_the_first_pages_moment_across_pages(fresh: IssueSite) -> None:
    """updated >= -1h on a clock an hour after the 10th-newest public issue: exactly 10 issues, and still 10 when
    the clock moves on while the caller pages."""
    newest = sorted(fresh.big, key=lambda i: fresh.issue(i).updated, reverse=True)[:10]
    fresh.clock[0] = (fresh.issue(newest[-1]).updated + timedelta(hours=1)).timestamp()
    client = fresh.client("ann")
    first = client.get(SEARCH, params={"jql": "updated >= -1h", "maxResults": 4}).json()
    fresh.clock[0] += 3600 * 24
    rest: list[int] = []
    token = first["nextPageToken"]
    while token:
        page = client.get(SEARCH, params={"jql": "updated >= -1h", "maxResults": 4, "nextPageToken": token}).json()
        rest += ids_of(page)
        token = page.get("nextPageToken")
    assert set(ids_of(first) + rest) == set(newest)
    assert client.get(SEARCH, params={"jql": "updated >= -1h"}).json()["issues"] == []  # a new search: a new now


def test_a_walk_keeps_the_order_its_first_page_saw(fresh: IssueSite) -> None:
    """The first page fixes the issues and their order (a point in time); updates while paging neither repeat nor
    reorder issues, and a new search sees the new order."""
    client = fresh.client("ann")
    jql = "project = HR ORDER BY updated ASC"
    first = client.get(SEARCH, params={"jql": jql, "maxResults": 2}).json()
    returned, ahead = fresh.hr[0], fresh.hr[2]
    latest = max(fresh.issue(i).updated for i in fresh.hr)
    fresh.issue(ahead).updated = latest + timedelta(minutes=1)
    fresh.issue(returned).updated = latest + timedelta(minutes=2)
    rest = walked_ids_from(client, jql, first["nextPageToken"], maxResults=2)
    assert ids_of(first) + rest == fresh.hr
    assert walked_ids(client, jql, maxResults=2) == [fresh.hr[1], fresh.hr[3], fresh.hr[4], ahead, returned]


def test_issues_created_while_paging_are_found_by_the_next_search(fresh: IssueSite) -> None:
    client = fresh.client("ann")
    jql = "project = HR ORDER BY created ASC"
    first = client.get(SEARCH, params={"jql": jql, "maxResults": 2}).json()
    hr = next(p.id for p in fresh.builder.site.projects.values() if p.key == "HR")
    latest = max(fresh.issue(i).created for i in fresh.hr)
    added = fresh.builder.issue(hr, "late", reporter=fresh.users["ann"], created=latest + timedelta(days=1))
    rest = walked_ids_from(client, jql, first["nextPageToken"], maxResults=2)
    assert ids_of(first) + rest == fresh.hr
    assert walked_ids(client, jql, maxResults=2) == [*fresh.hr, added]


def test_a_walk_resumes_after_its_last_issue_when_its_snapshot_is_gone(fresh: IssueSite) -> None:
    client = fresh.client("ann")
    jql = "project = HR ORDER BY created ASC"
    first = client.get(SEARCH, params={"jql": jql, "maxResults": 2}).json()
    for _ in range(MAX_SNAPSHOTS):  # other searches push the walk's snapshot out
        client.get(SEARCH, params={"jql": "project = PUB", "maxResults": 1})
    hr = next(p.id for p in fresh.builder.site.projects.values() if p.key == "HR")
    latest = max(fresh.issue(i).created for i in fresh.hr)
    added = fresh.builder.issue(hr, "late", reporter=fresh.users["ann"], created=latest + timedelta(days=1))
    rest = walked_ids_from(client, jql, first["nextPageToken"], maxResults=2)
    assert ids_of(first) + rest == [*fresh.hr, added]


def test_an_issue_hidden_while_paging_is_left_out(fresh: IssueSite) -> None:
    client = fresh.client("bob")
    jql = "project = OPS ORDER BY created ASC"
    first = client.get(SEARCH, params={"jql": jql, "maxResults": 3}).json()
    security = next(iter(fresh.builder.site.security_schemes.values()))
    later = fresh.ops[5]
    fresh.issue(later).security_level_id = security.levels[0].id  # Secret: bob is no member, nor the reporter...
    fresh.issue(later).reporter_account_id = fresh.users["carl"]
    rest = walked_ids_from(client, jql, first["nextPageToken"], maxResults=3)
    assert ids_of(first) + rest == [i for i in fresh.ops if i != later]


def walked_ids_from(client: httpx.Client, jql: str, token: str, **params: Any) -> list[int]:
    found: list[int] = []
    next_token: str | None = token
    while next_token:
        response = client.get(SEARCH, params={"jql": jql, **params, "nextPageToken": next_token})
        assert response.status_code == 200, response.text
        page = response.json()
        found += ids_of(page)
        next_token = page.get("nextPageToken")
    return found


# -- search/jql: embedded fields ---------------------------------------------------------------------------------
def expected_busy_items(site: IssueSite, name: str) -> tuple[int, int]:
    """(comments, worklogs) of the busy issue a user may see: every third comment and every other worklog is
    restricted to the secret group (ann only)."""
    if name == "ann":
        return BUSY_COMMENTS, BUSY_WORKLOGS
    return BUSY_COMMENTS - len(range(0, BUSY_COMMENTS, 3)), BUSY_WORKLOGS - len(range(0, BUSY_WORKLOGS, 2))


@pytest.mark.parametrize("name", ["ann", "bob"])
def test_search_embeds_at_most_20_visible_comments_and_worklogs_with_visible_totals(
    shared: IssueSite, name: str
) -> None:
    busy_key = shared.issue(shared.busy).key
    response = shared.client(name).get(SEARCH, params={"jql": f"key = {busy_key}", "fields": "comment,worklog"})
    (issue,) = assert_response_matches_spec("GET", SEARCH, response)["issues"]
    comments, worklogs = expected_busy_items(shared, name)
    embedded = issue["fields"]["comment"]
    assert (embedded["total"], embedded["maxResults"], embedded["startAt"]) == (comments, min(comments, 20), 0)
    assert len(embedded["comments"]) == min(comments, 20)
    assert embedded["self"] == f"{SITE_URL}/rest/api/3/issue/{shared.busy}/comment"
    restricted = {c.id for c in shared.issue(shared.busy).comments if c.visibility is not None}
    shown = {int(c["id"]) for c in embedded["comments"]}
    assert (shown & restricted == set()) is (name == "bob")
    logged = issue["fields"]["worklog"]
    assert (logged["total"], logged["maxResults"], len(logged["worklogs"])) == (
        worklogs,
        min(worklogs, 20),
        min(worklogs, 20),
    )


def test_search_embeds_the_20_most_recent_histories_newest_first(shared: IssueSite) -> None:
    busy_key = shared.issue(shared.busy).key
    params = {"jql": f"key = {busy_key}", "fields": "summary", "expand": "changelog"}
    (issue,) = shared.client("bob").get(SEARCH, params=params).json()["issues"]
    histories = sorted(shared.issue(shared.busy).changelog, key=lambda h: h.created, reverse=True)
    assert issue["changelog"]["total"] == BUSY_HISTORIES
    assert [int(h["id"]) for h in issue["changelog"]["histories"]] == [h.id for h in histories[:20]]


def test_search_names_expansion_names_the_requested_fields(shared: IssueSite) -> None:
    params = {"jql": "project = HR", "fields": "summary,status", "expand": "names"}
    page = shared.client("ann").get(SEARCH, params=params).json()
    assert page["names"] == {"summary": "Summary", "status": "Status"}
    assert all(set(i["fields"]) == {"summary", "status"} for i in page["issues"])


# -- approximate count and the removed search ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ann", "bob", "carl", "dora"])
def test_the_approximate_count_counts_what_the_caller_may_see(shared: IssueSite, name: str) -> None:
    response = shared.client(name).post(COUNT, json={"jql": "created >= -36500d"})
    body = assert_response_matches_spec("POST", COUNT, response)
    assert body == {"count": len(expected_small(shared, name)) + BIG_ISSUES}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_legacy_search_is_gone(shared: IssueSite, method: str) -> None:
    response = shared.client("ann").request(method, "/rest/api/3/search", params={"jql": "project = PUB"})
    assert response.status_code == 410
    assert response.json() == {
        "errorMessages": [
            "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full "
            "migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
        ],
        "errors": {},
    }


# -- GET /issue --------------------------------------------------------------------------------------------------
def get_issue(site: IssueSite, name: str, reference: str, **params: Any) -> httpx.Response:
    return site.client(name).get(ISSUE.format(issueIdOrKey=reference), params=params)


def test_an_issue_comes_with_all_its_fields_by_default(shared: IssueSite) -> None:
    issue = shared.issue(shared.eng[2])
    response = get_issue(shared, "bob", issue.key)
    body = assert_response_matches_spec("GET", ISSUE, response)
    assert (body["id"], body["key"], body["self"]) == (
        str(issue.id),
        issue.key,
        f"{SITE_URL}/rest/api/3/issue/{issue.id}",
    )
    fields = body["fields"]
    assert fields["summary"] == issue.summary
    assert fields["status"]["name"] == "To Do" and fields["status"]["statusCategory"]["key"] == "new"
    assert fields["issuetype"]["name"] == "Task"
    assert (fields["project"]["key"], fields["project"]["id"]) == ("ENG", str(issue.project_id))
    assert fields["reporter"]["accountId"] == shared.users["ann"] and fields["assignee"] is None
    assert fields["labels"] == ["backend", "urgent"]
    assert fields["security"] is None  # ENG has a security scheme; this issue has no level
    assert fields[shared.picker_user]["accountId"] == shared.users["bob"]
    assert fields[shared.picker_group] == [
        {"name": "ops", "groupId": shared.groups["ops"]},
        {"name": "developers", "groupId": shared.groups["developers"]},
    ]
    assert {"comment", "worklog", "description", "created", "updated"} <= set(fields)


def test_the_security_field_shows_the_level_and_is_absent_without_a_scheme(shared: IssueSite) -> None:
    secret = get_issue(shared, "ann", str(shared.eng[0]), fields="security").json()["fields"]["security"]
    level = shared.issue(shared.eng[0]).security_level_id
    assert secret == {
        "self": f"{SITE_URL}/rest/api/3/securitylevel/{level}",
        "id": str(level),
        "name": "Secret",
        "description": "",
    }
    assert get_issue(shared, "bob", str(shared.ops[0]), fields="security").json()["fields"] == {}


def test_a_hidden_issue_and_a_missing_one_get_the_same_404(shared: IssueSite) -> None:
    secret_key = shared.issue(shared.eng[0]).key
    assert get_issue(shared, "ann", secret_key).status_code == 200
    hidden = get_issue(shared, "bob", secret_key)
    missing = get_issue(shared, "bob", "ENG-999")
    hidden_by_id = get_issue(shared, "dora", str(shared.eng[1]))
    for response in (hidden, missing, hidden_by_id):
        assert response.status_code == 404
        assert response.json() == {
            "errorMessages": ["Issue does not exist or you do not have permission to see it."],
            "errors": {},
        }


def test_issue_keys_match_in_any_case_and_the_answer_carries_the_real_key(shared: IssueSite) -> None:
    issue = shared.issue(shared.ops[3])
    body = get_issue(shared, "carl", issue.key.lower(), fields="summary").json()
    assert (body["key"], body["fields"]) == (issue.key, {"summary": issue.summary})


def test_fields_can_be_excluded_from_all(shared: IssueSite) -> None:
    fields = get_issue(shared, "ann", str(shared.eng[3]), fields="-description,-comment").json()["fields"]
    assert "description" not in fields and "comment" not in fields and "summary" in fields


def test_get_issue_embeds_every_visible_comment_and_20_worklogs(shared: IssueSite) -> None:
    comments, worklogs = expected_busy_items(shared, "bob")
    fields = get_issue(shared, "bob", str(shared.busy), fields="comment,worklog").json()["fields"]
    assert len(fields["comment"]["comments"]) == fields["comment"]["total"] == comments
    assert (len(fields["worklog"]["worklogs"]), fields["worklog"]["total"]) == (min(worklogs, 20), worklogs)
    ann = get_issue(shared, "ann", str(shared.busy), fields="comment,worklog").json()["fields"]
    assert len(ann["comment"]["comments"]) == BUSY_COMMENTS
    assert (len(ann["worklog"]["worklogs"]), ann["worklog"]["total"]) == (20, BUSY_WORKLOGS)
    first = sorted(shared.issue(shared.busy).worklogs, key=lambda w: (w.created, w.id))[:20]
    assert [int(w["id"]) for w in ann["worklog"]["worklogs"]] == [w.id for w in first]


def test_get_issue_expands_the_changelog_and_the_names(shared: IssueSite) -> None:
    body = get_issue(shared, "ann", str(shared.busy), fields="summary", expand="changelog,names").json()
    assert body["changelog"]["total"] == len(body["changelog"]["histories"]) == BUSY_HISTORIES
    assert body["names"] == {"summary": "Summary"}
    assert "changelog" not in body["expand"].split(",")


# -- issue/bulkfetch ---------------------------------------------------------------------------------------------
def test_bulkfetch_returns_visible_issues_in_ascending_id_order(shared: IssueSite) -> None:
    wanted = [
        shared.issue(shared.ops[2]).key,
        str(shared.eng[9]),
        shared.issue(shared.eng[1]).key.lower(),
        str(shared.eng[0]),
        "ENG-999",
        "99999",
        str(shared.ops[2]),
    ]
    response = shared.client("bob").post(BULK, json={"issueIdsOrKeys": wanted, "fields": ["summary"]})
    body = assert_response_matches_spec("POST", BULK, response)
    # eng[0] is secret (bob is no member), ENG-999 and 99999 do not exist, ops[2] is asked for twice
    assert ids_of(body) == sorted([shared.ops[2], shared.eng[9], shared.eng[1]])
    assert body["issueErrors"] == []
    assert all(set(issue["fields"]) == {"summary"} for issue in body["issues"])


def test_bulkfetch_returns_navigable_fields_by_default(shared: IssueSite) -> None:
    body = shared.client("ann").post(BULK, json={"issueIdsOrKeys": [str(shared.busy)]}).json()
    fields = body["issues"][0]["fields"]
    assert "summary" in fields and "status" in fields
    assert "comment" not in fields and "worklog" not in fields


def test_bulkfetch_embeds_at_most_40_histories(shared: IssueSite) -> None:
    body = {"issueIdsOrKeys": [str(shared.busy)], "fields": ["summary"], "expand": ["changelog"]}
    issue = shared.client("ann").post(BULK, json=body).json()["issues"][0]
    assert len(issue["changelog"]["histories"]) == min(BUSY_HISTORIES, 40)


@pytest.mark.parametrize("count", [0, 101])
def test_bulkfetch_takes_1_to_100_ids(shared: IssueSite, count: int) -> None:
    response = shared.client("ann").post(BULK, json={"issueIdsOrKeys": [str(i) for i in shared.big[:count]]})
    assert response.status_code == 400
    assert_response_matches_spec("POST", BULK, response)
    assert shared.client("ann").post(BULK, json={}).status_code == 400
    exactly = shared.client("ann").post(BULK, json={"issueIdsOrKeys": [str(i) for i in shared.big[:100]]})
    assert len(exactly.json()["issues"]) == 100


def test_dates_are_rendered_in_jiras_format(shared: IssueSite) -> None:
    issue = shared.issue(shared.hr[0])
    fields = get_issue(shared, "ann", issue.key, fields="created,updated").json()["fields"]
    created = datetime.strptime(fields["created"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert created == issue.created.astimezone(UTC)
    assert fields["created"].endswith("+0000")


# -- a generated site --------------------------------------------------------------------------------------------
def key_asc(site: Site, ids: set[int]) -> list[int]:
    def key(issue_id: int) -> tuple[str, int]:
        project, number = site.issues[issue_id].key.rsplit("-", 1)
        return project, int(number)

    return sorted(ids, key=key)


def test_on_a_generated_site_every_user_walks_exactly_what_the_engine_lets_them_browse() -> None:
    site = generate_site("tiny", 0)
    cloud = SimCloud(site)
    engine = cloud.engines[site.cloud_id]
    seen_sets = set()
    for account_id, user in site.users.items():
        if not user.active:
            continue
        client = gateway_client(cloud, site, account_id, {"read:jira-work"})
        visible = {i.id for i in site.issues.values() if engine.can_browse_issue(account_id, i)}
        found = walked_ids(client, "created >= -36500d ORDER BY key ASC", maxResults=7)
        assert found == key_asc(site, visible), user.display_name
        count = client.post(COUNT, json={"jql": "created >= -36500d"}).json()["count"]
        assert count == len(visible)
        seen_sets.add(frozenset(visible))
    assert len(seen_sets) > 1  # the generated site gives its users different views
