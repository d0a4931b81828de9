"""Projects: the paginated project search and one project by id or key.

A project the caller may not *view* does not exist for it: it is left out of ``project/search`` and
``project/{projectIdOrKey}`` answers 404 with the message Jira gives for a missing one. *Viewing* is Jira's
``VIEW_PROJECT`` action (:meth:`~jira_lab.sim.permissions.PermissionEngine.can_view_project`): Browse Projects,
Administer Projects or Administer Jira, as the spec lists for ``project/search?action=view``. So a Jira
administrator finds every project even where it cannot browse issues; ``isPrivate`` ("the user can't see the
project or any associated issues") tells it so.

Choices where Jira's documentation is silent, kept in one place:

* the simulated projects are all company-managed (``style: classic``), live, and have no category, components,
  versions or URL; ``status=archived|deleted`` and ``categoryId`` therefore select nothing;
* issue types are Jira's standard set (:data:`STANDARD_ISSUE_TYPES`) plus any other type the project's issues
  use; ``insight`` counts all of the project's issues;
* ``id`` and ``keys`` filters beyond 50 values, and unknown ``orderBy``/``action`` values, answer 400.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jira_lab.sim.model import Project
from jira_lab.sim.render import jira_time, page_bean, user_json
from jira_lab.sim.routing import Call, JiraError, route

#: ``maxResults`` of ``project/search``: default and documented maximum (larger values are lowered to it).
SEARCH_DEFAULT_PAGE = 50
SEARCH_MAX_PAGE = 100
MAX_FILTER_VALUES = 50

#: Jira's ``ProjectFinder``: a path value made of digits (not starting with 0) is an id, anything else a key.
PROJECT_ID_PATTERN = re.compile(r"^[1-9]\d{0,17}$")

#: the ``expand`` attribute Jira puts on every project
PROJECT_EXPANDS = "description,lead,issueTypes,url,projectKeys,permissions,insight"
ACTIONS = ("view", "browse", "edit", "create")
PROJECT_TYPES = ("business", "service_desk", "software")
#: Jira's 403 for a project's configuration, to a caller who may view the project but not administer it.
PROJECT_NOT_ADMINISTERED = "You cannot view the configuration of this project."


@dataclass(frozen=True, slots=True)
class IssueType:
    id: int
    name: str
    description: str
    hierarchy_level: int = 0

    @property
    def subtask(self) -> bool:
        return self.hierarchy_level < 0


#: The issue types of a new company-managed project, by name.
STANDARD_ISSUE_TYPES = {
    issue_type.name: issue_type
    for issue_type in (
        IssueType(10000, "Epic", "A big user story that needs to be broken down.", 1),
        IssueType(10001, "Task", "A small, distinct piece of work."),
        IssueType(10002, "Subtask", "A small piece of work that's part of a larger task.", -1),
        IssueType(10003, "Story", "Functionality or a feature expressed as a user goal."),
        IssueType(10004, "Bug", "A problem or error."),
    )
}


# -- lookups ---------------------------------------------------------------------------------------------------
def not_found_message(reference: str) -> str:
    """Jira's 404 text for a project reference, in its id or key form."""
    kind = "id" if PROJECT_ID_PATTERN.match(reference) else "key"
    return f"No project could be found with {kind} '{reference}'."


def find_project(call: Call, reference: str) -> Project | None:
    """The project an id or key (case sensitive, as the spec says) refers to, whether or not the caller sees it."""
    if PROJECT_ID_PATTERN.match(reference):
        return call.site.projects.get(int(reference))
    return next((project for project in call.site.projects.values() if project.key == reference), None)


def viewable_project(call: Call, reference: str | None = None) -> Project:
    """The path's project if the caller may view it; otherwise the 404 of a missing project."""
    reference = reference if reference is not None else call.path_params["projectIdOrKey"]
    project = find_project(call, reference)
    if project is None or not call.engine.can_view_project(call.caller, project):
        raise JiraError(404, not_found_message(reference))
    return project


