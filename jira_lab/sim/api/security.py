"""Issue security schemes, their levels and level members, and the levels a project offers.

Who may read what (the spec's permission texts):

* ``issuesecurityschemes``, ``.../search``, ``.../level``, ``.../level/member``, ``.../{id}/members`` and
  ``.../project``: Jira administrators only; anyone else gets 403 with Jira's "Administrator privileges are
  required" message (``jira-semantics.md`` §1.5).
* ``issuesecurityschemes/{id}``: Jira administrators, or project administrators of a project using the scheme.
* ``project/{k}/issuesecuritylevelscheme``: Administer Jira or Administer Projects there (404 for a project the
  caller cannot view, 403 for one it can view but not administer).
* ``project/{k}/securitylevel``: anyone who can view the project; the levels are listed only to an authenticated
  caller holding *Set Issue Security* there, and only those it may use
  (:meth:`~jira_lab.sim.permissions.PermissionEngine.usable_security_levels`).
* ``securitylevel/{id}``: no permission.

Ids are rendered with the types the spec gives each shape: ``SecurityScheme`` and ``IssueSecurityLevelMember`` use
integers, ``SecurityLevel`` and ``SecurityLevelMember`` strings. The experimental paged endpoints type ``startAt``
and ``maxResults`` as strings; both they and the integer-typed ones parse the query value the same way.

Choices where Jira's documentation is silent: pages are not capped below the requested ``maxResults``; a project
without an issue security scheme answers 404 on ``issuesecuritylevelscheme`` and an empty ``levels`` list on
``securitylevel``; ``self`` links follow the spec's examples (the paged scheme and level shapes link to
``issuesecurityscheme``, singular).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from jira_lab.sim.api.admin_only import ADMIN_REQUIRED, require_admin
from jira_lab.sim.api.permission_schemes import holder_json
from jira_lab.sim.api.projects import administered_project, viewable_project
from jira_lab.sim.model import Project, SecurityLevel, SecurityLevelMember, SecurityScheme
from jira_lab.sim.render import page_bean
from jira_lab.sim.routing import Call, JiraError, route

_Item = TypeVar("_Item")

DEFAULT_PAGE = 50


# -- shapes ------------------------------------------------------------------------------------------------------
def level_json(call: Call, level: SecurityLevel) -> dict[str, Any]:
    """``SecurityLevel`` as schemes and projects list it (string id)."""
    return {
        "self": call.self_url(f"/rest/api/3/securitylevel/{level.id}"),
        "id": str(level.id),
        "description": level.description,
        "name": level.name,
    }


def scheme_json(call: Call, scheme: SecurityScheme, *, with_levels: bool) -> dict[str, Any]:
    """``SecurityScheme`` (integer ids), with its levels where the endpoint returns them."""
    body: dict[str, Any] = {
        "self": call.self_url(f"/rest/api/3/issuesecurityschemes/{scheme.id}"),
        "id": scheme.id,
        "name": scheme.name,
        "description": scheme.description,
    }
    if scheme.default_level_id is not None:
        body["defaultSecurityLevelId"] = scheme.default_level_id
    if with_levels:
        body["levels"] = [level_json(call, level) for level in scheme.levels]
    return body


def _projects_using(call: Call, scheme: SecurityScheme) -> list[Project]:
    return [p for p in call.site.projects.values() if p.security_scheme_id == scheme.id]


# -- request helpers ---------------------------------------------------------------------------------------------
def _id_filter(call: Call, name: str) -> set[int]:
    """A repeated id parameter; anything but a non-negative integer is Jira's 400."""
    ids: set[int] = set()
    for raw in call.query_list(name):
        if not raw.isdigit():
            raise JiraError(400, f"{raw} is not a valid value. {name} must be zero or a positive integer.")
        ids.add(int(raw))
    return ids


def _page(call: Call, items: Sequence[_Item], render: Callable[[_Item], Any]) -> dict[str, Any]:
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", DEFAULT_PAGE, minimum=0)
    return page_bean(call, items, render, start_at=start_at, max_results=max_results)


def _all_levels(call: Call) -> list[tuple[SecurityScheme, SecurityLevel]]:
    return [(scheme, level) for scheme in call.site.security_schemes.values() for level in scheme.levels]


