"""The preflight checklist (jira_lab.audits.preflight) on small hand-built tables.

The site (a few rows per table, written out below) is built so that each check has a passing, a failing and, where
the data allows, an undecidable subject; every expected status follows from Jira's rules applied to those rows by
hand. At the bottom, the demo site is loaded by the analyst and by the technical user (:func:`loaded_demo`, shared with
the other audit test modules), and the findings are checked against its story (``[story]`` in
``data/demo-site.toml``) and, subject by subject, against the simulator's permission engine.
"""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jira_lab.audits import model
from jira_lab.audits.preflight import (
    CANNOT_TELL,
    CHECK_COLUMNS,
    FAIL,
    FINDING_COLUMNS,
    PASS,
    preflight,
    preflight_findings,
    summarize_checks,
)
from jira_lab.auth.httpauth import basic_auth
from jira_lab.auth.scopes import OFFLINE_ACCESS, REQUIRED_SCOPES
from jira_lab.client import JiraClient
from jira_lab.load import load
from jira_lab.sim import SimCloud
from jira_lab.sim.generator import generate_site, load_demo_definition
from jira_lab.sim.model import Comment, Issue, Site, Worklog
from jira_lab.sim.permissions import ISSUE_DATA_HOLDERS, PermissionEngine
from jira_lab.store import connect

SITE = "site-1"
TECH, ANN, OLD = "tech-1", "ann-1", "old-1"
BOTS, FIN, ALL = "g-bots", "g-fin", "g-all"
P1, P2, P3 = 101, 102, 103
S1, S2, S3 = 201, 202, 203
X, Y = 301, 302  # issue security schemes: X used by P1, Y by no project
L1, L2, L3 = 401, 402, 403
DEVS = 501


