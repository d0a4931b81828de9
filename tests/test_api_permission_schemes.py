"""Permission schemes and grants on the simulated site: the holder shape per type, ``expand``, and who may read a
project's scheme.

Expected holders are written from the spec's "Holder object" table (``jira-endpoints.md`` §14) and the site built
below: a group holder names the group's *current* name as ``parameter`` and its id as ``value``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts
from spec import assert_matches_spec, assert_response_matches_spec

from jira_lab.sim import Holder, SimCloud, SiteBuilder

SITE_URL = "https://tiny.atlassian.net"
SCHEMES = "/rest/api/3/permissionscheme"
SCHEME = "/rest/api/3/permissionscheme/{schemeId}"
GRANTS = "/rest/api/3/permissionscheme/{schemeId}/permission"
PROJECT_SCHEME = "/rest/api/3/project/{projectKeyOrId}/permissionscheme"
HOLDER_SUB_OBJECTS = ("user", "group", "projectRole", "field")


@dataclass
class SchemeSite(HandBuiltSite):
    group: str
    role: int
    user_field: str
    group_field: str
    #: permission scheme with one grant per holder type, keyed by holder type
    scheme: int
    grants: dict[str, int]
    other_scheme: int
    projects: dict[str, int]


GRANTED_TYPES = [
    "anyone",
    "applicationRole",
    "loggedIn",  # applicationRole without a key: Jira's "Any logged in user"
    "group",
    "user",
    "projectRole",
    "reporter",
    "assignee",
    "projectLead",
    "userCustomField",
    "groupCustomField",
    "sd.customer.portal.only",
]


def build_site() -> SchemeSite:
    """ann: Jira administrator. pat: in the Administrators role of ENG (Administer Projects there). bob: browses ENG
    only. olga: browses OPS only. nick: no product access at all.

    Scheme "Everything" (used by ENG) grants BROWSE_PROJECTS to one holder of every type; ADMINISTER_PROJECTS goes
    to the Administrators role. Scheme "Ops" (used by OPS) grants BROWSE_PROJECTS to olga alone.
    """
    b = SiteBuilder("tiny")
    names = ["ann", "pat", "bob", "olga", "nick"]
    users = add_accounts(b, names)
    everyone = b.group("jira-users", members=[users[n] for n in ("ann", "pat", "bob", "olga")])
    admins = b.group("jira-administrators", members=[users["ann"]])
    developers = b.group("developers", members=[users["bob"]])
    b.application_role("jira-software", "Jira Software", [everyone])
    b.global_permission("ADMINISTER", admins)
    role = b.role("Administrators", "Project administrators")
    user_field = b.custom_field("Reviewer", "user")
    group_field = b.custom_field("Approver groups", "group", multi=True)
    holders = {
        "anyone": Holder("anyone"),
        "applicationRole": Holder("applicationRole", "jira-software"),
        "loggedIn": Holder("applicationRole"),
        "group": Holder("group", developers),
        "user": Holder("user", users["bob"]),
        "projectRole": Holder("projectRole", str(role)),
        "reporter": Holder("reporter"),
        "assignee": Holder("assignee"),
        "projectLead": Holder("projectLead"),
        "userCustomField": Holder("userCustomField", user_field),
        "groupCustomField": Holder("groupCustomField", group_field),
        "sd.customer.portal.only": Holder("sd.customer.portal.only"),
    }
    scheme = b.permission_scheme("Everything")
    grants = {kind: b.grant(scheme, "BROWSE_PROJECTS", holders[kind]) for kind in GRANTED_TYPES}
    b.grant(scheme, "ADMINISTER_PROJECTS", Holder("projectRole", str(role)))
    other = b.permission_scheme("Ops", grants=[("BROWSE_PROJECTS", Holder("user", users["olga"]))])
    eng = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=scheme)
    ops = b.project("OPS", "Operations", lead=users["olga"], permission_scheme=other)
    b.role_actor(eng, role, users=[users["pat"]])
    return SchemeSite(
        b,
        SimCloud(b.site),
        users,
        developers,
        role,
        user_field,
        group_field,
        scheme,
        grants,
        other,
        {"ENG": eng, "OPS": ops},
    )


@pytest.fixture
def tiny() -> SchemeSite:
    return build_site()


def get_json(client: httpx.Client, template: str, path: dict[str, str], **params: str) -> Any:
    response = client.get(template.format(**path), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def without_sub_objects(body: Any) -> Any:
    """The body with every holder's expanded sub-object removed.

    The spec declares ``PermissionHolder`` with ``additionalProperties: false`` while its own examples carry
    ``holder.user``; what remains must match the spec exactly.
    """
    stripped = copy.deepcopy(body)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            holder = node.get("holder")
            if isinstance(holder, dict):
                for name in HOLDER_SUB_OBJECTS:
                    holder.pop(name, None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(stripped)
    return stripped


def holders_by_grant(grants: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {grant["id"]: grant["holder"] for grant in grants}


# -- holder shape ------------------------------------------------------------------------------------------------
def test_every_holder_type_has_the_parameter_and_value_the_spec_documents(tiny: SchemeSite) -> None:
    tiny.builder.site.groups[tiny.group].name = "engineers"  # renamed after the grant was made
    response = tiny.client("bob").get(GRANTS.format(schemeId=tiny.scheme))
    assert response.status_code == 200
    body = assert_response_matches_spec("GET", GRANTS, response)
    holders = holders_by_grant(body["permissions"])
    bob, role = tiny.users["bob"], str(tiny.role)
    expected = {
        "anyone": {"type": "anyone"},
        "applicationRole": {"type": "applicationRole", "parameter": "jira-software", "value": "jira-software"},
        "loggedIn": {"type": "applicationRole"},
        "group": {"type": "group", "parameter": "engineers", "value": tiny.group, "expand": "group"},
        "user": {"type": "user", "parameter": bob, "value": bob, "expand": "user"},
        "projectRole": {"type": "projectRole", "parameter": role, "value": role, "expand": "projectRole"},
        "reporter": {"type": "reporter"},
        "assignee": {"type": "assignee"},
        "projectLead": {"type": "projectLead"},
        "userCustomField": {
            "type": "userCustomField",
            "parameter": tiny.user_field,
            "value": tiny.user_field,
            "expand": "field",
        },
        "groupCustomField": {
            "type": "groupCustomField",
            "parameter": tiny.group_field,
            "value": tiny.group_field,
            "expand": "field",
        },
        "sd.customer.portal.only": {"type": "sd.customer.portal.only"},
    }
    assert {kind: holders[grant_id] for kind, grant_id in tiny.grants.items()} == expected


def test_a_grant_carries_its_id_self_link_and_permission_key(tiny: SchemeSite) -> None:
    body = get_json(tiny.client("bob"), GRANTS, {"schemeId": str(tiny.scheme)})
    grant = next(g for g in body["permissions"] if g["id"] == tiny.grants["user"])
    assert grant["permission"] == "BROWSE_PROJECTS"
    assert grant["self"] == f"{SITE_URL}/rest/api/3/permissionscheme/{tiny.scheme}/permission/{grant['id']}"
    assert len(body["permissions"]) == len(GRANTED_TYPES) + 1


# -- expand ------------------------------------------------------------------------------------------------------
def test_the_scheme_list_has_grants_only_when_expand_has_a_value(tiny: SchemeSite) -> None:
    bare = get_json(tiny.client("bob"), SCHEMES, {})
    assert [s["name"] for s in bare["permissionSchemes"]] == ["Everything", "Ops"]
    assert all("permissions" not in s for s in bare["permissionSchemes"])
    for expand in ("permissions", "user", "field", "anything"):
        expanded = get_json(tiny.client("bob"), SCHEMES, {}, expand=expand)
        counts = [len(s["permissions"]) for s in expanded["permissionSchemes"]]
        assert counts == [len(GRANTED_TYPES) + 1, 1], expand


def test_expand_permissions_alone_adds_no_holder_sub_object(tiny: SchemeSite) -> None:
    body = get_json(tiny.client("bob"), SCHEME, {"schemeId": str(tiny.scheme)}, expand="permissions")
    assert not any(name in g["holder"] for g in body["permissions"] for name in HOLDER_SUB_OBJECTS)


def test_expand_user_adds_only_user_sub_objects(tiny: SchemeSite) -> None:
    body = get_json(tiny.client("bob"), SCHEME, {"schemeId": str(tiny.scheme)}, expand="user")
    holders = holders_by_grant(body["permissions"])
    user = holders[tiny.grants["user"]]["user"]
    assert (user["accountId"], user["displayName"]) == (tiny.users["bob"], "Bob")
    assert "group" not in holders[tiny.grants["group"]]
    assert "projectRole" not in holders[tiny.grants["projectRole"]]


def test_expand_all_adds_every_sub_object_with_current_names(tiny: SchemeSite) -> None:
    tiny.builder.site.groups[tiny.group].name = "engineers"
    body = get_json(tiny.client("bob"), GRANTS, {"schemeId": str(tiny.scheme)}, expand="all")
    holders = holders_by_grant(body["permissions"])
    assert holders[tiny.grants["group"]]["group"] == {
        "name": "engineers",
        "groupId": tiny.group,
        "self": f"{SITE_URL}/rest/api/3/group?groupId={tiny.group}",
    }
    role = holders[tiny.grants["projectRole"]]["projectRole"]
    assert (role["id"], role["name"], role["description"]) == (tiny.role, "Administrators", "Project administrators")
    user_field = holders[tiny.grants["userCustomField"]]["field"]
    assert (user_field["id"], user_field["name"], user_field["custom"]) == (tiny.user_field, "Reviewer", True)
    assert holders[tiny.grants["groupCustomField"]]["field"]["name"] == "Approver groups"
    assert holders[tiny.grants["user"]]["user"]["accountId"] == tiny.users["bob"]
    assert holders[tiny.grants["reporter"]] == {"type": "reporter"}
    assert_matches_spec("GET", GRANTS, 200, without_sub_objects(body))


def test_several_expand_values_combine(tiny: SchemeSite) -> None:
    body = get_json(tiny.client("bob"), GRANTS, {"schemeId": str(tiny.scheme)}, expand="group,projectRole")
    holders = holders_by_grant(body["permissions"])
    assert "group" in holders[tiny.grants["group"]]
    assert "projectRole" in holders[tiny.grants["projectRole"]]
    assert "user" not in holders[tiny.grants["user"]]
    assert "field" not in holders[tiny.grants["userCustomField"]]


def test_the_grant_list_always_has_grants_and_names_its_expands(tiny: SchemeSite) -> None:
    response = tiny.client("bob").get(GRANTS.format(schemeId=tiny.other_scheme))
    body = assert_response_matches_spec("GET", GRANTS, response)
    assert body["expand"] == "user,group,projectRole,field,all"
    assert [g["holder"] for g in body["permissions"]] == [
        {"type": "user", "parameter": tiny.users["olga"], "value": tiny.users["olga"], "expand": "user"}
    ]


def test_a_single_scheme_matches_the_spec_with_and_without_grants(tiny: SchemeSite) -> None:
    for params in ({}, {"expand": "permissions"}):
        response = tiny.client("bob").get(SCHEME.format(schemeId=tiny.other_scheme), params=params)
        body = assert_response_matches_spec("GET", SCHEME, response)
        assert (body["id"], body["name"]) == (tiny.other_scheme, "Ops")
        assert body["self"] == f"{SITE_URL}/rest/api/3/permissionscheme/{tiny.other_scheme}"
        assert ("permissions" in body) == bool(params)


# -- who may read ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme_id", ["99999", "not-a-number"])
def test_an_unknown_scheme_is_a_404(tiny: SchemeSite, scheme_id: str) -> None:
    for template in (SCHEME, GRANTS):
        response = tiny.client("bob").get(template.format(schemeId=scheme_id))
        assert response.status_code == 404
        assert_response_matches_spec("GET", template, response)


def test_schemes_need_access_to_jira(tiny: SchemeSite) -> None:
    nick = tiny.client("nick")
    assert nick.get(SCHEMES).status_code == 403
    assert nick.get(SCHEME.format(schemeId=tiny.scheme)).status_code == 404
    anonymous = tiny.anonymous()
    assert anonymous.get(SCHEMES).status_code == 401


@pytest.mark.parametrize("name", ["ann", "pat"])
def test_administrators_read_a_projects_scheme(tiny: SchemeSite, name: str) -> None:
    response = tiny.client(name).get(PROJECT_SCHEME.format(projectKeyOrId="ENG"), params={"expand": "permissions"})
    assert response.status_code == 200
    body = assert_response_matches_spec("GET", PROJECT_SCHEME, response)
    assert (body["id"], body["name"]) == (tiny.scheme, "Everything")
    assert len(body["permissions"]) == len(GRANTED_TYPES) + 1


def test_the_project_can_be_named_by_id(tiny: SchemeSite) -> None:
    body = get_json(tiny.client("ann"), PROJECT_SCHEME, {"projectKeyOrId": str(tiny.projects["OPS"])})
    assert (body["id"], "permissions" in body) == (tiny.other_scheme, False)


def test_a_browsing_user_may_not_read_the_projects_scheme(tiny: SchemeSite) -> None:
    # bob browses ENG (group, user and application role grants) but does not administer it
    response = tiny.client("bob").get(PROJECT_SCHEME.format(projectKeyOrId="ENG"))
    assert response.status_code == 403
    assert_response_matches_spec("GET", PROJECT_SCHEME, response)


def test_a_project_the_caller_cannot_view_is_a_404(tiny: SchemeSite) -> None:
    # pat administers ENG only; OPS grants Browse to olga alone
    for name, key in (("pat", "OPS"), ("bob", "OPS"), ("bob", "NOPE")):
        response = tiny.client(name).get(PROJECT_SCHEME.format(projectKeyOrId=key))
        assert response.status_code == 404, (name, key)
        assert_response_matches_spec("GET", PROJECT_SCHEME, response)