def administered_project(call: Call) -> Project:
    """The path's ``projectKeyOrId`` if the caller may administer it (Administer Projects there, or Administer Jira).

    A project the caller may not view is a 404, as :func:`viewable_project` answers; one it views but does not
    administer, Jira's 403 :data:`PROJECT_NOT_ADMINISTERED`.
    """
    project = viewable_project(call, call.path_params["projectKeyOrId"])
    if not call.engine.can_administer_project(call.caller, project):
        raise JiraError(403, PROJECT_NOT_ADMINISTERED)
    return project


# -- shapes ----------------------------------------------------------------------------------------------------
def project_avatar_urls(call: Call, project: Project) -> dict[str, str]:
    base = call.self_url(f"/secure/projectavatar?pid={project.id}")
    sizes = {"48x48": "large", "24x24": "small", "16x16": "xsmall", "32x32": "medium"}
    return {dimensions: f"{base}&size={size}" for dimensions, size in sizes.items()}


def issue_type_named(name: str) -> IssueType:
    """The issue type called ``name``: a standard one, else one with a stable made-up id.

    Issues and their projects both name their types through here, so an issue's type id is one its project lists.
    """
    standard = STANDARD_ISSUE_TYPES.get(name)
    return standard if standard is not None else IssueType(20000 + zlib.crc32(name.encode()) % 10000, name, "")


def project_issue_types(call: Call, project: Project) -> list[IssueType]:
    """The standard issue types, then any other type the project's issues use (with a stable made-up id)."""
    used = {issue.issue_type for issue in call.site.issues.values() if issue.project_id == project.id}
    extra = sorted(used - STANDARD_ISSUE_TYPES.keys())
    return list(STANDARD_ISSUE_TYPES.values()) + [issue_type_named(name) for name in extra]


def issue_type_json(call: Call, issue_type: IssueType) -> dict[str, Any]:
    """``IssueTypeDetails`` as a project lists its issue types."""
    return {
        "self": call.self_url(f"/rest/api/3/issuetype/{issue_type.id}"),
        "id": str(issue_type.id),
        "description": issue_type.description,
        "iconUrl": call.self_url(f"/rest/api/2/universal_avatar/view/type/issuetype/avatar/{issue_type.id}"),
        "name": issue_type.name,
        "subtask": issue_type.subtask,
        "avatarId": issue_type.id,
        "hierarchyLevel": issue_type.hierarchy_level,
    }


def project_insight(call: Call, project: Project) -> dict[str, Any]:
    issues = [issue for issue in call.site.issues.values() if issue.project_id == project.id]
    insight: dict[str, Any] = {"totalIssueCount": len(issues)}
    if issues:
        insight["lastIssueUpdateTime"] = jira_time(max(issue.updated for issue in issues))
    return insight


def project_roles_map(call: Call, project: Project) -> dict[str, str]:
    """``{roleName: selfURL}``: every role of the site (roles are global in Cloud), by name."""
    roles = sorted(call.site.project_roles.values(), key=lambda role: role.name.casefold())
    return {role.name: call.self_url(f"/rest/api/3/project/{project.id}/role/{role.id}") for role in roles}


def project_json(call: Call, project: Project, expand: set[str]) -> dict[str, Any]:
    """``Project`` with the fields every answer carries, plus the expanded ones."""
    body: dict[str, Any] = {
        "expand": PROJECT_EXPANDS,
        "self": call.self_url(f"/rest/api/3/project/{project.id}"),
        "id": str(project.id),
        "key": project.key,
        "name": project.name,
        "avatarUrls": project_avatar_urls(call, project),
        "projectTypeKey": project.project_type_key,
        "simplified": False,
        "style": "classic",
        "isPrivate": not call.engine.can_browse_project(call.caller, project),
        "properties": {},
    }
    if "description" in expand:
        body["description"] = project.description
    if "lead" in expand:
        lead = call.site.users.get(project.lead_account_id)
        if lead is not None:
            body["lead"] = user_json(call, lead)
    if "issueTypes" in expand:
        body["issueTypes"] = [issue_type_json(call, issue_type) for issue_type in project_issue_types(call, project)]
    if "insight" in expand:
        body["insight"] = project_insight(call, project)
    return body


