"""Coverage and sync coverage (jira_lab.audits.coverage).

Unit tests on a few hand-written rows (expected counts follow from the rows and Jira's rules), then the demo site
loaded by the analyst and the technical user, counted against the simulator's permission engine.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from test_audits_preflight import LoadedDemo, loaded_demo

from jira_lab.audits import model
from jira_lab.audits.coverage import COVERAGE_COLUMNS, SYNC_COLUMNS, coverage, sync_coverage

SITE = "site-c"
TECH, ANN = "tech-c", "ann-c"
OPEN, SHUT = 1, 2  # projects: the technical user browses OPEN only
TEAM = "g-team"
LEVEL = 7


def when(month: int) -> datetime:
    return datetime(2025, month, 15, tzinfo=UTC)


def frames() -> dict[str, Any]:
    """OPEN: issues 1 (no level), 2 (level 7, whose only member is the team). SHUT: issue 3.

    Comments: 10 on issue 1 (open), 11 on issue 1 restricted to the team, 12 on issue 2, 13 on issue 3.
    Worklog 20 on issue 1 restricted to the role Devs (the technical user acts in it in OPEN).
    """
    return {
        "users": pl.DataFrame({"account_id": [TECH, ANN], "active": [True, True]}),
        "groups": pl.DataFrame({"group_id": [TEAM], "name": ["team"]}),
        "group_members": pl.DataFrame({"group_id": [TEAM], "account_id": [ANN]}),
        "projects": pl.DataFrame({"id": [OPEN, SHUT], "key": ["OPEN", "SHUT"]}),
        "project_roles": pl.DataFrame({"id": [5], "name": ["Devs"]}),
        "role_actors": pl.DataFrame({"project_id": [OPEN], "role_id": [5], "actor_type": ["user"], "actor_id": [TECH]}),
        "permission_grants": pl.DataFrame(
            {
                "scheme_id": [1, 2],
                "id": [1, 2],
                "permission": ["BROWSE_PROJECTS"] * 2,
                "holder_type": ["anyone", "user"],
                "holder_value": [None, ANN],
            }
        ),
        "project_permission_schemes": pl.DataFrame({"project_id": [OPEN, SHUT], "scheme_id": [1, 2]}),
        "security_levels": pl.DataFrame({"id": [LEVEL], "scheme_id": [9], "name": ["Team only"]}),
        "security_level_members": pl.DataFrame(
            {"level_id": [LEVEL], "id": [1], "scheme_id": [9], "holder_type": ["group"], "holder_value": [TEAM]}
        ),
        "project_security_schemes": pl.DataFrame({"project_id": [OPEN], "scheme_id": [9]}),
        "issues": pl.DataFrame(
            {
                "id": [1, 2, 3],
                "project_id": [OPEN, OPEN, SHUT],
                "security_level_id": [None, LEVEL, None],
                "created": [when(1), when(1), when(2)],
            }
        ),
        "comments": pl.DataFrame(
            {
                "id": [10, 11, 12, 13],
                "issue_id": [1, 1, 2, 3],
                "created": [when(1), when(2), when(2), when(3)],
                "visibility_type": [None, "group", None, None],
                "visibility_value": [None, "team", None, None],
                "visibility_identifier": [None, TEAM, None, None],
            }
        ),
        "worklogs": pl.DataFrame(
            {
                "id": [20],
                "issue_id": [1],
                "created": [when(3)],
                "visibility_type": ["role"],
                "visibility_value": ["Devs"],
                "visibility_identifier": ["Devs"],
            }
        ),
    }


def counts(frame: pl.DataFrame, dimension: str) -> dict[tuple[str, str], tuple[int, int, int | None]]:
    rows = frame.filter(pl.col("dimension") == dimension)
    return {
        (row["label"], row["item_kind"]): (row["items"], row["visible"], row["seen"])
        for row in rows.iter_rows(named=True)
    }


def test_coverage_by_dimension_from_the_prediction() -> None:
    result = coverage(model.from_frames(SITE, frames()), TECH)
    assert result.schema == pl.Schema(COVERAGE_COLUMNS)
    # visible: issue 1 and its comment 10 and worklog 20 (Devs in OPEN); hidden: issue 2 (level), 3 (no Browse),
    # comment 11 (team), 12 (on issue 2), 13 (on issue 3). The technical user never loaded: nothing seen.
    assert counts(result, "site") == {
        ("whole site", "issue"): (3, 1, None),
        ("whole site", "comment"): (4, 1, None),
        ("whole site", "worklog"): (1, 1, None),
    }
    assert counts(result, "project") == {
        ("OPEN", "issue"): (2, 1, None),
        ("OPEN", "comment"): (3, 1, None),
        ("OPEN", "worklog"): (1, 1, None),
        ("SHUT", "issue"): (1, 0, None),
        ("SHUT", "comment"): (1, 0, None),
    }
    assert counts(result, "security_level") == {
        ("Team only", "issue"): (1, 0, None),
        ("Team only", "comment"): (1, 0, None),
        ("no security level", "issue"): (2, 1, None),
        ("no security level", "comment"): (3, 1, None),
        ("no security level", "worklog"): (1, 1, None),
    }
    assert counts(result, "restriction") == {
        ("group team", "comment"): (1, 0, None),
        ("role Devs in OPEN", "worklog"): (1, 1, None),
        ("unrestricted", "comment"): (3, 1, None),
    }
    assert counts(result, "created_month") == {
        ("2025-01", "issue"): (2, 1, None),
        ("2025-01", "comment"): (1, 1, None),
        ("2025-02", "issue"): (1, 0, None),
        ("2025-02", "comment"): (2, 0, None),
        ("2025-03", "comment"): (1, 0, None),
        ("2025-03", "worklog"): (1, 1, None),
    }
    project_row = result.filter((pl.col("dimension") == "project") & (pl.col("label") == "OPEN")).row(0, named=True)
    assert (project_row["key"], project_row["project_id"], project_row["visible_pct"]) == (str(OPEN), OPEN, 50.0)


def loads_and_sightings(tech_sees: dict[str, list[int]], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The analyst saw everything in load 1; the technical user saw ``tech_sees`` in load 2."""
    everything = {"issue": [1, 2, 3], "comment": [10, 11, 12, 13], "worklog": [20]}
    sightings = [
        {"principal_id": principal, "entity_kind": kind, "entity_id": str(entity), "first_seen_load": load}
        | {"last_seen_load": load}
        for principal, load, seen in ((ANN, 1, everything), (TECH, 2, tech_sees))
        for kind, ids in seen.items()
        for entity in ids
    ]
    return {
        "_jira_lab_loads": pl.DataFrame(
            [
                {"load_id": 1, "site_id": SITE, "principal_id": ANN, "status": "succeeded", "full_load": True},
                {"load_id": 2, "site_id": SITE, "principal_id": TECH, "status": "succeeded", "full_load": True}
                | {"options": json.dumps(options or {})},
            ]
        ),
        "_jira_lab_sightings": pl.DataFrame(sightings),
        "_jira_lab_principals": pl.DataFrame({"principal_id": [ANN, TECH], "display_name": ["Ann", "Bot"]}),
    }


