"""Permission checks on the simulated site: ``mypermissions``, ``permissions/check``, ``permissions/project``, the
permission catalogue and the application roles.

The site is built by hand so that every expectation reads off its description below and Jira's documented rules:
a project context holds an issue permission if the caller meets the grant for *any* issue there (so a reporter
grant reads true for whoever reported something), while an issue context reads that issue, its security level
included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts, basic_client
from spec import assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.api.permissions import PERMISSIONS
from jira_lab.sim.model import GLOBAL_PERMISSIONS, PROJECT_PERMISSIONS

MYPERMISSIONS = "/rest/api/3/mypermissions"
CHECK = "/rest/api/3/permissions/check"
PERMITTED = "/rest/api/3/permissions/project"
ALL_PERMISSIONS = "/rest/api/3/permissions"
ROLES = "/rest/api/3/applicationrole"
ROLE = "/rest/api/3/applicationrole/{key}"


@dataclass
class PermissionSite(HandBuiltSite):
    projects: dict[str, int]
    #: issue key -> id
    issues: dict[str, int]
    comments: dict[str, int]
    groups: dict[str, str]


def build_site() -> PermissionSite:
    """The site every test reads from.

    * ann: Jira administrator (jira-administrators), in jira-users.
    * bob, carl, erin: in jira-users; bob is in staff too; erin reported nothing.
    * olga: in ops only (not jira-users).
    * ENG (scheme "Default"): BROWSE_PROJECTS and ADD_COMMENTS to jira-users; EDIT_ISSUES to the reporter;
      SET_ISSUE_SECURITY to staff; ADMINISTER_PROJECTS to the project lead (carl).
      ENG-1 reported by bob, ENG-2 by carl, ENG-3 by bob at security level "Staff only" whose only member is ann.
      ENG-1 has a comment restricted to the staff group and a public one.
    * OPS (scheme "Ops"): BROWSE_PROJECTS and EDIT_ISSUES to ops. OPS-1 reported by olga.
    * PUB (scheme "Public"): BROWSE_PROJECTS to anyone. PUB-1 reported by erin.
    """
    b = SiteBuilder("tiny")
    names = ["ann", "bob", "carl", "erin", "olga", "ivan"]
    users = add_accounts(b, names)
    b.site.users[users["ivan"]].active = False
    jira_users = b.group("jira-users", members=[users[n] for n in ("ann", "bob", "carl", "erin", "ivan")])
    admins = b.group("jira-administrators", members=[users["ann"]])
    staff = b.group("staff", members=[users["bob"]])
    ops = b.group("ops", members=[users["olga"]])
    b.application_role("jira-software", "Jira Software", [jira_users, ops])
    b.global_permission("ADMINISTER", admins)
    b.global_permission("USER_PICKER", jira_users)
    default = b.permission_scheme(
        "Default",
        grants=[
            ("BROWSE_PROJECTS", Holder("group", jira_users)),
            ("ADD_COMMENTS", Holder("group", jira_users)),
            ("EDIT_ISSUES", Holder("reporter")),
            ("SET_ISSUE_SECURITY", Holder("group", staff)),
            ("ADMINISTER_PROJECTS", Holder("projectLead")),
        ],
    )
    ops_scheme = b.permission_scheme(
        "Ops", grants=[("BROWSE_PROJECTS", Holder("group", ops)), ("EDIT_ISSUES", Holder("group", ops))]
    )
    public = b.permission_scheme("Public", grants=[("BROWSE_PROJECTS", Holder("anyone"))])
    security = b.security_scheme("Confidentiality")
    staff_only = b.security_level(security, "Staff only", [Holder("user", users["ann"])])
    eng = b.project("ENG", "Engineering", lead=users["carl"], permission_scheme=default, security_scheme=security)
    ops_project = b.project("OPS", "Operations", lead=users["olga"], permission_scheme=ops_scheme)
    pub = b.project("PUB", "Public", lead=users["ann"], permission_scheme=public)
    issues = {
        "ENG-1": b.issue(eng, "Bob's issue", reporter=users["bob"]),
        "ENG-2": b.issue(eng, "Carl's issue", reporter=users["carl"]),
        "ENG-3": b.issue(eng, "Bob's secret issue", reporter=users["bob"], security_level=staff_only),
        "OPS-1": b.issue(ops_project, "Ops issue", reporter=users["olga"]),
        "PUB-1": b.issue(pub, "Public issue", reporter=users["erin"]),
    }
    comments = {
        "public": b.comment(issues["ENG-1"], users["bob"], "hello"),
        "staff": b.comment(issues["ENG-1"], users["bob"], "staff only", visibility=Visibility("group", staff)),
        "secret": b.comment(issues["ENG-3"], users["bob"], "on a secret issue"),
    }
    return PermissionSite(
        b,
        SimCloud(b.site),
        users,
        {"ENG": eng, "OPS": ops_project, "PUB": pub},
        issues,
        comments,
        {"jira-users": jira_users, "staff": staff, "ops": ops, "admins": admins},
    )


@pytest.fixture
def tiny() -> PermissionSite:
    return build_site()


def my_permissions(client: httpx.Client, keys: str, **context: str) -> dict[str, Any]:
    response = client.get(MYPERMISSIONS, params={"permissions": keys, **context})
    assert response.status_code == 200, response.text
    permissions: dict[str, Any] = assert_response_matches_spec("GET", MYPERMISSIONS, response)["permissions"]
    return permissions


def have(permissions: dict[str, Any]) -> dict[str, bool]:
    return {key: entry["havePermission"] for key, entry in permissions.items()}


def check(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    response = client.post(CHECK, json=body)
    assert_response_matches_spec("POST", CHECK, response)
    return response


# -- catalogue ---------------------------------------------------------------------------------------------------
def test_the_catalogue_holds_every_global_and_project_key_with_its_type() -> None:
    assert set(PERMISSIONS) == set(GLOBAL_PERMISSIONS) | set(PROJECT_PERMISSIONS)
    assert {k for k, info in PERMISSIONS.items() if info.type == "GLOBAL"} == set(GLOBAL_PERMISSIONS)
    assert all(info.key == key and info.name and info.description for key, info in PERMISSIONS.items())


def test_get_permissions_lists_the_catalogue_without_caller_specific_fields(tiny: PermissionSite) -> None:
    response = tiny.anonymous().get(ALL_PERMISSIONS)
    assert response.status_code == 200
    body = assert_response_matches_spec("GET", ALL_PERMISSIONS, response)["permissions"]
    assert set(body) == set(GLOBAL_PERMISSIONS) | set(PROJECT_PERMISSIONS)
    # the spec's own example entry
    assert body["BULK_CHANGE"] == {
        "key": "BULK_CHANGE",
        "name": "Bulk Change",
        "type": "GLOBAL",
        "description": "Ability to modify a collection of issues at once. For example, resolve multiple issues in "
        "one step.",
    }
    assert body["EDIT_ISSUES"]["type"] == "PROJECT"
    assert all("havePermission" not in entry for entry in body.values())


# -- mypermissions -----------------------------------------------------------------------------------------------
def test_mypermissions_without_permissions_is_jiras_400(tiny: PermissionSite) -> None:
    for params in ({}, {"permissions": ""}):
        response = tiny.client("bob").get(MYPERMISSIONS, params=params)
        assert response.status_code == 400
        assert response.json()["errorMessages"] == ["The 'permissions' query parameter is required."]


@pytest.mark.parametrize("keys", ["NO_SUCH_PERMISSION", "BROWSE", "BROWSE_PROJECTS,EDIT_ISSUE"])
def test_mypermissions_with_an_unknown_or_deprecated_key_is_a_400(tiny: PermissionSite, keys: str) -> None:
    response = tiny.client("bob").get(MYPERMISSIONS, params={"permissions": keys})
    assert response.status_code == 400
    assert_response_matches_spec("GET", MYPERMISSIONS, response)


def test_mypermissions_answers_only_the_requested_keys_with_their_catalogue_entries(tiny: PermissionSite) -> None:
    answer = my_permissions(tiny.client("bob"), "EDIT_ISSUES,ADMINISTER")
    assert set(answer) == {"EDIT_ISSUES", "ADMINISTER"}
    info = PERMISSIONS["EDIT_ISSUES"]
    assert answer["EDIT_ISSUES"] == {
        "id": info.id,
        "key": "EDIT_ISSUES",
        "name": info.name,
        "type": "PROJECT",
        "description": info.description,
        "havePermission": True,
    }
    assert answer["ADMINISTER"]["type"] == "GLOBAL"


def test_a_reporter_grant_holds_in_the_project_context_but_not_for_anothers_issue(tiny: PermissionSite) -> None:
    bob = tiny.client("bob")
    assert have(my_permissions(bob, "EDIT_ISSUES", projectKey="ENG")) == {"EDIT_ISSUES": True}
    assert have(my_permissions(bob, "EDIT_ISSUES", issueKey="ENG-1")) == {"EDIT_ISSUES": True}
    # ENG-2 was reported by carl: the same grant does not reach it, though bob may browse it
    assert have(my_permissions(bob, "EDIT_ISSUES,BROWSE_PROJECTS", issueKey="ENG-2")) == {
        "EDIT_ISSUES": False,
        "BROWSE_PROJECTS": True,
    }


def test_two_users_get_different_answers_in_the_same_project(tiny: PermissionSite) -> None:
    # erin reported nothing in ENG: the reporter grant gives her nothing there
    assert have(my_permissions(tiny.client("erin"), "EDIT_ISSUES,BROWSE_PROJECTS", projectKey="ENG")) == {
        "EDIT_ISSUES": False,
        "BROWSE_PROJECTS": True,
    }
    assert have(my_permissions(tiny.client("carl"), "EDIT_ISSUES,ADMINISTER_PROJECTS", projectKey="ENG")) == {
        "EDIT_ISSUES": True,
        "ADMINISTER_PROJECTS": True,
    }


def test_the_global_context_holds_a_project_permission_held_in_any_project(tiny: PermissionSite) -> None:
    # erin reported PUB-1, but PUB grants no EDIT_ISSUES; olga holds it in OPS through her group
    assert have(my_permissions(tiny.client("erin"), "EDIT_ISSUES,BROWSE_PROJECTS")) == {
        "EDIT_ISSUES": False,
        "BROWSE_PROJECTS": True,
    }
    assert have(my_permissions(tiny.client("olga"), "EDIT_ISSUES")) == {"EDIT_ISSUES": True}


def test_global_permissions_are_unaffected_by_the_context(tiny: PermissionSite) -> None:
    for context in ({}, {"projectKey": "ENG"}, {"issueKey": "ENG-1"}):
        assert have(my_permissions(tiny.client("ann"), "ADMINISTER,USER_PICKER", **context)) == {
            "ADMINISTER": True,
            "USER_PICKER": True,
        }
        assert have(my_permissions(tiny.client("bob"), "ADMINISTER,USER_PICKER", **context)) == {
            "ADMINISTER": False,
            "USER_PICKER": True,
        }


def test_project_id_wins_over_project_key(tiny: PermissionSite) -> None:
    answer = my_permissions(
        tiny.client("olga"), "BROWSE_PROJECTS", projectId=str(tiny.projects["OPS"]), projectKey="NOPE"
    )
    assert have(answer) == {"BROWSE_PROJECTS": True}


def test_an_issue_id_context_reads_the_same_as_its_key(tiny: PermissionSite) -> None:
    by_id = my_permissions(tiny.client("carl"), "EDIT_ISSUES", issueId=str(tiny.issues["ENG-2"]))
    by_key = my_permissions(tiny.client("carl"), "EDIT_ISSUES", issueKey="ENG-2")
    assert have(by_id) == have(by_key) == {"EDIT_ISSUES": True}


def test_a_project_or_issue_the_caller_cannot_see_is_a_404(tiny: PermissionSite) -> None:
    bob = tiny.client("bob")
    cases = [
        {"projectKey": "OPS"},
        {"projectKey": "NOPE"},
        {"projectId": "99999"},
        {"issueKey": "OPS-1"},
        {"issueKey": "ENG-3"},  # bob reported it but is not in its security level
        {"issueId": "99999"},
    ]
    for context in cases:
        response = bob.get(MYPERMISSIONS, params={"permissions": "BROWSE_PROJECTS", **context})
        assert response.status_code == 404, context
        assert_response_matches_spec("GET", MYPERMISSIONS, response)
    # ann, in the level, sees ENG-3; she holds Browse there but not the reporter's edit right
    assert have(my_permissions(tiny.client("ann"), "BROWSE_PROJECTS,EDIT_ISSUES", issueKey="ENG-3")) == {
        "BROWSE_PROJECTS": True,
        "EDIT_ISSUES": False,
    }


def test_a_comment_context_reports_whether_the_comment_is_visible(tiny: PermissionSite) -> None:
    staff_comment = str(tiny.comments["staff"])
    assert have(my_permissions(tiny.client("bob"), "BROWSE_PROJECTS", commentId=staff_comment)) == {
        "BROWSE_PROJECTS": True
    }
    # carl browses ENG-1 but is not in staff; an administrator outside the group is no exception
    for name in ("carl", "ann"):
        assert have(my_permissions(tiny.client(name), "BROWSE_PROJECTS", commentId=staff_comment)) == {
            "BROWSE_PROJECTS": False
        }
    public_comment = str(tiny.comments["public"])
    assert have(my_permissions(tiny.client("carl"), "BROWSE_PROJECTS", commentId=public_comment)) == {
        "BROWSE_PROJECTS": True
    }


def test_a_comment_context_allows_only_browse_projects(tiny: PermissionSite) -> None:
    response = tiny.client("bob").get(
        MYPERMISSIONS, params={"permissions": "BROWSE_PROJECTS,ADD_COMMENTS", "commentId": str(tiny.comments["public"])}
    )
    assert response.status_code == 400
    assert_response_matches_spec("GET", MYPERMISSIONS, response)


def test_a_comment_on_a_hidden_issue_or_a_missing_comment_is_a_404(tiny: PermissionSite) -> None:
    for comment_id in (str(tiny.comments["secret"]), "99999"):
        response = tiny.client("bob").get(
            MYPERMISSIONS, params={"permissions": "BROWSE_PROJECTS", "commentId": comment_id}
        )
        assert response.status_code == 404


def test_anonymous_callers_hold_only_what_anyone_is_granted(tiny: PermissionSite) -> None:
    anonymous = tiny.anonymous()
    assert have(my_permissions(anonymous, "BROWSE_PROJECTS,ADD_COMMENTS,ADMINISTER")) == {
        "BROWSE_PROJECTS": True,
        "ADD_COMMENTS": False,
        "ADMINISTER": False,
    }
    assert have(my_permissions(anonymous, "BROWSE_PROJECTS", projectKey="PUB")) == {"BROWSE_PROJECTS": True}
    assert (
        anonymous.get(MYPERMISSIONS, params={"permissions": "BROWSE_PROJECTS", "projectKey": "ENG"}).status_code == 404
    )


# -- permissions/check -------------------------------------------------------------------------------------------
def eng_check_body(tiny: PermissionSite, **extra: Any) -> dict[str, Any]:
    return {
        "globalPermissions": ["ADMINISTER", "USER_PICKER"],
        "projectPermissions": [
            {
                "permissions": ["EDIT_ISSUES", "BROWSE_PROJECTS"],
                "projects": [tiny.projects["ENG"], tiny.projects["OPS"], 424242],
                "issues": [tiny.issues["ENG-1"], tiny.issues["ENG-2"], tiny.issues["ENG-3"], 424242],
            }
        ],
        **extra,
    }


def by_permission(body: dict[str, Any]) -> dict[str, tuple[list[int], list[int]]]:
    return {entry["permission"]: (entry["projects"], entry["issues"]) for entry in body["projectPermissions"]}


def test_check_for_oneself_reflects_reporter_grants_and_issue_security(tiny: PermissionSite) -> None:
    response = check(tiny.client("bob"), eng_check_body(tiny))
    assert response.status_code == 200
    body = response.json()
    assert body["globalPermissions"] == ["USER_PICKER"]
    eng, eng1, eng2 = tiny.projects["ENG"], tiny.issues["ENG-1"], tiny.issues["ENG-2"]
    # ENG-3 is bob's, but its security level admits only ann; the unknown ids are ignored
    assert by_permission(body) == {"EDIT_ISSUES": ([eng], [eng1]), "BROWSE_PROJECTS": ([eng], [eng1, eng2])}


def test_check_naming_ones_own_account_needs_no_administrator(tiny: PermissionSite) -> None:
    response = check(tiny.client("bob"), eng_check_body(tiny, accountId=tiny.users["bob"]))
    assert response.status_code == 200
    assert by_permission(response.json())["EDIT_ISSUES"] == ([tiny.projects["ENG"]], [tiny.issues["ENG-1"]])


def test_check_for_another_account_is_refused_to_a_non_administrator(tiny: PermissionSite) -> None:
    response = check(tiny.client("bob"), eng_check_body(tiny, accountId=tiny.users["carl"]))
    assert response.status_code == 403
    assert response.json() == {"errorMessages": ["Only Jira administrators can perform this operation."], "errors": {}}
    assert check(tiny.anonymous(), eng_check_body(tiny, accountId=tiny.users["carl"])).status_code == 403


def test_an_administrator_checks_another_account(tiny: PermissionSite) -> None:
    response = check(tiny.client("ann"), eng_check_body(tiny, accountId=tiny.users["carl"]))
    assert response.status_code == 200
    body = response.json()
    assert body["globalPermissions"] == ["USER_PICKER"]  # carl's, not ann's ADMINISTER
    eng, eng1, eng2 = tiny.projects["ENG"], tiny.issues["ENG-1"], tiny.issues["ENG-2"]
    assert by_permission(body) == {"EDIT_ISSUES": ([eng], [eng2]), "BROWSE_PROJECTS": ([eng], [eng1, eng2])}


def test_an_inactive_account_holds_nothing(tiny: PermissionSite) -> None:
    response = check(tiny.client("ann"), eng_check_body(tiny, accountId=tiny.users["ivan"]))
    assert response.status_code == 200
    assert response.json()["globalPermissions"] == []
    assert by_permission(response.json()) == {"EDIT_ISSUES": ([], []), "BROWSE_PROJECTS": ([], [])}


def test_an_administrator_naming_an_unknown_account_gets_a_400(tiny: PermissionSite) -> None:
    assert check(tiny.client("ann"), eng_check_body(tiny, accountId="no-such-account")).status_code == 400


def test_unrecognized_keys_are_listed_in_errors(tiny: PermissionSite) -> None:
    body = {
        "globalPermissions": ["ADMINISTER", "PERMISSION_123", "BROWSE_PROJECTS"],
        "projectPermissions": [{"permissions": ["EDIT_ISSUES", "BULK_CHANGE"], "projects": [tiny.projects["ENG"]]}],
    }
    response = check(tiny.client("bob"), body)
    assert response.status_code == 400
    assert response.json() == {
        "errorMessages": [],
        "errors": {
            "PERMISSION_123": "Unrecognized permission",
            "BROWSE_PROJECTS": "Unrecognized permission",
            "BULK_CHANGE": "Unrecognized permission",
        },
    }


def test_a_project_entry_without_a_permission_is_a_400(tiny: PermissionSite) -> None:
    for permissions in ([], ["", None]):
        body = {"projectPermissions": [{"permissions": permissions, "projects": [tiny.projects["ENG"]]}]}
        assert check(tiny.client("bob"), body).status_code == 400


def test_nulls_and_empty_strings_are_ignored(tiny: PermissionSite) -> None:
    body = {
        "globalPermissions": [None, "USER_PICKER"],
        "projectPermissions": [
            None,
            {"permissions": ["", "BROWSE_PROJECTS", None], "projects": [None, tiny.projects["PUB"]], "issues": None},
        ],
    }
    response = check(tiny.client("erin"), body)
    assert response.status_code == 200
    assert response.json() == {
        "globalPermissions": ["USER_PICKER"],
        "projectPermissions": [{"permission": "BROWSE_PROJECTS", "issues": [], "projects": [tiny.projects["PUB"]]}],
    }


def test_more_than_1000_valid_issue_ids_is_a_400_but_invalid_ids_do_not_count(tiny: PermissionSite) -> None:
    b = tiny.builder
    extra = [b.issue(tiny.projects["PUB"], f"filler {i}", reporter=tiny.users["erin"]) for i in range(1000)]
    valid = [tiny.issues["PUB-1"], *extra]
    too_many = {"projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "issues": valid}]}
    assert check(tiny.client("erin"), too_many).status_code == 400
    exactly = {"projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "issues": [*valid[:1000], -1, 7, 8]}]}
    response = check(tiny.client("erin"), exactly)
    assert response.status_code == 200
    assert by_permission(response.json())["BROWSE_PROJECTS"][1] == sorted(valid[:1000])


def test_anonymous_check_reads_anyone_grants(tiny: PermissionSite) -> None:
    body = {"projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "projects": list(tiny.projects.values())}]}
    response = check(tiny.anonymous(), body)
    assert response.status_code == 200
    assert by_permission(response.json()) == {"BROWSE_PROJECTS": ([tiny.projects["PUB"]], [])}


def test_check_is_allowed_with_the_granular_permission_scope(tiny: PermissionSite) -> None:
    client = tiny.gateway("bob", ["read:permission:jira"])
    response = client.post(CHECK, json={"globalPermissions": ["USER_PICKER"]})
    assert response.status_code == 200
    assert response.json() == {"globalPermissions": ["USER_PICKER"], "projectPermissions": []}


# -- permissions/project -----------------------------------------------------------------------------------------
def permitted(client: httpx.Client, keys: list[str]) -> list[str]:
    response = client.post(PERMITTED, json={"permissions": keys})
    assert response.status_code == 200, response.text
    body = assert_response_matches_spec("POST", PERMITTED, response)
    return [project["key"] for project in body["projects"]]


def test_permitted_projects_need_every_listed_permission(tiny: PermissionSite) -> None:
    assert permitted(tiny.client("bob"), ["BROWSE_PROJECTS"]) == ["ENG", "PUB"]
    assert permitted(tiny.client("bob"), ["BROWSE_PROJECTS", "EDIT_ISSUES"]) == ["ENG"]
    assert permitted(tiny.client("erin"), ["BROWSE_PROJECTS", "EDIT_ISSUES"]) == []
    assert permitted(tiny.client("olga"), ["EDIT_ISSUES"]) == ["OPS"]
    assert permitted(tiny.anonymous(), ["BROWSE_PROJECTS"]) == ["PUB"]


def test_permitted_projects_carry_id_and_key(tiny: PermissionSite) -> None:
    response = tiny.client("olga").post(PERMITTED, json={"permissions": ["BROWSE_PROJECTS"]})
    # PUB is open to anyone, so to olga as well
    assert response.json() == {
        "projects": [{"id": tiny.projects["OPS"], "key": "OPS"}, {"id": tiny.projects["PUB"], "key": "PUB"}]
    }


@pytest.mark.parametrize("body", [{"permissions": ["NOPE"]}, {"permissions": ["ADMINISTER"]}, {}])
def test_permitted_projects_reject_unknown_global_or_missing_keys(tiny: PermissionSite, body: dict[str, Any]) -> None:
    response = tiny.client("bob").post(PERMITTED, json=body)
    assert response.status_code == 400
    assert_response_matches_spec("POST", PERMITTED, response)


# -- application roles -------------------------------------------------------------------------------------------
def test_application_roles_are_for_administrators_only(tiny: PermissionSite) -> None:
    for path in (ROLES, ROLE.format(key="jira-software")):
        response = tiny.client("bob").get(path)
        assert response.status_code == 403
        assert response.json()["errorMessages"] == [
            "You are not authorized to perform this action. Administrator privileges are required."
        ]


def test_an_application_role_shows_current_group_names_and_counts_active_members(tiny: PermissionSite) -> None:
    tiny.builder.site.groups[tiny.groups["ops"]].name = "operations"
    response = tiny.client("ann").get(ROLE.format(key="jira-software"))
    assert response.status_code == 200
    role = assert_response_matches_spec("GET", ROLE, response)
    assert role["key"] == "jira-software"
    assert role["groups"] == ["jira-users", "operations"]
    assert [(g["name"], g["groupId"]) for g in role["groupDetails"]] == [
        ("jira-users", tiny.groups["jira-users"]),
        ("operations", tiny.groups["ops"]),
    ]
    assert role["defaultGroups"] == ["jira-users"]
    # ann, bob, carl, erin and olga; ivan is inactive
    assert role["userCount"] == 5
    assert role["remainingSeats"] == role["numberOfSeats"] - 5
    listed = tiny.client("ann").get(ROLES)
    assert assert_response_matches_spec("GET", ROLES, listed) == [role]


def test_an_unknown_application_role_is_a_404(tiny: PermissionSite) -> None:
    assert tiny.client("ann").get(ROLE.format(key="jira-nothing")).status_code == 404


# -- a generated site: the endpoints agree with each other -------------------------------------------------------
def generated_clients() -> tuple[Any, dict[str, httpx.Client]]:
    from jira_lab.sim.generator import generate_site

    site = generate_site("tiny", 0)
    cloud = SimCloud(site)
    tokens = {"admin": "sim-api-token-admin", "technical_user": "sim-api-token-technical-user"}
    clients = {}
    for role, token in tokens.items():
        email = site.users[site.accounts[role]].email
        assert email is not None
        clients[role] = basic_client(cloud, site, email, token)
    return site, clients


def test_generated_site_checks_agree_with_mypermissions_and_across_callers() -> None:
    site, clients = generated_clients()
    technical = clients["technical_user"]
    body = {
        "globalPermissions": list(GLOBAL_PERMISSIONS),
        "projectPermissions": [
            {"permissions": ["BROWSE_PROJECTS"], "projects": list(site.projects), "issues": list(site.issues)}
        ],
    }
    own = check(technical, body)
    assert own.status_code == 200
    on_behalf = check(clients["admin"], {**body, "accountId": site.accounts["technical_user"]})
    assert on_behalf.json() == own.json()
    (browse,) = own.json()["projectPermissions"]
    # the generated site hides some issues from its technical user, so the comparison below means something
    assert 0 < len(browse["issues"]) < len(site.issues)
    # mypermissions answers 404 for exactly the issues the check leaves out
    for issue in site.issues.values():
        response = technical.get(MYPERMISSIONS, params={"permissions": "BROWSE_PROJECTS", "issueId": str(issue.id)})
        assert (response.status_code == 200) == (issue.id in browse["issues"]), issue.key
    permitted_ids = [
        p["id"] for p in technical.post(PERMITTED, json={"permissions": ["BROWSE_PROJECTS"]}).json()["projects"]
    ]
    assert sorted(permitted_ids) == browse["projects"]
    global_answers = my_permissions(technical, ",".join(GLOBAL_PERMISSIONS))
    assert [k for k in GLOBAL_PERMISSIONS if global_answers[k]["havePermission"]] == own.json()["globalPermissions"]
