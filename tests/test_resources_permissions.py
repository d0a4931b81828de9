"""Permission schemes, grants, projects' schemes and permission answers, through the simulated site and against it."""

from __future__ import annotations

from typing import Any

import pytest
from resource_helpers import (
    READ_ONLY_CLASSIC_SCOPES,
    answers,
    as_account,
    partial_project_admin,
    principal,
    refusals,
    viewable_project_ids,
    without_admin,
)

from jira_lab.pagination import Page
from jira_lab.permission_keys import GLOBAL_PERMISSIONS, PROJECT_PERMISSIONS
from jira_lab.resources.access import Refusal
from jira_lab.resources.permissions import (
    MY_PERMISSIONS,
    PERMISSION_CHECKS,
    PERMISSION_GRANTS,
    PERMISSION_SCHEMES,
    PROJECT_PERMISSION_SCHEMES,
    MyPermissionsAnswer,
    PermissionCheckAnswer,
    check_requests,
    fetch_my_permissions,
    fetch_permission_catalogue,
    fetch_permission_checks,
    fetch_permission_schemes,
    fetch_project_permission_schemes,
    holder_columns,
    my_permissions_frame,
    permission_checks_frame,
    permission_keys,
    permission_schemes_frames,
    project_permission_schemes_frame,
)
from jira_lab.schema import GLOBAL_CONTEXT
from jira_lab.sim.api.permissions import ADMIN_ONLY_CHECK
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Holder, Site
from jira_lab.sim.permissions import PermissionEngine

SITES = ("tiny", "demo")
SAME_PARAMETER_AND_VALUE = {"user", "projectRole", "applicationRole", "userCustomField", "groupCustomField"}


def fresh(size: str) -> Site:
    return generate_site(size, 0)


def items_of(pages: list[Any]) -> list[dict[str, Any]]:
    return [item for page in answers(pages) if isinstance(page, Page) for item in page.items]


def expected_holder(site: Site, holder: Holder) -> tuple[str, str | None, str | None]:
    """type, parameter, value as jira-endpoints.md §14 says Jira writes them."""
    if holder.type == "group" and holder.parameter is not None:
        return ("group", site.groups[holder.parameter].name, holder.parameter)  # the name changes, the id does not
    if holder.type in SAME_PARAMETER_AND_VALUE and holder.parameter is not None:
        return (holder.type, holder.parameter, holder.parameter)
    return (holder.type, None, None)


def keys_of(site: Site, role: str = "analyst") -> dict[str, Any]:
    catalogue = principal(site, role).collect(fetch_permission_catalogue)
    return permission_keys(items_of(catalogue))


# -- schemes and grants --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_every_grant_of_every_scheme_comes_with_its_holder_as_jira_writes_it(size: str) -> None:
    site = fresh(size)
    group_holder = next(
        g.holder.parameter
        for s in site.permission_schemes.values()
        for g in s.grants
        if g.holder.type == "group" and g.holder.parameter
    )
    site.groups[group_holder].name = "renamed-grant-holder"
    caller = principal(site, "analyst")
    items = caller.collect(fetch_permission_schemes)

    frames = permission_schemes_frames(items_of(items), site_id="s")
    schemes, grants = frames["permission_schemes"], frames["permission_grants"]
    assert schemes.schema == PERMISSION_SCHEMES.polars_schema and grants.schema == PERMISSION_GRANTS.polars_schema
    assert dict(zip(schemes["id"], schemes["name"], strict=True)) == {
        s.id: s.name for s in site.permission_schemes.values()
    }
    rows = grants.select("scheme_id", "id", "permission", "holder_type", "holder_parameter", "holder_value").rows()
    assert sorted(rows) == sorted(
        (s.id, g.id, g.permission, *expected_holder(site, g.holder))
        for s in site.permission_schemes.values()
        for g in s.grants
    )
    holder_types = {g.holder.type for s in site.permission_schemes.values() for g in s.grants}
    assert {"group", "projectRole", "user", "applicationRole", "reporter", "userCustomField"} <= holder_types
    assert ("group", "renamed-grant-holder", group_holder) in {r[3:] for r in rows}
    assert len(caller.transport.requests) == 1  # every grant of every scheme in one request


