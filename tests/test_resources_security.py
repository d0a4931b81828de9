"""Issue security schemes, levels, level members and projects' schemes, through the simulated site and against it."""

from __future__ import annotations

from typing import Any

import pytest
from resource_helpers import (
    answers,
    as_account,
    group_id_named,
    partial_project_admin,
    principal,
    refusals,
    viewable_project_ids,
    without_admin,
)

from jira_lab.pagination import Page
from jira_lab.resources.security import (
    PROJECT_SECURITY_SCHEMES,
    SECURITY_LEVEL_MEMBERS,
    SECURITY_LEVELS,
    SECURITY_SCHEMES,
    ProjectSecurityScheme,
    fetch_project_security_schemes,
    fetch_security_level_members,
    fetch_security_levels,
    fetch_security_schemes,
    levels_of_schemes,
    project_security_schemes_frame,
    security_level_members_frame,
    security_levels_frame,
    security_schemes_frame,
)
from jira_lab.sim.api.admin_only import ADMIN_REQUIRED
from jira_lab.sim.api.projects import PROJECT_NOT_ADMINISTERED
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
        return ("group", site.groups[holder.parameter].name, holder.parameter)
    if holder.type in SAME_PARAMETER_AND_VALUE and holder.parameter is not None:
        return (holder.type, holder.parameter, holder.parameter)
    return (holder.type, None, None)


def level_truth(site: Site, scheme_ids: set[int] | None = None) -> set[tuple[int, int, str, bool]]:
    return {
        (level.id, scheme.id, level.name, scheme.default_level_id == level.id)
        for scheme in site.security_schemes.values()
        if scheme_ids is None or scheme.id in scheme_ids
        for level in scheme.levels
    }


# -- administrators' view --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_schemes_and_levels_are_every_scheme_and_level_with_integer_ids(size: str) -> None:
    site = fresh(size)
    caller = principal(site, "analyst")
    schemes = caller.collect(fetch_security_schemes)
    levels = caller.collect(lambda c: fetch_security_levels(c, page_size=1))

    schemes_frame = security_schemes_frame(items_of(schemes), site_id="s")
    assert schemes_frame.schema == SECURITY_SCHEMES.polars_schema
    assert set(schemes_frame.select("id", "name", "default_security_level_id").rows()) == {
        (s.id, s.name, s.default_level_id) for s in site.security_schemes.values()
    }
    levels_frame = security_levels_frame(items_of(levels), site_id="s")
    assert levels_frame.schema == SECURITY_LEVELS.polars_schema
    assert set(levels_frame.select("id", "scheme_id", "name", "is_default").rows()) == level_truth(site)
    level_count = sum(len(s.levels) for s in site.security_schemes.values())
    assert len(caller.transport.paths("/issuesecurityschemes/level")) == level_count  # one level a page, walked


@pytest.mark.parametrize("size", SITES)
def test_level_members_are_every_holder_of_every_level(size: str) -> None:
    site = fresh(size)
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_security_level_members(c, page_size=3))

    assert refusals(items) == []
    frame = security_level_members_frame(items_of(items), site_id="s")
    assert frame.schema == SECURITY_LEVEL_MEMBERS.polars_schema
    expected = {
        (level.id, member.id, scheme.id, *expected_holder(site, member.holder))
        for scheme in site.security_schemes.values()
        for level in scheme.levels
        for member in level.members
    }
    rows = frame.select("level_id", "id", "scheme_id", "holder_type", "holder_parameter", "holder_value").rows()
    assert set(rows) == expected and len(rows) == len(expected)
    assert "group" in {row[3] for row in rows}


def test_the_renamed_demo_group_is_a_level_member_by_its_id() -> None:
    site = fresh("demo")
    engineering = group_id_named(site, "engineering")
    items = principal(site, "analyst").collect(fetch_security_level_members)

    frame = security_level_members_frame(items_of(items), site_id="s")
    members = frame.filter(frame["holder_value"] == engineering)
    assert members.height > 0
    assert set(members["holder_parameter"]) == {"engineering"}  # its current name; it was "developers"


@pytest.mark.parametrize("size", SITES)
def test_each_projects_scheme_comes_from_one_walk_of_the_pairs(size: str) -> None:
    site = fresh(size)
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_project_security_schemes(c, list(site.projects), page_size=1))

    frame = project_security_schemes_frame(answers(items), site_id="s")
    assert frame.schema == PROJECT_SECURITY_SCHEMES.polars_schema
    assert dict(frame.select("project_id", "scheme_id").rows()) == {
        p.id: p.security_scheme_id for p in site.projects.values() if p.security_scheme_id is not None
    }
    assert all(path.endswith("/issuesecurityschemes/project") for path in caller.transport.paths())


