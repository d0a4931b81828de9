"""The permission model resolved from loaded tables (jira_lab.audits.model), on small hand-written frames.

Each test writes the few rows a Jira rule needs (as the loader would store them) and checks who the model says holds
Browse Projects, is a member of a security level, or satisfies a restriction. Expected answers come from Jira's rules
(shared/reference/jira-semantics.md §2), not from running the code.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from jira_lab import schema, store
from jira_lab.audits import model

SITE = "site-1"
P1, P2 = 10000, 10001
DEVELOPERS, ADMINISTRATORS = 10002, 10003
SCHEME = 20000
LEVEL, OTHER_LEVEL = 30000, 30001
ANN, BOB, CID, DEE, EVE = "acc-ann", "acc-bob", "acc-cid", "acc-dee", "acc-eve"
DEVS, OPS, JSW, JSM = "gid-devs", "gid-ops", "gid-jsw", "gid-jsm"


def rows(table: str, *entries: dict[str, Any]) -> pl.DataFrame:
    return schema.table(table).frame({"site_id": SITE, **entry} for entry in entries)


def people() -> dict[str, pl.DataFrame]:
    """Five accounts (cid is deactivated), four groups, two products, two projects, two roles."""
    return {
        "users": rows(
            "users",
            *(
                {"account_id": a, "active": a != CID, "display_name": a, "email_address": f"{a}@example.com"}
                for a in (ANN, BOB, CID, DEE, EVE)
            ),
        ),
        "groups": rows(
            "groups",
            {"group_id": DEVS, "name": "developers-renamed"},
            {"group_id": OPS, "name": "ops"},
            {"group_id": JSW, "name": "jira-software-users"},
            {"group_id": JSM, "name": "jira-servicemanagement-users"},
        ),
        "group_members": rows(
            "group_members",
            {"group_id": DEVS, "account_id": ANN},
            {"group_id": DEVS, "account_id": CID},
            {"group_id": OPS, "account_id": EVE},
            {"group_id": JSW, "account_id": BOB},
            {"group_id": JSW, "account_id": CID},
            {"group_id": JSM, "account_id": DEE},
        ),
        "application_role_groups": rows(
            "application_role_groups",
            {"application_key": "jira-software", "group_id": JSW},
            {"application_key": "jira-servicedesk", "group_id": JSM},
        ),
        "projects": rows(
            "projects",
            {"id": P1, "key": "ONE", "lead_account_id": DEE},
            {"id": P2, "key": "TWO", "lead_account_id": ANN},
        ),
        "project_roles": rows(
            "project_roles", {"id": DEVELOPERS, "name": "Developers"}, {"id": ADMINISTRATORS, "name": "Administrators"}
        ),
        "role_actors": rows(
            "role_actors",
            {"project_id": P1, "role_id": DEVELOPERS, "actor_type": "user", "actor_id": BOB},
            {"project_id": P1, "role_id": DEVELOPERS, "actor_type": "group", "actor_id": OPS},
            {"project_id": P1, "role_id": DEVELOPERS, "actor_type": "user", "actor_id": CID},
            {"project_id": P2, "role_id": DEVELOPERS, "actor_type": "user", "actor_id": DEE},
        ),
        "project_permission_schemes": rows(
            "project_permission_schemes",
            {"project_id": P1, "scheme_id": SCHEME},
            {"project_id": P2, "scheme_id": SCHEME},
        ),
        "issues": rows(
            "issues",
            {"id": 1, "key": "ONE-1", "project_id": P1, "project_key": "ONE", "reporter_account_id": ANN},
            {"id": 2, "key": "ONE-2", "project_id": P1, "project_key": "ONE", "assignee_account_id": BOB},
            {"id": 3, "key": "TWO-1", "project_id": P2, "project_key": "TWO", "reporter_account_id": CID},
        ),
    }


def site(**extra: pl.DataFrame) -> model.SiteTables:
    return model.from_frames(SITE, {**people(), **extra})


def grants(*holders: tuple[str, str | None, str | None], permission: str = "BROWSE_PROJECTS") -> pl.DataFrame:
    return rows(
        "permission_grants",
        *(
            {
                "scheme_id": SCHEME,
                "id": 100 + n,
                "permission": permission,
                "holder_type": kind,
                "holder_parameter": parameter,
                "holder_value": value,
            }
            for n, (kind, parameter, value) in enumerate(holders)
        ),
    )


def browse(tables: model.SiteTables) -> set[tuple[int, str]]:
    """(project id, account) pairs holding Browse Projects through project-wide grants."""
    found = model.project_permission_holders(tables).select("project_id", "account_id").collect()
    return set(found.iter_rows())


def everywhere(*accounts: str) -> set[tuple[int, str]]:
    return {(project, account) for project in (P1, P2) for account in accounts}


# -- holders of Browse Projects ----------------------------------------------------------------------------------
def test_anyone_means_every_active_account_and_not_a_deactivated_one() -> None:
    assert browse(site(permission_grants=grants(("anyone", None, None)))) == everywhere(ANN, BOB, DEE, EVE)


def test_application_role_with_a_key_is_product_access_through_that_products_groups() -> None:
    tables = site(permission_grants=grants(("applicationRole", "jira-software", "jira-software")))
    # cid is in jira-software-users too, but inactive accounts have no product access
    assert browse(tables) == everywhere(BOB)
    holders = model.project_permission_holders(tables).collect()
    assert set(holders["via_group_id"]) == {JSW}


def test_application_role_without_a_key_is_any_logged_in_user_with_some_product() -> None:
    assert browse(site(permission_grants=grants(("applicationRole", None, None)))) == everywhere(BOB, DEE)


def test_group_grants_join_on_the_group_id_so_a_renamed_group_keeps_them() -> None:
    # the grant was loaded while the group was still called "developers"; the group is now "developers-renamed"
    tables = site(permission_grants=grants(("group", "developers", DEVS)))
    assert browse(tables) == everywhere(ANN)


def test_a_group_holder_without_an_id_is_read_by_its_current_name() -> None:
    assert browse(site(permission_grants=grants(("group", "ops", None)))) == everywhere(EVE)


def test_project_role_counts_user_actors_and_group_actors_in_that_project_only() -> None:
    tables = site(permission_grants=grants(("projectRole", str(DEVELOPERS), str(DEVELOPERS))))
    holders = model.project_permission_holders(tables).collect()
    assert set(holders.select("project_id", "account_id").iter_rows()) == {(P1, BOB), (P1, EVE), (P2, DEE)}
    through_ops = holders.filter(pl.col("account_id") == EVE).row(0, named=True)
    assert through_ops["via_group_id"] == OPS
    assert through_ops["via_role_id"] == DEVELOPERS


def test_holder_types_are_matched_case_insensitively_and_a_non_numeric_role_names_nobody() -> None:
    tables = site(permission_grants=grants(("projectrole", None, str(DEVELOPERS)), ("projectRole", "x", "Developers")))
    assert browse(tables) == {(P1, BOB), (P1, EVE), (P2, DEE)}
    assert set(model.project_permission_holders(tables).collect()["holder_type"]) == {"projectRole"}


def test_user_and_project_lead_holders() -> None:
    assert browse(site(permission_grants=grants(("user", ANN, ANN)))) == everywhere(ANN)
    assert browse(site(permission_grants=grants(("projectLead", None, None)))) == {(P1, DEE), (P2, ANN)}


def test_a_grant_to_an_inactive_user_holds_nothing() -> None:
    assert browse(site(permission_grants=grants(("user", CID, CID)))) == set()


def test_other_permissions_and_unknown_holder_types_are_not_browse() -> None:
    tables = site(
        permission_grants=pl.concat(
            [grants(("user", ANN, ANN), permission="EDIT_ISSUES"), grants(("sd.customer.portal.only", None, None))]
        )
    )
    assert browse(tables) == set()


def test_reporter_and_assignee_hold_browse_for_their_own_issues_only() -> None:
    tables = site(permission_grants=grants(("reporter", None, None), ("assignee", None, None)))
    assert browse(tables) == set()  # nobody holds it for the whole project
    browsers = set(model.issue_browsers(tables).collect().iter_rows())
    # issue 3's reporter is cid, who is deactivated
    assert browsers == {(1, ANN), (2, BOB)}
    any_issue = model.project_permission_holders(tables, any_issue=True).collect()
    assert set(any_issue.select("project_id", "account_id").iter_rows()) == {(P1, ANN), (P1, BOB)}


def test_user_and_group_custom_fields_hold_browse_for_the_issues_that_name_them() -> None:
    values = rows(
        "issue_field_values",
        {"issue_id": 2, "field_id": "customfield_1", "position": 0, "value_type": "user", "value_id": DEE},
        {"issue_id": 3, "field_id": "customfield_1", "position": 0, "value_type": "user", "value_id": EVE},
        {"issue_id": 3, "field_id": "customfield_2", "position": 0, "value_type": "group", "value_id": DEVS},
        {"issue_id": 1, "field_id": "customfield_3", "position": 0, "value_type": "group", "value_id": OPS},
    )
    tables = site(
        permission_grants=grants(
            ("userCustomField", "customfield_1", "customfield_1"),
            ("groupCustomField", "customfield_2", "customfield_2"),
        ),
        issue_field_values=values,
    )
    # eve is named by issue 3's user field; ann is in the group issue 3's group field holds (cid too, but inactive);
    # customfield_3 is granted to nobody
    assert set(model.issue_browsers(tables).collect().iter_rows()) == {(2, DEE), (3, EVE), (3, ANN)}


def test_browse_for_one_account_equals_the_rows_of_that_account() -> None:
    tables = site(permission_grants=grants(("anyone", None, None), ("reporter", None, None)))
    every = model.issue_browsers(tables).collect()
    only_ann = model.issue_browsers(tables, [ANN]).collect()
    assert set(only_ann.iter_rows()) == set(every.filter(pl.col("account_id") == ANN).iter_rows())


# -- issue security ----------------------------------------------------------------------------------------------
def secured(members: list[tuple[str, str | None, str | None]], **levels: Any) -> model.SiteTables:
    """Browse for everyone active; issue 1 at LEVEL (members given), issue 2 at a level no scheme defines."""
    issues = people()["issues"].with_columns(
        pl.when(pl.col("id") == 1)
        .then(pl.lit(LEVEL))
        .when(pl.col("id") == 2)
        .then(pl.lit(99999))
        .otherwise(pl.lit(None))
        .cast(pl.Int64)
        .alias("security_level_id")
    )
    return site(
        issues=issues,
        permission_grants=grants(("anyone", None, None)),
        security_levels=rows(
            "security_levels", {"id": LEVEL, "scheme_id": 1, "name": "Staff"}, {"id": OTHER_LEVEL, "scheme_id": 1}
        ),
        security_level_members=rows(
            "security_level_members",
            *(
                {"level_id": LEVEL, "id": n, "scheme_id": 1, "holder_type": t, "holder_parameter": p, "holder_value": v}
                for n, (t, p, v) in enumerate(members)
            ),
        ),
        project_security_schemes=rows("project_security_schemes", {"project_id": P1, "scheme_id": 1}),
        **levels,
    )


def viewers(tables: model.SiteTables) -> set[tuple[int, str]]:
    return set(model.issue_viewers(tables).collect().iter_rows())


def test_a_level_admits_its_members_and_an_undefined_level_admits_nobody() -> None:
    tables = secured([("group", "developers", DEVS)])
    seen = viewers(tables)
    assert {account for issue, account in seen if issue == 1} == {ANN}
    assert {account for issue, account in seen if issue == 2} == set()
    assert {account for issue, account in seen if issue == 3} == {ANN, BOB, DEE, EVE}


def test_level_members_through_a_project_role_are_read_in_the_issues_project() -> None:
    tables = secured([("projectRole", str(DEVELOPERS), str(DEVELOPERS))])
    # issue 1 is in ONE, where Developers are bob, eve (through ops) and cid (inactive); dee is one in TWO only
    assert {account for issue, account in viewers(tables) if issue == 1} == {BOB, EVE}


def test_issue_data_level_members_are_read_on_the_issue() -> None:
    tables = secured([("reporter", None, None), ("projectLead", None, None)])
    assert {account for issue, account in viewers(tables) if issue == 1} == {ANN, DEE}
    by_issue = model.issue_security_level_holders(tables).collect()
    assert by_issue.select("issue_id", "account_id", "holder_type").rows() == [(1, ANN, "reporter")]


def test_level_holders_apply_in_the_projects_whose_scheme_defines_the_level() -> None:
    tables = secured([("user", BOB, BOB)])
    holders = model.security_level_holders(tables).collect()
    assert set(holders.select("level_id", "project_id", "account_id").iter_rows()) == {(LEVEL, P1, BOB)}


# -- comment and worklog visibility ------------------------------------------------------------------------------
def restricted(*entries: tuple[int, int, str | None, str | None, str | None]) -> dict[str, pl.DataFrame]:
    """Comments (id, issue, type, value, identifier)."""
    return {
        "comments": rows(
            "comments",
            *(
                {"id": i, "issue_id": issue, "visibility_type": t, "visibility_value": v, "visibility_identifier": k}
                for i, issue, t, v, k in entries
            ),
        )
    }


def item_viewers(tables: model.SiteTables) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for _kind, item, account in model.item_viewers(tables).collect().iter_rows():
        found.setdefault(item, set()).add(account)
    return found


def test_group_restrictions_match_the_group_id_whatever_name_was_loaded() -> None:
    tables = site(
        permission_grants=grants(("anyone", None, None)),
        **restricted((1, 1, "group", "developers", DEVS), (2, 1, None, None, None)),
    )
    assert item_viewers(tables) == {1: {ANN}, 2: {ANN, BOB, DEE, EVE}}


def test_a_group_restriction_without_an_identifier_is_read_by_the_groups_name() -> None:
    tables = site(permission_grants=grants(("anyone", None, None)), **restricted((1, 1, "group", "ops", None)))
    assert item_viewers(tables) == {1: {EVE}}


def test_role_restrictions_are_read_in_the_issues_project_through_users_and_groups() -> None:
    tables = site(
        permission_grants=grants(("anyone", None, None)),
        **restricted((1, 1, "role", "Developers", "Developers"), (2, 3, "role", "Developers", "Developers")),
    )
    assert item_viewers(tables) == {1: {BOB, EVE}, 2: {DEE}}


def test_a_restriction_never_reveals_an_item_on_an_issue_the_account_cannot_browse() -> None:
    tables = site(permission_grants=grants(("user", ANN, ANN)), **restricted((1, 1, "group", "ops", OPS)))
    assert item_viewers(tables) == {}
    items = model.items(tables).collect()
    assert items.select("item_kind", "item_id", "project_id", "visibility_key").rows() == [("comment", 1, P1, OPS)]


def test_an_unknown_role_name_admits_nobody() -> None:
    tables = site(permission_grants=grants(("anyone", None, None)), **restricted((1, 1, "role", "Ghosts", "Ghosts")))
    assert item_viewers(tables) == {}


# -- accounts, readers and what loads could read ----------------------------------------------------------------
def test_resolve_account_by_id_or_email() -> None:
    tables = site()
    assert model.resolve_account(tables, ANN) == ANN
    assert model.resolve_account(tables, "ACC-BOB@example.com") == BOB
    with pytest.raises(ValueError, match="no loaded account"):
        model.resolve_account(tables, "nobody@example.com")


def test_from_frames_conforms_columns_and_leaves_deleted_rows_out() -> None:
    from datetime import UTC, datetime

    marked = datetime(2026, 1, 1, tzinfo=UTC)
    comments = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "issue_id": [1, 1, 1, 1],
            "deleted_at": [None, marked, marked, marked],
            # gone from one principal's view only: another may still see it, so it stays
            "deleted_reason": [None, schema.DELETED, schema.NO_LONGER_VISIBLE, f"{schema.NO_LONGER_VISIBLE} to {BOB}"],
        }
    )
    tables = model.from_frames(SITE, comments=comments)
    live = tables.comments.collect()
    assert live.columns == list(schema.table("comments").column_names)
    assert live["id"].to_list() == [1, 4]
    assert model.from_frames(SITE, comments=comments, include_deleted=True).comments.collect().height == 4
    assert tables.table("_jira_lab_sightings").collect().is_empty()
    with pytest.raises(ValueError, match="no table"):
        model.from_frames(SITE, nonsense=comments)


def test_from_db_reads_one_site_and_asks_which_when_there_are_several() -> None:
    conn = store.connect(":memory:")
    store.ensure_schema(conn)
    for site_id in ("a", "b"):
        store.register_site(conn, site_id=site_id)
        store.upsert(conn, "users", schema.table("users").frame([{"site_id": site_id, "account_id": f"u-{site_id}"}]))
    with pytest.raises(ValueError, match="2 sites"):
        model.from_db(conn)
    tables = model.from_db(conn, "b", tables=["users"])
    assert tables.users.collect()["account_id"].to_list() == ["u-b"]
    assert tables.comments.collect().is_empty()


def test_unreadable_resources_are_those_no_latest_load_could_read() -> None:
    loads = rows(
        "_jira_lab_loads",
        {"load_id": 1, "principal_id": ANN, "status": "succeeded", "full_load": True},
        {"load_id": 2, "principal_id": BOB, "status": "succeeded", "full_load": True},
        {"load_id": 3, "principal_id": BOB, "status": "failed", "full_load": True},
    )
    access = rows(
        "_jira_lab_access",
        {"load_id": 1, "resource": "group_members", "principal_id": ANN, "outcome": "forbidden", "http_status": 403},
        {"load_id": 2, "resource": "group_members", "principal_id": BOB, "outcome": "forbidden", "http_status": 403},
        {"load_id": 1, "resource": "role_actors:10000", "principal_id": ANN, "outcome": "unauthorized"},
        {"load_id": 2, "resource": "role_actors:10000", "principal_id": BOB, "outcome": "ok"},
        {"load_id": 3, "resource": "audit_records", "principal_id": BOB, "outcome": "forbidden"},
    )
    found = model.unreadable_resources(
        model.from_frames(SITE, _jira_lab_loads=loads, _jira_lab_access=access)
    ).collect()
    assert found.select("resource", "table", "scope", "principals").rows() == [
        ("group_members", "group_members", None, 2)
    ]


def test_principal_scopes_are_one_row_per_granted_scope() -> None:
    principals = rows(
        "_jira_lab_principals",
        {"principal_id": ANN, "auth_kind": "oauth", "scopes": '["read:jira-work", "offline_access"]'},
        {"principal_id": BOB, "auth_kind": "basic"},
    )
    found = model.principal_scopes(model.from_frames(SITE, _jira_lab_principals=principals)).collect()
    assert sorted(found.rows()) == [(ANN, "oauth", "offline_access"), (ANN, "oauth", "read:jira-work")]
