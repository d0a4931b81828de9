"""Permission schemes and their grants, and the ``PermissionHolder`` shape shared with issue security members.

A grant's ``holder`` is rendered as the spec's "Holder object" table says (``jira-endpoints.md`` §14):

========================  ========================================  ============================
``type``                  ``parameter``                             ``value``
========================  ========================================  ============================
``group``                 the group's *current* name                the group id
``user``                  account id                                account id
``projectRole``           role id                                   role id
``applicationRole``       application key (absent: any logged-in    application key
                          user)
``userCustomField``,      custom field id                           custom field id
``groupCustomField``
others                    (none)                                    (none)
========================  ========================================  ============================

``expand`` on a holder names the sub-object it can carry (``user``, ``group``, ``projectRole``, ``field``); the
sub-object itself is added only when the request's ``expand`` asks for it or for ``all``. The spec declares
``PermissionHolder`` with ``additionalProperties: false`` yet its own examples show ``holder.user``: the expanded
shape follows the examples.

Reading schemes needs "Permission to access Jira" (:meth:`~jira_lab.sim.permissions.PermissionEngine.can_access_jira`):
without product access the list answers 403 and a single scheme 404, as the spec's "not found or the user does not
have the necessary permission" allows. A project's scheme needs Administer Jira or Administer Projects there: a
project the caller cannot view is a 404, one it can view but not administer a 403.
"""

from __future__ import annotations

from typing import Any

from jira_lab.sim.api.fields import custom_field_json
from jira_lab.sim.api.projects import administered_project
from jira_lab.sim.api.roles import role_json
from jira_lab.sim.model import Holder, PermissionGrant, PermissionScheme
from jira_lab.sim.render import group_name_json, user_details
from jira_lab.sim.routing import Call, JiraError, route

#: The ``expand`` attribute of a scheme and of a grant list: what can be asked for.
SCHEME_EXPANDS = "permissions,user,group,projectRole,field,all"
GRANT_EXPANDS = "user,group,projectRole,field,all"

#: holder type -> the expand name of its sub-object
HOLDER_EXPANDS = {
    "user": "user",
    "group": "group",
    "projectRole": "projectRole",
    "userCustomField": "field",
    "groupCustomField": "field",
}
#: holder types whose ``parameter`` is also their ``value``
_SAME_PARAMETER_AND_VALUE = {"user", "projectRole", "applicationRole", "userCustomField", "groupCustomField"}

NO_JIRA_ACCESS = "You do not have permission to access Jira."


def _holder_sub_object(call: Call, holder: Holder) -> dict[str, Any] | None:
    """``holder.user|group|projectRole|field`` as Jira expands it; ``None`` if what it names no longer exists."""
    parameter = holder.parameter
    if parameter is None:
        return None
    if holder.type == "user":
        return user_details(call, parameter) if parameter in call.site.users else None
    if holder.type == "group":
        return group_name_json(call, parameter) if parameter in call.site.groups else None
    if holder.type == "projectRole":
        role = call.site.project_roles.get(int(parameter)) if parameter.isdigit() else None
        return role_json(call, role) if role is not None else None
    custom_field = call.site.custom_fields.get(parameter)
    return None if custom_field is None else custom_field_json(custom_field)


def holder_json(call: Call, holder: Holder, expand: set[str]) -> dict[str, Any]:
    """``PermissionHolder`` for a grant or a security level member, with the sub-object ``expand`` asks for."""
    body: dict[str, Any] = {"type": holder.type}
    if holder.type == "group" and holder.parameter is not None:
        group = call.site.groups.get(holder.parameter)
        # a group's name can change; its id (the value) cannot
        body["parameter"] = group.name if group is not None else holder.parameter
        body["value"] = holder.parameter
    elif holder.type in _SAME_PARAMETER_AND_VALUE and holder.parameter is not None:
        body["parameter"] = holder.parameter
        body["value"] = holder.parameter
    expand_name = HOLDER_EXPANDS.get(holder.type)
    if expand_name is not None:
        body["expand"] = expand_name
        if expand_name in expand or "all" in expand:
            sub_object = _holder_sub_object(call, holder)
            if sub_object is not None:
                body[expand_name] = sub_object
    return body


def grant_json(call: Call, scheme: PermissionScheme, grant: PermissionGrant, expand: set[str]) -> dict[str, Any]:
    """``PermissionGrant``."""
    return {
        "id": grant.id,
        "self": call.self_url(f"/rest/api/3/permissionscheme/{scheme.id}/permission/{grant.id}"),
        "holder": holder_json(call, grant.holder, expand),
        "permission": grant.permission,
    }


def scheme_json(call: Call, scheme: PermissionScheme, expand: set[str]) -> dict[str, Any]:
    """``PermissionScheme``; its grants are included when any ``expand`` value is given, as the spec says."""
    body: dict[str, Any] = {
        "expand": SCHEME_EXPANDS,
        "id": scheme.id,
        "self": call.self_url(f"/rest/api/3/permissionscheme/{scheme.id}"),
        "name": scheme.name,
        "description": scheme.description,
    }
    if expand:
        body["permissions"] = [grant_json(call, scheme, grant, expand) for grant in scheme.grants]
    return body


def _require_jira_access(call: Call, status: int, message: str) -> None:
    if not call.engine.can_access_jira(call.caller):
        raise JiraError(status, message)


def _scheme_from_path(call: Call) -> PermissionScheme:
    reference = call.path_params["schemeId"]
    scheme = call.site.permission_schemes.get(int(reference)) if reference.isdigit() else None
    message = f"The permission scheme with ID {reference} does not exist."
    _require_jira_access(call, 404, message)
    if scheme is None:
        raise JiraError(404, message)
    return scheme


@route("GET", "/rest/api/3/permissionscheme")
def get_all_permission_schemes(call: Call) -> dict[str, Any]:
    """``getAllPermissionSchemes``: every scheme, with its grants when ``expand`` has any value."""
    _require_jira_access(call, 403, NO_JIRA_ACCESS)
    expand = call.expansions()
    return {"permissionSchemes": [scheme_json(call, s, expand) for s in call.site.permission_schemes.values()]}


@route("GET", "/rest/api/3/permissionscheme/{schemeId}")
def get_permission_scheme(call: Call) -> dict[str, Any]:
    """``getPermissionScheme``: one scheme, with its grants when ``expand`` has any value."""
    return scheme_json(call, _scheme_from_path(call), call.expansions())


@route("GET", "/rest/api/3/permissionscheme/{schemeId}/permission")
def get_permission_scheme_grants(call: Call) -> dict[str, Any]:
    """``getPermissionSchemeGrants``: the scheme's grants, always; ``expand`` adds the holders' sub-objects."""
    scheme = _scheme_from_path(call)
    expand = call.expansions()
    return {"permissions": [grant_json(call, scheme, g, expand) for g in scheme.grants], "expand": GRANT_EXPANDS}


@route("GET", "/rest/api/3/project/{projectKeyOrId}/permissionscheme")
def get_assigned_permission_scheme(call: Call) -> dict[str, Any]:
    """``getAssignedPermissionScheme``: the project's scheme, for Jira and project administrators."""
    project = administered_project(call)
    return scheme_json(call, call.site.permission_schemes[project.permission_scheme_id], call.expansions())