@pytest.mark.parametrize("size", SITES)
def test_each_projects_permission_scheme(size: str) -> None:
    site = fresh(size)
    items = principal(site, "analyst").collect(lambda c: fetch_project_permission_schemes(c, list(site.projects)))

    frame = project_permission_schemes_frame(answers(items), site_id="s")
    assert frame.schema == PROJECT_PERMISSION_SCHEMES.polars_schema
    assert dict(frame.select("project_id", "scheme_id").rows()) == {
        p.id: p.permission_scheme_id for p in site.projects.values()
    }


def test_projects_schemes_are_refused_project_by_project_to_a_principal_administering_none_of_them() -> None:
    site = without_admin(fresh("demo"), "search-connectors")
    technical_user = site.accounts["technical_user"]
    viewable = viewable_project_ids(site, technical_user)
    caller = principal(site, "technical_user")

    schemes = caller.collect(fetch_permission_schemes)
    items = caller.collect(lambda c: fetch_project_permission_schemes(c, viewable))

    assert refusals(schemes) == [] and items_of(schemes)  # the grants are readable with access to Jira
    assert answers(items) == []
    assert [(r.resource, r.outcome, r.http_status) for r in refusals(items)] == [
        (f"project_permission_schemes:{p}", "forbidden", 403) for p in viewable
    ]


def test_a_project_administrator_reads_only_its_own_projects_scheme() -> None:
    site = fresh("demo")
    account = partial_project_admin(site)
    engine = PermissionEngine(site)
    viewable = viewable_project_ids(site, account)
    items = as_account(site, account).collect(lambda c: fetch_project_permission_schemes(c, viewable))

    administered = {p for p in viewable if engine.can_administer_project(account, site.projects[p])}
    frame = project_permission_schemes_frame(answers(items), site_id="s")
    assert set(frame["project_id"]) == administered
    assert {r.resource for r in refusals(items)} == {f"project_permission_schemes:{p}" for p in viewable} - {
        f"project_permission_schemes:{p}" for p in administered
    }


# -- the loading principal's own permissions -----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "role"), [("tiny", "analyst"), ("demo", "analyst"), ("demo", "technical_user")])
def test_my_permissions_are_the_principals_own_globally_and_in_every_project(size: str, role: str) -> None:
    site = fresh(size)
    account = site.accounts[role]
    engine = PermissionEngine(site)
    keys = keys_of(site, role)
    projects = viewable_project_ids(site, account)
    caller = principal(site, role)
    items = caller.collect(lambda c: fetch_my_permissions(c, projects, keys=keys))

    frame = my_permissions_frame(answers(items), site_id="s", principal_id=account, load_id=7)
    assert frame.schema == MY_PERMISSIONS.polars_schema
    expected = {
        (GLOBAL_CONTEXT, key, kind, engine.has_global(account, key)) for key, kind in keys.items() if kind == "GLOBAL"
    }
    expected |= {
        (GLOBAL_CONTEXT, key, kind, engine.has_permission_in_any_project(account, key))
        for key, kind in keys.items()
        if kind == "PROJECT"
    }
    expected |= {
        (p, key, "PROJECT", engine.has_project_permission(account, key, site.projects[p]))
        for p in projects
        for key, kind in keys.items()
        if kind == "PROJECT"
    }
    assert set(frame.select("project_id", "permission", "permission_type", "have_permission").rows()) == expected
    assert set(frame["load_id"]) == {7} and set(frame["principal_id"]) == {account}
    # the global context and one bulk check, not one mypermissions per project
    assert len(caller.transport.requests) == 2


