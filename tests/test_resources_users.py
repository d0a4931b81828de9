"""Users, groups, group members and application roles, read through the simulated site and checked against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from resource_helpers import READ_ONLY_CLASSIC_SCOPES, answers, as_account, principal, refusals, without_admin

from jira_lab import schema, store
from jira_lab.pagination import Page
from jira_lab.resources.access import Refusal
from jira_lab.resources.users import (
    APPLICATION_ROLE_GROUPS,
    APPLICATION_ROLES,
    GROUP_MEMBERS,
    GROUPS,
    USERS,
    GroupMembersPage,
    application_roles_frames,
    fetch_application_roles,
    fetch_group_members,
    fetch_groups,
    fetch_users,
    group_ids,
    group_members_frame,
    group_members_scope,
    groups_frame,
    user_details_frame,
    users_frame,
)
from jira_lab.sim.api.groups import BROWSE_GROUPS_REQUIRED
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

SITES = ("tiny", "demo")


def fresh(size: str) -> Site:
    return generate_site(size, 0)


def pages_of(items: list[Page | Refusal]) -> list[dict[str, Any]]:
    return [item for page in answers(items) for item in page.items]


def member_truth(site: Site) -> set[tuple[str, str]]:
    return {
        (gid, account) for gid, members in site.group_members.items() for account in members if account in site.users
    }


def browser_without_user_picker(site: Site) -> str:
    """A person who keeps product access but loses Browse users and groups (the site is changed in place)."""
    site.global_permissions["USER_PICKER"] = set()
    engine = PermissionEngine(site)
    person = next(
        a
        for a in site.users
        if engine.can_access_jira(a) and not engine.is_admin(a) and a not in site.accounts.values()
    )
    assert not engine.can_browse_users(person)
    return person


# -- users ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_users_are_every_account_of_the_site_inactive_and_app_accounts_included(size: str) -> None:
    site = fresh(size)
    items = principal(site, "analyst").collect(lambda c: fetch_users(c, page_size=5))

    assert refusals(items) == []
    frame = users_frame(pages_of(items), site_id="s")
    assert frame.schema == USERS.polars_schema
    assert set(frame["account_id"]) == set(site.users)
    assert frame.height == len(site.users)
    by_id = {row["account_id"]: row for row in frame.iter_rows(named=True)}
    for account_id, user in site.users.items():
        assert by_id[account_id]["active"] == user.active
        assert by_id[account_id]["account_type"] == user.account_type
        assert by_id[account_id]["display_name"] == user.display_name
    app = site.accounts["app"]
    assert by_id[app]["account_type"] == "app" and by_id[app]["app_type"] == "service"
    assert any(not user.active for user in site.users.values())  # the inactive account is in the truth, and found


def test_users_walk_goes_on_past_a_short_page_until_an_empty_one() -> None:
    site = fresh("tiny")
    dropped: list[str] = []

    def privacy_filter(request: httpx.Request, body: Any) -> Any:
        # Jira's privacy filtering can drop a user from a page: the page comes back short but is not the last
        if request.url.path.endswith("/users/search") and request.url.params.get("startAt") == "4" and body:
            dropped.append(body[0]["accountId"])
            return body[1:]
        return body

    caller = principal(site, "analyst", rewrite=privacy_filter)
    items = caller.collect(lambda c: fetch_users(c, page_size=4))

    frame = users_frame(pages_of(items), site_id="s")
    assert len(dropped) == 1
    assert set(frame["account_id"]) == set(site.users) - set(dropped)
    starts = [int(r.url.params["startAt"]) for r in caller.transport.requests]
    # the short page (3 users) moved the offset by 3 and the walk went on; it stopped only on an empty page, asked
    # past the last user
    assert starts[:3] == [0, 4, 7]
    assert starts[-2] < len(site.users) <= starts[-1]
    assert [len(page.items) for page in answers(items)][-1] > 0  # the empty page itself is not yielded


def test_users_listed_empty_without_browse_users_is_a_refusal_not_an_empty_site() -> None:
    site = fresh("tiny")
    person = browser_without_user_picker(site)
    items = as_account(site, person).collect(fetch_users)

    assert answers(items) == []
    [refusal] = refusals(items)
    assert refusal.resource == "users"
    assert refusal.outcome == "forbidden" and refusal.http_status is None
    assert "Browse users and groups" in refusal.message
    assert str(refusal).startswith("could not read users (empty answer: ")


def test_users_frame_keeps_each_account_once_and_skips_accounts_without_id() -> None:
    frame = users_frame(
        [
            {"accountId": "a1", "displayName": "Old name", "active": True, "accountType": "atlassian"},
            {"displayName": "corrupted, no id"},
            {"accountId": "a1", "displayName": "New name", "active": False, "accountType": "atlassian"},
        ],
        site_id="s",
    )
    assert frame.rows(named=True) == [
        {
            "site_id": "s",
            "account_id": "a1",
            "account_type": "atlassian",
            "app_type": None,
            "active": False,
            "display_name": "New name",
            "email_address": None,
            "time_zone": None,
            "locale": None,
            "raw": '{"accountId":"a1","displayName":"New name","active":false,"accountType":"atlassian"}',
            "deleted_at": None,
            "deleted_reason": None,
        }
    ]


# -- groups and members --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_groups_are_keyed_by_id_with_their_current_name_after_a_rename(size: str) -> None:
    site = fresh(size)
    renamed = next(iter(site.groups.values()))
    renamed.name = "renamed-during-the-audit"
    items = principal(site, "analyst").collect(lambda c: fetch_groups(c, page_size=2))

    frame = groups_frame(pages_of(items), site_id="s")
    assert frame.schema == GROUPS.polars_schema
    assert dict(zip(frame["group_id"], frame["name"], strict=True)) == {
        gid: group.name for gid, group in site.groups.items()
    }
    assert frame.filter(frame["group_id"] == renamed.group_id)["name"].item() == "renamed-during-the-audit"


@pytest.mark.parametrize("size", SITES)
def test_group_members_are_every_member_of_every_group_inactive_ones_included(size: str) -> None:
    site = fresh(size)
    caller = principal(site, "analyst")
    items = caller.collect(lambda c: fetch_group_members(c, list(site.groups), page_size=2))

    assert refusals(items) == []
    frame = group_members_frame(answers(items), site_id="s")
    assert frame.schema == GROUP_MEMBERS.polars_schema
    assert set(zip(frame["group_id"], frame["account_id"], strict=True)) == member_truth(site)
    inactive = {a for a, user in site.users.items() if not user.active}
    assert inactive & set(frame["account_id"])  # a deactivated account still in a group is a member
    # every group was walked in pages of 2: the biggest group needed several requests
    biggest = max(len(members) for members in site.group_members.values())
    assert len(caller.transport.paths("/group/member")) >= len(site.groups) + biggest // 2 - 1


def test_a_group_without_members_gives_an_empty_page_so_its_emptiness_is_known() -> None:
    site = fresh("tiny")
    empty = next(iter(site.groups))
    site.group_members[empty] = set()
    items = principal(site, "analyst").collect(lambda c: fetch_group_members(c, [empty]))

    assert items == [GroupMembersPage(empty, [])]


def test_group_members_refused_once_asks_no_further_group() -> None:
    site = fresh("tiny")
    person = browser_without_user_picker(site)
    caller = as_account(site, person)
    items = caller.collect(lambda c: fetch_group_members(c, list(site.groups)))
    groups = caller.collect(fetch_groups)

    [refusal] = items
    assert isinstance(refusal, Refusal)
    assert (refusal.resource, refusal.outcome, refusal.http_status) == ("group_members", "forbidden", 403)
    assert refusal.message == BROWSE_GROUPS_REQUIRED
    assert refusal.request.startswith("GET ") and "/group/member?" in refusal.request
    assert len(caller.transport.paths("/group/member")) == 1  # not one refused request per group
    [refused_groups] = groups
    assert isinstance(refused_groups, Refusal) and refused_groups.resource == "groups"
    assert refused_groups.http_status == 403 and refused_groups.message == BROWSE_GROUPS_REQUIRED


def test_a_token_without_the_configuration_scope_gets_member_reads_refused_as_missing_scope() -> None:
    site = fresh("tiny")
    caller = principal(site, "analyst", scopes=READ_ONLY_CLASSIC_SCOPES)

    groups = caller.collect(fetch_groups)
    members = caller.collect(lambda c: fetch_group_members(c, group_ids(pages_of(groups))))
    roles = caller.collect(fetch_application_roles)

    assert refusals(groups) == []  # group/bulk needs read:jira-user only
    [members_refusal] = members
    assert isinstance(members_refusal, Refusal)
    assert (members_refusal.resource, members_refusal.outcome, members_refusal.http_status) == (
        "group_members",
        "missing_scope",
        401,
    )
    assert "manage:jira-configuration" in members_refusal.message
    [roles_refusal] = roles
    assert isinstance(roles_refusal, Refusal) and roles_refusal.outcome == "missing_scope"


def test_groups_frame_leaves_out_groups_without_an_id() -> None:
    frame = groups_frame([{"name": "legacy", "groupId": None}, {"name": "team", "groupId": "g-1"}], site_id="s")
    assert frame.select("group_id", "name").rows() == [("g-1", "team")]


# -- application roles -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SITES)
def test_application_roles_with_the_groups_granting_them(size: str) -> None:
    site = fresh(size)
    items = principal(site, "analyst").collect(fetch_application_roles)

    frames = application_roles_frames(pages_of(items), site_id="s")
    roles, role_groups = frames["application_roles"], frames["application_role_groups"]
    assert roles.schema == APPLICATION_ROLES.polars_schema
    assert role_groups.schema == APPLICATION_ROLE_GROUPS.polars_schema
    assert dict(zip(roles["key"], roles["name"], strict=True)) == {
        key: role.name for key, role in site.application_roles.items()
    }
    assert set(role_groups.select("application_key", "group_id", "is_default").rows()) == {
        (key, gid, gid in role.default_group_ids)
        for key, role in site.application_roles.items()
        for gid in {*role.group_ids, *role.default_group_ids}
        if gid in site.groups
    }


def test_application_roles_are_refused_to_a_principal_without_administer_jira() -> None:
    site = without_admin(fresh("demo"), "search-connectors")
    items = principal(site, "technical_user").collect(fetch_application_roles)

    [refusal] = items
    assert isinstance(refusal, Refusal)
    assert (refusal.resource, refusal.outcome, refusal.http_status) == ("application_roles", "forbidden", 403)
    assert "Administrator privileges are required" in refusal.message


def test_reading_a_groups_members_again_replaces_the_members_who_left(tmp_path: Path) -> None:
    site = fresh("tiny")
    group_id, members = next((gid, set(m)) for gid, m in site.group_members.items() if len(m) >= 2)
    leaver = sorted(members)[0]
    conn = store.connect(tmp_path / "members.duckdb")
    store.ensure_schema(conn)

    for _ in range(2):
        pages = answers(principal(site, "analyst").collect(lambda c: fetch_group_members(c, [group_id])))
        frame = group_members_frame(pages, site_id="s")
        store.replace_rows(conn, "group_members", frame, scope=group_members_scope(pages, site_id="s"))
        site.group_members[group_id].discard(leaver)  # leaves between the two loads

    stored = store.read_frame(conn, "SELECT account_id FROM group_members WHERE group_id = ?", [group_id])
    assert set(stored["account_id"]) == members - {leaver}
    conn.close()


def test_user_details_keep_each_embedded_author_once_as_last_sent() -> None:
    def user(account: str, name: str) -> dict[str, Any]:
        return {
            "self": f"https://x.atlassian.net/rest/api/3/user?accountId={account}",
            "accountId": account,
            "displayName": name,
            "avatarUrls": {"48x48": f"https://avatars.example/{account}"},
            "active": True,
        }

    items: list[dict[str, Any]] = [
        {"id": "1", "author": user("a-1", "Ann"), "updateAuthor": user("a-2", "Bob")},
        {"id": "2", "author": user("a-1", "Ann Lee"), "updateAuthor": None},  # renamed since: the later one stays
        {"id": "3", "author": {"displayName": "Former user"}},  # no account id: nothing to key it by
        {"id": "4"},
    ]
    frame = user_details_frame(items, site_id="cloud-1")
    assert frame.schema == schema.table("user_details").polars_schema
    rows = {row["account_id"]: row for row in frame.iter_rows(named=True)}
    assert {a: r["display_name"] for a, r in rows.items()} == {"a-1": "Ann Lee", "a-2": "Bob"}
    assert json.loads(rows["a-2"]["raw"]) == user("a-2", "Bob")
    assert {r["site_id"] for r in rows.values()} == {"cloud-1"}
