"""The simulated project role endpoints: a project's roles and their actors, and the global roles.

Expectations come from :mod:`identity_site` (ENG's role actors, the roles' default actors, who administers what) and
from the spec: a project's roles need Administer Projects (anywhere for the role list, in the project for one role)
or Administer Jira, answered 401 "You cannot edit the configuration of this project." to a caller who can view the
project, and 404 to one who cannot; the global roles need Administer Jira (403).
"""

from __future__ import annotations

from typing import Any

import pytest
from identity_site import IdentitySite, build_identity_site, get_json
from spec import assert_response_matches_spec

from jira_lab.sim.api.admin_only import ADMIN_REQUIRED
from jira_lab.sim.api.roles import CANNOT_EDIT_PROJECT

PROJECT_ROLES = "/rest/api/3/project/{projectIdOrKey}/role"
PROJECT_ROLE = "/rest/api/3/project/{projectIdOrKey}/role/{id}"
ROLE_DETAILS = "/rest/api/3/project/{projectIdOrKey}/roledetails"
ROLES = "/rest/api/3/role"
ROLE = "/rest/api/3/role/{id}"
ROLE_ACTORS = "/rest/api/3/role/{id}/actors"


@pytest.fixture
def site() -> IdentitySite:
    return build_identity_site()


def actor_summary(actors: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(type, accountId or groupId, displayName)`` of each actor, in the order given."""
    summary = []
    for actor in actors:
        if actor["type"] == "atlassian-user-role-actor":
            summary.append(("user", actor["actorUser"]["accountId"], actor["displayName"]))
        else:
            summary.append(("group", actor["actorGroup"]["groupId"], actor["displayName"]))
    return summary


# -- project/{key}/role ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", ["admin", "lead"])
def test_the_role_map_names_every_role_with_its_url(site: IdentitySite, caller: str) -> None:
    response = site.client(caller).get("/rest/api/3/project/ENG/role")
    body = assert_response_matches_spec("GET", PROJECT_ROLES, response)
    assert response.status_code == 200
    eng = site.projects["ENG"]
    assert body == {
        name: f"https://ident.atlassian.net/rest/api/3/project/{eng}/role/{role_id}"
        for name, role_id in site.roles.items()
    }


def test_administering_any_project_opens_the_role_map_of_every_viewable_project(site: IdentitySite) -> None:
    # Pat administers ENG only, and views OPS as a member of ops: the spec asks for Administer Projects anywhere
    response = site.client("lead").get("/rest/api/3/project/OPS/role")
    assert response.status_code == 200
    assert set(response.json()) == set(site.roles)


def test_the_role_map_refuses_a_viewer_who_administers_nothing(site: IdentitySite) -> None:
    response = site.client("dev").get("/rest/api/3/project/ENG/role")
    assert response.status_code == 401
    assert assert_response_matches_spec("GET", PROJECT_ROLES, response)["errorMessages"] == [CANNOT_EDIT_PROJECT]


def test_the_role_map_of_a_project_the_caller_cannot_view_is_not_found(site: IdentitySite) -> None:
    response = site.client("lead").get("/rest/api/3/project/SEC/role")
    assert response.status_code == 404
    assert response.json()["errorMessages"] == ["No project could be found with key 'SEC'."]


# -- project/{key}/role/{id} -----------------------------------------------------------------------------------
def test_a_project_role_lists_user_and_group_actors_by_display_name(site: IdentitySite) -> None:
    path = f"/rest/api/3/project/ENG/role/{site.roles['Developers']}"
    response = site.client("lead").get(path)
    body = assert_response_matches_spec("GET", PROJECT_ROLE, response)
    assert response.status_code == 200
    assert (body["id"], body["name"]) == (site.roles["Developers"], "Developers")
    assert actor_summary(body["actors"]) == [
        ("group", site.groups["developers"], "developers"),
        ("user", site.users["gone"], "Dora Departed"),
        ("user", site.users["outsider"], "Otto Outsider"),
    ]
    group_actor = body["actors"][0]
    assert group_actor["actorGroup"] == {
        "name": "developers",
        "displayName": "developers",
        "groupId": site.groups["developers"],
    }


def test_excluding_inactive_users_drops_deactivated_user_actors(site: IdentitySite) -> None:
    path = f"/rest/api/3/project/ENG/role/{site.roles['Developers']}"
    body = get_json(site.client("admin"), path, excludeInactiveUsers="true")
    assert site.users["gone"] not in [a.get("actorUser", {}).get("accountId") for a in body["actors"]]
    assert len(body["actors"]) == 2


def test_role_actors_are_per_project(site: IdentitySite) -> None:
    client = site.client("admin")
    ops = get_json(client, f"/rest/api/3/project/OPS/role/{site.roles['Developers']}")
    assert actor_summary(ops["actors"]) == [("group", site.groups["ops"], "ops")]
    empty = get_json(client, f"/rest/api/3/project/{site.projects['OPS']}/role/{site.roles['Administrators']}")
    assert empty["actors"] == []


def test_a_group_actor_shows_the_groups_current_name(site: IdentitySite) -> None:
    site.builder.site.groups[site.groups["developers"]].name = "engineers"
    body = get_json(site.client("admin"), f"/rest/api/3/project/ENG/role/{site.roles['Developers']}")
    group_actor = next(a for a in body["actors"] if a["type"] == "atlassian-group-role-actor")
    assert group_actor["actorGroup"]["name"] == "engineers"
    assert group_actor["actorGroup"]["groupId"] == site.groups["developers"]


def test_a_jira_administrator_reads_roles_of_a_project_it_cannot_browse(site: IdentitySite) -> None:
    response = site.client("admin").get(f"/rest/api/3/project/SEC/role/{site.roles['Developers']}")
    assert response.status_code == 200
    assert response.json()["actors"] == []


def test_one_role_needs_administer_projects_in_that_project(site: IdentitySite) -> None:
    # Pat administers ENG, not OPS, which he views through ops
    response = site.client("lead").get(f"/rest/api/3/project/OPS/role/{site.roles['Developers']}")
    assert response.status_code == 401
    assert assert_response_matches_spec("GET", PROJECT_ROLE, response)["errorMessages"] == [CANNOT_EDIT_PROJECT]


@pytest.mark.parametrize("caller", ["opsie", "outsider"])
def test_one_role_of_a_project_the_caller_cannot_view_is_not_found(site: IdentitySite, caller: str) -> None:
    response = site.client(caller).get(f"/rest/api/3/project/ENG/role/{site.roles['Developers']}")
    assert response.status_code == 404
    assert_response_matches_spec("GET", PROJECT_ROLE, response)


def test_an_unknown_role_is_not_found(site: IdentitySite) -> None:
    assert site.client("admin").get("/rest/api/3/project/ENG/role/99").status_code == 404


# -- project/{key}/roledetails ---------------------------------------------------------------------------------
def test_role_details_list_every_role(site: IdentitySite) -> None:
    response = site.client("lead").get("/rest/api/3/project/ENG/roledetails")
    body = assert_response_matches_spec("GET", ROLE_DETAILS, response)
    assert sorted((r["id"], r["name"]) for r in body) == sorted((i, n) for n, i in site.roles.items())
    assert {r["name"]: r["admin"] for r in body}["Administrators"] is True


def test_role_details_for_the_current_member_keep_the_callers_roles(site: IdentitySite) -> None:
    lead_roles = get_json(site.client("lead"), "/rest/api/3/project/ENG/roledetails", currentMember="true")
    assert [r["name"] for r in lead_roles] == ["Administrators"]
    admin_roles = get_json(site.client("admin"), "/rest/api/3/project/ENG/roledetails", currentMember="true")
    assert admin_roles == []


def test_role_details_need_administer_projects_in_the_project(site: IdentitySite) -> None:
    response = site.client("dev").get("/rest/api/3/project/ENG/roledetails")
    assert response.status_code == 404
    assert_response_matches_spec("GET", ROLE_DETAILS, response)


# -- role, role/{id}, role/{id}/actors -------------------------------------------------------------------------
def test_global_roles_carry_their_default_actors(site: IdentitySite) -> None:
    response = site.client("admin").get(ROLES)
    body = assert_response_matches_spec("GET", ROLES, response)
    by_name = {role["name"]: role for role in body}
    assert set(by_name) == set(site.roles)
    assert actor_summary(by_name["Administrators"]["actors"]) == [
        ("group", site.groups["jira-administrators"], "jira-administrators")
    ]
    assert actor_summary(by_name["Developers"]["actors"]) == [
        ("user", site.users["dev"], "Carl Developer"),
        ("group", site.groups["developers"], "developers"),
    ]
    assert by_name["Viewers"]["actors"] == []


def test_one_global_role_and_its_actors(site: IdentitySite) -> None:
    client = site.client("admin")
    developers = site.roles["Developers"]
    role = assert_response_matches_spec("GET", ROLE, client.get(f"/rest/api/3/role/{developers}"))
    actors = assert_response_matches_spec("GET", ROLE_ACTORS, client.get(f"/rest/api/3/role/{developers}/actors"))
    assert role["id"] == developers
    assert actors == {"actors": role["actors"]}
    assert client.get("/rest/api/3/role/424242").status_code == 404


@pytest.mark.parametrize("path", [ROLES, "/rest/api/3/role/{id}", "/rest/api/3/role/{id}/actors"])
@pytest.mark.parametrize("caller", ["lead", "browser"])
def test_global_roles_need_administer_jira(site: IdentitySite, path: str, caller: str) -> None:
    response = site.client(caller).get(path.replace("{id}", str(site.roles["Developers"])))
    assert response.status_code == 403
    assert assert_response_matches_spec("GET", path, response)["errorMessages"] == [ADMIN_REQUIRED]


def test_global_roles_need_manage_jira_configuration_through_the_gateway(site: IdentitySite) -> None:
    assert site.gateway("admin", {"read:jira-work"}).get(ROLES).status_code == 401
    assert len(get_json(site.gateway("admin", {"manage:jira-configuration"}), ROLES)) == len(site.roles)
