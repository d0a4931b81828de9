"""Users, groups, group members (inactive accounts included) and application roles with their groups.

Endpoints (``shared/reference/jira-endpoints.md`` §8, §9, §15):

* ``GET /users/search`` (OFS-array): every account, active, inactive and deleted, app and customer accounts
  included. Walked until an **empty** page: privacy filtering can shorten a page, so a short page proves nothing.
* ``GET /group/bulk`` (OFS-PageBean): every group, ``{name, groupId}``. Groups are keyed by id: names change.
* ``GET /group/member?groupId=…&includeInactiveUsers=true`` (OFS-PageBean, at most 50 a page): each group's members.
  ``includeInactiveUsers`` defaults to false, but a deactivated account still in a group is a member all the same.
* ``GET /applicationrole`` (one list): product access and the groups granting it (*Administer Jira*).

Who may read them: the first three need *Browse users and groups* (or *Administer Jira*), the last *Administer
Jira*. ``users/search`` refuses by answering an **empty list**; since the caller is itself a user of the site, an
empty list can only be that refusal, and :func:`fetch_users` reports it as one. The others answer 403, and
``group/member`` needs the classic scope ``manage:jira-configuration`` besides. Every refusal comes back as a
:class:`~jira_lab.resources.access.Refusal`, never as an exception (see :mod:`jira_lab.resources.access`).

Points: users and groups cost 2 points each whatever the page size, so pages are as large as Jira allows (fewer
requests, fewer base points), and a refused member read is not repeated for every group.

Composing (what the loader does): ``fetch_groups`` pages go to :func:`groups_frame`; their ids
(:func:`group_ids`) to :func:`fetch_group_members`, whose pages go to :func:`group_members_frame`. When the groups
are refused, the members are too (the same permission): record ``group_members`` as refused with them rather than
read an empty membership. ``group/member`` lists each group's members whole, so a group's rows can replace the
stored ones (:func:`jira_lab.store.replace_rows` with :func:`group_members_scope`), which drops members who left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.errors import JiraApiError, JiraLabError
from jira_lab.pagination import Page, array_pages, page_bean_pages
from jira_lab.resources.access import (
    Refusal,
    gather_all,
    refusable,
    refusable_pages,
    refusal_of,
    scoped,
    silently_empty,
)
from jira_lab.resources.convert import embedded_users, json_text, to_int
from jira_lab.schema import table

USERS = table("users")
USER_DETAILS = table("user_details")
GROUPS = table("groups")
GROUP_MEMBERS = table("group_members")
APPLICATION_ROLES = table("application_roles")
APPLICATION_ROLE_GROUPS = table("application_role_groups")

#: ``users/search`` returns at most 1000 users a page.
USERS_PAGE_SIZE = 1000
#: ``group/bulk`` documents no maximum; Jira lowers an oversized request and the walk follows what it gives.
GROUPS_PAGE_SIZE = 1000
#: ``group/member`` returns 1 to 50 members a page.
GROUP_MEMBERS_PAGE_SIZE = 50

USERS_PATH = "/rest/api/3/users/search"
NO_USERS_LISTED = (
    "users/search listed no users, not even the caller: the principal lacks the global permission Browse users "
    "and groups (USER_PICKER), which Jira answers with an empty list instead of an error"
)


@dataclass(frozen=True, slots=True)
class GroupMembersPage:
    """One ``group/member`` page: the group it lists (by id) and its members (``UserDetails``)."""

    group_id: str
    members: list[dict[str, Any]]


# -- fetching ------------------------------------------------------------------------------------------------------


async def fetch_users(client: JiraClient, *, page_size: int = USERS_PAGE_SIZE) -> AsyncIterator[Page | Refusal]:
    """Every account of the site, in pages of ``GET /rest/api/3/users/search``, until an empty page.

    Args:
        client: the client.
        page_size: users per page to ask for (Jira's maximum is 1000).

    Yields:
        Each non-empty page (items: ``User`` objects); or one :class:`Refusal` for ``users`` when Jira refused
        (403, a missing scope) or listed no users at all (no *Browse users and groups*).
    """
    listed = 0
    async for page in refusable_pages(USERS.name, array_pages(client, USERS_PATH, max_results=page_size)):
        if isinstance(page, Refusal):
            yield page
            return
        listed += len(page.items)
        if page.items:
            yield page
    if listed == 0:
        yield silently_empty(USERS.name, NO_USERS_LISTED, f"GET {USERS_PATH}")


def fetch_groups(client: JiraClient, *, page_size: int = GROUPS_PAGE_SIZE) -> AsyncIterator[Page | Refusal]:
    """Every group, in pages of ``GET /rest/api/3/group/bulk`` (items: ``GroupDetails`` ``{name, groupId}``).

    Yields:
        Each page; or a :class:`Refusal` for ``groups`` instead of the rest.
    """
    return refusable_pages(GROUPS.name, page_bean_pages(client, "/rest/api/3/group/bulk", max_results=page_size))


async def fetch_group_members(
    client: JiraClient, group_ids: Iterable[str], *, page_size: int = GROUP_MEMBERS_PAGE_SIZE
) -> AsyncIterator[GroupMembersPage | Refusal]:
    """The members of each group, inactive accounts included (``GET /rest/api/3/group/member``).

    The first group is read alone: Jira refuses member reads by a global permission (or a scope), so a refusal
    there would repeat for every group; one :class:`Refusal` for ``group_members`` is yielded and nothing more is
    asked. The other groups are read concurrently (the client caps requests in flight); their pages come out in
    the order of ``group_ids``. A group deleted since it was listed (404) is skipped: the loader's deletion sweep
    finds it gone.

    Args:
        client: the client.
        group_ids: the groups, by id (as :func:`groups_frame` keys them).
        page_size: members per page to ask for (Jira's maximum is 50).

    Yields:
        Every page of every group (a group without members gives one empty page, so its membership is known to be
        empty); or refusals: ``group_members`` when the first group is refused, ``group_members:{group id}`` for a
        later one.
    """
    ids = list(dict.fromkeys(group_ids))
    if not ids:
        return
    first = await _group_member_pages(client, ids[0], page_size, GROUP_MEMBERS.name)
    for item in first:
        yield item
    if any(isinstance(item, Refusal) for item in first):
        return
    rest = await gather_all(
        _group_member_pages(client, gid, page_size, scoped(GROUP_MEMBERS.name, gid)) for gid in ids[1:]
    )
    for pages in rest:
        for item in pages:
            yield item


async def _group_member_pages(
    client: JiraClient, group_id: str, page_size: int, resource: str
) -> list[GroupMembersPage | Refusal]:
    params = {"groupId": group_id, "includeInactiveUsers": "true"}
    pages: list[GroupMembersPage | Refusal] = []
    try:
        async for page in page_bean_pages(client, "/rest/api/3/group/member", params=params, max_results=page_size):
            pages.append(GroupMembersPage(group_id, list(page.items)))
    except JiraLabError as error:
        if isinstance(error, JiraApiError) and error.status == 404:
            return []
        refusal = refusal_of(resource, error)
        if refusal is None:
            raise
        pages.append(refusal)
    return pages


async def fetch_application_roles(client: JiraClient) -> AsyncIterator[Page | Refusal]:
    """Every application role with its groups, from ``GET /rest/api/3/applicationrole`` (*Administer Jira*).

    Yields:
        One page (items: ``ApplicationRole`` objects), or a :class:`Refusal` for ``application_roles``.
    """
    answer = await refusable(APPLICATION_ROLES.name, client.get("/rest/api/3/applicationrole"))
    if isinstance(answer, Refusal):
        yield answer
    else:
        yield Page(list(answer or []), answer)


# -- frames --------------------------------------------------------------------------------------------------------


def users_frame(users: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``users`` rows of ``User`` objects (``users/search``), once per account id (the last one wins).

    Args:
        users: the ``User`` objects, from any number of pages.
        site_id: the site.
    """
    rows: dict[str, dict[str, Any]] = {}
    for user in users:
        account = user.get("accountId")
        if not account:
            continue
        rows[str(account)] = {
            "site_id": site_id,
            "account_id": str(account),
            "account_type": user.get("accountType"),
            "app_type": user.get("appType"),
            "active": user.get("active"),
            "display_name": user.get("displayName"),
            "email_address": user.get("emailAddress"),
            "time_zone": user.get("timeZone"),
            "locale": user.get("locale"),
            "raw": json_text(user),
        }
    return USERS.frame(rows.values())


def user_details_frame(items: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``user_details`` rows of the authors embedded in comments, worklogs or changelog histories, one per account."""
    return USER_DETAILS.frame(
        {"site_id": site_id, "account_id": account, "display_name": user.get("displayName"), "raw": json_text(user)}
        for account, user in embedded_users(items).items()
    )


def groups_frame(groups: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``groups`` rows of ``GroupDetails`` (``group/bulk``): keyed by ``groupId``, the name as an attribute.

    A group without a ``groupId`` (the spec allows null for some legacy groups) cannot be keyed and is left out.
    """
    rows: dict[str, dict[str, Any]] = {}
    for group in groups:
        group_id = group.get("groupId")
        if not group_id:
            continue
        rows[str(group_id)] = {
            "site_id": site_id,
            "group_id": str(group_id),
            "name": group.get("name"),
            "raw": json_text(group),
        }
    return GROUPS.frame(rows.values())


def group_members_frame(pages: Iterable[GroupMembersPage], *, site_id: str) -> pl.DataFrame:
    """``group_members`` rows: one per (group, member), inactive members included, each pair once."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for page in pages:
        for member in page.members:
            account = member.get("accountId")
            if account:
                key = (page.group_id, str(account))
                rows[key] = {"site_id": site_id, "group_id": page.group_id, "account_id": str(account)}
    return GROUP_MEMBERS.frame(rows.values())


def group_members_scope(pages: Iterable[GroupMembersPage], *, site_id: str) -> pl.DataFrame:
    """``(site_id, group_id)`` of every group whose members were read: the ``scope`` for replacing their rows."""
    walked = dict.fromkeys(page.group_id for page in pages)
    return pl.DataFrame(
        {"site_id": [site_id] * len(walked), "group_id": list(walked)},
        schema={"site_id": pl.String(), "group_id": pl.String()},
    )


def application_roles_frames(roles: Iterable[Mapping[str, Any]], *, site_id: str) -> dict[str, pl.DataFrame]:
    """``application_roles`` and ``application_role_groups`` rows of ``ApplicationRole`` objects.

    A role's groups come from ``groupDetails`` (with ids; names change), its default groups from
    ``defaultGroupsDetails`` (``is_default``; one missing from ``groupDetails`` is listed all the same).

    Returns:
        ``{"application_roles": frame, "application_role_groups": frame}``.
    """
    role_rows: dict[str, dict[str, Any]] = {}
    group_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for role in roles:
        key = role.get("key")
        if not key:
            continue
        role_rows[str(key)] = {
            "site_id": site_id,
            "key": str(key),
            "name": role.get("name"),
            "selected_by_default": role.get("selectedByDefault"),
            "number_of_seats": to_int(role.get("numberOfSeats")),
            "remaining_seats": to_int(role.get("remainingSeats")),
            "user_count": to_int(role.get("userCount")),
            "has_unlimited_seats": role.get("hasUnlimitedSeats"),
            "platform": role.get("platform"),
            "raw": json_text(role),
        }
        defaults = {str(g["groupId"]) for g in role.get("defaultGroupsDetails") or [] if g.get("groupId")}
        details = [*(role.get("groupDetails") or []), *(role.get("defaultGroupsDetails") or [])]
        for group in details:
            group_id = group.get("groupId")
            if not group_id or (str(key), str(group_id)) in group_rows:
                continue
            group_rows[(str(key), str(group_id))] = {
                "site_id": site_id,
                "application_key": str(key),
                "group_id": str(group_id),
                "group_name": group.get("name"),
                "is_default": str(group_id) in defaults,
            }
    return {
        APPLICATION_ROLES.name: APPLICATION_ROLES.frame(role_rows.values()),
        APPLICATION_ROLE_GROUPS.name: APPLICATION_ROLE_GROUPS.frame(group_rows.values()),
    }


def group_ids(groups: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ids of ``GroupDetails`` objects, in order, each once (what :func:`fetch_group_members` takes)."""
    return list(dict.fromkeys(str(g["groupId"]) for g in groups if g.get("groupId")))
