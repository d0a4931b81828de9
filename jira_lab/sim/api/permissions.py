"""Permission checks and the permission catalogue: ``mypermissions``, ``permissions``, ``permissions/check``,
``permissions/project``, and the application roles that hold product access.

Every answer comes from :class:`~jira_lab.sim.permissions.PermissionEngine`; this module only reads requests, picks
the context and renders. How a context is read (the spec's ``getMyPermissions`` text, ``jira-semantics.md`` §2.5):

* **global** (no context): a project permission is held if it is held in *any* project;
* **project**: held if held for *any* issue of the project, so a reporter grant reads true for whoever reported
  some issue there (:meth:`~jira_lab.sim.permissions.PermissionEngine.has_project_permission` with no issue);
* **issue**: held for that issue, its security level included
  (:meth:`~jira_lab.sim.permissions.PermissionEngine.has_issue_permission`); ``permissions/check`` reads its
  ``issues`` the same way, so a reporter grant does not reach another person's issue and an issue behind a security
  level the account is not in is not listed, for any permission;
* **comment**: ``BROWSE_PROJECTS`` only, held when the comment is returned to the caller (issue visible and the
  comment's group/role ``visibility`` met). A comment that does not exist, or whose issue the caller cannot see,
  is a 404 like a hidden issue; a visible issue's restricted comment answers ``havePermission: false``, which is
  what makes the call a probe.

Global permissions are read as granted (``has_global``): ``ADMINISTER`` does not imply the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from jira_lab.sim.api.admin_only import require_admin
from jira_lab.sim.api.comments import COMMENT_NOT_FOUND
from jira_lab.sim.api.issue_items import ISSUE_NOT_FOUND
from jira_lab.sim.model import ApplicationRole, Issue, Project
from jira_lab.sim.render import group_name_json
from jira_lab.sim.routing import Call, JiraError, route

PermissionType = Literal["GLOBAL", "PROJECT"]


@dataclass(frozen=True, slots=True)
class PermissionInfo:
    """One entry of Jira's permission catalogue (``UserPermission`` without the caller-specific parts)."""

    key: str
    #: Jira's legacy numeric id as a string; permissions added after ids were retired (Jira Software, Service
    #: Management, extended project administration) report ``-1``
    id: str
    name: str
    description: str
    type: PermissionType


def _catalogue(kind: PermissionType, entries: dict[str, tuple[str, str, str]]) -> dict[str, PermissionInfo]:
    """Catalogue entries of one type from ``key: (id, name, description)``."""
    return {key: PermissionInfo(key, id_, name, description, kind) for key, (id_, name, description) in entries.items()}