def base_frames() -> dict[str, Any]:
    """The hand-built site: what each row is for is said beside it."""
    return {
        "users": pl.DataFrame(
            [
                {"account_id": TECH, "display_name": "Search Bot", "email_address": "bot@x.example", "active": True},
                {"account_id": ANN, "display_name": "Ann", "email_address": "ann@x.example", "active": True},
                {"account_id": OLD, "display_name": "Old", "email_address": None, "active": False},
            ]
        ),
        "groups": pl.DataFrame({"group_id": [BOTS, FIN, ALL], "name": ["bots", "finance", "everyone"]}),
        "group_members": pl.DataFrame(
            {"group_id": [BOTS, FIN, ALL, ALL, FIN], "account_id": [TECH, ANN, TECH, ANN, OLD]}
        ),
        "application_roles": pl.DataFrame({"key": ["jira-software"], "name": ["Jira"]}),
        "application_role_groups": pl.DataFrame({"application_key": ["jira-software"], "group_id": [ALL]}),
        "projects": pl.DataFrame({"id": [P1, P2, P3], "key": ["ONE", "TWO", "THREE"], "lead_account_id": [ANN] * 3}),
        "project_roles": pl.DataFrame({"id": [DEVS], "name": ["Devs"]}),
        # Devs in TWO: the finance group (tech is not in it); Devs in ONE: nobody
        "role_actors": pl.DataFrame(
            {"project_id": [P2], "role_id": [DEVS], "actor_type": ["group"], "actor_id": [FIN]}
        ),
        "permission_schemes": pl.DataFrame({"id": [S1, S2, S3], "name": ["One scheme", "Two scheme", "Three scheme"]}),
        "permission_grants": pl.DataFrame(
            [
                # ONE: through its own group; TWO: only the Devs role; THREE: product access, and reporters
                {"scheme_id": S1, "id": 1, "permission": "BROWSE_PROJECTS", "holder_type": "group"}
                | {"holder_parameter": "bots", "holder_value": BOTS},
                {"scheme_id": S2, "id": 2, "permission": "BROWSE_PROJECTS", "holder_type": "projectRole"}
                | {"holder_parameter": str(DEVS), "holder_value": str(DEVS)},
                {"scheme_id": S3, "id": 3, "permission": "BROWSE_PROJECTS", "holder_type": "applicationRole"}
                | {"holder_parameter": "jira-software", "holder_value": "jira-software"},
                {"scheme_id": S3, "id": 4, "permission": "BROWSE_PROJECTS", "holder_type": "reporter"},
                {"scheme_id": S1, "id": 5, "permission": "EDIT_ISSUES", "holder_type": "group"}
                | {"holder_parameter": "finance", "holder_value": FIN},
            ]
        ),
        "project_permission_schemes": pl.DataFrame({"project_id": [P1, P2, P3], "scheme_id": [S1, S2, S3]}),
        "security_schemes": pl.DataFrame({"id": [X, Y], "name": ["X security", "Y security"]}),
        "security_levels": pl.DataFrame(
            {"id": [L1, L2, L3], "scheme_id": [X, X, Y], "name": ["Open", "Closed", "Lone"]}
        ),
        "security_level_members": pl.DataFrame(
            [
                {"level_id": L1, "id": 1, "scheme_id": X, "holder_type": "group", "holder_value": BOTS},
                {"level_id": L2, "id": 2, "scheme_id": X, "holder_type": "projectRole", "holder_value": str(DEVS)},
                {"level_id": L2, "id": 3, "scheme_id": X, "holder_type": "reporter"},
                {"level_id": L3, "id": 4, "scheme_id": Y, "holder_type": "user", "holder_value": TECH},
            ]
        ),
        "project_security_schemes": pl.DataFrame({"project_id": [P1], "scheme_id": [X]}),
        "issues": pl.DataFrame(
            {
                "id": [1, 2, 3, 4, 5, 6],
                "project_id": [P1, P1, P1, P1, P2, P3],
                # issue 3 is at Closed and reported by Ann; issue 4 at Closed but reported by the technical user
                "security_level_id": [None, L1, L2, L2, None, None],
                "reporter_account_id": [ANN, ANN, ANN, TECH, ANN, ANN],
            }
        ),
        "comments": pl.DataFrame(
            {
                "id": [11, 12, 13, 14],
                "issue_id": [1, 1, 1, 5],
                "visibility_type": ["group", "role", None, "group"],
                "visibility_value": ["finance", "Devs", None, "finance"],
                "visibility_identifier": [FIN, "Devs", None, FIN],
            }
        ),
        "worklogs": pl.DataFrame(
            {
                "id": [21, 22],
                "issue_id": [1, 3],
                "visibility_type": ["role", None],
                "visibility_value": ["Ghost", None],
                "visibility_identifier": ["Ghost", None],
            }
        ),
    }


def findings_of(frames: dict[str, Any], who: str = TECH, **options: Any) -> pl.DataFrame:
    return preflight_findings(model.from_frames(SITE, frames), who, **options)


@pytest.fixture(scope="module")
def base_findings() -> pl.DataFrame:
    return findings_of(base_frames())


def statuses(findings: pl.DataFrame, check: int) -> dict[str, str]:
    rows = findings.filter(pl.col("check") == check)
    return dict(zip(rows["subject"].to_list(), rows["status"].to_list(), strict=True))


def test_findings_and_checks_have_the_documented_columns(base_findings: pl.DataFrame) -> None:
    findings = base_findings
    assert findings.schema == pl.Schema(FINDING_COLUMNS)
    checks = summarize_checks(findings)
    assert checks.schema == pl.Schema(CHECK_COLUMNS)
    assert checks["check"].to_list() == [1, 2, 3, 4, 5, 6]


