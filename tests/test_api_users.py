"""The simulated user endpoints: all users, one user, users by account id, a user's groups.

Expectations come from :mod:`identity_site` (who holds *Browse users and groups*, who is in which group) and from
Jira's documented rules: without *Browse users and groups*, ``users/search`` answers an empty list rather than an
error, while ``user`` and ``user/groups`` answer 403.
"""

from __future__ import annotations

import pytest
from identity_site import IdentitySite, build_identity_site, get_json
from paging import walk_array, walk_pages
from spec import assert_response_matches_spec

from jira_lab.sim.api.users import USERS_MAX_PAGE

USERS_SEARCH = "/rest/api/3/users/search"
USERS = "/rest/api/3/users"
USER = "/rest/api/3/user"
USER_GROUPS = "/rest/api/3/user/groups"
USER_BULK = "/rest/api/3/user/bulk"


@pytest.fixture
def site() -> IdentitySite:
    return build_identity_site()


# -- users/search and users ------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", [USERS_SEARCH, USERS])
@pytest.mark.parametrize("page_size", [1, 2, 4])
def test_all_users_walked_page_by_page_list_every_account_in_site_order(
    site: IdentitySite, template: str, page_size: int
) -> None:
    listed = walk_array(site.client("browser"), template, page_size)
    assert [user["accountId"] for user in listed] == list(site.builder.site.users)


def test_all_users_include_inactive_app_and_customer_accounts(site: IdentitySite) -> None:
    listed = {user["accountId"]: user for user in walk_array(site.client("browser"), USERS_SEARCH, 3)}
    assert listed[site.users["gone"]]["active"] is False
    assert listed[site.users["bot"]]["accountType"] == "app"
    assert listed[site.users["bot"]]["appType"] == "service"
    assert listed[site.users["customer"]]["accountType"] == "customer"
    assert listed[site.users["dev"]]["displayName"] == "Carl Developer"


def test_a_jira_administrator_browses_users_without_the_user_picker_grant(site: IdentitySite) -> None:
    listed = walk_array(site.client("admin"), USERS_SEARCH, 5)
    assert len(listed) == len(site.builder.site.users)


@pytest.mark.parametrize("template", [USERS_SEARCH, USERS])
@pytest.mark.parametrize("caller", ["dev", "outsider", "lead"])
def test_without_browse_users_and_groups_the_user_list_is_empty_not_forbidden(
    site: IdentitySite, template: str, caller: str
) -> None:
    response = site.client(caller).get(template)
    assert response.status_code == 200
    assert assert_response_matches_spec("GET", template, response) == []


def test_anonymous_callers_get_an_empty_user_list(site: IdentitySite) -> None:
    response = site.anonymous().get(USERS_SEARCH)
    assert response.status_code == 200
    assert response.json() == []


def test_two_callers_see_different_user_lists(site: IdentitySite) -> None:
    seen_by_browser = get_json(site.client("browser"), USERS_SEARCH)
    seen_by_dev = get_json(site.client("dev"), USERS_SEARCH)
    assert len(seen_by_browser) == len(site.builder.site.users)
    assert seen_by_dev == []


def test_default_page_is_fifty_and_page_size_is_capped_at_a_thousand() -> None:
    site = build_identity_site()
    for n in range(1200):
        site.builder.user(f"Filler {n:04d}")
    everyone = len(site.builder.site.users)
    client = site.client("browser")
    assert len(get_json(client, USERS_SEARCH)) == 50
    assert len(get_json(client, USERS_SEARCH, maxResults=5000)) == USERS_MAX_PAGE
    rest = get_json(client, USERS_SEARCH, startAt=USERS_MAX_PAGE, maxResults=5000)
    assert len(rest) == everyone - USERS_MAX_PAGE


def test_a_negative_start_is_a_bad_request(site: IdentitySite) -> None:
    assert site.client("browser").get(USERS_SEARCH, params={"startAt": -1}).status_code == 400


def test_email_addresses_are_shown_to_callers_who_may_browse_users(site: IdentitySite) -> None:
    listed = {user["accountId"]: user for user in get_json(site.client("browser"), USERS_SEARCH)}
    assert listed[site.users["dev"]]["emailAddress"] == site.builder.site.users[site.users["dev"]].email
    assert "emailAddress" not in listed[site.users["bot"]]  # the app account has no email at all


def test_the_user_list_is_readable_through_the_gateway_with_read_jira_user(site: IdentitySite) -> None:
    client = site.gateway("browser", {"read:jira-user"})
    assert [u["accountId"] for u in walk_array(client, USERS_SEARCH, 4)] == list(site.builder.site.users)
    refused = site.gateway("browser", {"read:jira-work"}).get(USERS_SEARCH)
    assert refused.status_code == 401