# -- restricted principals -------------------------------------------------------------------------------------------


def test_a_technical_user_without_administer_jira_gets_every_part_refused_not_an_empty_model() -> None:
    site = without_admin(fresh("demo"), "search-connectors")
    technical_user = site.accounts["technical_user"]
    viewable = viewable_project_ids(site, technical_user)
    caller = principal(site, "technical_user")

    schemes = caller.collect(fetch_security_schemes)
    levels = caller.collect(fetch_security_levels)
    members = caller.collect(fetch_security_level_members)
    projects = caller.collect(lambda c: fetch_project_security_schemes(c, viewable))

    assert [(r.resource, r.outcome, r.http_status, r.message) for r in refusals(schemes + levels + members)] == [
        ("security_schemes", "forbidden", 403, ADMIN_REQUIRED),
        ("security_levels", "forbidden", 403, ADMIN_REQUIRED),
        ("security_level_members", "forbidden", 403, ADMIN_REQUIRED),
    ]
    assert answers(schemes + levels + members) == []
    assert answers(projects) == []
    assert [(r.resource, r.http_status, r.message) for r in refusals(projects)] == [
        (f"project_security_schemes:{p}", 403, PROJECT_NOT_ADMINISTERED) for p in viewable
    ]


@pytest.mark.parametrize("size", SITES)
def test_a_project_administrator_reads_its_projects_schemes_and_levels_through_the_projects(size: str) -> None:
    site = fresh(size)
    account = partial_project_admin(site)
    engine = PermissionEngine(site)
    viewable = viewable_project_ids(site, account)
    administered = [p for p in viewable if engine.can_administer_project(account, site.projects[p])]
    items = as_account(site, account).collect(lambda c: fetch_project_security_schemes(c, viewable))

    found = answers(items)
    with_scheme = {p: site.projects[p].security_scheme_id for p in administered}
    assert {(a.project_id, a.scheme_id) for a in found} == {(p, s) for p, s in with_scheme.items() if s is not None}
    assert {r.resource for r in refusals(items)} == {
        f"project_security_schemes:{p}" for p in viewable if p not in administered
    }
    schemes = [a.scheme for a in found if a.scheme is not None]
    scheme_ids = {s for s in with_scheme.values() if s is not None}
    assert set(security_schemes_frame(schemes, site_id="s")["id"]) == scheme_ids
    levels = security_levels_frame(levels_of_schemes(schemes), site_id="s")
    assert set(levels.select("id", "scheme_id", "name", "is_default").rows()) == level_truth(site, scheme_ids)


# -- normalising ids -------------------------------------------------------------------------------------------------


def test_string_and_integer_ids_of_the_different_endpoints_become_the_same_integers() -> None:
    from_level_endpoint = {"id": "10021", "issueSecuritySchemeId": "10000", "name": "Staff", "isDefault": False}
    from_scheme = {"id": 10000, "defaultSecurityLevelId": 10021, "levels": [{"id": "10021", "name": "Staff"}]}
    paged = security_levels_frame([from_level_endpoint], site_id="s")
    nested = security_levels_frame(levels_of_schemes([from_scheme]), site_id="s")
    assert paged.select("id", "scheme_id").rows() == nested.select("id", "scheme_id").rows() == [(10021, 10000)]
    # a nested level's default flag comes from its scheme's defaultSecurityLevelId
    assert (paged["is_default"].item(), nested["is_default"].item()) == (False, True)
    member_paged = {"id": "7", "issueSecurityLevelId": "10021", "issueSecuritySchemeId": "10000", "holder": {}}
    member_of_scheme = {"id": 7, "issueSecurityLevelId": 10021, "holder": {"type": "reporter"}}
    rows = security_level_members_frame([member_paged, member_of_scheme], site_id="s").select(
        "level_id", "id", "scheme_id", "holder_type"
    )
    assert rows.rows() == [(10021, 7, None, "reporter")]  # one member, the last answer kept


def test_project_security_scheme_rows_are_one_per_project() -> None:
    frame = project_security_schemes_frame(
        [ProjectSecurityScheme(10000, 10001), ProjectSecurityScheme(10000, 10002), ProjectSecurityScheme(10001, 1)],
        site_id="s",
    )
    assert sorted(frame.select("project_id", "scheme_id").rows()) == [(10000, 10002), (10001, 1)]