def test_without_the_catalogue_the_built_in_keys_are_asked() -> None:
    site = fresh("tiny")
    caller = principal(site, "analyst", scopes=READ_ONLY_CLASSIC_SCOPES)
    catalogue = caller.collect(fetch_permission_catalogue)

    [refusal] = catalogue
    assert isinstance(refusal, Refusal)
    assert (refusal.resource, refusal.outcome) == ("permission_catalogue", "missing_scope")
    keys = permission_keys(None)
    assert keys == {
        **dict.fromkeys(GLOBAL_PERMISSIONS, "GLOBAL"),
        **dict.fromkeys(PROJECT_PERMISSIONS, "PROJECT"),
    }
    items = caller.collect(lambda c: fetch_my_permissions(c, list(site.projects), keys=keys))

    # permissions/check has no classic scope: this token gets mypermissions asked project by project instead
    assert refusals(items) == []
    frame = my_permissions_frame(answers(items), site_id="s", principal_id=caller.account_id)
    assert frame.height == len(keys) + len(site.projects) * len(PROJECT_PERMISSIONS)
    engine = PermissionEngine(site)
    assert set(frame.filter(frame["project_id"] != 0).select("project_id", "permission", "have_permission").rows()) == {
        (p.id, key, engine.has_project_permission(caller.account_id, key, p))
        for p in site.projects.values()
        for key in PROJECT_PERMISSIONS
    }
    assert len(caller.transport.paths("/mypermissions")) == 1 + len(site.projects)


def test_a_token_that_may_ask_neither_endpoint_gets_one_refusal_and_no_request_per_project() -> None:
    site = fresh("tiny")
    caller = principal(site, "analyst", scopes={"read:jira-user"})
    items = caller.collect(lambda c: fetch_my_permissions(c, list(site.projects), keys=permission_keys(None)))

    [refusal] = items
    assert isinstance(refusal, Refusal)
    assert (refusal.resource, refusal.outcome) == ("my_permissions", "missing_scope")
    assert len(caller.transport.requests) == 2  # mypermissions once, permissions/check once


def test_a_key_the_site_does_not_know_is_dropped_and_the_rest_answered() -> None:
    site = fresh("tiny")
    keys = {**keys_of(site), "APP_ONLY_GLOBAL": "GLOBAL", "APP_ONLY_PROJECT": "PROJECT"}
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_my_permissions(c, list(site.projects), keys=keys))

    frame = my_permissions_frame(answers(items), site_id="s", principal_id=caller.account_id)
    assert not {"APP_ONLY_GLOBAL", "APP_ONLY_PROJECT"} & set(frame["permission"])
    assert set(frame["permission"]) == set(keys) - {"APP_ONLY_GLOBAL", "APP_ONLY_PROJECT"}


# -- another account's permissions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_an_administrator_checks_the_technical_users_permissions_everywhere(size: str) -> None:
    site = fresh(size)
    technical_user = site.accounts["technical_user"]
    engine = PermissionEngine(site)
    keys = keys_of(site)
    issues = {i.id: i.project_id for i in list(site.issues.values())[:25]}
    caller = principal(site, "analyst")
    items = caller.collect(
        lambda c: fetch_permission_checks(c, technical_user, list(site.projects), keys=keys, issue_projects=issues)
    )

    assert refusals(items) == []
    frame = permission_checks_frame(answers(items), site_id="s", principal_id=caller.account_id)
    assert frame.schema == PERMISSION_CHECKS.polars_schema
    expected = {(key, 0, 0, engine.has_global(technical_user, key)) for key, kind in keys.items() if kind == "GLOBAL"}
    for key in (key for key, kind in keys.items() if kind == "PROJECT"):
        expected |= {
            (key, p.id, 0, engine.has_project_permission(technical_user, key, p)) for p in site.projects.values()
        }
        expected |= {
            (key, issue.project_id, issue.id, engine.has_issue_permission(technical_user, key, issue))
            for issue in (site.issues[i] for i in issues)
        }
    assert set(frame.select("permission", "project_id", "issue_id", "have_permission").rows()) == expected
    assert set(frame["account_id"]) == {technical_user}
    administer = frame.filter(frame["permission"] == "ADMINISTER")["have_permission"].item()
    assert administer == engine.is_admin(technical_user)


def test_checking_the_demo_connector_shows_it_administers_jira_but_cannot_browse_hr() -> None:
    site = fresh("demo")
    keys = keys_of(site)
    items = principal(site, "analyst").collect(
        lambda c: fetch_permission_checks(c, site.accounts["technical_user"], list(site.projects), keys=keys)
    )

    frame = permission_checks_frame(answers(items), site_id="s", principal_id=site.accounts["analyst"])
    held = {
        (row[0], row[1]) for row in frame.filter(frame["have_permission"]).select("permission", "project_id").rows()
    }
    hr = site.project_by_key("HR")
    eng = site.project_by_key("ENG")
    assert hr is not None and eng is not None
    assert ("ADMINISTER", 0) in held  # the story: its group search-connectors holds Jira Administrators
    assert ("BROWSE_PROJECTS", hr.id) not in held
    assert ("BROWSE_PROJECTS", eng.id) in held