def test_browse_projects_per_project_with_the_ways_in(base_findings: pl.DataFrame) -> None:
    findings = base_findings
    assert statuses(findings, 2) == {"ONE": PASS, "THREE": PASS, "TWO": FAIL}
    two = findings.filter((pl.col("check") == 2) & (pl.col("subject") == "TWO")).row(0, named=True)
    # TWO holds issue 5 with comment 14: all hidden, Browse being the first layer
    assert (two["issues"], two["comments"], two["worklogs"]) == (1, 1, 0)
    assert (two["hidden_issues"], two["hidden_comments"], two["hidden_worklogs"]) == (1, 1, 0)
    assert "actor of Devs in TWO" in two["fix"]
    one = findings.filter((pl.col("check") == 2) & (pl.col("subject") == "ONE")).row(0, named=True)
    assert one["via"] == "group bots"
    assert one["hidden_issues"] == 0 and one["fix"] is None


def test_security_levels_per_project_and_unused_schemes(base_findings: pl.DataFrame) -> None:
    findings = base_findings
    assert statuses(findings, 3) == {
        "Closed in ONE": FAIL,  # Devs has no actors in ONE; the reporter member admits it to its own issue only
        "Open in ONE": PASS,
        "Lone (its scheme is used by no project)": PASS,
    }
    closed = findings.filter(pl.col("subject") == "Closed in ONE").row(0, named=True)
    # issues 3 and 4 are at Closed; the technical user reported issue 4, so only issue 3 (and its worklog) is hidden
    assert (closed["issues"], closed["hidden_issues"], closed["hidden_worklogs"]) == (2, 1, 1)


def test_restrictions_by_group_id_and_by_role_in_the_project(base_findings: pl.DataFrame) -> None:
    findings = base_findings
    assert statuses(findings, 4) == {"group finance": FAIL, "role Devs in ONE": FAIL, "role Ghost in ONE": FAIL}
    finance = findings.filter(pl.col("subject") == "group finance").row(0, named=True)
    # comment 11 is on issue 1 (visible), comment 14 on issue 5 (no Browse in TWO): one hidden by this gap first
    assert (finance["comments"], finance["hidden_comments"], finance["group_id"]) == (2, 1, FIN)
    ghost = findings.filter(pl.col("subject") == "role Ghost in ONE").row(0, named=True)
    assert "no project role is named Ghost" in ghost["evidence"]


def test_a_masked_gap_fails_but_hides_nothing_yet() -> None:
    frames = base_frames()
    frames["comments"] = frames["comments"].filter(pl.col("id") == 14)  # only the comment in TWO is restricted
    finance = findings_of(frames).filter(pl.col("subject") == "group finance").row(0, named=True)
    assert finance["status"] == FAIL
    assert (finance["comments"], finance["hidden_comments"]) == (1, 0)
    assert "masked" in finance["evidence"]


def refused(resource: str, frames: dict[str, Any]) -> dict[str, Any]:
    """The analyst's only load could not read ``resource``."""
    return frames | {
        "_jira_lab_loads": pl.DataFrame(
            [{"load_id": 1, "site_id": SITE, "principal_id": ANN, "status": "succeeded", "full_load": True}]
        ),
        "_jira_lab_access": pl.DataFrame(
            [
                {"load_id": 1, "resource": resource, "site_id": SITE, "principal_id": ANN}
                | {"outcome": "forbidden", "http_status": 403, "message": "no"}
            ]
        ),
    }


def test_unreadable_group_members_make_negative_answers_cannot_tell() -> None:
    findings = findings_of(refused(f"group_members:{FIN}", base_frames()))
    # finance's members were refused: whether the technical user is one cannot be told, here or through Devs
    assert statuses(findings, 4)["group finance"] == CANNOT_TELL
    assert statuses(findings, 2) == {"ONE": PASS, "THREE": PASS, "TWO": CANNOT_TELL}
    assert "group_members:g-fin" in findings.filter(pl.col("subject") == "TWO")["evidence"].item()
    # answers that do not read finance's members stand
    assert statuses(findings, 4)["role Devs in ONE"] == FAIL


