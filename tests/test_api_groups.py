"""The simulated group endpoints: ``group/bulk`` and ``group/member``.

Expectations come from :mod:`identity_site`: its groups and their members, who holds *Browse users and groups*
(Bea, and Ada as a Jira administrator), and Jira's rules that a group is found by its stable id under its current
name and that inactive members are left out unless asked for.
"""

from __future__ import annotations

import pytest
from identity_site import IdentitySite, build_identity_site, get_json
from paging import walk_pages
from spec import assert_response_matches_spec

from jira_lab.sim.api.groups import BROWSE_GROUPS_REQUIRED, MEMBERS_MAX_PAGE

GROUP_BULK = "/rest/api/3/group/bulk"
GROUP_MEMBER = "/rest/api/3/group/member"


@pytest.fixture
def site() -> IdentitySite:
    return build_identity_site()


def names_and_ids(site: IdentitySite) -> list[tuple[str, str]]:
    """Every group of the site as ``(name, id)``, by name."""
    return sorted((group.name, gid) for gid, group in site.builder.site.groups.items())


# -- group/bulk ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page_size", [1, 2, 5, 50])
def test_bulk_groups_walked_to_the_end_list_every_group_by_name(site: IdentitySite, page_size: int) -> None:
    values = walk_pages(site.client("browser"), GROUP_BULK, page_size)
    assert [(g["name"], g["groupId"]) for g in values] == names_and_ids(site)
    assert all(set(g) == {"name", "groupId"} for g in values)


def test_bulk_groups_are_readable_by_a_jira_administrator(site: IdentitySite) -> None:
    assert len(walk_pages(site.client("admin"), GROUP_BULK, 4)) == len(site.builder.site.groups)


@pytest.mark.parametrize("caller", ["dev", "lead", "outsider"])
def test_bulk_groups_need_browse_users_and_groups(site: IdentitySite, caller: str) -> None:
    response = site.client(caller).get(GROUP_BULK)
    assert response.status_code == 403
    assert assert_response_matches_spec("GET", GROUP_BULK, response)["errorMessages"] == [BROWSE_GROUPS_REQUIRED]


def test_bulk_groups_filtered_by_ids_and_names_return_those_named(site: IdentitySite) -> None:
    params = {"groupId": [site.groups["ops"], "no-such-id"], "groupName": ["developers", "no-such-group"]}
    values = get_json(site.client("browser"), GROUP_BULK, **params)["values"]
    assert [g["groupId"] for g in values] == [site.groups["developers"], site.groups["ops"]]


def test_bulk_groups_filtered_by_access_type_and_application(site: IdentitySite) -> None:
    client = site.client("browser")
    admins = get_json(client, GROUP_BULK, accessType="admin")["values"]
    assert [g["groupId"] for g in admins] == [site.groups["jira-administrators"]]
    users = get_json(client, GROUP_BULK, accessType="user")["values"]
    software = get_json(client, GROUP_BULK, applicationKey="jira-software")["values"]
    assert [g["groupId"] for g in users] == [g["groupId"] for g in software] == [site.groups["jira-software-users"]]
    assert get_json(client, GROUP_BULK, applicationKey="jira-servicedesk")["values"] == []
    assert client.get(GROUP_BULK, params={"accessType": "everyone"}).status_code == 400


def test_a_renamed_group_is_listed_under_its_new_name(site: IdentitySite) -> None:
    site.builder.site.groups[site.groups["zeta"]].name = "alpha-team"
    values = walk_pages(site.client("browser"), GROUP_BULK, 3)
    assert values[0] == {"name": "alpha-team", "groupId": site.groups["zeta"]}


# -- group/member ----------------------------------------------------------------------------------------------
def member_ids(site: IdentitySite, group: str, *, include_inactive: bool) -> list[str]:
    """Members of the site's group by display name, the inactive ones only if asked."""
    users = site.builder.site.users
    members = [users[a] for a in site.builder.site.group_members[site.groups[group]]]
    chosen = [u for u in members if include_inactive or u.active]
    return [u.account_id for u in sorted(chosen, key=lambda u: u.display_name.casefold())]