# Names, ids and descriptions are those Jira's REST API reports (the spec's examples quote "Edit Issues" / "Ability to
# edit issues." and "Bulk Change" / "Ability to modify a collection of issues at once. ..."); the few keys newer than
# that text carry descriptions in the same voice.
_GLOBAL_ENTRIES = {
    "ADMINISTER": (
        "0",
        "Jira Administrators",
        "Ability to perform most administration functions (excluding Import & Export, SMTP Configuration, etc.).",
    ),
    "USER_PICKER": (
        "27",
        "Browse Users",
        "Ability to select a user or group from a popup window as well as the ability to use the 'share' issues "
        "feature. Users with this permission will also be able to see names of all users and groups in the system.",
    ),
    "CREATE_SHARED_OBJECTS": (
        "22",
        "Create Shared Objects",
        "Ability to share dashboards and filters with other users, groups and roles.",
    ),
    "MANAGE_GROUP_FILTER_SUBSCRIPTIONS": (
        "24",
        "Manage Group Filter Subscriptions",
        "Ability to manage (create and delete) group filter subscriptions.",
    ),
    "BULK_CHANGE": (
        "33",
        "Bulk Change",
        "Ability to modify a collection of issues at once. For example, resolve multiple issues in one step.",
    ),
}
_PROJECT_ENTRIES = {
    "ADMINISTER_PROJECTS": ("23", "Administer Projects", "Ability to administer a project in Jira."),
    "EDIT_WORKFLOW": ("-1", "Edit Workflows", "Ability to edit the workflows of a project."),
    "EDIT_ISSUE_LAYOUT": ("-1", "Edit Issue Layout", "Ability to edit the issue layout of a project."),
    "BROWSE_PROJECTS": ("10", "Browse Projects", "Ability to browse projects and the issues within them."),
    "MANAGE_SPRINTS_PERMISSION": ("-1", "Manage Sprints", "Ability to manage sprints."),
    "SERVICEDESK_AGENT": (
        "-1",
        "Service Desk Agent",
        "Ability to work on requests and interact with customers in a service project.",
    ),
    "VIEW_DEV_TOOLS": (
        "29",
        "View Development Tools",
        "Allows users in a software project to view development-related information on the issue, such as "
        "commits, reviews and build information.",
    ),
    "VIEW_READONLY_WORKFLOW": (
        "45",
        "View Read-Only Workflow",
        "Users with this permission may view a read-only version of a workflow.",
    ),
    "ASSIGNABLE_USER": ("17", "Assignable User", "Users with this permission may be assigned to issues."),
    "ASSIGN_ISSUES": ("13", "Assign Issues", "Ability to assign issues to other people."),
    "CLOSE_ISSUES": (
        "18",
        "Close Issues",
        "Ability to close issues. Often useful where your developers resolve issues, and a QA department closes them.",
    ),
    "CREATE_ISSUES": ("11", "Create Issues", "Ability to create issues."),
    "DELETE_ISSUES": ("16", "Delete Issues", "Ability to delete issues."),
    "EDIT_ISSUES": ("12", "Edit Issues", "Ability to edit issues."),
    "LINK_ISSUES": (
        "21",
        "Link Issues",
        "Ability to link issues together and create linked issues. Only useful if issue linking is turned on.",
    ),
    "MODIFY_REPORTER": ("30", "Modify Reporter", "Ability to modify the reporter when creating or editing an issue."),
    "MOVE_ISSUES": (
        "25",
        "Move Issues",
        "Ability to move issues between projects or between workflows of the same project (if applicable). Note "
        "the user can only move issues to a project he or she has the create permission for.",
    ),
    "RESOLVE_ISSUES": (
        "14",
        "Resolve Issues",
        "Ability to resolve and reopen issues. This includes the ability to set a fix version.",
    ),
    "SCHEDULE_ISSUES": ("28", "Schedule Issues", "Ability to view or edit an issue's due date."),
    "SET_ISSUE_SECURITY": (
        "26",
        "Set Issue Security",
        "Ability to set the level of security on an issue so that only people in that security level can see "
        "the issue.",
    ),
    "TRANSITION_ISSUES": ("46", "Transition Issues", "Ability to transition issues."),
    "MANAGE_WATCHERS": ("32", "Manage Watchers", "Ability to manage the watchers of an issue."),
    "VIEW_VOTERS_AND_WATCHERS": (
        "31",
        "View Voters and Watchers",
        "Ability to view the voters and watchers of an issue.",
    ),
    "ADD_COMMENTS": ("15", "Add Comments", "Ability to comment on issues."),
    "DELETE_ALL_COMMENTS": ("36", "Delete All Comments", "Ability to delete all comments made on issues."),
    "DELETE_OWN_COMMENTS": ("37", "Delete Own Comments", "Ability to delete own comments made on issues."),
    "EDIT_ALL_COMMENTS": ("34", "Edit All Comments", "Ability to edit all comments made on issues."),
    "EDIT_OWN_COMMENTS": ("35", "Edit Own Comments", "Ability to edit own comments made on issues."),
    "CREATE_ATTACHMENTS": ("19", "Create Attachments", "Users with this permission may create attachments."),
    "DELETE_ALL_ATTACHMENTS": (
        "38",
        "Delete All Attachments",
        "Users with this permission may delete all attachments.",
    ),
    "DELETE_OWN_ATTACHMENTS": (
        "39",
        "Delete Own Attachments",
        "Users with this permission may delete own attachments.",
    ),
    "DELETE_ALL_WORKLOGS": ("43", "Delete All Worklogs", "Ability to delete all worklogs made on issues."),
    "DELETE_OWN_WORKLOGS": ("42", "Delete Own Worklogs", "Ability to delete own worklogs made on issues."),
    "EDIT_ALL_WORKLOGS": ("41", "Edit All Worklogs", "Ability to edit all worklogs made on issues."),
    "EDIT_OWN_WORKLOGS": ("40", "Edit Own Worklogs", "Ability to edit own worklogs made on issues."),
    "WORK_ON_ISSUES": (
        "20",
        "Work On Issues",
        "Ability to log work done against an issue. Only useful if Time Tracking is turned on.",
    ),
}

