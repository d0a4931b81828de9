"""Fields and statuses on the simulated site: ``GET /field`` and ``GET /status``.

Custom fields are shown to a caller who can browse some project (the sites have no field configurations, so each
field counts as used everywhere); the system fields always. Statuses are Jira's defaults plus those the issues use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts
from spec import assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder

SITE_URL = "https://tiny.atlassian.net"
FIELDS = "/rest/api/3/field"
STATUSES = "/rest/api/3/status"


@dataclass
class FieldSite(HandBuiltSite):
    fields: dict[str, str]


def build_site() -> FieldSite:
    """bob browses ENG; nora browses nothing. Four custom fields, one of each picker flavour and a text field;
    ENG's issues are in "To Do", "In Review" and "Done"."""
    b = SiteBuilder("tiny")
    users = add_accounts(b, ("bob", "nora"))
    everyone = b.group("jira-users", members=users.values())
    b.application_role("jira-software", "Jira Software", [everyone])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("user", users["bob"]))])
    eng = b.project("ENG", "Engineering", lead=users["bob"], permission_scheme=scheme)
    fields = {
        "Reviewer": b.custom_field("Reviewer", "user"),
        "Watchers team": b.custom_field("Watchers team", "user", multi=True),
        "Approver groups": b.custom_field("Approver groups", "group", multi=True),
        "Team name": b.custom_field("Team name", "string"),
    }
    for status in ("To Do", "In Review", "Done"):
        b.issue(eng, f"An issue in {status}", reporter=users["bob"], status=status)
    return FieldSite(b, SimCloud(b.site), users, fields)


@pytest.fixture
def tiny() -> FieldSite:
    return build_site()