def test_a_part_refused_to_one_load_but_read_by_another_is_known() -> None:
    # the technical user's load was refused finance's members; the analyst's load read every group's members
    frames = base_frames() | {
        "_jira_lab_loads": pl.DataFrame(
            [
                {"load_id": 1, "site_id": SITE, "principal_id": ANN, "status": "succeeded", "full_load": True},
                {"load_id": 2, "site_id": SITE, "principal_id": TECH, "status": "succeeded", "full_load": True},
            ]
        ),
        "_jira_lab_access": pl.DataFrame(
            [
                {"load_id": 1, "resource": "group_members", "site_id": SITE, "principal_id": ANN, "outcome": "ok"},
                {"load_id": 2, "resource": "group_members", "site_id": SITE, "principal_id": TECH, "outcome": "ok"},
                {"load_id": 2, "resource": f"group_members:{FIN}", "site_id": SITE, "principal_id": TECH}
                | {"outcome": "forbidden"},
            ]
        ),
    }
    assert statuses(findings_of(frames, checks=[4]), 4)["group finance"] == FAIL


def test_a_refusal_of_the_whole_table_touches_every_answer_reading_it() -> None:
    findings = findings_of(refused("role_actors", base_frames()))
    assert statuses(findings, 2)["TWO"] == CANNOT_TELL
    assert statuses(findings, 4)["role Devs in ONE"] == CANNOT_TELL
    assert statuses(findings, 4)["group finance"] == FAIL  # a group restriction reads no role actors


def test_a_table_never_loaded_is_no_answer_either() -> None:
    frames = base_frames()
    del frames["group_members"]
    findings = findings_of(frames)
    assert statuses(findings, 4)["group finance"] == CANNOT_TELL
    assert statuses(findings, 2)["ONE"] == CANNOT_TELL  # the model finds no member of bots: not proof of absence


def test_an_inactive_technical_user_fails_every_permission_check() -> None:
    frames = base_frames()
    frames["users"] = frames["users"].with_columns(
        pl.when(pl.col("account_id") == TECH).then(False).otherwise(pl.col("active")).alias("active")
    )
    findings = findings_of(frames)
    for check in (1, 2, 3, 4):
        assert set(statuses(findings, check).values()) == {FAIL}, check
    assert "inactive" in findings.filter(pl.col("check") == 2)["evidence"][0]


def test_the_technical_user_by_email(base_findings: pl.DataFrame) -> None:
    by_email = findings_of(base_frames(), "BOT@x.example")
    assert by_email.equals(base_findings)
    with pytest.raises(ValueError, match="no loaded account"):
        findings_of(base_frames(), "nobody@x.example")


# -- check 1 ---------------------------------------------------------------------------------------------------
def admin_status(frames: dict[str, Any]) -> tuple[str, str | None, str]:
    row = findings_of(frames, checks=[1]).row(0, named=True)
    return row["status"], row["via"], row["evidence"]


def test_jira_administrators_from_jira_s_own_answers() -> None:
    own = base_frames() | {
        "my_permissions": pl.DataFrame(
            [{"principal_id": TECH, "project_id": 0, "permission": "ADMINISTER", "have_permission": True}]
        )
    }
    assert admin_status(own)[0] == PASS
    checked = base_frames() | {
        "permission_checks": pl.DataFrame(
            [
                {"account_id": TECH, "permission": "ADMINISTER", "project_id": 0, "issue_id": 0}
                | {"have_permission": False, "principal_id": ANN}
            ]
        )
    }
    status, _, evidence = admin_status(checked)
    assert status == FAIL and "permissions/check" in evidence
    assert admin_status(base_frames())[0] == CANNOT_TELL


def test_jira_administrators_through_a_group_the_audit_log_granted() -> None:
    records = pl.DataFrame(
        [{"id": 7, "summary": "Global permission added", "category": "permissions", "author_account_id": ANN}]
    ).with_columns(pl.lit("2025-01-01T00:00:00Z").str.to_datetime(time_zone="UTC").alias("created"))
    changed = pl.DataFrame(
        {
            "audit_record_id": [7, 7],
            "position": [0, 1],
            "field_name": ["Permission", "Group"],
            "changed_from": ["", ""],
            "changed_to": ["Jira Administrators", "bots"],
        }
    )
    status, via, _ = admin_status(base_frames() | {"audit_records": records, "audit_changed_values": changed})
    assert (status, via) == (PASS, "bots")