#: The permission catalogue: every key of :data:`~jira_lab.sim.model.GLOBAL_PERMISSIONS` and
#: :data:`~jira_lab.sim.model.PROJECT_PERMISSIONS`, the global ones first.
PERMISSIONS: dict[str, PermissionInfo] = {
    **_catalogue("GLOBAL", _GLOBAL_ENTRIES),
    **_catalogue("PROJECT", _PROJECT_ENTRIES),
}

#: ``permissions/check`` accepts at most this many (valid) project ids, and as many issue ids.
MAX_CHECKED_IDS = 1000

PERMISSIONS_REQUIRED = "The 'permissions' query parameter is required."
ADMIN_ONLY_CHECK = "Only Jira administrators can perform this operation."
UNRECOGNIZED = "Unrecognized permission"


def permission_json(info: PermissionInfo) -> dict[str, Any]:
    """The catalogue entry as ``GET /permissions`` lists it (no ``id``, no ``havePermission``)."""
    return {"key": info.key, "name": info.name, "type": info.type, "description": info.description}


def user_permission_json(info: PermissionInfo, have: bool) -> dict[str, Any]:
    """``UserPermission`` as ``GET /mypermissions`` answers it."""
    return {
        "id": info.id,
        "key": info.key,
        "name": info.name,
        "type": info.type,
        "description": info.description,
        "havePermission": have,
    }


# -- context -----------------------------------------------------------------------------------------------------
def _project_from_query(call: Call) -> Project | None:
    """``projectId`` (which wins) or ``projectKey``; ``None`` when neither is given."""
    project_id = call.query("projectId")
    if project_id:
        project = call.site.projects.get(int(project_id)) if project_id.isdigit() else None
        return _viewable(call, project, f"id '{project_id}'")
    project_key = call.query("projectKey")
    if project_key:
        return _viewable(call, call.site.project_by_key(project_key), f"key '{project_key}'")
    return None


def _viewable(call: Call, project: Project | None, asked_for: str) -> Project:
    """``project`` if the caller may view it; otherwise Jira's 404 for the id or key ``asked_for``."""
    if project is None or not call.engine.can_view_project(call.caller, project):
        raise JiraError(404, f"No project could be found with {asked_for}.")
    return project


def _issue_from_query(call: Call) -> Issue | None:
    """``issueId`` (which wins) or ``issueKey``; ``None`` when neither is given."""
    issue_id = call.query("issueId")
    issue_key = call.query("issueKey")
    if issue_id:
        issue = call.site.issues.get(int(issue_id)) if issue_id.isdigit() else None
    elif issue_key:
        issue = call.site.issue_by_key(issue_key)
    else:
        return None
    if issue is None or not call.engine.can_browse_issue(call.caller, issue):
        raise JiraError(404, ISSUE_NOT_FOUND)
    return issue


def _requested_keys(call: Call) -> list[str]:
    keys = list(dict.fromkeys(call.query_list("permissions")))
    if not keys:
        raise JiraError(400, PERMISSIONS_REQUIRED)
    unknown = [key for key in keys if key not in PERMISSIONS]
    if unknown:
        raise JiraError(400, *(f"The permission '{key}' does not exist." for key in unknown))
    return keys


def _holds_globally(call: Call, info: PermissionInfo) -> bool:
    if info.type == "GLOBAL":
        return call.engine.has_global(call.caller, info.key)
    return call.engine.has_permission_in_any_project(call.caller, info.key)


def _comment_answer(call: Call, comment_id: str, keys: list[str]) -> dict[str, Any]:
    if keys != ["BROWSE_PROJECTS"]:
        raise JiraError(400, "Only the BROWSE_PROJECTS permission is supported when a commentId is provided.")
    comment = call.site.comment(int(comment_id)) if comment_id.isdigit() else None
    if comment is None:
        raise JiraError(404, COMMENT_NOT_FOUND.format(id=comment_id))
    issue = call.site.issues[comment.issue_id]
    if not call.engine.can_browse_issue(call.caller, issue):
        raise JiraError(404, ISSUE_NOT_FOUND)
    have = call.engine.can_see_item(call.caller, issue, comment.visibility)
    return {"permissions": {"BROWSE_PROJECTS": user_permission_json(PERMISSIONS["BROWSE_PROJECTS"], have)}}