# -- administrators' views ---------------------------------------------------------------------------------------
@route("GET", "/rest/api/3/issuesecurityschemes")
def get_issue_security_schemes(call: Call) -> dict[str, Any]:
    """``getIssueSecuritySchemes``: every scheme, without levels; Jira administrators only."""
    require_admin(call)
    schemes = call.site.security_schemes.values()
    return {"issueSecuritySchemes": [scheme_json(call, s, with_levels=False) for s in schemes]}


@route("GET", "/rest/api/3/issuesecurityschemes/{id}")
def get_issue_security_scheme(call: Call) -> dict[str, Any]:
    """``getIssueSecurityScheme``: one scheme with its levels, for Jira admins and admins of a project using it."""
    reference = call.path_params["id"]
    scheme = call.site.security_schemes.get(int(reference)) if reference.isdigit() else None
    administers_a_project_using_it = scheme is not None and any(
        call.engine.can_administer_project(call.caller, p) for p in _projects_using(call, scheme)
    )
    if not (call.engine.is_admin(call.caller) or administers_a_project_using_it):
        raise JiraError(403, ADMIN_REQUIRED)
    if scheme is None:
        raise JiraError(404, f"The issue security scheme with ID {reference} does not exist.")
    return scheme_json(call, scheme, with_levels=True)


@route("GET", "/rest/api/3/issuesecurityschemes/search")
def search_security_schemes(call: Call) -> dict[str, Any]:
    """``searchSecuritySchemes``: schemes with the ids of the projects using them (only the filtered ones, if any)."""
    require_admin(call)
    scheme_ids, project_ids = _id_filter(call, "id"), _id_filter(call, "projectId")
    found: list[tuple[SecurityScheme, list[int]]] = []
    for scheme in call.site.security_schemes.values():
        projects = [p.id for p in _projects_using(call, scheme) if not project_ids or p.id in project_ids]
        if (scheme_ids and scheme.id not in scheme_ids) or (project_ids and not projects):
            continue
        found.append((scheme, projects))

    def render(item: tuple[SecurityScheme, list[int]]) -> dict[str, Any]:
        scheme, projects = item
        body: dict[str, Any] = {
            "id": scheme.id,
            "self": call.self_url(f"/rest/api/3/issuesecurityscheme/{scheme.id}"),
            "name": scheme.name,
            "description": scheme.description,
            "projectIds": projects,
        }
        if scheme.default_level_id is not None:
            body["defaultLevel"] = scheme.default_level_id
        return body

    return _page(call, found, render)


@route("GET", "/rest/api/3/issuesecurityschemes/level")
def get_security_levels(call: Call) -> dict[str, Any]:
    """``getSecurityLevels``: levels matching ``id`` *or* ``schemeId`` (inclusive), optionally only defaults."""
    require_admin(call)
    level_ids, scheme_ids = _id_filter(call, "id"), _id_filter(call, "schemeId")
    only_default = call.query_bool("onlyDefault", False)
    found = [
        (scheme, level)
        for scheme, level in _all_levels(call)
        if (not level_ids and not scheme_ids) or level.id in level_ids or scheme.id in scheme_ids
        if not only_default or scheme.default_level_id == level.id
    ]

    def render(item: tuple[SecurityScheme, SecurityLevel]) -> dict[str, Any]:
        scheme, level = item
        return {
            "self": call.self_url(f"/rest/api/3/issuesecurityscheme/level?id={level.id}"),
            "id": str(level.id),
            "description": level.description,
            "name": level.name,
            "isDefault": scheme.default_level_id == level.id,
            "issueSecuritySchemeId": str(scheme.id),
        }

    return _page(call, found, render)


