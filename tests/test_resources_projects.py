"""Projects, project roles and role actors, read through the simulated site and checked against it."""

from __future__ import annotations

from typing import Any

import pytest
from resource_helpers import (
    answers,
    as_account,
    partial_project_admin,
    principal,
    refusals,
    viewable_project_ids,
    without_admin,
)

from jira_lab.pagination import Page
from jira_lab.resources.access import Refusal
from jira_lab.resources.projects import (
    PROJECT_ROLES,
    PROJECTS,
    ROLE_ACTORS,
    ProjectRolePage,
    fetch_projects,
    fetch_role_actors,
    project_roles_frame,
    projects_frame,
    role_actors_frame,
    role_actors_scope,
    role_ids_of,
    team_managed_ids,
)
from jira_lab.sim.api.roles import CANNOT_EDIT_PROJECT
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

SITES = ("tiny", "demo")


def fresh(size: str) -> Site:
    return generate_site(size, 0)


def items_of(pages: list[Page | Refusal]) -> list[dict[str, Any]]:
    return [item for page in answers(pages) for item in page.items]


def actor_truth(site: Site, project_ids: list[int]) -> set[tuple[int, int, str, str, str]]:
    """(project, role, actor type, actor id, name) of every actor of every role of the projects, from the model."""
    truth = set()
    for project_id in project_ids:
        project = site.projects[project_id]
        for role_id, actors in project.role_actors.items():
            for account_id in actors.account_ids:
                truth.add((project_id, role_id, "user", account_id, site.users[account_id].display_name))
            for group_id in actors.group_ids:
                if group_id in site.groups:
                    truth.add((project_id, role_id, "group", group_id, site.groups[group_id].name))
    return truth


def actor_rows(frame: Any) -> set[tuple[int, int, str, str, str]]:
    return set(frame.select("project_id", "role_id", "actor_type", "actor_id", "actor_name").rows())


# -- projects ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_projects_are_every_project_with_its_lead(size: str) -> None:
    site = fresh(size)
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_projects(c, page_size=1))

    frame = projects_frame(items_of(items), site_id="s")
    assert frame.schema == PROJECTS.polars_schema
    assert {row["id"]: (row["key"], row["name"], row["lead_account_id"]) for row in frame.iter_rows(named=True)} == {
        p.id: (p.key, p.name, p.lead_account_id) for p in site.projects.values()
    }
    assert len(caller.transport.paths("/project/search")) == len(site.projects)  # one page per project, walked


def test_projects_are_only_those_the_principal_may_view() -> None:
    site = fresh("demo")
    technical_user = site.accounts["technical_user"]
    without_admin(site, "search-connectors")
    items = principal(site, "technical_user").collect(fetch_projects)

    frame = projects_frame(items_of(items), site_id="s")
    expected = set(viewable_project_ids(site, technical_user))
    assert set(frame["id"]) == expected
    assert expected < set(site.projects)  # HR is hidden from it, silently


# -- roles and actors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_role_actors_are_every_user_and_group_actor_of_every_role_in_every_project(size: str) -> None:
    site = fresh(size)
    renamed_group = next(gid for p in site.projects.values() for a in p.role_actors.values() for gid in a.group_ids)
    site.groups[renamed_group].name = "renamed-actor-group"
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_role_actors(c, list(site.projects)))

    assert refusals(items) == []
    pages = answers(items)
    actors = role_actors_frame(pages, site_id="s")
    assert actors.schema == ROLE_ACTORS.polars_schema
    assert actor_rows(actors) == actor_truth(site, list(site.projects))
    assert {"user", "group"} <= set(actors["actor_type"])
    assert "renamed-actor-group" in set(actors["actor_name"])
    roles = project_roles_frame(pages, site_id="s")
    assert roles.schema == PROJECT_ROLES.polars_schema
    assert dict(zip(roles["id"], roles["name"], strict=True)) == {r.id: r.name for r in site.project_roles.values()}
    # company-managed projects share the site's roles: one map, then one read per project and role
    assert len(caller.transport.paths("/role")) == 1
    assert len(caller.transport.requests) == 1 + len(site.projects) * len(site.project_roles)


def test_a_team_managed_projects_own_role_map_is_read() -> None:
    site = fresh("tiny")
    first, team_managed = list(site.projects)[:2]
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_role_actors(c, list(site.projects), team_managed=[team_managed]))

    assert actor_rows(role_actors_frame(answers(items), site_id="s")) == actor_truth(site, list(site.projects))
    assert [path.split("/")[-2] for path in caller.transport.paths("/role")] == [
        str(first),
        str(team_managed),
    ]


