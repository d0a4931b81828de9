"""Users: every account of the site, one user, several users by account id, and a user's groups.

*Browse users and groups* (``USER_PICKER``, which Jira administrators also pass) decides what a caller learns about
people, in the two ways Jira documents:

* ``GET /users/search`` and ``GET /users`` answer an **empty list**, not an error, to a caller without it
  (``jira-semantics.md`` §2.6): a technical user missing the permission silently loads no users.
* ``GET /user`` and ``GET /user/groups`` answer 403, as their spec entries say.

Choices where Jira's documentation is silent, kept in one place:

* the user list follows the site's order (the order accounts were created in), and includes inactive, app and
  customer accounts, as the spec's "active users, inactive users and previously deleted users" says;
* ``GET /user/bulk`` lists the known accounts among the ``accountId`` values in the order they were asked for,
  once each; unknown ids are left out silently;
* the 400/403 messages of ``GET /user``, ``/user/groups`` and ``/user/bulk`` are not documented; the texts below
  follow the documented message of ``GET /group/bulk``.
"""

from __future__ import annotations

from typing import Any

from jira_lab.sim.api.permissions import application_role_body
from jira_lab.sim.model import ApplicationRole, User
from jira_lab.sim.render import group_name_json, page_bean, user_json
from jira_lab.sim.routing import Call, JiraError, route

#: ``maxResults`` of ``GET /users/search``: default and the documented limit.
USERS_DEFAULT_PAGE = 50
USERS_MAX_PAGE = 1000
#: ``maxResults`` default of ``GET /user/bulk``.
BULK_DEFAULT_PAGE = 10

USER_NOT_FOUND = "Specified user does not exist or you do not have required permissions"
ACCOUNT_ID_REQUIRED = "The accountId query parameter needs to be provided."
BROWSE_USERS_REQUIRED = "Browse users and groups permission is required to view users."
BROWSE_GROUPS_REQUIRED = "Browse users and groups permission is required to view groups."
USER_EXPANDS = "groups,applicationRoles"


# -- shapes ----------------------------------------------------------------------------------------------------
def groups_sorted_by_name(call: Call, group_ids: set[str]) -> list[str]:
    return sorted(group_ids, key=lambda gid: (call.site.groups[gid].name.casefold(), gid))


def _application_role_json(call: Call, role: ApplicationRole) -> dict[str, Any]:
    """``ApplicationRole`` as the ``applicationRoles`` expansion of a user lists it."""
    licensed = sum(1 for account_id in call.site.users if call.engine.has_application_access(account_id, role.key))
    return application_role_body(
        call, role, user_count=licensed, remaining_seats=max(role.number_of_seats - licensed, 0)
    )


def user_with_expansions(call: Call, user: User, expand: set[str]) -> dict[str, Any]:
    """``User`` as ``GET /user`` answers it: ``groups`` and ``applicationRoles`` carry their size, and their items
    only when expanded (as in the spec's example, ``{"items": [], "size": 3}``)."""
    body = user_json(call, user)
    group_ids = groups_sorted_by_name(call, call.engine.groups_of(user.account_id) & call.site.groups.keys())
    roles = [
        role
        for role in call.site.application_roles.values()
        if call.engine.has_application_access(user.account_id, role.key)
    ]
    body["groups"] = {
        "size": len(group_ids),
        "items": [group_name_json(call, gid) for gid in group_ids] if "groups" in expand else [],
    }
    body["applicationRoles"] = {
        "size": len(roles),
        "items": [_application_role_json(call, role) for role in roles] if "applicationRoles" in expand else [],
    }
    body["expand"] = USER_EXPANDS
    return body


# -- lookups ---------------------------------------------------------------------------------------------------
def required_account_id(call: Call) -> str:
    account_id = call.query("accountId")
    if not account_id:
        raise JiraError(400, ACCOUNT_ID_REQUIRED)
    return account_id


def known_user(call: Call, account_id: str) -> User:
    user = call.site.users.get(account_id)
    if user is None:
        raise JiraError(404, USER_NOT_FOUND)
    return user


# -- handlers --------------------------------------------------------------------------------------------------
def _all_users(call: Call) -> list[dict[str, Any]]:
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", USERS_DEFAULT_PAGE, minimum=0, maximum=USERS_MAX_PAGE)
    if not call.engine.can_browse_users(call.caller):
        return []
    users = list(call.site.users.values())[start_at : start_at + max_results]
    return [user_json(call, user) for user in users]


@route("GET", "/rest/api/3/users/search")
def get_all_users(call: Call) -> list[dict[str, Any]]:
    """``getAllUsers``: a bare array of users (offset paging); empty without *Browse users and groups*."""
    return _all_users(call)


@route("GET", "/rest/api/3/users")
def get_all_users_default(call: Call) -> list[dict[str, Any]]:
    """``getAllUsersDefault``: the same list as ``users/search``."""
    return _all_users(call)


@route("GET", "/rest/api/3/user")
def get_user(call: Call) -> dict[str, Any]:
    """``getUser``: one user by account id, with ``expand=groups,applicationRoles``."""
    account_id = required_account_id(call)
    if not call.engine.can_browse_users(call.caller):
        raise JiraError(403, BROWSE_USERS_REQUIRED)
    user = known_user(call, account_id)
    return user_with_expansions(call, user, call.expansions())


@route("GET", "/rest/api/3/user/groups")
def get_user_groups(call: Call) -> list[dict[str, Any]]:
    """``getUserGroups``: the bare ``GroupName[]`` of the user's groups, by name."""
    account_id = required_account_id(call)
    if not call.engine.can_browse_users(call.caller):
        raise JiraError(403, BROWSE_GROUPS_REQUIRED)
    user = known_user(call, account_id)
    group_ids = call.engine.groups_of(user.account_id) & call.site.groups.keys()
    return [group_name_json(call, gid) for gid in groups_sorted_by_name(call, group_ids)]


@route("GET", "/rest/api/3/user/bulk")
def bulk_get_users(call: Call) -> dict[str, Any]:
    """``bulkGetUsers``: a ``PageBeanUser`` of the requested accounts (``accountId`` repeated)."""
    requested = call.query_list("accountId")
    if not requested:
        raise JiraError(400, ACCOUNT_ID_REQUIRED)
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", BULK_DEFAULT_PAGE, minimum=1)
    users = [call.site.users[account_id] for account_id in dict.fromkeys(requested) if account_id in call.site.users]
    return page_bean(call, users, lambda user: user_json(call, user), start_at=start_at, max_results=max_results)