def test_reading_the_audit_log_itself_proves_administer() -> None:
    frames = base_frames() | {
        "_jira_lab_access": pl.DataFrame(
            [{"load_id": 3, "resource": "audit_records", "site_id": SITE, "principal_id": TECH, "outcome": "ok"}]
        )
    }
    assert admin_status(frames)[0] == PASS


# -- checks 5 and 6 ------------------------------------------------------------------------------------------------
def access(outcome: str, status: int | None = None) -> dict[str, Any]:
    return base_frames() | {
        "_jira_lab_access": pl.DataFrame(
            [
                {"load_id": 2, "resource": "server_info", "site_id": SITE, "principal_id": TECH}
                | {"outcome": outcome, "http_status": status, "message": None}
            ],
            schema_overrides={"http_status": pl.Int32},
        )
    }


def test_server_information_from_the_technical_user_s_own_load() -> None:
    def server(frames: dict[str, Any]) -> str:
        return str(findings_of(frames, checks=[5])["status"].item())

    assert server(access("ok")) == PASS
    assert server(access("unauthorized", 401)) == FAIL
    assert server(base_frames()) == CANNOT_TELL


def test_scopes_recorded_with_the_oauth_load() -> None:
    granted = [scope for scope in REQUIRED_SCOPES if scope != "read:audit-log:jira"]
    frames = base_frames() | {
        "_jira_lab_principals": pl.DataFrame(
            [{"site_id": SITE, "principal_id": TECH, "auth_kind": "oauth", "scopes": json.dumps(granted)}]
        )
    }
    scopes = findings_of(frames, checks=[6])
    failing = scopes.filter(pl.col("status") == FAIL)["scope"].to_list()
    assert failing == ["read:audit-log:jira", OFFLINE_ACCESS]
    assert scopes.height == len(REQUIRED_SCOPES) + 1


def test_scopes_given_or_not_known() -> None:
    given = findings_of(base_frames(), granted_scopes=[*REQUIRED_SCOPES, OFFLINE_ACCESS], checks=[6])
    assert set(statuses(given, 6).values()) == {PASS}
    basic = base_frames() | {
        "_jira_lab_principals": pl.DataFrame([{"site_id": SITE, "principal_id": TECH, "auth_kind": "basic"}])
    }
    assert statuses(findings_of(basic, checks=[6]), 6) == {"OAuth scopes": CANNOT_TELL}
    with pytest.raises(ValueError, match="no check"):
        findings_of(basic, checks=[7])


def test_the_check_summary_fails_on_any_failure_and_cannot_tell_otherwise() -> None:
    checks = preflight(model.from_frames(SITE, access("ok")), TECH, granted_scopes=[*REQUIRED_SCOPES, OFFLINE_ACCESS])
    assert dict(zip(checks["check"], checks["status"], strict=True)) == {
        1: CANNOT_TELL,  # no answer from Jira, nothing in the audit log
        2: FAIL,
        3: FAIL,
        4: FAIL,
        5: PASS,
        6: PASS,
    }
    browse = checks.filter(pl.col("check") == 2).row(0, named=True)
    assert (browse["subjects"], browse["failed"], browse["unknown"]) == (3, 1, 0)
    assert browse["evidence"].startswith("fails: TWO (hides 1 issue, 1 comment)")


# -- the demo site, loaded by the analyst and by the technical user ------------------------------------------------
@dataclass(frozen=True)
class LoadedDemo:
    """The demo site loaded into one DuckDB file by the analyst (an admin, checking the technical user's permissions)
    and by the technical user (through the gateway with an OAuth token holding every scope it needs)."""

    site: Site
    definition: dict[str, Any]
    db: Path
    tables: model.SiteTables
    tech: str
    analyst: str

    @property
    def engine(self) -> PermissionEngine:
        return PermissionEngine(self.site)

    @property
    def story(self) -> dict[str, Any]:
        story: dict[str, Any] = self.definition["story"]
        return story


