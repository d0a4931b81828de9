"""Groups: the site's groups (``group/bulk``) and a group's members (``group/member``).

Both need *Browse users and groups* (which Jira administrators also pass) and answer 403 without it. A group is
identified by its id, which never changes; its name can, and both endpoints always show the current name.

Choices where Jira's documentation is silent, kept in one place:

* ``group/bulk`` lists groups by name (case-insensitively); ``groupId`` and ``groupName`` filters select the
  union of the groups they name, unknown ones being ignored;
* ``accessType=admin`` selects the groups holding *Administer Jira*, ``accessType=user`` the groups giving product
  access; ``site-admin`` answers the 500 of the spec's example (site administration lives outside Jira);
* ``group/member`` orders members by display name: Jira orders them by username, which Cloud no longer shows;
* the 400/404 messages of ``group/member`` are not documented; the texts below say what went wrong.
"""

from __future__ import annotations

from typing import Any

from jira_lab.sim.model import Group
from jira_lab.sim.render import group_name, page_bean, user_details
from jira_lab.sim.routing import Call, JiraError, route

#: ``maxResults`` default of ``group/bulk``.
GROUPS_DEFAULT_PAGE = 50
#: ``maxResults`` of ``group/member``: default and the documented upper bound.
MEMBERS_MAX_PAGE = 50

BROWSE_GROUPS_REQUIRED = "Browse users and groups permission is required to view groups."
SITE_ADMIN_UNAVAILABLE = "Couldn't retrieve groups with the site-admin accessType."
ACCESS_TYPES = ("site-admin", "admin", "user")
APPLICATION_KEYS = ("jira-servicedesk", "jira-software", "jira-product-discovery", "jira-core")


def require_browse_users(call: Call) -> None:
    if not call.engine.can_browse_users(call.caller):
        raise JiraError(403, BROWSE_GROUPS_REQUIRED)


def groups_by_name(groups: list[Group]) -> list[Group]:
    return sorted(groups, key=lambda group: (group.name.casefold(), group.group_id))


# -- group/bulk ------------------------------------------------------------------------------------------------
def _named_groups(call: Call) -> list[Group] | None:
    """The groups the ``groupId``/``groupName`` filters name, or ``None`` when neither is given."""
    ids = call.query_list("groupId")
    names = call.query_list("groupName")
    if not ids and not names:
        return None
    return [group for group in call.site.groups.values() if group.group_id in ids or group.name in names]


def _groups_with_access(call: Call, access_type: str) -> set[str]:
    if access_type not in ACCESS_TYPES:
        raise JiraError(400, f"The accessType '{access_type}' is not valid. Valid values: {', '.join(ACCESS_TYPES)}.")
    if access_type == "site-admin":
        raise JiraError(500, SITE_ADMIN_UNAVAILABLE)
    if access_type == "admin":
        return set(call.site.global_permissions.get("ADMINISTER", set()))
    return {gid for role in call.site.application_roles.values() for gid in role.group_ids}


def _groups_of_application(call: Call, application_key: str) -> set[str]:
    if application_key not in APPLICATION_KEYS:
        raise JiraError(
            400, f"The applicationKey '{application_key}' is not valid. Valid values: {', '.join(APPLICATION_KEYS)}."
        )
    role = call.site.application_roles.get(application_key)
    return set(role.group_ids) if role is not None else set()


@route("GET", "/rest/api/3/group/bulk")
def bulk_get_groups(call: Call) -> dict[str, Any]:
    """``bulkGetGroups``: a ``PageBeanGroupDetails`` of ``{name, groupId}``, by name."""
    require_browse_users(call)
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", GROUPS_DEFAULT_PAGE, minimum=1)
    named = _named_groups(call)
    groups = list(call.site.groups.values()) if named is None else named
    access_type = call.query("accessType")
    if access_type:
        allowed = _groups_with_access(call, access_type)
        groups = [group for group in groups if group.group_id in allowed]
    application_key = call.query("applicationKey")
    if application_key:
        allowed = _groups_of_application(call, application_key)
        groups = [group for group in groups if group.group_id in allowed]
    return page_bean(
        call,
        groups_by_name(groups),
        lambda group: group_name(call.site, group.group_id),
        start_at=start_at,
        max_results=max_results,
    )


# -- group/member ----------------------------------------------------------------------------------------------
def requested_group(call: Call) -> Group:
    """The group named by ``groupId`` or ``groupname`` (exactly one of them); 404 when there is none such."""
    group_id = call.query("groupId")
    name = call.query("groupname")
    if group_id and name:
        raise JiraError(400, "Only one of the groupId and groupname parameters can be given.")
    if group_id:
        group = call.site.groups.get(group_id)
        if group is None:
            raise JiraError(404, f"The group with id '{group_id}' does not exist.")
        return group
    if name:
        by_name = call.site.group_by_name(name)
        if by_name is None:
            raise JiraError(404, f"The group named '{name}' does not exist.")
        return by_name
    raise JiraError(400, "The groupId or groupname parameter is required.")


@route("GET", "/rest/api/3/group/member")
def get_users_from_group(call: Call) -> dict[str, Any]:
    """``getUsersFromGroup``: a ``PageBeanUserDetails`` of the group's members, inactive ones only on request."""
    require_browse_users(call)
    group = requested_group(call)
    include_inactive = call.query_bool("includeInactiveUsers", False)
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", MEMBERS_MAX_PAGE, minimum=1, maximum=MEMBERS_MAX_PAGE)
    members = [
        call.site.users[account_id]
        for account_id in call.site.group_members.get(group.group_id, set())
        if account_id in call.site.users and (include_inactive or call.site.users[account_id].active)
    ]
    members.sort(key=lambda user: (user.display_name.casefold(), user.account_id))
    return page_bean(
        call,
        members,
        lambda user: user_details(call, user.account_id),
        start_at=start_at,
        max_results=max_results,
    )