def test_a_principal_without_administer_jira_gets_the_check_of_another_account_refused_once() -> None:
    site = without_admin(fresh("demo"), "search-connectors")
    keys = keys_of(site)
    caller = principal(site, "technical_user")
    analyst = site.accounts["analyst"]
    items = caller.collect(
        lambda c: fetch_permission_checks(c, analyst, list(site.projects), keys=keys, issue_projects={10: 10000})
    )

    [refusal] = items
    assert isinstance(refusal, Refusal)
    assert (refusal.resource, refusal.outcome, refusal.http_status, refusal.message) == (
        f"permission_checks:{analyst}",
        "forbidden",
        403,
        ADMIN_ONLY_CHECK,
    )
    assert len(caller.transport.requests) == 1


def test_check_requests_carry_at_most_1000_ids_and_the_global_keys_once() -> None:
    keys: dict[str, Any] = {"ADMINISTER": "GLOBAL", "BROWSE_PROJECTS": "PROJECT"}
    bodies = check_requests(keys, range(2500), issue_ids=range(1500), global_permissions=True)

    assert [
        len(b["projectPermissions"][0].get("projects", b["projectPermissions"][0].get("issues"))) for b in bodies
    ] == [
        1000,
        1000,
        500,
        1000,
        500,
    ]
    assert [b.get("globalPermissions") for b in bodies] == [["ADMINISTER"], None, None, None, None]
    assert check_requests({"ADMINISTER": "GLOBAL"}, [1, 2], global_permissions=True) == [
        {"globalPermissions": ["ADMINISTER"]}
    ]


def test_a_check_answer_lists_only_what_is_held_and_every_asked_pair_gets_a_row() -> None:
    answer = PermissionCheckAnswer(
        "tech",
        {
            "globalPermissions": ["ADMINISTER", "USER_PICKER"],
            "projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "projects": [1, 2], "issues": [7]}],
        },
        {
            "globalPermissions": ["USER_PICKER"],
            "projectPermissions": [{"permission": "BROWSE_PROJECTS", "projects": [2], "issues": [7]}],
        },
        {7: 1},
    )
    frame = permission_checks_frame([answer], site_id="s", principal_id="boss")
    assert sorted(frame.select("permission", "project_id", "issue_id", "have_permission").rows()) == [
        ("ADMINISTER", 0, 0, False),
        ("BROWSE_PROJECTS", 1, 0, False),
        ("BROWSE_PROJECTS", 1, 7, True),
        ("BROWSE_PROJECTS", 2, 0, True),
        ("USER_PICKER", 0, 0, True),
    ]
    mine = my_permissions_frame(
        [MyPermissionsAnswer(0, {"ADMINISTER": {"type": "GLOBAL", "havePermission": True}}), answer],
        site_id="s",
        principal_id="boss",
    )
    # issue rows are not the principal's per-project permissions
    assert sorted(mine.select("project_id", "permission", "have_permission").rows()) == [
        (0, "ADMINISTER", False),
        (0, "USER_PICKER", True),
        (1, "BROWSE_PROJECTS", False),
        (2, "BROWSE_PROJECTS", True),
    ]


# -- holders -------------------------------------------------------------------------------------------------------


def test_holder_columns_fill_a_missing_value_from_what_identifies_the_holder() -> None:
    assert holder_columns({"type": "group", "parameter": "old-name", "group": {"groupId": "g-1", "name": "x"}}) == {
        "holder_type": "group",
        "holder_parameter": "old-name",
        "holder_value": "g-1",
    }
    assert holder_columns({"type": "projectRole", "parameter": "10002"})["holder_value"] == "10002"
    assert holder_columns({"type": "group", "parameter": "name-only"})["holder_value"] is None
    assert holder_columns({"type": "reporter"}) == {
        "holder_type": "reporter",
        "holder_parameter": None,
        "holder_value": None,
    }
    assert holder_columns(None)["holder_type"] is None