_DEMO_DIR = tempfile.TemporaryDirectory(prefix="jira-lab-audits-")


@functools.lru_cache(maxsize=1)
def loaded_demo() -> LoadedDemo:
    """Loaded once per test session (the other audit test modules use it too)."""
    site = generate_site("demo", 0)
    cloud = SimCloud(site)
    db = Path(_DEMO_DIR.name) / "demo.duckdb"
    tech, analyst = site.accounts["technical_user"], site.accounts["analyst"]
    ada = site.users[analyst]
    assert ada.email is not None and ada.api_token is not None
    as_analyst = JiraClient(
        f"https://{site.name}.atlassian.net", auth=basic_auth(ada.email, ada.api_token), transport=cloud.transport()
    )
    load(db, as_analyst, site_id=site.cloud_id, progress=False, check_accounts=[tech])
    scopes = [*REQUIRED_SCOPES, OFFLINE_ACCESS]
    as_tech = JiraClient(
        f"https://api.atlassian.com/ex/jira/{site.cloud_id}",
        headers={"Authorization": f"Bearer {cloud.mint_access_token(tech, scopes)}"},
        scopes=scopes,
        transport=cloud.transport(),
    )
    load(db, as_tech, site_id=site.cloud_id, progress=False)
    conn = connect(db, read_only=True)
    try:
        tables = model.from_db(conn)
    finally:
        conn.close()
    return LoadedDemo(site, load_demo_definition(), db, tables, tech, analyst)


@pytest.fixture(scope="module")
def demo() -> LoadedDemo:
    return loaded_demo()


@pytest.fixture(scope="module")
def demo_findings(demo: LoadedDemo) -> pl.DataFrame:
    return preflight_findings(demo.tables, demo.tech)


def items_of(issue: Issue) -> list[Comment | Worklog]:
    return [*issue.comments, *issue.worklogs]


def failing(findings: pl.DataFrame, check: int, *, hiding: bool) -> pl.DataFrame:
    """The failing subjects of a check that hide something now (or that are masked)."""
    hidden = pl.sum_horizontal("hidden_issues", "hidden_comments", "hidden_worklogs")
    chosen = (pl.col("check") == check) & (pl.col("status") == FAIL)
    return findings.filter(chosen & ((hidden > 0) if hiding else (hidden == 0)))


def test_demo_preflight_finds_what_the_story_says(demo: LoadedDemo, demo_findings: pl.DataFrame) -> None:
    story, site = demo.story, demo.site
    admin = demo_findings.filter(pl.col("check") == 1).row(0, named=True)
    assert (admin["status"], admin["via"]) == (PASS, story["admin_through"])
    assert set(failing(demo_findings, 2, hiding=True)["project_key"]) == set(story["no_browse"])
    assert set(failing(demo_findings, 3, hiding=True)["level_name"]) == set(story["not_in_levels"])
    roles = failing(demo_findings, 4, hiding=True).filter(pl.col("role_name").is_not_null())
    assert set(zip(roles["project_key"], roles["role_name"], strict=True)) == {
        (missing["project"], missing["role"]) for missing in story["missing_roles"]
    }
    groups = failing(demo_findings, 4, hiding=True).filter(pl.col("group_id").is_not_null())
    assert set(groups["group_name"]) == set(story["missing_groups"])
    # what else fails is masked: it all lies in the projects the technical user cannot browse
    masked = pl.concat([failing(demo_findings, 3, hiding=False), failing(demo_findings, 4, hiding=False)])
    assert masked.height > 0
    assert set(masked["project_key"].drop_nulls()) == set(story["no_browse"])
    for group_id in masked["group_id"].drop_nulls():
        projects = {
            site.projects[issue.project_id].key
            for issue in site.issues.values()
            for item in items_of(issue)
            if item.visibility is not None and item.visibility.identifier == group_id
        }
        assert projects and projects <= set(story["no_browse"])
    summary = summarize_checks(demo_findings)
    assert summary["status"].to_list() == [PASS, FAIL, FAIL, FAIL, PASS, PASS]
    assert site.users[demo.tech].display_name in " ".join(demo_findings["fix"].drop_nulls())