def test_coverage_puts_what_the_technical_user_saw_beside_the_prediction() -> None:
    # it saw issue 1 and comment 10 but not worklog 20, which the prediction says it may see
    tables = model.from_frames(SITE, frames() | loads_and_sightings({"issue": [1], "comment": [10]}))
    result = coverage(tables, TECH)
    assert counts(result, "site") == {
        ("whole site", "issue"): (3, 1, 1),
        ("whole site", "comment"): (4, 1, 1),
        ("whole site", "worklog"): (1, 1, 0),
    }
    worklogs = result.filter((pl.col("dimension") == "site") & (pl.col("item_kind") == "worklog")).row(0, named=True)
    assert (worklogs["visible_pct"], worklogs["seen_pct"]) == (100.0, 0.0)


def test_sync_coverage_compares_jira_s_totals_with_what_each_load_fetched() -> None:
    totals = pl.DataFrame(
        {
            "principal_id": [ANN, ANN, ANN, TECH],
            "issue_id": [1, 2, 3, 1],
            # Jira told the analyst issue 1 has 3 comments (it sighted 2) and the technical user 1 (it sighted 1)
            "comment_total": [3, 1, 1, 1],
            "worklog_total": [1, 0, 0, 1],
        }
    )
    tables = model.from_frames(
        SITE,
        frames()
        | loads_and_sightings({"issue": [1], "comment": [10], "worklog": [20]}, {"approximate_count": 4})
        | {"issue_totals": totals},
    )
    result = sync_coverage(tables)
    assert result.schema == pl.Schema(SYNC_COLUMNS)
    rows = {
        (row["principal_id"], row["source"], row["project_key"], row["item_kind"]): (
            row["issues"],
            row["reported"],
            row["fetched"],
            row["missing"],
            row["issues_incomplete"],
        )
        for row in result.iter_rows(named=True)
    }
    assert rows == {
        (ANN, "inline totals", "OPEN", "comment"): (2, 4, 3, 1, 1),
        (ANN, "inline totals", "OPEN", "worklog"): (2, 1, 1, 0, 0),
        (ANN, "inline totals", "SHUT", "comment"): (1, 1, 1, 0, 0),
        (ANN, "inline totals", "SHUT", "worklog"): (1, 0, 0, 0, 0),
        (TECH, "inline totals", "OPEN", "comment"): (1, 1, 1, 0, 0),
        (TECH, "inline totals", "OPEN", "worklog"): (1, 1, 1, 0, 0),
        # the technical user's load recorded Jira's approximate count: 4 issues, of which it fetched 1
        (TECH, "approximate count", None, "issue"): (None, 4, 1, 3, None),
    }


