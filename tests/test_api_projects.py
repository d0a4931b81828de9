"""The simulated project endpoints: ``project/search`` and ``project/{projectIdOrKey}``.

Expectations come from :mod:`identity_site` and the spec's rule for ``action=view``: a project is found by whoever
has Browse Projects or Administer Projects in it, or Administer Jira; ``action=browse`` needs Browse Projects. A
project the caller cannot view does not exist for it (left out, or 404 with Jira's missing-project message).
"""

from __future__ import annotations

import pytest
from identity_site import IdentitySite, build_identity_site, get_json
from paging import walk_pages
from spec import assert_response_matches_spec

from jira_lab.sim.api.projects import SEARCH_MAX_PAGE, STANDARD_ISSUE_TYPES

SEARCH = "/rest/api/3/project/search"
PROJECT = "/rest/api/3/project/{projectIdOrKey}"

#: which projects each caller may view and browse, read off the site's description
VIEWS = {
    "admin": ["ENG", "OPS", "PUB", "SEC"],
    "browser": ["ENG", "PUB"],
    "dev": ["ENG", "PUB"],
    "lead": ["ENG", "OPS", "PUB"],
    "opsie": ["OPS", "PUB"],
    "outsider": ["PUB"],
}
BROWSES = {
    "admin": ["PUB"],
    "browser": ["ENG", "PUB"],
    "dev": ["ENG", "PUB"],
    "lead": ["OPS", "PUB"],
    "opsie": ["OPS", "PUB"],
    "outsider": ["PUB"],
}


@pytest.fixture
def site() -> IdentitySite:
    return build_identity_site()


def keys(values: list[dict[str, object]]) -> list[object]:
    return [project["key"] for project in values]


# -- project/search --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", sorted(VIEWS))
@pytest.mark.parametrize("page_size", [1, 3])
def test_search_walked_to_the_end_lists_the_projects_the_caller_may_view(
    site: IdentitySite, caller: str, page_size: int
) -> None:
    assert keys(walk_pages(site.client(caller), SEARCH, page_size)) == VIEWS[caller]


@pytest.mark.parametrize("caller", sorted(BROWSES))
def test_action_browse_lists_only_projects_the_caller_may_browse(site: IdentitySite, caller: str) -> None:
    assert keys(walk_pages(site.client(caller), SEARCH, 2, action="browse")) == BROWSES[caller]


def test_action_edit_lists_projects_the_caller_administers(site: IdentitySite) -> None:
    assert keys(walk_pages(site.client("lead"), SEARCH, 2, action="edit")) == ["ENG"]
    assert keys(walk_pages(site.client("admin"), SEARCH, 2, action="edit")) == VIEWS["admin"]
    assert walk_pages(site.client("dev"), SEARCH, 2, action="edit") == []


def test_action_create_lists_projects_where_the_caller_may_create_issues(site: IdentitySite) -> None:
    assert keys(walk_pages(site.client("opsie"), SEARCH, 2, action="create")) == ["OPS", "PUB"]


def test_anonymous_callers_find_only_projects_anyone_may_browse(site: IdentitySite) -> None:
    assert keys(walk_pages(site.anonymous(), SEARCH, 1)) == ["PUB"]


def test_two_callers_see_different_projects(site: IdentitySite) -> None:
    seen_by_dev = keys(get_json(site.client("dev"), SEARCH)["values"])
    seen_by_opsie = keys(get_json(site.client("opsie"), SEARCH)["values"])
    assert "ENG" in seen_by_dev and "ENG" not in seen_by_opsie
    assert "OPS" in seen_by_opsie and "OPS" not in seen_by_dev


def test_is_private_tells_an_administrator_which_projects_it_cannot_browse(site: IdentitySite) -> None:
    values = walk_pages(site.client("admin"), SEARCH, 10)
    assert {p["key"]: p["isPrivate"] for p in values} == {"ENG": True, "OPS": True, "PUB": False, "SEC": True}


def test_search_values_carry_ids_and_links_and_expansions_on_request(site: IdentitySite) -> None:
    plain = get_json(site.client("dev"), SEARCH)["values"][0]
    assert plain["id"] == str(site.projects["ENG"])
    assert plain["self"].endswith(f"/rest/api/3/project/{site.projects['ENG']}")
    assert "lead" not in plain and "description" not in plain and "issueTypes" not in plain
    expanded = get_json(site.client("dev"), SEARCH, expand="lead,description,issueTypes,insight")["values"][0]
    assert expanded["lead"]["accountId"] == site.users["lead"]
    assert expanded["description"] == "Where the product is built"
    assert {t["name"] for t in expanded["issueTypes"]} == set(STANDARD_ISSUE_TYPES) | {"Postmortem"}
    assert expanded["insight"]["totalIssueCount"] == 4


