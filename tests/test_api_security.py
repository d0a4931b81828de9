"""Issue security schemes, levels and members on the simulated site.

Expectations read off the site built below and the spec's permission texts: the scheme, level and member APIs are
for Jira administrators (403 with Jira's "Administrator privileges are required" otherwise), a project's scheme for
its administrators too, and a project's usable levels only for callers holding *Set Issue Security* there. Paged
answers are walked to the end with small pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts
from spec import assert_matches_spec, assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder

SITE_URL = "https://tiny.atlassian.net"
ADMIN_REQUIRED = "You are not authorized to perform this action. Administrator privileges are required."
SCHEMES = "/rest/api/3/issuesecurityschemes"
SCHEME = "/rest/api/3/issuesecurityschemes/{id}"
SEARCH = "/rest/api/3/issuesecurityschemes/search"
LEVELS = "/rest/api/3/issuesecurityschemes/level"
LEVEL_MEMBERS = "/rest/api/3/issuesecurityschemes/level/member"
SCHEME_MEMBERS = "/rest/api/3/issuesecurityschemes/{issueSecuritySchemeId}/members"
PROJECT_MAPPING = "/rest/api/3/issuesecurityschemes/project"
PROJECT_SCHEME = "/rest/api/3/project/{projectKeyOrId}/issuesecuritylevelscheme"
PROJECT_LEVELS = "/rest/api/3/project/{projectKeyOrId}/securitylevel"
LEVEL = "/rest/api/3/securitylevel/{id}"
ADMIN_ONLY = [SCHEMES, SEARCH, LEVELS, LEVEL_MEMBERS, PROJECT_MAPPING]


@dataclass
class SecuritySite(HandBuiltSite):
    staff: str
    managers_role: int
    schemes: dict[str, int]
    levels: dict[str, int]
    #: member ids per level name, in the order they were added
    members: dict[str, list[int]]
    projects: dict[str, int]


def build_site() -> SecuritySite:
    """The site every test reads from.

    * ann: Jira administrator. pat: project lead of ENG, which gives Administer Projects there. bob: in staff
      (Set Issue Security in ENG). vic: browses ENG only. olga: browses OPS only.
    * Scheme "Confidential" (ENG and HR): levels "Staff" (default; members: group staff, user ann), "Reporter only"
      (member: reporter), "Managers" (member: the Managers role). Scheme "Unused": level "Vault" (member: ann).
    * ENG and HR use "Confidential"; OPS and PUB use none. PUB lets anyone browse and set issue security.
    """
    b = SiteBuilder("tiny")
    names = ["ann", "pat", "bob", "vic", "olga"]
    users = add_accounts(b, names)
    jira_users = b.group("jira-users", members=[users[n] for n in ("ann", "pat", "bob", "vic")])
    admins = b.group("jira-administrators", members=[users["ann"]])
    staff = b.group("staff", members=[users["bob"]])
    ops = b.group("ops", members=[users["olga"]])
    b.application_role("jira-software", "Jira Software", [jira_users, ops])
    b.global_permission("ADMINISTER", admins)
    managers = b.role("Managers")
    default = b.permission_scheme(
        "Default",
        grants=[
            ("BROWSE_PROJECTS", Holder("group", jira_users)),
            ("SET_ISSUE_SECURITY", Holder("group", staff)),
            ("ADMINISTER_PROJECTS", Holder("projectLead")),
        ],
    )
    ops_scheme = b.permission_scheme("Ops", grants=[("BROWSE_PROJECTS", Holder("group", ops))])
    public = b.permission_scheme(
        "Public", grants=[("BROWSE_PROJECTS", Holder("anyone")), ("SET_ISSUE_SECURITY", Holder("anyone"))]
    )
    confidential = b.security_scheme("Confidential", "Who sees what")
    unused = b.security_scheme("Unused")
    levels = {
        "Staff": b.security_level(
            confidential, "Staff", [Holder("group", staff), Holder("user", users["ann"])], default=True
        ),
        "Reporter only": b.security_level(confidential, "Reporter only", [Holder("reporter")]),
        "Managers": b.security_level(confidential, "Managers", [Holder("projectRole", str(managers))]),
        "Vault": b.security_level(unused, "Vault", [Holder("user", users["ann"])]),
    }
    site = b.site
    members = {
        level.name: [member.id for member in level.members]
        for scheme in site.security_schemes.values()
        for level in scheme.levels
    }
    eng = b.project("ENG", "Engineering", lead=users["pat"], permission_scheme=default, security_scheme=confidential)
    hr = b.project("HR", "Human resources", lead=users["ann"], permission_scheme=default, security_scheme=confidential)
    ops_project = b.project("OPS", "Operations", lead=users["olga"], permission_scheme=ops_scheme)
    pub = b.project("PUB", "Public", lead=users["ann"], permission_scheme=public)
    return SecuritySite(
        b,
        SimCloud(site),
        users,
        staff,
        managers,
        {"Confidential": confidential, "Unused": unused},
        levels,
        members,
        {"ENG": eng, "HR": hr, "OPS": ops_project, "PUB": pub},
    )


@pytest.fixture
def tiny() -> SecuritySite:
    return build_site()


def walk(client: httpx.Client, template: str, page_size: int, path: str | None = None, **params: Any) -> list[Any]:
    """Every value of a paged answer, following ``startAt`` by the values received; each page checked."""
    values: list[Any] = []
    start_at = 0
    for _ in range(50):
        response = client.get(
            path or template, params={**params, "startAt": str(start_at), "maxResults": str(page_size)}
        )
        assert response.status_code == 200, response.text
        page = assert_response_matches_spec("GET", template, response)
        assert (page["startAt"], page["maxResults"]) == (start_at, page_size)
        assert len(page["values"]) <= page_size
        values += page["values"]
        start_at += len(page["values"])
        assert page["total"] >= start_at
        if page["isLast"]:
            assert "nextPage" not in page
            return values
        assert page["nextPage"]
    raise AssertionError("the pages never ended")


def level_entry(tiny: SecuritySite, name: str, description: str = "") -> dict[str, Any]:
    level_id = tiny.levels[name]
    return {
        "self": f"{SITE_URL}/rest/api/3/securitylevel/{level_id}",
        "id": str(level_id),
        "description": description,
        "name": name,
    }


# -- administrators only -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", ADMIN_ONLY)
@pytest.mark.parametrize("name", ["pat", "bob"])
def test_admin_only_endpoints_answer_403_to_others(tiny: SecuritySite, template: str, name: str) -> None:
    response = tiny.client(name).get(template)
    assert response.status_code == 403
    assert response.json() == {"errorMessages": [ADMIN_REQUIRED], "errors": {}}
    assert_response_matches_spec("GET", template, response)


def test_scheme_members_are_for_administrators_only(tiny: SecuritySite) -> None:
    path = SCHEME_MEMBERS.format(issueSecuritySchemeId=tiny.schemes["Confidential"])
    response = tiny.client("pat").get(path)
    assert response.status_code == 403
    assert response.json()["errorMessages"] == [ADMIN_REQUIRED]


def test_the_scheme_list_has_no_levels(tiny: SecuritySite) -> None:
    response = tiny.client("ann").get(SCHEMES)
    body = assert_response_matches_spec("GET", SCHEMES, response)
    confidential, unused = tiny.schemes["Confidential"], tiny.schemes["Unused"]
    assert body == {
        "issueSecuritySchemes": [
            {
                "self": f"{SITE_URL}/rest/api/3/issuesecurityschemes/{confidential}",
                "id": confidential,
                "name": "Confidential",
                "description": "Who sees what",
                "defaultSecurityLevelId": tiny.levels["Staff"],
            },
            {
                "self": f"{SITE_URL}/rest/api/3/issuesecurityschemes/{unused}",
                "id": unused,
                "name": "Unused",
                "description": "",
            },
        ]
    }


# -- one scheme --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ann", "pat"])
def test_a_scheme_with_its_levels_for_jira_and_project_administrators(tiny: SecuritySite, name: str) -> None:
    response = tiny.client(name).get(SCHEME.format(id=tiny.schemes["Confidential"]))
    assert response.status_code == 200
    body = assert_response_matches_spec("GET", SCHEME, response)
    assert body["levels"] == [level_entry(tiny, n) for n in ("Staff", "Reporter only", "Managers")]
    assert body["defaultSecurityLevelId"] == tiny.levels["Staff"]


def test_a_scheme_no_administered_project_uses_is_refused(tiny: SecuritySite) -> None:
    assert tiny.client("pat").get(SCHEME.format(id=tiny.schemes["Unused"])).status_code == 403
    assert tiny.client("bob").get(SCHEME.format(id=tiny.schemes["Confidential"])).status_code == 403
    assert tiny.client("ann").get(SCHEME.format(id=tiny.schemes["Unused"])).status_code == 200


def test_an_unknown_scheme_is_a_404_for_an_administrator(tiny: SecuritySite) -> None:
    for scheme_id in ("99999", "abc"):
        response = tiny.client("ann").get(SCHEME.format(id=scheme_id))
        assert response.status_code == 404
        assert_response_matches_spec("GET", SCHEME, response)
    members = tiny.client("ann").get(SCHEME_MEMBERS.format(issueSecuritySchemeId="99999"))
    assert members.status_code == 404


# -- paged searches ----------------------------------------------------------------------------------------------
def test_scheme_search_walks_to_the_end_with_the_projects_using_each_scheme(tiny: SecuritySite) -> None:
    values = walk(tiny.client("ann"), SEARCH, 1)
    assert [(v["id"], v["name"], v["projectIds"]) for v in values] == [
        (tiny.schemes["Confidential"], "Confidential", [tiny.projects["ENG"], tiny.projects["HR"]]),
        (tiny.schemes["Unused"], "Unused", []),
    ]
    assert values[0]["defaultLevel"] == tiny.levels["Staff"]
    assert "defaultLevel" not in values[1]


def test_scheme_search_by_project_lists_only_the_filtered_projects(tiny: SecuritySite) -> None:
    values = walk(tiny.client("ann"), SEARCH, 10, projectId=[str(tiny.projects["HR"])])
    assert [(v["id"], v["projectIds"]) for v in values] == [(tiny.schemes["Confidential"], [tiny.projects["HR"]])]
    assert walk(tiny.client("ann"), SEARCH, 10, projectId=[str(tiny.projects["OPS"])]) == []
    by_id = walk(tiny.client("ann"), SEARCH, 10, id=[str(tiny.schemes["Unused"])])
    assert [v["name"] for v in by_id] == ["Unused"]


@pytest.mark.parametrize("template", [SEARCH, LEVELS, LEVEL_MEMBERS])
def test_a_negative_or_non_numeric_id_filter_is_a_400(tiny: SecuritySite, template: str) -> None:
    for raw in ("-1000", "x"):
        response = tiny.client("ann").get(template, params={"id": raw})
        assert response.status_code == 400
        assert response.json()["errorMessages"] == [
            f"{raw} is not a valid value. id must be zero or a positive integer."
        ]


def test_levels_walk_to_the_end_with_string_ids_and_default_flags(tiny: SecuritySite) -> None:
    values = walk(tiny.client("ann"), LEVELS, 1)
    confidential, unused = str(tiny.schemes["Confidential"]), str(tiny.schemes["Unused"])
    assert [(v["name"], v["id"], v["isDefault"], v["issueSecuritySchemeId"]) for v in values] == [
        ("Staff", str(tiny.levels["Staff"]), True, confidential),
        ("Reporter only", str(tiny.levels["Reporter only"]), False, confidential),
        ("Managers", str(tiny.levels["Managers"]), False, confidential),
        ("Vault", str(tiny.levels["Vault"]), False, unused),
    ]


def test_level_filters_are_inclusive_and_only_default_narrows_them(tiny: SecuritySite) -> None:
    ann = tiny.client("ann")
    both = walk(ann, LEVELS, 2, id=[str(tiny.levels["Vault"])], schemeId=[str(tiny.schemes["Confidential"])])
    assert [v["name"] for v in both] == ["Staff", "Reporter only", "Managers", "Vault"]
    defaults = walk(ann, LEVELS, 2, onlyDefault="true")
    assert [v["name"] for v in defaults] == ["Staff"]
    assert walk(ann, LEVELS, 2, onlyDefault="true", id=[str(tiny.levels["Vault"])]) == []


def test_level_members_walk_to_the_end_with_string_ids(tiny: SecuritySite) -> None:
    values = walk(tiny.client("ann"), LEVEL_MEMBERS, 2)
    confidential = str(tiny.schemes["Confidential"])
    staff_level = str(tiny.levels["Staff"])
    assert values[:2] == [
        {
            "id": str(tiny.members["Staff"][0]),
            "issueSecurityLevelId": staff_level,
            "issueSecuritySchemeId": confidential,
            "holder": {"type": "group", "parameter": "staff", "value": tiny.staff, "expand": "group"},
        },
        {
            "id": str(tiny.members["Staff"][1]),
            "issueSecurityLevelId": staff_level,
            "issueSecuritySchemeId": confidential,
            "holder": {"type": "user", "parameter": tiny.users["ann"], "value": tiny.users["ann"], "expand": "user"},
        },
    ]
    assert [v["holder"]["type"] for v in values[2:]] == ["reporter", "projectRole", "user"]


def test_level_member_filters_are_inclusive(tiny: SecuritySite) -> None:
    values = walk(
        tiny.client("ann"),
        LEVEL_MEMBERS,
        10,
        levelId=[str(tiny.levels["Managers"])],
        id=[str(tiny.members["Vault"][0])],
    )
    assert [v["id"] for v in values] == [str(tiny.members["Managers"][0]), str(tiny.members["Vault"][0])]


def test_expanded_level_members_show_the_groups_current_name(tiny: SecuritySite) -> None:
    tiny.builder.site.groups[tiny.staff].name = "employees"
    response = tiny.client("ann").get(
        LEVEL_MEMBERS, params={"levelId": str(tiny.levels["Staff"]), "expand": "group,user"}
    )
    body = response.json()
    group_holder, user_holder = (v["holder"] for v in body["values"])
    assert (group_holder["parameter"], group_holder["value"]) == ("employees", tiny.staff)
    assert group_holder["group"]["name"] == "employees"
    assert user_holder["user"]["accountId"] == tiny.users["ann"]
    plain = tiny.client("ann").get(LEVEL_MEMBERS, params={"levelId": str(tiny.levels["Staff"])}).json()
    assert [set(v["holder"]) for v in plain["values"]] == [{"type", "parameter", "value", "expand"}] * 2
    assert_matches_spec("GET", LEVEL_MEMBERS, 200, plain)


def test_scheme_members_walk_to_the_end_with_integer_ids(tiny: SecuritySite) -> None:
    path = SCHEME_MEMBERS.format(issueSecuritySchemeId=tiny.schemes["Confidential"])
    values = walk(tiny.client("ann"), SCHEME_MEMBERS, 1, path)
    expected_members = [
        (member_id, tiny.levels[name])
        for name in ("Staff", "Reporter only", "Managers")
        for member_id in tiny.members[name]
    ]
    assert [(v["id"], v["issueSecurityLevelId"]) for v in values] == expected_members
    assert values[-1]["holder"] == {
        "type": "projectRole",
        "parameter": str(tiny.managers_role),
        "value": str(tiny.managers_role),
        "expand": "projectRole",
    }


def test_scheme_members_of_some_levels_with_expanded_roles(tiny: SecuritySite) -> None:
    path = SCHEME_MEMBERS.format(issueSecuritySchemeId=tiny.schemes["Confidential"])
    params = {
        "issueSecurityLevelId": [str(tiny.levels["Managers"]), str(tiny.levels["Reporter only"])],
        "expand": "all",
    }
    response = tiny.client("ann").get(path, params=params)
    values = response.json()["values"]
    assert [v["holder"]["type"] for v in values] == ["reporter", "projectRole"]
    assert values[1]["holder"]["projectRole"]["name"] == "Managers"


def test_project_mappings_pair_schemes_and_projects_as_strings(tiny: SecuritySite) -> None:
    values = walk(tiny.client("ann"), PROJECT_MAPPING, 1)
    confidential = str(tiny.schemes["Confidential"])
    assert values == [
        {"issueSecuritySchemeId": confidential, "projectId": str(tiny.projects["ENG"])},
        {"issueSecuritySchemeId": confidential, "projectId": str(tiny.projects["HR"])},
    ]
    by_project = walk(tiny.client("ann"), PROJECT_MAPPING, 5, projectId=[str(tiny.projects["HR"])])
    assert by_project == values[1:]
    assert walk(tiny.client("ann"), PROJECT_MAPPING, 5, issueSecuritySchemeId=[str(tiny.schemes["Unused"])]) == []


# -- a project's scheme and levels -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ann", "pat"])
def test_project_administrators_read_the_projects_security_scheme(tiny: SecuritySite, name: str) -> None:
    response = tiny.client(name).get(PROJECT_SCHEME.format(projectKeyOrId="ENG"))
    body = assert_response_matches_spec("GET", PROJECT_SCHEME, response)
    assert (body["id"], body["name"]) == (tiny.schemes["Confidential"], "Confidential")
    assert [level["name"] for level in body["levels"]] == ["Staff", "Reporter only", "Managers"]


def test_the_projects_security_scheme_is_403_to_browsers_and_404_to_outsiders(tiny: SecuritySite) -> None:
    assert tiny.client("vic").get(PROJECT_SCHEME.format(projectKeyOrId="ENG")).status_code == 403
    assert tiny.client("olga").get(PROJECT_SCHEME.format(projectKeyOrId="ENG")).status_code == 404
    assert tiny.client("pat").get(PROJECT_SCHEME.format(projectKeyOrId="OPS")).status_code == 404
    assert tiny.client("ann").get(PROJECT_SCHEME.format(projectKeyOrId="PUB")).status_code == 404  # no scheme


def project_levels(client: httpx.Client, project: str) -> list[str]:
    response = client.get(PROJECT_LEVELS.format(projectKeyOrId=project))
    assert response.status_code == 200, response.text
    body = assert_response_matches_spec("GET", PROJECT_LEVELS, response)
    return [level["name"] for level in body["levels"]]


def test_a_project_lists_the_levels_the_caller_may_set(tiny: SecuritySite) -> None:
    # bob holds Set Issue Security (staff), is in Staff through the group, and would be the reporter
    assert project_levels(tiny.client("bob"), "ENG") == ["Staff", "Reporter only"]
    tiny.builder.role_actor(tiny.projects["ENG"], tiny.managers_role, users=[tiny.users["bob"]])
    assert project_levels(tiny.client("bob"), "ENG") == ["Staff", "Reporter only", "Managers"]


def test_levels_are_listed_only_with_set_issue_security(tiny: SecuritySite) -> None:
    # ann is a member of Staff but holds no Set Issue Security in ENG; vic holds nothing but Browse
    assert project_levels(tiny.client("ann"), "ENG") == []
    assert project_levels(tiny.client("vic"), "ENG") == []
    assert project_levels(tiny.anonymous(), "PUB") == []


def test_project_levels_of_a_project_the_caller_cannot_view_is_a_404(tiny: SecuritySite) -> None:
    response = tiny.client("olga").get(PROJECT_LEVELS.format(projectKeyOrId="ENG"))
    assert response.status_code == 404
    assert_response_matches_spec("GET", PROJECT_LEVELS, response)


def test_the_levels_of_a_project_match_the_schemes_shape(tiny: SecuritySite) -> None:
    response = tiny.client("bob").get(PROJECT_LEVELS.format(projectKeyOrId=str(tiny.projects["ENG"])))
    assert response.json() == {"levels": [level_entry(tiny, "Staff"), level_entry(tiny, "Reporter only")]}


# -- one level ---------------------------------------------------------------------------------------------------
def test_a_level_by_id_needs_no_permission(tiny: SecuritySite) -> None:
    for client in (tiny.anonymous(), tiny.client("olga")):
        response = client.get(LEVEL.format(id=tiny.levels["Vault"]))
        assert response.status_code == 200
        assert assert_response_matches_spec("GET", LEVEL, response) == level_entry(tiny, "Vault")


@pytest.mark.parametrize("level_id", ["99999", "nope"])
def test_an_unknown_level_is_a_404(tiny: SecuritySite, level_id: str) -> None:
    response = tiny.client("ann").get(LEVEL.format(id=level_id))
    assert response.status_code == 404
    assert_response_matches_spec("GET", LEVEL, response)
