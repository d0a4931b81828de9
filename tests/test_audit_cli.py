"""``jira-lab audit`` (jira_lab.cli): the preflight table, the gap summary, the exit status and the written results.

It runs on the demo site loaded by the analyst and the technical user (shared with the other audit test modules),
and on a tiny file written with the store, where the technical user passes every check.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from test_audits_preflight import LoadedDemo, loaded_demo

from jira_lab import store
from jira_lab.audits import changes, coverage, model, preflight, visibility
from jira_lab.auth.scopes import OFFLINE_ACCESS, REQUIRED_SCOPES
from jira_lab.cli import main

RESULT_FILES = {
    "preflight_checks",
    "preflight_findings",
    "restriction_gaps",
    "gap_fixes",
    "out_of_reach",
    "coverage",
    "sync_coverage",
    "permission_changes",
    "gap_explanations",
    "prediction_disagreements",
}


@pytest.fixture(scope="module")
def demo() -> LoadedDemo:
    return loaded_demo()


def audit(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_the_demo_audit_fails_prints_the_table_and_writes_csv(demo: LoadedDemo, tmp_path: Path) -> None:
    email = demo.site.users[demo.tech].email
    assert email is not None
    code, output = audit("--db", str(demo.db), "--user", email, "--output", str(tmp_path))
    assert code == 1  # checks 2, 3 and 4 fail
    lines = output.splitlines()
    assert any(line.split()[:2] == ["2", "FAIL"] for line in lines)
    assert any(line.split()[:2] == ["1", "pass"] for line in lines)
    assert "HR" in output and "Security team only" in output
    assert "smallest set of changes" in output
    assert "agree item for item" in output  # the two loads agree with the prediction
    assert {path.stem for path in tmp_path.glob("*.csv")} == RESULT_FILES
    checks = pl.read_csv(tmp_path / "preflight_checks.csv")
    assert checks["status"].to_list() == ["pass", "fail", "fail", "fail", "pass", "pass"]
    findings = pl.read_csv(tmp_path / "preflight_findings.csv")
    failing_projects = findings.filter((pl.col("check") == 2) & (pl.col("status") == "fail"))["project_key"]
    assert failing_projects.to_list() == demo.story["no_browse"]


def test_the_demo_audit_writes_parquet_and_takes_the_account_id(demo: LoadedDemo, tmp_path: Path) -> None:
    code, _ = audit("--db", str(demo.db), "--user", demo.tech, "--output", str(tmp_path), "--format", "parquet")
    assert code == 1
    assert {path.stem for path in tmp_path.glob("*.parquet")} == RESULT_FILES
    changes = pl.read_parquet(tmp_path / "permission_changes.parquet")
    assert changes.filter(pl.col("explains").is_not_null()).height >= 4


def test_an_unknown_user_is_a_usage_error(demo: LoadedDemo) -> None:
    code, output = audit("--db", str(demo.db), "--user", "nobody@example.invalid")
    assert code == 2
    assert "no loaded account" in output


SITE = "https://tiny.atlassian.net"
TECH = "tech-t"


def write_passing_site(path: Path, *, scopes: list[str] | None) -> None:
    """One project the technical user browses through its group, nothing restricted, Jira saying it is an
    administrator, and its own load having read serverInfo (with ``scopes`` recorded when given)."""
    tables = model.from_frames(
        SITE,
        _jira_lab_sites=pl.DataFrame({"site_id": [SITE], "url": [SITE]}),
        _jira_lab_principals=pl.DataFrame(
            {
                "site_id": [SITE],
                "principal_id": [TECH],
                "display_name": ["Bot"],
                "auth_kind": ["oauth" if scopes is not None else "basic"],
                "scopes": [json.dumps(scopes) if scopes is not None else None],
            }
        ),
        _jira_lab_loads=pl.DataFrame(
            {"load_id": [1], "site_id": [SITE], "principal_id": [TECH], "status": ["succeeded"], "full_load": [True]}
        ),
        _jira_lab_access=pl.DataFrame(
            {
                "load_id": [1, 1],
                "resource": ["server_info", "security_levels"],
                "site_id": [SITE] * 2,
                "principal_id": [TECH] * 2,
                "outcome": ["ok"] * 2,
            }
        ),
        _jira_lab_sightings=pl.DataFrame(
            {
                "site_id": [SITE],
                "principal_id": [TECH],
                "entity_kind": ["issue"],
                "entity_id": ["1"],
                "first_seen_load": [1],
                "last_seen_load": [1],
            }
        ),
        users=pl.DataFrame({"site_id": [SITE], "account_id": [TECH], "display_name": ["Bot"], "active": [True]}),
        groups=pl.DataFrame({"site_id": [SITE], "group_id": ["g1"], "name": ["bots"]}),
        group_members=pl.DataFrame({"site_id": [SITE], "group_id": ["g1"], "account_id": [TECH]}),
        application_role_groups=pl.DataFrame({"site_id": [SITE], "application_key": ["jira"], "group_id": ["g1"]}),
        projects=pl.DataFrame({"site_id": [SITE], "id": [10], "key": ["ONE"]}),
        role_actors=pl.DataFrame(
            {"site_id": [SITE], "project_id": [10], "role_id": [1], "actor_type": ["group"], "actor_id": ["g1"]}
        ),
        permission_grants=pl.DataFrame(
            {
                "site_id": [SITE],
                "scheme_id": [5],
                "id": [1],
                "permission": ["BROWSE_PROJECTS"],
                "holder_type": ["group"],
                "holder_parameter": ["bots"],
                "holder_value": ["g1"],
            }
        ),
        project_permission_schemes=pl.DataFrame({"site_id": [SITE], "project_id": [10], "scheme_id": [5]}),
        my_permissions=pl.DataFrame(
            {
                "site_id": [SITE],
                "principal_id": [TECH],
                "project_id": [0],
                "permission": ["ADMINISTER"],
                "have_permission": [True],
            }
        ),
        issues=pl.DataFrame({"site_id": [SITE], "id": [1], "project_id": [10], "key": ["ONE-1"]}),
    )
    conn = store.connect(path)
    try:
        store.ensure_schema(conn)
        for name in ("_jira_lab_sites", "_jira_lab_principals", "_jira_lab_loads", "_jira_lab_access"):
            store.upsert(conn, name, tables.table(name).collect())
        for name in (
            "_jira_lab_sightings",
            "users",
            "groups",
            "group_members",
            "application_role_groups",
            "projects",
            "role_actors",
            "permission_grants",
            "project_permission_schemes",
            "my_permissions",
            "issues",
        ):
            store.upsert(conn, name, tables.table(name).collect())
    finally:
        conn.close()


def test_a_technical_user_passing_every_check_exits_zero(tmp_path: Path) -> None:
    db = tmp_path / "tiny.duckdb"
    write_passing_site(db, scopes=[*REQUIRED_SCOPES, OFFLINE_ACCESS])
    code, output = audit("--db", str(db), "--user", TECH, "--strict")
    assert code == 0, output
    assert [line.split()[1] for line in output.splitlines() if line[:3].strip().isdigit()] == ["pass"] * 6


def test_strict_turns_cannot_tell_into_a_failure(tmp_path: Path) -> None:
    db = tmp_path / "tiny.duckdb"
    write_passing_site(db, scopes=None)  # basic auth: the app's scopes cannot be told
    assert audit("--db", str(db), "--user", TECH)[0] == 0
    code, output = audit("--db", str(db), "--user", TECH, "--strict")
    assert code == 1
    assert "CANNOT TELL" in output
    code, _ = audit(
        "--db", str(db), "--user", TECH, "--scopes", ",".join([*REQUIRED_SCOPES, OFFLINE_ACCESS]), "--strict"
    )
    assert code == 0


def test_the_audit_docs_name_every_output_column_and_file() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "audits.md").read_text(encoding="utf-8")
    columns = {
        *preflight.FINDING_COLUMNS,
        *preflight.CHECK_COLUMNS,
        *coverage.COVERAGE_COLUMNS,
        *coverage.SYNC_COLUMNS,
        *changes.PERMISSION_CHANGE_COLUMNS,
        *changes.GAP_EXPLANATION_COLUMNS,
        *visibility.GAP_COLUMNS,
        *visibility.FIX_COLUMNS,
    }
    undocumented = sorted(column for column in columns if f"`{column}`" not in docs)
    assert undocumented == []
    assert sorted(name for name in RESULT_FILES if f"`{name}`" not in docs) == []