def test_search_filters_by_query_keys_ids_and_type(site: IdentitySite) -> None:
    client = site.client("admin")
    assert keys(get_json(client, SEARCH, query="ops")["values"]) == ["OPS"]
    assert keys(get_json(client, SEARCH, query="research")["values"]) == ["SEC"]
    assert keys(get_json(client, SEARCH, keys=["SEC", "ENG", "NOPE"])["values"]) == ["ENG", "SEC"]
    assert keys(get_json(client, SEARCH, id=[site.projects["OPS"]])["values"]) == ["OPS"]
    assert keys(get_json(client, SEARCH, typeKey="business")["values"]) == ["PUB"]
    assert get_json(client, SEARCH, status="archived")["values"] == []


def test_filters_never_reveal_a_project_the_caller_cannot_view(site: IdentitySite) -> None:
    page = get_json(site.client("dev"), SEARCH, keys=["SEC", "OPS"])
    assert page["values"] == []
    assert page["total"] == 0


def test_search_order_by_name_and_reverse_key(site: IdentitySite) -> None:
    client = site.client("admin")
    by_name = [p["name"] for p in walk_pages(client, SEARCH, 1, orderBy="name")]
    assert by_name == sorted(by_name, key=str.casefold)
    assert keys(walk_pages(client, SEARCH, 1, orderBy="-key")) == sorted(VIEWS["admin"], reverse=True)
    by_issue_count = keys(walk_pages(client, SEARCH, 1, orderBy="-issueCount"))
    assert by_issue_count[:2] == ["ENG", "OPS"]
    assert client.get(SEARCH, params={"orderBy": "colour"}).status_code == 400


def test_search_pages_are_at_most_a_hundred_projects(site: IdentitySite) -> None:
    scheme = site.builder.site.projects[site.projects["PUB"]].permission_scheme_id
    for n in range(120):
        site.builder.project(f"P{n:03d}", f"Project {n}", lead=site.users["admin"], permission_scheme=scheme)
    client = site.anonymous()
    first = get_json(client, SEARCH, maxResults=1000)
    assert first["maxResults"] == SEARCH_MAX_PAGE
    assert len(first["values"]) == SEARCH_MAX_PAGE
    assert first["total"] == 121
    assert len(get_json(client, SEARCH)["values"]) == 50
    assert len(walk_pages(client, SEARCH, 1000)) == 121


def test_search_rejects_an_unknown_action(site: IdentitySite) -> None:
    response = site.client("dev").get(SEARCH, params={"action": "delete"})
    assert response.status_code == 400
    assert_response_matches_spec("GET", SEARCH, response)


# -- project/{projectIdOrKey} ----------------------------------------------------------------------------------
def test_a_project_carries_its_description_lead_issue_types_and_roles(site: IdentitySite) -> None:
    response = site.client("dev").get("/rest/api/3/project/ENG")
    body = assert_response_matches_spec("GET", PROJECT, response)
    assert response.status_code == 200
    assert body["key"] == "ENG"
    assert body["name"] == "Engineering"
    assert body["description"] == "Where the product is built"
    assert body["lead"]["accountId"] == site.users["lead"]
    assert "Postmortem" in {t["name"] for t in body["issueTypes"]}
    assert set(body["roles"]) == {"Administrators", "Developers", "Viewers"}
    assert body["roles"]["Developers"].endswith(f"/project/{site.projects['ENG']}/role/{site.roles['Developers']}")
    assert body["isPrivate"] is False


def test_a_project_is_found_by_id_as_by_key(site: IdentitySite) -> None:
    client = site.client("dev")
    assert get_json(client, f"/rest/api/3/project/{site.projects['ENG']}") == get_json(
        client, "/rest/api/3/project/ENG"
    )


@pytest.mark.parametrize("caller", sorted(VIEWS))
def test_every_project_the_caller_cannot_view_is_not_found(site: IdentitySite, caller: str) -> None:
    client = site.client(caller)
    for key, project_id in site.projects.items():
        by_key = client.get(f"/rest/api/3/project/{key}")
        by_id = client.get(f"/rest/api/3/project/{project_id}")
        if key in VIEWS[caller]:
            assert (by_key.status_code, by_id.status_code) == (200, 200)
        else:
            assert (by_key.status_code, by_id.status_code) == (404, 404)
            assert_response_matches_spec("GET", PROJECT, by_key)
            assert by_key.json()["errorMessages"] == [f"No project could be found with key '{key}'."]
            assert by_id.json()["errorMessages"] == [f"No project could be found with id '{project_id}'."]


def test_a_missing_project_answers_like_a_hidden_one(site: IdentitySite) -> None:
    client = site.client("admin")
    assert client.get("/rest/api/3/project/NOPE").json()["errorMessages"] == [
        "No project could be found with key 'NOPE'."
    ]
    assert client.get("/rest/api/3/project/99999").json()["errorMessages"] == [
        "No project could be found with id '99999'."
    ]


def test_project_keys_are_case_sensitive(site: IdentitySite) -> None:
    assert site.client("dev").get("/rest/api/3/project/eng").status_code == 404


def test_anonymous_callers_read_only_projects_anyone_may_browse(site: IdentitySite) -> None:
    client = site.anonymous()
    assert client.get("/rest/api/3/project/PUB").status_code == 200
    assert client.get("/rest/api/3/project/ENG").status_code == 404