def test_sync_coverage_of_a_file_nobody_loaded_is_empty() -> None:
    assert sync_coverage(model.from_frames(SITE, frames())).is_empty()


# -- the demo site ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> LoadedDemo:
    return loaded_demo()


def test_demo_coverage_matches_the_permission_engine(demo: LoadedDemo) -> None:
    engine, site = demo.engine, demo.site
    items: Counter[tuple[str, str, str]] = Counter()
    visible: Counter[tuple[str, str, str]] = Counter()
    for issue in site.issues.values():
        key = site.projects[issue.project_id].key
        level = "no security level"
        if issue.security_level_id is not None:
            found = site.security_level(issue.security_level_id)
            assert found is not None
            level = found[1].name
        entries: list[tuple[str, Any, bool]] = [("issue", issue, engine.can_browse_issue(demo.tech, issue))]
        entries += [("comment", c, engine.can_see_item(demo.tech, issue, c.visibility)) for c in issue.comments]
        entries += [("worklog", w, engine.can_see_item(demo.tech, issue, w.visibility)) for w in issue.worklogs]
        for kind, entry, sees in entries:
            month = entry.created.strftime("%Y-%m")
            for dimension, label in (("project", key), ("security_level", level), ("created_month", month)):
                items[(dimension, label, kind)] += 1
                visible[(dimension, label, kind)] += sees
    result = coverage(demo.tables, demo.tech).filter(pl.col("dimension") != "restriction")
    result = result.filter(pl.col("dimension") != "site")
    counted = {
        (r["dimension"], r["label"], r["item_kind"]): (r["items"], r["visible"]) for r in result.iter_rows(named=True)
    }
    assert counted == {key: (items[key], visible[key]) for key in items}
    # the technical user's own load saw exactly what the prediction says it may see
    assert result["seen"].to_list() == result["visible"].to_list()


def test_demo_restriction_coverage_names_each_hidden_restriction(demo: LoadedDemo) -> None:
    result = coverage(demo.tables, demo.tech).filter(pl.col("dimension") == "restriction")
    story = demo.story
    missing_role = story["missing_roles"][0]
    none_visible = set(result.filter(pl.col("visible") == 0)["label"])
    assert f"role {missing_role['role']} in {missing_role['project']}" in none_visible
    assert f"group {story['missing_groups'][0]}" in none_visible
    # the restrictions it passes, in projects it browses, are fully visible
    fully = set(result.filter(pl.col("visible") == pl.col("items"))["label"])
    assert {"role Developers in ENG", "group engineering", "role Service Desk Team in SUP"} <= fully


def test_demo_sync_coverage_finds_every_counted_item_fetched(demo: LoadedDemo) -> None:
    engine, site = demo.engine, demo.site
    result = sync_coverage(demo.tables)
    assert set(result["principal_id"]) == {demo.analyst, demo.tech}
    assert result["missing"].sum() == 0 and result["extra"].sum() == 0
    tech_comments = result.filter((pl.col("principal_id") == demo.tech) & (pl.col("item_kind") == "comment"))
    expected = Counter(
        site.projects[issue.project_id].key
        for issue in site.issues.values()
        if engine.can_browse_issue(demo.tech, issue)
        for comment in issue.comments
        if engine.can_see_item(demo.tech, issue, comment.visibility)
    )
    assert dict(zip(tech_comments["project_key"], tech_comments["reported"], strict=True)) == dict(expected)