def get_fields(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get(FIELDS)
    assert response.status_code == 200
    body = assert_response_matches_spec("GET", FIELDS, response)
    return {field["id"]: field for field in body}


def test_system_fields_have_jiras_shape(tiny: FieldSite) -> None:
    fields = get_fields(tiny.client("bob"))
    assert fields["summary"] == {
        "id": "summary",
        "key": "summary",
        "name": "Summary",
        "custom": False,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["summary"],
        "schema": {"type": "string", "system": "summary"},
    }
    assert fields["labels"]["schema"] == {"type": "array", "items": "string", "system": "labels"}
    assert fields["security"]["clauseNames"] == ["level"]
    assert "schema" not in fields["issuekey"]


def test_custom_fields_carry_their_type_key_and_jql_names(tiny: FieldSite) -> None:
    fields = get_fields(tiny.client("bob"))
    reviewer = fields[tiny.fields["Reviewer"]]
    numeric = int(tiny.fields["Reviewer"].removeprefix("customfield_"))
    assert reviewer == {
        "id": tiny.fields["Reviewer"],
        "key": tiny.fields["Reviewer"],
        "name": "Reviewer",
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": [f"cf[{numeric}]", "Reviewer"],
        "schema": {
            "type": "user",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:userpicker",
            "customId": numeric,
        },
    }
    schemas = {name: fields[field_id]["schema"] for name, field_id in tiny.fields.items()}
    assert schemas["Watchers team"] == {
        "type": "array",
        "items": "user",
        "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multiuserpicker",
        "customId": int(tiny.fields["Watchers team"].removeprefix("customfield_")),
    }
    assert schemas["Approver groups"]["custom"].endswith(":multigrouppicker")
    assert schemas["Team name"]["type"] == "string"


def test_a_caller_who_browses_no_project_sees_only_system_fields(tiny: FieldSite) -> None:
    seen_by_nora = get_fields(tiny.client("nora"))
    seen_by_bob = get_fields(tiny.client("bob"))
    assert set(seen_by_bob) - set(seen_by_nora) == set(tiny.fields.values())
    assert not any(field["custom"] for field in seen_by_nora.values())


def test_statuses_are_the_defaults_plus_those_in_use(tiny: FieldSite) -> None:
    response = tiny.client("bob").get(STATUSES)
    assert response.status_code == 200
    statuses = assert_response_matches_spec("GET", STATUSES, response)
    categories = {status["name"]: status["statusCategory"]["key"] for status in statuses}
    assert categories == {"To Do": "new", "In Progress": "indeterminate", "Done": "done", "In Review": "indeterminate"}
    ids = [status["id"] for status in statuses]
    assert len(set(ids)) == len(ids)
    done = next(status for status in statuses if status["name"] == "Done")
    assert done["self"] == f"{SITE_URL}/rest/api/3/status/{done['id']}"


def test_statuses_are_empty_for_a_caller_who_browses_no_project(tiny: FieldSite) -> None:
    response = tiny.client("nora").get(STATUSES)
    assert response.status_code == 200
    assert response.json() == []


# -- field/search and statuscategory -----------------------------------------------------------------------------
FIELD_SEARCH = "/rest/api/3/field/search"
STATUS_CATEGORIES = "/rest/api/3/statuscategory"


def walk_field_search(client: httpx.Client, page_size: int, **params: Any) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = []
    start_at = 0
    while True:
        response = client.get(FIELD_SEARCH, params={**params, "startAt": start_at, "maxResults": page_size})
        assert response.status_code == 200, response.text
        page = assert_response_matches_spec("GET", FIELD_SEARCH, response)
        assert page["startAt"] == start_at and len(page["values"]) <= page_size
        values += page["values"]
        start_at += len(page["values"])
        if page["isLast"]:
            assert page["total"] == len(values)
            return values


def test_field_search_pages_through_the_same_fields_as_get_field(tiny: FieldSite) -> None:
    for name in ("bob", "nora"):
        client = tiny.client(name)
        assert [f["id"] for f in walk_field_search(client, 7)] == list(get_fields(client))


def test_field_search_filters_by_type_id_and_query(tiny: FieldSite) -> None:
    bob = tiny.client("bob")
    custom = walk_field_search(bob, 2, type="custom", orderBy="name")
    assert [f["name"] for f in custom] == ["Approver groups", "Reviewer", "Team name", "Watchers team"]
    descending = walk_field_search(bob, 2, type="custom", orderBy="-name")
    assert [f["name"] for f in descending] == ["Watchers team", "Team name", "Reviewer", "Approver groups"]
    assert not any(f["id"].startswith("customfield_") for f in walk_field_search(bob, 50, type="system"))
    by_id = walk_field_search(bob, 50, id=[tiny.fields["Reviewer"]])
    assert [f["name"] for f in by_id] == ["Reviewer"]
    by_query = walk_field_search(bob, 50, query="TEAM", type="custom")
    assert [f["name"] for f in by_query] == ["Watchers team", "Team name"]


def test_field_search_adds_what_expand_asks_for(tiny: FieldSite) -> None:
    plain = walk_field_search(tiny.client("bob"), 50, id=[tiny.fields["Approver groups"]])
    assert set(plain[0]) == {"id", "name", "schema", "projectsCount"}
    expanded = walk_field_search(
        tiny.client("bob"), 50, id=[tiny.fields["Approver groups"]], expand="key,searcherKey,lastUsed"
    )
    assert expanded[0]["key"] == tiny.fields["Approver groups"]
    assert expanded[0]["searcherKey"] == "com.atlassian.jira.plugin.system.customfieldtypes:multiselectsearcher"
    assert expanded[0]["lastUsed"] == {"type": "NOT_TRACKED"}


def test_field_search_with_projects_the_caller_cannot_browse_is_empty(tiny: FieldSite) -> None:
    eng = str(next(iter(tiny.builder.site.projects)))
    assert walk_field_search(tiny.client("nora"), 50, projectIds=[eng]) == []
    assert len(walk_field_search(tiny.client("bob"), 50, projectIds=[eng])) == len(get_fields(tiny.client("bob")))


@pytest.mark.parametrize("params", [{"type": "weird"}, {"orderBy": "colour"}])
def test_field_search_rejects_unknown_types_and_orders(tiny: FieldSite, params: dict[str, str]) -> None:
    response = tiny.client("bob").get(FIELD_SEARCH, params=params)
    assert response.status_code == 400
    assert_response_matches_spec("GET", FIELD_SEARCH, response)


def test_status_categories_are_jiras_four(tiny: FieldSite) -> None:
    response = tiny.client("nora").get(STATUS_CATEGORIES)
    categories = assert_response_matches_spec("GET", STATUS_CATEGORIES, response)
    assert [(c["id"], c["key"], c["name"]) for c in categories] == [
        (1, "undefined", "No Category"),
        (2, "new", "To Do"),
        (4, "indeterminate", "In Progress"),
        (3, "done", "Done"),
    ]


def test_field_search_and_status_categories_need_access_to_jira(tiny: FieldSite) -> None:
    outsider = tiny.builder.user("Outsider", api_token="token-outsider")
    tiny.users["outsider"] = outsider
    for path in (FIELD_SEARCH, STATUS_CATEGORIES):
        assert tiny.client("outsider").get(path).status_code == 403