# -- project/search --------------------------------------------------------------------------------------------
def _sort_keys(call: Call) -> dict[str, Callable[[Project], Any]]:
    def lead_name(project: Project) -> str:
        lead = call.site.users.get(project.lead_account_id)
        return lead.display_name.casefold() if lead is not None else ""

    def issue_count(project: Project) -> int:
        return sum(1 for issue in call.site.issues.values() if issue.project_id == project.id)

    def last_update(project: Project) -> float:
        times = [issue.updated.timestamp() for issue in call.site.issues.values() if issue.project_id == project.id]
        return max(times, default=0.0)

    return {
        "key": lambda project: project.key,
        "name": lambda project: project.name.casefold(),
        "owner": lead_name,
        "category": lambda project: 0,
        "issueCount": issue_count,
        "lastIssueUpdatedDate": last_update,
        "archivedDate": lambda project: 0,
        "deletedDate": lambda project: 0,
    }


def _ordered(call: Call, projects: list[Project]) -> list[Project]:
    order_by = call.query("orderBy") or "key"
    field = order_by.lstrip("+-")
    sort_keys = _sort_keys(call)
    if field not in sort_keys or len(order_by) - len(field) > 1:
        raise JiraError(400, f"The orderBy value '{order_by}' is not valid.")
    key = sort_keys[field]
    # the key breaks ties, so that pages never overlap
    ordered = sorted(projects, key=lambda project: project.key)
    return sorted(ordered, key=key, reverse=order_by.startswith("-"))


def _allowed_for_action(call: Call, action: str) -> Callable[[Project], bool]:
    engine, caller = call.engine, call.caller
    if action == "view":
        return lambda project: engine.can_view_project(caller, project)
    if action == "browse":
        return lambda project: engine.can_browse_project(caller, project)
    if action == "edit":
        return lambda project: engine.can_administer_project(caller, project)
    if action == "create":
        return lambda project: engine.has_project_permission(caller, "CREATE_ISSUES", project)
    raise JiraError(400, f"The action '{action}' is not valid. Valid values: {', '.join(ACTIONS)}.")


def _limited(call: Call, name: str) -> list[str]:
    values = call.query_list(name)
    if len(values) > MAX_FILTER_VALUES:
        raise JiraError(400, f"No more than {MAX_FILTER_VALUES} values can be given for '{name}'.")
    return values


def _matches_filters(call: Call) -> Callable[[Project], bool]:
    ids = set(_limited(call, "id"))
    keys = set(_limited(call, "keys"))
    query = (call.query("query") or "").casefold()
    type_keys = set(call.query_list("typeKey"))
    unknown_types = type_keys - set(PROJECT_TYPES)
    if unknown_types:
        raise JiraError(400, f"The typeKey '{sorted(unknown_types)[0]}' is not valid.")
    statuses = set(call.query_list("status")) or {"live"}
    has_category = call.query("categoryId") is not None

    def matches(project: Project) -> bool:
        return (
            "live" in statuses
            and not has_category
            and (not ids or str(project.id) in ids)
            and (not keys or project.key in keys)
            and (not query or query in project.key.casefold() or query in project.name.casefold())
            and (not type_keys or project.project_type_key in type_keys)
        )

    return matches


@route("GET", "/rest/api/3/project/search")
def search_projects(call: Call) -> dict[str, Any]:
    """``searchProjects``: a ``PageBeanProject`` of the projects the caller may act on (``action``, default view)."""
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", SEARCH_DEFAULT_PAGE, minimum=1, maximum=SEARCH_MAX_PAGE)
    allowed = _allowed_for_action(call, call.query("action") or "view")
    matches = _matches_filters(call)
    projects = [project for project in call.site.projects.values() if matches(project) and allowed(project)]
    expand = call.expansions()
    return page_bean(
        call,
        _ordered(call, projects),
        lambda project: project_json(call, project, expand),
        start_at=start_at,
        max_results=max_results,
    )


# -- project/{projectIdOrKey} ----------------------------------------------------------------------------------
@route("GET", "/rest/api/3/project/{projectIdOrKey}")
def get_project(call: Call) -> dict[str, Any]:
    """``getProject``: the project with its description, lead, issue types and roles, which Jira always includes."""
    project = viewable_project(call)
    expand = call.expansions() | {"description", "lead", "issueTypes"}
    body = project_json(call, project, expand)
    body["components"] = []
    body["versions"] = []
    body["assigneeType"] = "UNASSIGNED"
    body["roles"] = project_roles_map(call, project)
    return body