@route("GET", "/rest/api/3/mypermissions")
def my_permissions(call: Call) -> dict[str, Any]:
    """``getMyPermissions``: the caller's requested permissions in the global, project, issue or comment context."""
    keys = _requested_keys(call)
    comment_id = call.query("commentId")
    if comment_id:
        return _comment_answer(call, comment_id, keys)
    issue = _issue_from_query(call)
    project = call.site.projects[issue.project_id] if issue is not None else _project_from_query(call)
    answers: dict[str, Any] = {}
    for key in keys:
        info = PERMISSIONS[key]
        if info.type == "GLOBAL" or project is None:
            have = _holds_globally(call, info)
        elif issue is not None:
            have = call.engine.has_issue_permission(call.caller, key, issue)
        else:
            have = call.engine.has_project_permission(call.caller, key, project)
        answers[key] = user_permission_json(info, have)
    return {"permissions": answers}


@route("GET", "/rest/api/3/permissions")
def all_permissions(call: Call) -> dict[str, Any]:
    """``getAllPermissions``: the whole catalogue, whoever asks."""
    return {"permissions": {key: permission_json(PERMISSIONS[key]) for key in sorted(PERMISSIONS)}}


# -- bulk check --------------------------------------------------------------------------------------------------
def _string_list(value: Any, field: str) -> list[str]:
    """A JSON array of strings with nulls and empty strings dropped, as the spec says they are ignored."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(item is None or isinstance(item, str) for item in value):
        raise JiraError(400, f"'{field}' must be an array of strings.")
    return list(dict.fromkeys(item for item in value if item))


def _id_list(value: Any, field: str) -> list[int]:
    """A JSON array of ids; nulls and anything that is not an integer id are ignored like unknown ids."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise JiraError(400, f"'{field}' must be an array of ids.")
    return list(dict.fromkeys(item for item in value if isinstance(item, int) and not isinstance(item, bool)))


@dataclass(slots=True)
class _ProjectCheck:
    permission: str
    projects: list[Project]
    issues: list[Issue]


def _check_target(call: Call, account_id: Any) -> str | None:
    """The account the check is for: the caller, or (for Jira administrators only) the body's ``accountId``."""
    if account_id is None or account_id == call.caller:
        return call.caller
    if not call.engine.is_admin(call.caller):
        raise JiraError(403, ADMIN_ONLY_CHECK)
    if not isinstance(account_id, str) or account_id not in call.site.users:
        raise JiraError(400, f"The accountId '{account_id}' is not a valid account ID.")
    return account_id


def _unrecognized(keys: Iterable[str], kind: PermissionType) -> list[str]:
    return [key for key in keys if key not in PERMISSIONS or PERMISSIONS[key].type != kind]


def _project_checks(call: Call, raw: Any) -> tuple[list[_ProjectCheck], list[str]]:
    """The requested project checks, merged per permission, and the unrecognized keys among them."""
    if raw is None:
        return [], []
    if not isinstance(raw, list) or not all(entry is None or isinstance(entry, dict) for entry in raw):
        raise JiraError(400, "'projectPermissions' must be an array of objects.")
    checks: dict[str, _ProjectCheck] = {}
    unknown: list[str] = []
    valid_projects: set[int] = set()
    valid_issues: set[int] = set()
    for entry in (e for e in raw if e is not None):
        permissions = _string_list(entry.get("permissions"), "permissions")
        if not permissions:
            raise JiraError(400, "Each project permissions entry needs at least one project permission.")
        unknown += _unrecognized(permissions, "PROJECT")
        projects = [
            call.site.projects[i] for i in _id_list(entry.get("projects"), "projects") if i in call.site.projects
        ]
        issues = [call.site.issues[i] for i in _id_list(entry.get("issues"), "issues") if i in call.site.issues]
        valid_projects.update(p.id for p in projects)
        valid_issues.update(i.id for i in issues)
        for key in permissions:
            check = checks.setdefault(key, _ProjectCheck(key, [], []))
            check.projects += [p for p in projects if p not in check.projects]
            check.issues += [i for i in issues if i not in check.issues]
    if len(valid_projects) > MAX_CHECKED_IDS or len(valid_issues) > MAX_CHECKED_IDS:
        raise JiraError(400, f"You can check at most {MAX_CHECKED_IDS} projects and {MAX_CHECKED_IDS} issues.")
    return list(checks.values()), unknown