@route("GET", "/rest/api/3/issuesecurityschemes/level/member")
def get_security_level_members(call: Call) -> dict[str, Any]:
    """``getSecurityLevelMembers``: members matching ``id``, ``schemeId`` or ``levelId`` (inclusive), string ids."""
    require_admin(call)
    member_ids, scheme_ids, level_ids = (
        _id_filter(call, "id"),
        _id_filter(call, "schemeId"),
        _id_filter(call, "levelId"),
    )
    unfiltered = not (member_ids or scheme_ids or level_ids)
    expand = call.expansions()
    found = [
        (scheme, level, member)
        for scheme, level in _all_levels(call)
        for member in level.members
        if unfiltered or member.id in member_ids or scheme.id in scheme_ids or level.id in level_ids
    ]

    def render(item: tuple[SecurityScheme, SecurityLevel, SecurityLevelMember]) -> dict[str, Any]:
        scheme, level, member = item
        return {
            "id": str(member.id),
            "issueSecurityLevelId": str(level.id),
            "issueSecuritySchemeId": str(scheme.id),
            "holder": holder_json(call, member.holder, expand),
        }

    return _page(call, found, render)


@route("GET", "/rest/api/3/issuesecurityschemes/{issueSecuritySchemeId}/members")
def get_issue_security_level_members(call: Call) -> dict[str, Any]:
    """``getIssueSecurityLevelMembers``: one scheme's members (integer ids), optionally of some levels only."""
    require_admin(call)
    reference = call.path_params["issueSecuritySchemeId"]
    scheme = call.site.security_schemes.get(int(reference)) if reference.isdigit() else None
    if scheme is None:
        raise JiraError(404, f"The issue security scheme with ID {reference} does not exist.")
    level_ids = _id_filter(call, "issueSecurityLevelId")
    expand = call.expansions()
    found = [
        (level, member) for level in scheme.levels if not level_ids or level.id in level_ids for member in level.members
    ]

    def render(item: tuple[SecurityLevel, SecurityLevelMember]) -> dict[str, Any]:
        level, member = item
        return {"id": member.id, "issueSecurityLevelId": level.id, "holder": holder_json(call, member.holder, expand)}

    return _page(call, found, render)


@route("GET", "/rest/api/3/issuesecurityschemes/project")
def search_projects_using_security_schemes(call: Call) -> dict[str, Any]:
    """``searchProjectsUsingSecuritySchemes``: scheme-to-project pairs (string ids), filtered by either side."""
    require_admin(call)
    scheme_ids, project_ids = _id_filter(call, "issueSecuritySchemeId"), _id_filter(call, "projectId")
    found = [
        project
        for project in call.site.projects.values()
        if project.security_scheme_id is not None
        and (not scheme_ids or project.security_scheme_id in scheme_ids)
        and (not project_ids or project.id in project_ids)
    ]
    return _page(call, found, lambda p: {"issueSecuritySchemeId": str(p.security_scheme_id), "projectId": str(p.id)})


# -- project and level views -------------------------------------------------------------------------------------
@route("GET", "/rest/api/3/project/{projectKeyOrId}/issuesecuritylevelscheme")
def get_project_issue_security_scheme(call: Call) -> dict[str, Any]:
    """``getProjectIssueSecurityScheme``: the project's scheme with its levels, for Jira and project admins."""
    project = administered_project(call)
    scheme = call.site.security_schemes.get(project.security_scheme_id or -1)
    if scheme is None:
        raise JiraError(404, f"The project {project.key} has no issue security scheme.")
    return scheme_json(call, scheme, with_levels=True)


@route("GET", "/rest/api/3/project/{projectKeyOrId}/securitylevel")
def get_security_levels_for_project(call: Call) -> dict[str, Any]:
    """``getSecurityLevelsForProject``: the levels the caller may set, if it holds *Set Issue Security* there."""
    project = viewable_project(call, call.path_params["projectKeyOrId"])
    if not call.engine.has_project_permission(call.caller, "SET_ISSUE_SECURITY", project):
        return {"levels": []}
    return {"levels": [level_json(call, level) for level in call.engine.usable_security_levels(call.caller, project)]}


@route("GET", "/rest/api/3/securitylevel/{id}")
def get_issue_security_level(call: Call) -> dict[str, Any]:
    """``getIssueSecurityLevel``: one level by id; no permission is needed."""
    reference = call.path_params["id"]
    found = call.site.security_level(int(reference)) if reference.isdigit() else None
    if found is None:
        raise JiraError(404, f"The issue security level with ID {reference} does not exist.")
    return level_json(call, found[1])