def test_demo_browse_projects_agrees_with_the_permission_engine(demo: LoadedDemo, demo_findings: pl.DataFrame) -> None:
    engine, site = demo.engine, demo.site
    rows = demo_findings.filter(pl.col("check") == 2)
    assert set(rows["project_id"]) == set(site.projects)
    for row in rows.iter_rows(named=True):
        project = site.projects[row["project_id"]]
        holds = any(
            engine.holder_matches(demo.tech, holder, project, None)
            for holder in engine.grants_for(project, "BROWSE_PROJECTS")
            if holder.type not in ISSUE_DATA_HOLDERS
        )
        assert row["status"] == (PASS if holds else FAIL), project.key
        issues = [issue for issue in site.issues.values() if issue.project_id == project.id]
        hidden = [
            issue for issue in issues if not engine.has_project_permission(demo.tech, "BROWSE_PROJECTS", project, issue)
        ]
        assert (row["issues"], row["hidden_issues"]) == (len(issues), len(hidden)), project.key
        assert row["hidden_comments"] == sum(len(issue.comments) for issue in hidden)


def test_demo_levels_agree_with_the_permission_engine(demo: LoadedDemo, demo_findings: pl.DataFrame) -> None:
    engine, site = demo.engine, demo.site
    rows = demo_findings.filter(pl.col("check") == 3)
    expected_pairs = {
        (level.id, project.id)
        for project in site.projects.values()
        if project.security_scheme_id is not None
        for level in site.security_schemes[project.security_scheme_id].levels
    }
    assert set(zip(rows["level_id"], rows["project_id"], strict=True)) == expected_pairs
    for row in rows.iter_rows(named=True):
        project = site.projects[row["project_id"]]
        found = site.security_level(row["level_id"])
        assert found is not None
        level = found[1]
        member = any(
            engine.holder_matches(demo.tech, m.holder, project, None)
            for m in level.members
            if m.holder.type not in ISSUE_DATA_HOLDERS
        )
        assert row["status"] == (PASS if member else FAIL), (level.name, project.key)
        at_level = [i for i in site.issues.values() if i.project_id == project.id and i.security_level_id == level.id]
        hidden = [
            i
            for i in at_level
            if engine.has_project_permission(demo.tech, "BROWSE_PROJECTS", project, i)
            and not engine.in_security_level(demo.tech, level.id, i)
        ]
        assert (row["issues"], row["hidden_issues"]) == (len(at_level), len(hidden)), level.name


def test_demo_restrictions_agree_with_the_permission_engine(demo: LoadedDemo, demo_findings: pl.DataFrame) -> None:
    engine, site = demo.engine, demo.site
    expected: dict[tuple[str, str, int | None], list[int]] = {}
    for issue in site.issues.values():
        for item in items_of(issue):
            if item.visibility is None:
                continue
            scope = issue.project_id if item.visibility.type == "role" else None
            counts = expected.setdefault((item.visibility.type, item.visibility.identifier, scope), [0, 0, 0])
            counts[0] += 1
            if engine.can_browse_issue(demo.tech, issue) and not engine.satisfies_visibility(
                demo.tech, item.visibility, issue
            ):
                counts[1] += 1
            counts[2] = engine.satisfies_visibility(demo.tech, item.visibility, issue)
    rows = demo_findings.filter(pl.col("check") == 4)
    found = {}
    for row in rows.iter_rows(named=True):
        kind = "group" if row["group_id"] is not None else "role"
        key = (kind, row["group_id"] or row["role_name"], row["project_id"])
        found[key] = [
            row["comments"] + row["worklogs"],
            row["hidden_comments"] + row["hidden_worklogs"],
            row["status"] == PASS,
        ]
    assert found == {key: [total, hidden, bool(held)] for key, (total, hidden, held) in expected.items()}