@route("POST", "/rest/api/3/permissions/check")
def bulk_permissions(call: Call) -> dict[str, Any]:
    """``getBulkPermissions``: which of the requested global permissions, projects and issues an account holds."""
    body = call.json()
    if not isinstance(body, dict):
        raise JiraError(400, "The request body must be a JSON object.")
    target = _check_target(call, body.get("accountId"))
    global_keys = _string_list(body.get("globalPermissions"), "globalPermissions")
    checks, unknown = _project_checks(call, body.get("projectPermissions"))
    unknown = _unrecognized(global_keys, "GLOBAL") + unknown
    if unknown:
        raise JiraError(400, errors=dict.fromkeys(unknown, UNRECOGNIZED))
    engine = call.engine
    return {
        "globalPermissions": [key for key in global_keys if engine.has_global(target, key)],
        "projectPermissions": [
            {
                "permission": check.permission,
                "issues": sorted(
                    i.id for i in check.issues if engine.has_issue_permission(target, check.permission, i)
                ),
                "projects": sorted(
                    p.id for p in check.projects if engine.has_project_permission(target, check.permission, p)
                ),
            }
            for check in checks
        ],
    }


@route("POST", "/rest/api/3/permissions/project")
def permitted_projects(call: Call) -> dict[str, Any]:
    """``getPermittedProjects``: the projects where the caller holds every one of the given project permissions."""
    body = call.json()
    if not isinstance(body, dict) or body.get("permissions") is None:
        raise JiraError(400, "The 'permissions' field is required.")
    keys = _string_list(body["permissions"], "permissions")
    unknown = _unrecognized(keys, "PROJECT")
    if unknown:
        raise JiraError(400, *(f"The project permission '{key}' does not exist." for key in unknown))
    projects = [
        project
        for project in call.site.projects.values()
        if keys and all(call.engine.has_project_permission(call.caller, key, project) for key in keys)
    ]
    return {"projects": [{"id": project.id, "key": project.key} for project in projects]}


# -- application roles -------------------------------------------------------------------------------------------
def _group_details(call: Call, group_ids: Iterable[str]) -> list[dict[str, Any]]:
    return [group_name_json(call, gid) for gid in group_ids if gid in call.site.groups]


def application_role_json(call: Call, role: ApplicationRole) -> dict[str, Any]:
    """``ApplicationRole`` as ``/applicationrole`` answers it: seats counted from the active members of its groups."""
    members = {
        account_id
        for gid in role.group_ids
        for account_id in call.site.group_members.get(gid, set())
        if call.engine.is_active(account_id)
    }
    return application_role_body(
        call, role, user_count=len(members), remaining_seats=role.number_of_seats - len(members)
    )


def application_role_body(
    call: Call, role: ApplicationRole, *, user_count: int, remaining_seats: int
) -> dict[str, Any]:
    """``ApplicationRole`` with the seat counts given: group names *and* ids (names change)."""
    groups = _group_details(call, role.group_ids)
    default_groups = _group_details(call, role.default_group_ids)
    return {
        "key": role.key,
        "groups": [g["name"] for g in groups],
        "groupDetails": groups,
        "name": role.name,
        "defaultGroups": [g["name"] for g in default_groups],
        "defaultGroupsDetails": default_groups,
        "selectedByDefault": False,
        "defined": False,
        "numberOfSeats": role.number_of_seats,
        "remainingSeats": remaining_seats,
        "userCount": user_count,
        "userCountDescription": "users",
        "hasUnlimitedSeats": False,
        "platform": role.key == "jira-core",
    }


@route("GET", "/rest/api/3/applicationrole")
def application_roles(call: Call) -> list[dict[str, Any]]:
    """``getAllApplicationRoles``: every product's access groups; Jira administrators only."""
    require_admin(call)
    return [application_role_json(call, role) for role in call.site.application_roles.values()]


@route("GET", "/rest/api/3/applicationrole/{key}")
def application_role(call: Call) -> dict[str, Any]:
    """``getApplicationRole``: one product's access groups; Jira administrators only."""
    require_admin(call)
    key = call.path_params["key"]
    role = call.site.application_roles.get(key)
    if role is None:
        raise JiraError(404, f"The application role with key '{key}' does not exist.")
    return application_role_json(call, role)
