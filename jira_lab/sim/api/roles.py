"""Project roles: the roles of a project with this project's actors, and the global roles with their default actors.

Roles are global in Jira Cloud; each project has its own actors per role (a user, or a group by id). Reading them
is project configuration, gated as Jira's ``ProjectRoleResource`` gates it:

* a project the caller may not even view answers 404 with Jira's missing-project message, so it does not leak;
* a project it may view but not administer answers **401** "You cannot edit the configuration of this project."
  (the spec documents 401 "if the user lacks administrative permissions for the project", and live Cloud answers
  exactly that); ``project/{key}/roledetails``, whose spec lists only 404, answers 404 with that message;
* ``project/{key}/role`` needs Administer Projects in *any* project (or Administer Jira), ``role/{id}`` and
  ``roledetails`` in this project;
* the global ``/role`` endpoints need Administer Jira (403 otherwise).

Choices where Jira's documentation is silent, kept in one place:

* actors carry a stable made-up ``id`` (the simulated site does not number them);
* the ``Administrators`` role is the admin role in ``roledetails``; no role is the default one;
* global roles are listed by name.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from jira_lab.sim.api.admin_only import require_admin
from jira_lab.sim.api.projects import viewable_project
from jira_lab.sim.model import Project, ProjectRole, RoleActors
from jira_lab.sim.routing import Call, JiraError, route

CANNOT_EDIT_PROJECT = "You cannot edit the configuration of this project."
USER_ACTOR = "atlassian-user-role-actor"
GROUP_ACTOR = "atlassian-group-role-actor"
#: The role Connect apps' add-on users are put in; ``roledetails?excludeConnectAddons=true`` leaves it out.
ADDONS_ROLE = "atlassian-addons-project-access"
ADMIN_ROLE = "Administrators"


# -- lookups ---------------------------------------------------------------------------------------------------
def configurable_project(call: Call, may_configure: Callable[[Project], bool], *, refusal_status: int) -> Project:
    """The path's project if the caller may read its configuration.

    Not viewable: 404 as for a missing project. Viewable but ``may_configure`` says no: ``refusal_status``.
    """
    project = viewable_project(call)
    if not may_configure(project):
        raise JiraError(refusal_status, CANNOT_EDIT_PROJECT)
    return project


def role_from_path(call: Call) -> ProjectRole:
    raw = call.path_params["id"]
    role = call.site.project_roles.get(int(raw)) if raw.isdigit() else None
    if role is None:
        raise JiraError(404, f"No project role could be found with id '{raw}'.")
    return role


def roles_by_name(call: Call) -> list[ProjectRole]:
    return sorted(call.site.project_roles.values(), key=lambda role: (role.name.casefold(), role.id))


# -- shapes ----------------------------------------------------------------------------------------------------
def _actor_id(scope: str, role: ProjectRole, member: str) -> int:
    return 10000 + zlib.crc32(f"{scope}/{role.id}/{member}".encode()) % 900000


def actors_json(
    call: Call, scope: str, role: ProjectRole, actors: RoleActors | None, *, exclude_inactive: bool = False
) -> list[dict[str, Any]]:
    """``RoleActor[]``: user actors by account id, group actors by name and id, sorted by display name."""
    if actors is None:
        return []
    rendered: list[dict[str, Any]] = []
    for account_id in actors.account_ids:
        user = call.site.users.get(account_id)
        if exclude_inactive and (user is None or not user.active):
            continue
        rendered.append(
            {
                "id": _actor_id(scope, role, account_id),
                "displayName": user.display_name if user is not None else "Former user",
                "type": USER_ACTOR,
                "actorUser": {"accountId": account_id},
            }
        )
    for group_id in actors.group_ids:
        group = call.site.groups.get(group_id)
        if group is None:
            continue
        rendered.append(
            {
                "id": _actor_id(scope, role, group_id),
                "displayName": group.name,
                "type": GROUP_ACTOR,
                "name": group.name,
                "actorGroup": {"name": group.name, "displayName": group.name, "groupId": group.group_id},
            }
        )
    return sorted(rendered, key=lambda actor: (actor["displayName"].casefold(), actor["type"], actor["id"]))


def project_role_self(call: Call, project: Project, role: ProjectRole) -> str:
    return call.self_url(f"/rest/api/3/project/{project.id}/role/{role.id}")


def role_json(call: Call, role: ProjectRole, project: Project | None = None) -> dict[str, Any]:
    """``ProjectRole`` without actors, linked under ``project`` if given, else under ``/role`` (a holder's role)."""
    self_url = (
        call.self_url(f"/rest/api/3/role/{role.id}") if project is None else project_role_self(call, project, role)
    )
    return {
        "self": self_url,
        "name": role.name,
        "id": role.id,
        "description": role.description,
    }


def global_role_json(call: Call, role: ProjectRole) -> dict[str, Any]:
    """``ProjectRole`` with its default actors, as ``/role`` lists it."""
    return {**role_json(call, role), "actors": actors_json(call, "default", role, role.default_actors)}


def role_details_json(call: Call, project: Project, role: ProjectRole) -> dict[str, Any]:
    return {
        **role_json(call, role, project),
        "admin": role.name == ADMIN_ROLE,
        "default": False,
        "roleConfigurable": True,
        "translatedName": role.name,
        "type": "DEFAULT",
    }


# -- project roles ---------------------------------------------------------------------------------------------
@route("GET", "/rest/api/3/project/{projectIdOrKey}/role")
def get_project_roles(call: Call) -> dict[str, str]:
    """``getProjectRoles``: ``{roleName: selfURL}`` for every role; Administer Projects anywhere suffices."""
    project = configurable_project(
        call, lambda _project: call.engine.administers_any_project(call.caller), refusal_status=401
    )
    return {role.name: project_role_self(call, project, role) for role in roles_by_name(call)}


@route("GET", "/rest/api/3/project/{projectIdOrKey}/role/{id}")
def get_project_role(call: Call) -> dict[str, Any]:
    """``getProjectRole``: the role with this project's actors, sorted by display name."""
    project = configurable_project(
        call, lambda project: call.engine.can_administer_project(call.caller, project), refusal_status=401
    )
    role = role_from_path(call)
    exclude_inactive = call.query_bool("excludeInactiveUsers", False)
    return {
        **role_json(call, role, project),
        "actors": actors_json(
            call, str(project.id), role, project.role_actors.get(role.id), exclude_inactive=exclude_inactive
        ),
    }


@route("GET", "/rest/api/3/project/{projectIdOrKey}/roledetails")
def get_project_role_details(call: Call) -> list[dict[str, Any]]:
    """``getProjectRoleDetails``: every role's details; ``currentMember=true`` keeps the caller's roles only."""
    project = configurable_project(
        call, lambda project: call.engine.can_administer_project(call.caller, project), refusal_status=404
    )
    roles = roles_by_name(call)
    if call.query_bool("currentMember", False):
        roles = [role for role in roles if call.engine.is_role_actor(call.caller, project, role.id)]
    if call.query_bool("excludeConnectAddons", False):
        roles = [role for role in roles if role.name != ADDONS_ROLE]
    return [role_details_json(call, project, role) for role in roles]


# -- global roles ----------------------------------------------------------------------------------------------
@route("GET", "/rest/api/3/role")
def get_all_project_roles(call: Call) -> list[dict[str, Any]]:
    """``getAllProjectRoles``: every role with its default actors (Administer Jira)."""
    require_admin(call)
    return [global_role_json(call, role) for role in roles_by_name(call)]


@route("GET", "/rest/api/3/role/{id}")
def get_project_role_by_id(call: Call) -> dict[str, Any]:
    """``getProjectRoleById``: one role with its default actors (Administer Jira)."""
    require_admin(call)
    return global_role_json(call, role_from_path(call))


@route("GET", "/rest/api/3/role/{id}/actors")
def get_project_role_actors_for_role(call: Call) -> dict[str, Any]:
    """``getProjectRoleActorsForRole``: ``{actors: [...]}``, the role's default actors (Administer Jira)."""
    require_admin(call)
    role = role_from_path(call)
    return {"actors": actors_json(call, "default", role, role.default_actors)}