# -- user ------------------------------------------------------------------------------------------------------
def test_one_user_carries_group_and_application_role_counts_without_their_items(site: IdentitySite) -> None:
    response = site.client("browser").get(USER, params={"accountId": site.users["dev"]})
    body = assert_response_matches_spec("GET", USER, response)
    assert response.status_code == 200
    assert body["accountId"] == site.users["dev"]
    assert body["displayName"] == "Carl Developer"
    # Carl is in zeta-team, developers and jira-software-users; jira-software-users gives Jira Software
    assert body["groups"] == {"size": 3, "items": []}
    assert body["applicationRoles"] == {"size": 1, "items": []}


def test_expanding_groups_lists_them_by_name_with_ids(site: IdentitySite) -> None:
    body = get_json(site.client("browser"), USER, accountId=site.users["dev"], expand="groups,applicationRoles")
    assert [(g["name"], g["groupId"]) for g in body["groups"]["items"]] == [
        ("developers", site.groups["developers"]),
        ("jira-software-users", site.groups["jira-software-users"]),
        ("zeta-team", site.groups["zeta"]),
    ]
    assert [role["key"] for role in body["applicationRoles"]["items"]] == ["jira-software"]
    assert body["applicationRoles"]["items"][0]["groupDetails"][0]["groupId"] == site.groups["jira-software-users"]


def test_an_inactive_user_has_no_product_access(site: IdentitySite) -> None:
    body = get_json(site.client("admin"), USER, accountId=site.users["gone"], expand="applicationRoles")
    assert body["active"] is False
    assert body["applicationRoles"] == {"size": 0, "items": []}


def test_unknown_user_is_not_found(site: IdentitySite) -> None:
    response = site.client("browser").get(USER, params={"accountId": "5b10ac8d82e05b22cc7dffff"})
    assert response.status_code == 404
    assert assert_response_matches_spec("GET", USER, response)["errorMessages"]


def test_one_user_needs_browse_users_and_groups(site: IdentitySite) -> None:
    response = site.client("dev").get(USER, params={"accountId": site.users["browser"]})
    assert response.status_code == 403
    assert assert_response_matches_spec("GET", USER, response)["errorMessages"]


def test_one_user_without_account_id_is_a_bad_request(site: IdentitySite) -> None:
    assert site.client("browser").get(USER).status_code == 400


# -- user/groups -----------------------------------------------------------------------------------------------
def test_a_users_groups_are_a_bare_list_of_names_and_ids(site: IdentitySite) -> None:
    response = site.client("browser").get(USER_GROUPS, params={"accountId": site.users["lead"]})
    body = assert_response_matches_spec("GET", USER_GROUPS, response)
    assert [(g["name"], g["groupId"]) for g in body] == [
        ("jira-software-users", site.groups["jira-software-users"]),
        ("ops", site.groups["ops"]),
    ]
    assert all(g["self"].endswith(f"groupId={g['groupId']}") for g in body)


def test_a_renamed_group_is_listed_under_its_new_name_and_same_id(site: IdentitySite) -> None:
    site.builder.site.groups[site.groups["ops"]].name = "operations"
    body = get_json(site.client("browser"), USER_GROUPS, accountId=site.users["opsie"])
    assert ("operations", site.groups["ops"]) in [(g["name"], g["groupId"]) for g in body]
    assert "ops" not in [g["name"] for g in body]


def test_a_users_groups_need_browse_users_and_groups(site: IdentitySite) -> None:
    response = site.client("dev").get(USER_GROUPS, params={"accountId": site.users["dev"]})
    assert response.status_code == 403
    assert_response_matches_spec("GET", USER_GROUPS, response)


def test_groups_of_an_unknown_user_are_not_found(site: IdentitySite) -> None:
    response = site.client("admin").get(USER_GROUPS, params={"accountId": "nobody"})
    assert response.status_code == 404


# -- user/bulk -------------------------------------------------------------------------------------------------
def test_bulk_users_are_paged_in_the_order_asked_skipping_unknown_ids(site: IdentitySite) -> None:
    asked = [site.users["opsie"], "unknown-account", site.users["admin"], site.users["bot"], site.users["opsie"]]
    values = walk_pages(site.client("dev"), USER_BULK, 1, accountId=asked)
    assert [user["accountId"] for user in values] == [site.users["opsie"], site.users["admin"], site.users["bot"]]


def test_bulk_users_default_to_ten_per_page(site: IdentitySite) -> None:
    for n in range(12):
        site.builder.user(f"Bulk {n}")
    every_id = list(site.builder.site.users)
    page = get_json(site.client("dev"), USER_BULK, accountId=every_id)
    assert page["maxResults"] == 10
    assert len(page["values"]) == 10
    assert page["total"] == len(every_id)
    assert page["isLast"] is False


def test_bulk_users_without_an_account_id_is_a_bad_request(site: IdentitySite) -> None:
    response = site.client("dev").get(USER_BULK)
    assert response.status_code == 400
    assert_response_matches_spec("GET", USER_BULK, response)


def test_bulk_users_are_not_for_anonymous_callers(site: IdentitySite) -> None:
    assert site.anonymous().get(USER_BULK, params={"accountId": site.users["dev"]}).status_code == 401