@pytest.mark.parametrize("page_size", [1, 2, 50])
def test_group_members_leave_out_inactive_users_by_default(site: IdentitySite, page_size: int) -> None:
    values = walk_pages(site.client("browser"), GROUP_MEMBER, page_size, groupId=site.groups["developers"])
    assert [u["accountId"] for u in values] == member_ids(site, "developers", include_inactive=False)
    assert site.users["gone"] not in [u["accountId"] for u in values]


@pytest.mark.parametrize("page_size", [1, 2, 50])
def test_group_members_with_inactive_users_on_request(site: IdentitySite, page_size: int) -> None:
    values = walk_pages(
        site.client("browser"),
        GROUP_MEMBER,
        page_size,
        groupId=site.groups["developers"],
        includeInactiveUsers="true",
    )
    assert [u["accountId"] for u in values] == member_ids(site, "developers", include_inactive=True)
    assert {u["accountId"]: u["active"] for u in values}[site.users["gone"]] is False


def test_group_members_by_name_equal_members_by_id(site: IdentitySite) -> None:
    client = site.client("admin")
    by_name = walk_pages(client, GROUP_MEMBER, 2, groupname="jira-software-users")
    by_id = walk_pages(client, GROUP_MEMBER, 2, groupId=site.groups["jira-software-users"])
    assert by_name == by_id
    assert len(by_id) == 6


def test_a_renamed_group_is_found_by_id_and_by_its_new_name_only(site: IdentitySite) -> None:
    site.builder.site.groups[site.groups["ops"]].name = "operations"
    client = site.client("browser")
    by_id = walk_pages(client, GROUP_MEMBER, 1, groupId=site.groups["ops"])
    assert [u["accountId"] for u in by_id] == member_ids(site, "ops", include_inactive=False)
    assert walk_pages(client, GROUP_MEMBER, 1, groupname="operations") == by_id
    old_name = client.get(GROUP_MEMBER, params={"groupname": "ops"})
    assert old_name.status_code == 404
    assert_response_matches_spec("GET", GROUP_MEMBER, old_name)


def test_group_members_page_size_is_between_one_and_fifty(site: IdentitySite) -> None:
    big = site.builder.group("big", members=[site.builder.user(f"Member {n:02d}") for n in range(60)])
    client = site.client("browser")
    first = get_json(client, GROUP_MEMBER, groupId=big, maxResults=500)
    assert first["maxResults"] == MEMBERS_MAX_PAGE
    assert len(first["values"]) == MEMBERS_MAX_PAGE
    assert first["total"] == 60
    assert len(walk_pages(client, GROUP_MEMBER, 500, groupId=big)) == 60
    assert client.get(GROUP_MEMBER, params={"groupId": big, "maxResults": 0}).status_code == 400


@pytest.mark.parametrize(
    "params",
    [{}, {"groupId": "x", "groupname": "developers"}],
    ids=["neither", "both"],
)
def test_group_members_need_exactly_one_of_group_id_and_name(site: IdentitySite, params: dict[str, str]) -> None:
    response = site.client("browser").get(GROUP_MEMBER, params=params)
    assert response.status_code == 400
    assert_response_matches_spec("GET", GROUP_MEMBER, response)


def test_members_of_an_unknown_group_are_not_found(site: IdentitySite) -> None:
    response = site.client("browser").get(GROUP_MEMBER, params={"groupId": "no-such-group"})
    assert response.status_code == 404


@pytest.mark.parametrize("caller", ["dev", "lead"])
def test_group_members_need_browse_users_and_groups(site: IdentitySite, caller: str) -> None:
    response = site.client(caller).get(GROUP_MEMBER, params={"groupId": site.groups["developers"]})
    assert response.status_code == 403
    assert_response_matches_spec("GET", GROUP_MEMBER, response)


def test_group_members_need_manage_jira_configuration_through_the_gateway(site: IdentitySite) -> None:
    params = {"groupId": site.groups["ops"]}
    assert site.gateway("admin", {"read:jira-user"}).get(GROUP_MEMBER, params=params).status_code == 401
    allowed = site.gateway("admin", {"manage:jira-configuration"})
    assert len(walk_pages(allowed, GROUP_MEMBER, 1, **params)) == 2