def test_a_check_with_nothing_to_examine_passes_only_when_the_data_says_so() -> None:
    frames = base_frames()
    for name in ("security_levels", "security_level_members", "project_security_schemes", "comments", "worklogs"):
        del frames[name]
    findings = findings_of(frames, checks=[3, 4])
    # no level loaded and no load that read them: cannot tell; issues loaded, none of their items restricted: pass
    assert statuses(findings, 3) == {"issue security levels": CANNOT_TELL}
    assert statuses(findings, 4) == {"restrictions": PASS}
    read = frames | {
        "_jira_lab_access": pl.DataFrame(
            [{"load_id": 1, "resource": "security_levels", "site_id": SITE, "principal_id": ANN, "outcome": "ok"}]
        )
    }
    assert statuses(findings_of(read, checks=[3]), 3) == {"issue security levels": PASS}


@pytest.mark.parametrize("seed", [3])
def test_generated_sites_agree_with_the_permission_engine_subject_by_subject(seed: int, tmp_path: Path) -> None:
    """Random permission models (every holder type) loaded by the analyst; checks 2-4 against the engine."""
    site = generate_site("tiny", seed)
    cloud = SimCloud(site)
    tech, ada = site.accounts["technical_user"], site.users[site.accounts["analyst"]]
    assert ada.email is not None and ada.api_token is not None
    client = JiraClient(
        f"https://{site.name}.atlassian.net", auth=basic_auth(ada.email, ada.api_token), transport=cloud.transport()
    )
    load(tmp_path / "tiny.duckdb", client, site_id=site.cloud_id, progress=False, check_accounts=[tech])
    conn = connect(tmp_path / "tiny.duckdb", read_only=True)
    try:
        findings = preflight_findings(model.from_db(conn), tech, checks=[2, 3, 4])
    finally:
        conn.close()
    engine = PermissionEngine(site)
    expected: dict[tuple[str, int | None, int | str | None], str] = {}
    found: dict[tuple[str, int | None, int | str | None], str] = {}
    for project in site.projects.values():
        holds = any(
            engine.holder_matches(tech, holder, project, None)
            for holder in engine.grants_for(project, "BROWSE_PROJECTS")
            if holder.type not in ISSUE_DATA_HOLDERS
        )
        expected[("browse", project.id, None)] = PASS if holds else FAIL
        if project.security_scheme_id is not None:
            for level in site.security_schemes[project.security_scheme_id].levels:
                member = any(
                    engine.holder_matches(tech, m.holder, project, None)
                    for m in level.members
                    if m.holder.type not in ISSUE_DATA_HOLDERS
                )
                expected[("level", project.id, level.id)] = PASS if member else FAIL
    for issue in site.issues.values():
        for item in items_of(issue):
            if item.visibility is not None:
                scope = issue.project_id if item.visibility.type == "role" else None
                held = engine.satisfies_visibility(tech, item.visibility, issue)
                expected[(item.visibility.type, scope, item.visibility.identifier)] = PASS if held else FAIL
    for row in findings.iter_rows(named=True):
        if row["check"] == 2:
            found[("browse", row["project_id"], None)] = row["status"]
        elif row["check"] == 3 and row["project_id"] is not None:
            found[("level", row["project_id"], row["level_id"])] = row["status"]
        elif row["check"] == 4:
            kind = "group" if row["group_id"] is not None else "role"
            found[(kind, row["project_id"], row["group_id"] or row["role_name"])] = row["status"]
    assert found == expected
    assert FAIL in found.values()  # every generated site leaves the technical user some gap
