"""Restriction gaps, the empirical two-principal check and their comparison (jira_lab.audits.visibility), on small
hand-written frames. Expected rows follow from Jira's rules applied to the rows each test writes."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from test_audits_model import (
    ADMINISTRATORS,
    ANN,
    BOB,
    CID,
    DEVELOPERS,
    DEVS,
    EVE,
    LEVEL,
    OPS,
    P1,
    P2,
    SCHEME,
    SITE,
    grants,
    people,
    rows,
    site,
)

from jira_lab.audits import model
from jira_lab.audits.visibility import (
    FIX_COLUMNS,
    GAP_COLUMNS,
    compare_prediction,
    empirical_gaps,
    hidden_items,
    restriction_gaps,
    seen_items,
)


def layered_site(**extra: pl.DataFrame) -> model.SiteTables:
    """Browse Projects to the group devs (renamed) and the role Developers (bob acts in ONE only).

    Issue 1 (ONE) is at level Staff, whose member is the group ops; issue 2 (ONE) is open; issue 3 is in TWO.
    Comment 10 on issue 2 is restricted to devs, comment 11 on issue 3 to Administrators, worklog 20 on issue 2 to
    Developers.
    """
    issues = people()["issues"].with_columns(
        pl.when(pl.col("id") == 1).then(pl.lit(LEVEL)).otherwise(pl.lit(None)).cast(pl.Int64).alias("security_level_id")
    )
    frames = {
        "issues": issues,
        "permission_grants": grants(("group", "developers", DEVS), ("projectRole", str(DEVELOPERS), str(DEVELOPERS))),
        "permission_schemes": rows("permission_schemes", {"id": SCHEME, "name": "Default"}),
        "security_levels": rows("security_levels", {"id": LEVEL, "scheme_id": 1, "name": "Staff"}),
        "security_level_members": rows(
            "security_level_members",
            {
                "level_id": LEVEL,
                "id": 1,
                "scheme_id": 1,
                "holder_type": "group",
                "holder_parameter": "ops",
                "holder_value": OPS,
            },
        ),
        "project_security_schemes": rows("project_security_schemes", {"project_id": P1, "scheme_id": 1}),
        "comments": rows(
            "comments",
            {
                "id": 10,
                "issue_id": 2,
                "visibility_type": "group",
                "visibility_value": "developers",
                "visibility_identifier": DEVS,
            },
            {
                "id": 11,
                "issue_id": 3,
                "visibility_type": "role",
                "visibility_value": "Administrators",
                "visibility_identifier": "Administrators",
            },
        ),
        "worklogs": rows(
            "worklogs",
            {
                "id": 20,
                "issue_id": 2,
                "visibility_type": "role",
                "visibility_value": "Developers",
                "visibility_identifier": "Developers",
            },
        ),
    }
    return site(**{**frames, **extra})


def by_item(frame: pl.DataFrame) -> dict[tuple[str, int], dict[str, Any]]:
    return {(row["item_kind"], row["item_id"]): row for row in frame.iter_rows(named=True)}


def test_each_hidden_item_names_its_layers_and_what_is_missing() -> None:
    audit = restriction_gaps(layered_site(), BOB)
    assert audit.gaps.columns == list(GAP_COLUMNS)
    gaps = by_item(audit.gaps)
    assert set(gaps) == {("issue", 1), ("issue", 3), ("comment", 10), ("comment", 11)}
    level = gaps[("issue", 1)]
    assert (level["layer"], level["security_level_name"]) == ("security_level", "Staff")
    assert "security level 'Staff' (30000)" in level["missing"]
    no_browse = gaps[("issue", 3)]
    assert (no_browse["layer"], no_browse["project_key"], no_browse["issue_key"]) == ("browse", "TWO", "TWO-1")
    # the grant was loaded under the group's old name: the audit names it by its current one and its id
    assert no_browse["browse_grants"] == f"group 'developers-renamed' ({DEVS}); role 'Developers' ({DEVELOPERS})"
    group_restricted = gaps[("comment", 10)]
    assert (group_restricted["layer"], group_restricted["visibility_name"]) == ("visibility", "developers-renamed")
    assert group_restricted["missing"] == f"membership of group 'developers-renamed' ({DEVS})"
    both = gaps[("comment", 11)]
    assert (both["layer"], both["hidden_by_browse"], both["hidden_by_visibility"]) == ("browse", True, True)
    assert both["missing"].endswith("role 'Administrators' in TWO")
    assert all(row["cannot_tell"] is None for row in gaps.values())
    assert audit.summary().rows() == [
        ("issue", "browse", 1),
        ("issue", "security_level", 1),
        ("comment", "browse", 1),
        ("comment", "visibility", 1),
    ]


def test_the_fix_summary_is_the_smallest_set_of_memberships() -> None:
    audit = restriction_gaps(layered_site(), BOB)
    fixes = audit.fixes
    assert fixes.columns == list(FIX_COLUMNS)
    assert audit.method == "exact"
    # devs gives Browse in TWO and comment 10; the level needs ops (or a level membership); Administrators in TWO
    # has no group actor, so bob must become one
    assert fixes["step"].to_list() == [1, 2, 3]
    first = fixes.row(0, named=True)
    assert (first["fix_kind"], first["group_id"], first["group_name"], first["requirements_met"]) == (
        "group_membership",
        DEVS,
        "developers-renamed",
        2,
    )
    kinds = {
        (row["fix_kind"], row["group_id"] or row["level_id"] or row["role_id"]) for row in fixes.iter_rows(named=True)
    }
    assert ("role_actor", ADMINISTRATORS) in kinds
    assert kinds & {("group_membership", OPS), ("security_level_member", LEVEL)}
    # every hidden item can be unlocked, each counted once at the step that completes it
    assert fixes["items_unlocked"].sum() == audit.gaps.height == 4
    assert first["items_unlocked_alone"] == 2  # issue 3 and comment 10; comment 11 also needs Administrators


def test_an_exact_cover_beats_the_greedy_one() -> None:
    """Six role restrictions; group X acts in roles 1-3, Y in 4-6, Z in 1, 2, 4, 5: greedy takes Z first (3 fixes),
    the smallest answer is X and Y."""
    role_ids = list(range(50001, 50007))
    acting = {"gx": role_ids[:3], "gy": role_ids[3:], "gz": [role_ids[i] for i in (0, 1, 3, 4)]}
    frames = people()
    tables = site(
        permission_grants=grants(("anyone", None, None)),
        groups=pl.concat([frames["groups"], rows("groups", *({"group_id": g, "name": g.upper()} for g in acting))]),
        project_roles=rows("project_roles", *({"id": r, "name": f"role-{r}"} for r in role_ids)),
        role_actors=rows(
            "role_actors",
            *(
                {"project_id": P1, "role_id": r, "actor_type": "group", "actor_id": g}
                for g, roles in acting.items()
                for r in roles
            ),
        ),
        comments=rows(
            "comments",
            *(
                {
                    "id": n,
                    "issue_id": 1,
                    "visibility_type": "role",
                    "visibility_value": f"role-{r}",
                    "visibility_identifier": f"role-{r}",
                }
                for n, r in enumerate(role_ids)
            ),
        ),
    )
    audit = restriction_gaps(tables, BOB)
    assert audit.gaps.height == 6
    assert audit.method == "exact"
    assert sorted(audit.fixes["group_id"].to_list()) == ["gx", "gy"]
    assert audit.fixes["items_unlocked"].sum() == 6


def test_an_inactive_account_sees_nothing_and_the_first_fix_reactivates_it() -> None:
    tables = site(
        permission_grants=grants(("anyone", None, None)),
        comments=rows("comments", {"id": 10, "issue_id": 1, "visibility_type": "group", "visibility_identifier": OPS}),
    )
    audit = restriction_gaps(tables, CID)
    assert set(audit.gaps["layer"]) == {"inactive_account"}
    assert audit.gaps.height == 4  # three issues and the comment
    gaps = by_item(audit.gaps)
    assert gaps[("comment", 10)]["hidden_by_visibility"]
    assert not gaps[("issue", 1)]["hidden_by_browse"]  # once active, "anyone" admits it
    first = audit.fixes.row(0, named=True)
    assert (first["fix_kind"], first["items_unlocked"]) == ("activate_account", 3)
    assert audit.fixes.row(1, named=True)["group_id"] == OPS
    assert any("inactive" in note for note in audit.notes)


def test_requirements_no_membership_can_meet_are_listed_without_a_step() -> None:
    issues = people()["issues"].with_columns(
        pl.when(pl.col("id") == 2).then(pl.lit(99999)).otherwise(pl.lit(None)).cast(pl.Int64).alias("security_level_id")
    )
    tables = site(
        issues=issues,
        permission_grants=grants(("anyone", None, None)),
        comments=rows(
            "comments", {"id": 10, "issue_id": 1, "visibility_type": "role", "visibility_identifier": "Ghosts"}
        ),
    )
    audit = restriction_gaps(tables, ANN)
    assert set(by_item(audit.gaps)) == {("issue", 2), ("comment", 10)}
    assert "no loaded scheme defines" in by_item(audit.gaps)[("issue", 2)]["missing"]
    assert audit.fixes["fix_kind"].to_list() == ["none", "none"]
    assert audit.fixes["step"].null_count() == 2
    targets = " | ".join(audit.fixes["target"])
    assert "99999" in targets
    assert "'Ghosts'" in targets


def loads(*entries: tuple[int, str, bool]) -> pl.DataFrame:
    return rows(
        "_jira_lab_loads",
        *({"load_id": n, "principal_id": who, "status": "succeeded", "full_load": full} for n, who, full in entries),
    )


def test_answers_built_on_unreadable_data_say_they_cannot_tell() -> None:
    access = rows(
        "_jira_lab_access",
        {
            "load_id": 1,
            "resource": f"role_actors:{P2}",
            "principal_id": ANN,
            "outcome": "forbidden",
            "http_status": 403,
        },
    )
    audit = restriction_gaps(layered_site(_jira_lab_loads=loads((1, ANN, True)), _jira_lab_access=access), BOB)
    gaps = by_item(audit.gaps)
    # Browse in TWO goes through the role Developers, whose actors in TWO could not be read
    assert gaps[("issue", 3)]["cannot_tell"] == f"unreadable: role_actors:{P2}"
    assert gaps[("comment", 11)]["cannot_tell"] == f"unreadable: role_actors:{P2}"
    assert gaps[("comment", 10)]["cannot_tell"] is None
    assert audit.cannot_tell["resource"].to_list() == [f"role_actors:{P2}"]
    assert any("could not be read" in note for note in audit.notes)


def test_out_of_reach_counts_what_jira_reported_but_no_principal_loaded() -> None:
    totals = rows(
        "issue_totals",
        {"principal_id": ANN, "issue_id": 2, "comment_total": 3, "worklog_total": 1},
        {"principal_id": BOB, "issue_id": 2, "comment_total": 0, "worklog_total": 1},
    )
    audit = restriction_gaps(layered_site(issue_totals=totals), BOB)
    reach = audit.out_of_reach
    # two comments were counted but never loaded; the single worklog was loaded, so nothing is out of reach there
    assert reach.select("issue_key", "item_kind", "loaded", "reported_max", "unloaded", "account_reported").rows() == [
        ("ONE-2", "comment", 1, 3, 2, 0)
    ]
    assert reach["account_hidden_reported"].to_list() == [3]
    assert any("2 comments on 1 issues" in note for note in audit.notes)


def sightings(*entries: tuple[str, str, int, int]) -> pl.DataFrame:
    return rows(
        "_jira_lab_sightings",
        *(
            {
                "principal_id": who,
                "entity_kind": kind,
                "entity_id": str(i),
                "first_seen_load": last,
                "last_seen_load": last,
            }
            for who, kind, i, last in entries
        ),
    )


def two_principals() -> model.SiteTables:
    """ann (the analyst) saw everything in load 1; bob's latest load is 3 (an incremental one after load 2).

    In load 3 bob saw (or carried forward) issue 2, comment 10 (which the model says he cannot see) and worklog 20;
    issue 1 he saw only in load 2.
    """
    seen = sightings(
        *((ANN, "issue", i, 1) for i in (1, 2, 3)),
        (ANN, "comment", 10, 1),
        (ANN, "comment", 11, 1),
        (ANN, "worklog", 20, 1),
        (BOB, "issue", 2, 3),
        (BOB, "comment", 10, 3),
        (BOB, "worklog", 20, 3),
        (BOB, "issue", 1, 2),
    )
    return layered_site(
        _jira_lab_loads=loads((1, ANN, True), (2, BOB, True), (3, BOB, False)), _jira_lab_sightings=seen
    )


def test_empirical_gaps_are_what_the_analyst_saw_and_the_account_did_not() -> None:
    tables = two_principals()
    assert set(seen_items(tables, BOB).collect().iter_rows()) == {("issue", 2), ("comment", 10), ("worklog", 20)}
    found = empirical_gaps(tables, ANN, BOB)
    assert found.select("item_kind", "item_id", "issue_key", "project_key").rows() == [
        ("issue", 1, "ONE-1", "ONE"),
        ("issue", 3, "TWO-1", "TWO"),
        ("comment", 11, "TWO-1", "TWO"),
    ]


def test_compare_prediction_reports_every_disagreement_item_by_item() -> None:
    tables = two_principals()
    differences = compare_prediction(tables, ANN, BOB)
    assert differences.select("item_kind", "item_id", "predicted_layer", "seen_by_account", "disagreement").rows() == [
        ("comment", 10, "visibility", True, "predicted hidden, but the account saw it")
    ]


def test_compare_prediction_reports_an_item_predicted_visible_that_the_account_did_not_see() -> None:
    seen = sightings((ANN, "issue", 2, 1), (ANN, "worklog", 20, 1), (BOB, "issue", 2, 2))
    tables = layered_site(_jira_lab_loads=loads((1, ANN, True), (2, BOB, True)), _jira_lab_sightings=seen)
    differences = compare_prediction(tables, ANN, BOB)
    assert differences.select("item_kind", "item_id", "predicted_hidden", "disagreement").rows() == [
        ("worklog", 20, False, "predicted visible, but the account did not see it")
    ]


def test_a_principal_without_a_load_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="no succeeded load"):
        empirical_gaps(layered_site(_jira_lab_loads=loads((1, ANN, True))), ANN, EVE)


def test_seen_by_limits_the_audit_to_what_that_principal_saw() -> None:
    seen = sightings((ANN, "issue", 3, 1), (ANN, "comment", 11, 1))
    tables_seen = layered_site(_jira_lab_loads=loads((1, ANN, True)), _jira_lab_sightings=seen)
    audit = restriction_gaps(tables_seen, BOB, seen_by=ANN)
    assert set(by_item(audit.gaps)) == {("issue", 3), ("comment", 11)}
    every = hidden_items(tables_seen, "acc-bob@example.com").collect()
    assert every.height == 4


def test_a_principal_missing_from_the_loaded_users_is_taken_as_active() -> None:
    principals = rows("_jira_lab_principals", {"principal_id": "acc-zed", "auth_kind": "oauth"})
    members = pl.concat([people()["group_members"], rows("group_members", {"group_id": DEVS, "account_id": "acc-zed"})])
    tables = layered_site(_jira_lab_principals=principals, group_members=members)
    audit = restriction_gaps(tables, "acc-zed")
    # through devs it has Browse everywhere and comment 10; issue 1 (level Staff) and the items restricted to roles
    # (Administrators in TWO, Developers in ONE: it acts in neither) stay hidden
    assert set(by_item(audit.gaps)) == {("issue", 1), ("comment", 11), ("worklog", 20)}
    assert "inactive_account" not in set(audit.gaps["layer"])
    assert any("not among the loaded users" in note for note in audit.notes)


def test_an_unknown_account_is_refused() -> None:
    with pytest.raises(ValueError, match="no loaded account"):
        restriction_gaps(model.from_frames(SITE), "ghost@example.com")