def test_team_managed_projects_are_the_simplified_ones() -> None:
    projects = [
        {"id": "10000", "style": "classic", "simplified": False},
        {"id": "10001", "style": "next-gen", "simplified": True},
        {"id": "10002", "simplified": True},
    ]
    assert team_managed_ids(projects) == {10001, 10002}


def test_role_actors_refused_site_wide_are_refused_once_with_nothing_more_asked() -> None:
    site = without_admin(fresh("demo"), "search-connectors")
    technical_user = site.accounts["technical_user"]
    assert not PermissionEngine(site).administers_any_project(technical_user)
    caller = principal(site, "technical_user")
    items = caller.collect(lambda c: fetch_role_actors(c, viewable_project_ids(site, technical_user)))

    assert [(r.resource, r.outcome, r.http_status, r.message) for r in refusals(items)] == [
        ("project_roles", "unauthorized", 401, CANNOT_EDIT_PROJECT),
        ("role_actors", "unauthorized", 401, CANNOT_EDIT_PROJECT),
    ]
    assert answers(items) == []
    assert len(caller.transport.requests) == 1


@pytest.mark.parametrize("size", SITES)
def test_a_project_administrator_reads_its_projects_roles_and_gets_the_others_refused(size: str) -> None:
    site = fresh(size)
    account = partial_project_admin(site)
    engine = PermissionEngine(site)
    viewable = viewable_project_ids(site, account)
    administered = [p for p in viewable if engine.can_administer_project(account, site.projects[p])]
    refused = [p for p in viewable if p not in administered]
    assert administered and refused
    caller = as_account(site, account)
    items = caller.collect(lambda c: fetch_role_actors(c, viewable))

    assert actor_rows(role_actors_frame(answers(items), site_id="s")) == actor_truth(site, administered)
    assert [(r.resource, r.outcome, r.http_status) for r in refusals(items)] == [
        (f"role_actors:{p}", "unauthorized", 401) for p in refused
    ]
    # a refused project costs one role read, not one per role
    role_reads = [path for path in caller.transport.paths() if "/role/" in path]
    assert len(role_reads) == len(administered) * len(site.project_roles) + len(refused)


def test_role_ids_come_from_the_last_segment_of_each_role_url() -> None:
    role_map = {
        "Administrators": "https://x.atlassian.net/rest/api/3/project/10000/role/10002",
        "Developers": "https://x.atlassian.net/rest/api/3/project/10000/role/10003/",
        "Broken": "",
    }
    assert role_ids_of(role_map) == [10002, 10003]


def test_role_actors_frame_keys_groups_by_id_and_keeps_actors_of_unknown_types() -> None:
    role = {
        "id": 10002,
        "name": "Administrators",
        "actors": [
            {"id": 1, "displayName": "Ann", "type": "atlassian-user-role-actor", "actorUser": {"accountId": "a-1"}},
            {
                "id": 2,
                "displayName": "developers",
                "type": "atlassian-group-role-actor",
                "name": "developers",
                "actorGroup": {"name": "engineering", "displayName": "engineering", "groupId": "g-1"},
            },
            {"id": 3, "displayName": "legacy group", "type": "atlassian-group-role-actor", "actorGroup": {}},
            {"id": 4, "displayName": "Some app", "type": "atlassian-app-role-actor"},
        ],
    }
    frame = role_actors_frame([ProjectRolePage(10000, role)], site_id="s")
    assert frame.select("actor_type", "actor_id", "actor_name", "role_actor_id").rows() == [
        ("user", "a-1", "Ann", 1),
        ("group", "g-1", "engineering", 2),
        ("atlassian-app-role-actor", "4", "Some app", 4),
    ]


def test_role_actors_scope_names_every_role_read_in_every_project() -> None:
    pages = [
        ProjectRolePage(1, {"id": 10, "actors": []}),
        ProjectRolePage(1, {"id": 11}),
        ProjectRolePage(2, {"id": 10}),
    ]
    scope = role_actors_scope(pages, site_id="s")
    assert scope.rows() == [("s", 1, 10), ("s", 1, 11), ("s", 2, 10)]
    # a role without actors is in the scope, so its stale actors are dropped when the rows are replaced
    assert role_actors_frame(pages, site_id="s").is_empty()
