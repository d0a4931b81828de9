"""``jira_lab.load``: the pure planning helpers, and the library's options on a small simulated site.

The sync semantics end to end (incremental against full, deletions, faults, kill -9, two principals) are in
``test_load_e2e.py``; here: what each option does, progress and quiet mode, the blocking wrapper inside a running
event loop, a failed load resumed, and the ``jira-lab load`` command.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pytest
from click.testing import CliRunner

from jira_lab import schema, store
from jira_lab.auth import basic_auth
from jira_lab.cli import main
from jira_lab.client import JiraClient, SyncJiraClient
from jira_lab.errors import JiraApiError
from jira_lab.load import (
    LoadSummary,
    aload,
    jql_time,
    load,
    page_position,
    refresh_from_audit,
    site_id_for,
    walk_jql,
    worklog_strategy,
)
from jira_lab.progress import Progress, ProgressEvent
from jira_lab.ratelimit import RetryPolicy
from jira_lab.sim import PermissionEngine, SimCloud
from jira_lab.sim.clock import FakeClock
from jira_lab.sim.faults import Fault, Faults, ScriptedFault
from jira_lab.sim.generator import generate_site
from jira_lab.sim.mutations import SiteMutator
from jira_lab.sim.server import serve

UTC_NOON = datetime(2026, 1, 5, 12, 7, 59, tzinfo=UTC)


# -- pure helpers --------------------------------------------------------------------------------------------------


def test_jql_dates_are_written_in_the_principals_time_zone_floored_to_the_minute() -> None:
    assert jql_time(UTC_NOON, UTC) == "2026/01/05 12:07"
    assert jql_time(UTC_NOON, ZoneInfo("Europe/Paris")) == "2026/01/05 13:07"
    assert jql_time(UTC_NOON, ZoneInfo("America/Los_Angeles")) == "2026/01/05 04:07"
    with pytest.raises(ValueError, match="time zone"):
        jql_time(datetime(2026, 1, 5), UTC)


def test_a_walk_query_is_bounded_by_its_projects_and_ordered_oldest_change_first() -> None:
    assert walk_jql([10002, 10001, 10002], None, UTC) == "project in (10001, 10002) ORDER BY updated ASC, id ASC"
    assert (
        walk_jql([7], UTC_NOON, UTC) == 'project in (7) AND updated >= "2026/01/05 12:07" ORDER BY updated ASC, id ASC'
    )
    with pytest.raises(ValueError):
        walk_jql([], None, UTC)


def test_a_walks_position_ignores_issues_changed_after_the_load_started() -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    day = timedelta(days=1)
    # sorted when the search began; the last issue changed since, so its updated is not its sort key
    assert page_position([start - 3 * day, start - 2 * day, start + day], start, None) == start - 2 * day
    assert page_position([start + day, None], start, start - 5 * day) == start - 5 * day
    assert page_position([start - 9 * day], start, start - 5 * day) == start - 5 * day
    assert page_position([], start, None) is None


def test_worklogs_of_a_whole_walk_take_the_cheaper_of_per_issue_pages_and_the_change_feed() -> None:
    # 300 truncated issues of 25: 300 per-issue pages, against 50 feed pages for 50,000 worklogs, 2 list requests
    # for the 1500 worklogs not embedded, and a last check
    assert worklog_strategy([25] * 300, 50_000, whole_site=True) == "feed"
    # 30 truncated issues are cheaper one by one (30 against 52)
    assert worklog_strategy([25] * 30, 50_000, whole_site=True) == "per_issue"
    # two issues of 12,000 worklogs: 3 pages of 5000 each, against 24 + 24 + 1
    assert worklog_strategy([12_000, 12_000], 24_000, whole_site=True) == "per_issue"
    # the feed lists the whole site: a load of some projects never takes it
    assert worklog_strategy([25] * 300, 50_000, whole_site=False) == "per_issue"
    assert worklog_strategy([], 50_000, whole_site=True) == "per_issue"


def audit_record(category: str, summary: str, item: dict[str, Any], *associated: dict[str, Any]) -> dict[str, Any]:
    return {"category": category, "summary": summary, "objectItem": item, "associatedItems": list(associated)}


def test_the_audit_log_says_which_parts_of_the_permission_model_to_read_again() -> None:
    group = {"id": "devs", "name": "devs", "typeName": "GROUP"}
    project = {"id": "10001", "name": "Engineering", "typeName": "PROJECT"}
    nothing = refresh_from_audit([])
    assert not nothing.touches_access and not nothing.my_permissions and not nothing.everything

    members = refresh_from_audit([audit_record("group management", "User added to group", group)])
    assert members.member_groups == {"devs"} and not members.groups and members.my_permissions
    renamed = refresh_from_audit([audit_record("group management", "Group renamed", group)])
    assert renamed.groups and renamed.application_roles and renamed.permission_schemes and renamed.security

    roles = refresh_from_audit(
        [audit_record("projects", "Project roles changed", {"id": "10002", "typeName": "PROJECT_ROLE"}, project)]
    )
    assert roles.role_projects == {10001} and not roles.all_roles and not roles.permission_schemes

    grants = refresh_from_audit([audit_record("permissions", "Permission scheme updated", {"typeName": "SCHEME"})])
    assert grants.permission_schemes and not grants.all_project_permission_schemes
    created = refresh_from_audit([audit_record("permissions", "Permission scheme created", {"typeName": "SCHEME"})])
    assert created.all_project_permission_schemes
    levels = refresh_from_audit([audit_record("permissions", "Issue security scheme updated", {"typeName": "SCHEME"})])
    assert levels.security and not levels.permission_schemes
    global_only = refresh_from_audit([audit_record("permissions", "Global permission added", {})])
    assert global_only.my_permissions and not global_only.permission_schemes and not global_only.touches_access

    assert not refresh_from_audit([audit_record("workflows", "Workflow updated", {})]).everything
    assert refresh_from_audit([audit_record("something new", "Something changed", {})]).everything


def test_the_site_id_is_the_cloud_id_of_a_gateway_url_and_the_site_url_otherwise() -> None:
    assert site_id_for(JiraClient("https://api.atlassian.com/ex/jira/1324a887-45db")) == "1324a887-45db"
    assert site_id_for(JiraClient("https://acme.atlassian.net/")) == "https://acme.atlassian.net"


def test_the_summary_reads_as_lines_with_429s_by_reason() -> None:
    summary = LoadSummary(
        load_id=3,
        site_id="https://acme.atlassian.net",
        principal_id="abc",
        principal_name="Ann",
        status="succeeded",
        full_load=False,
        covering=False,
        resumed_from=2,
        rows_per_table={"issues": 12, "comments": 120},
        requests=40,
        retries=5,
        throttled={"jira-burst-based": 3, "unknown": 1},
        server_errors=1,
        transport_errors=0,
        truncated_bodies=0,
        quota_pauses=0,
        seconds=1.5,
        refused=("audit_records",),
        marked={"comments": 2},
    )
    text = "\n".join(summary.lines())
    assert summary.rate_limited == 4 and summary.rows == 132
    assert "Load 3 of https://acme.atlassian.net as Ann (abc): succeeded (incremental)" in text
    assert "resumed the interrupted load 2" in text
    assert "429s 4 (jira-burst-based 3, unknown 1)" in text
    assert "refused to this principal: audit_records" in text
    assert "2 comments" in text


# -- the library on a simulated site -------------------------------------------------------------------------------


class Site:
    def __init__(self, seed: int = 0, **cloud_options: Any) -> None:
        self.site = generate_site("tiny", seed)
        self.clock = FakeClock()
        self.cloud = SimCloud(self.site, clock=self.clock, **cloud_options)

    def account(self, role: str) -> str:
        return self.site.accounts[role]

    def auth(self, role: str = "analyst") -> httpx.Auth:
        user = self.site.users[self.account(role)]
        assert user.email is not None and user.api_token is not None
        return basic_auth(user.email, user.api_token)

    def client(self, role: str = "analyst", **options: Any) -> JiraClient:
        return JiraClient(
            "https://tiny.atlassian.net", auth=self.auth(role), transport=self.cloud.transport(), **options
        )


def ids_in(db: Path, table: str, where: str = "TRUE") -> set[int]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return {int(row[0]) for row in conn.execute(f"SELECT id FROM {table} WHERE {where}").fetchall()}
    finally:
        conn.close()


def test_progress_events_count_the_rows_committed_per_resource(tmp_path: Path) -> None:
    lab = Site()
    events: list[ProgressEvent] = []
    summary = load(tmp_path / "jira.duckdb", lab.client(), progress=events.append)

    advanced: dict[str, int] = {}
    for event in events:
        if event.kind == "advance":
            advanced[event.resource] = advanced.get(event.resource, 0) + event.count
            assert event.total == advanced[event.resource]
    assert advanced["issues"] == summary.rows_per_table["issues"] == len(lab.site.issues)
    assert advanced["comments"] == summary.rows_per_table["comments"]
    assert advanced["changelogs"] == summary.rows_per_table["changelog_histories"]
    assert advanced["permission model"] > 0


def test_quiet_mode_prints_nothing_and_bars_print_one_line_per_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = Site()
    load(tmp_path / "quiet.duckdb", lab.client(), progress=False)
    assert capsys.readouterr() == ("", "")

    bars = io.StringIO()
    load(tmp_path / "bars.duckdb", lab.client(), progress=Progress(True, file=bars, leave=True))
    drawn = bars.getvalue()
    assert "issues" in drawn and "comments" in drawn and "changelogs" in drawn
    assert capsys.readouterr() == ("", "")


@pytest.mark.anyio
async def test_the_blocking_load_works_inside_a_running_event_loop_like_a_notebook(tmp_path: Path) -> None:
    lab = Site()
    blocking = load(tmp_path / "blocking.duckdb", lab.client(), progress=False)
    awaited = await aload(tmp_path / "awaited.duckdb", lab.client(), progress=False)
    with SyncJiraClient("https://tiny.atlassian.net", auth=lab.auth(), transport=lab.cloud.transport()) as client:
        facade = load(tmp_path / "facade.duckdb", client, progress=False)

    for summary in (blocking, awaited, facade):
        assert summary.status == "succeeded"
        assert summary.rows_per_table["issues"] == len(lab.site.issues)


class Holding(httpx.AsyncBaseTransport):
    """The cloud's transport, holding every request whose path ends with ``held`` until one whose path ends with
    ``released_by`` has been sent (never, without one)."""

    def __init__(self, cloud: SimCloud, held: str, released_by: str | None = None) -> None:
        self.inner = cloud.transport()
        self.held, self.released_by = held, released_by
        self.released = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.released_by is not None and request.url.path.endswith(self.released_by):
            self.released.set()
        elif request.url.path.endswith(self.held):
            await self.released.wait()
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_a_covering_load_walks_issues_while_the_audit_log_is_still_being_read(tmp_path: Path) -> None:
    lab = Site()
    transport = Holding(lab.cloud, "/auditing/record", released_by="/search/jql")
    client = JiraClient("https://tiny.atlassian.net", auth=lab.auth(), transport=transport)
    # a guard only: were the walk to wait for the audit log, the two would wait for each other
    summary = await asyncio.wait_for(aload(tmp_path / "jira.duckdb", client, progress=False), timeout=30)
    assert summary.status == "succeeded" and summary.covering
    assert summary.rows_per_table["issues"] == len(lab.site.issues)
    assert summary.rows_per_table["audit_records"] > 0


@pytest.mark.anyio
async def test_a_load_stops_at_once_when_the_audit_log_fails_beside_its_walks(tmp_path: Path) -> None:
    audit_fails = ScriptedFault("GET", "/rest/api/3/auditing/record", 1, Fault.server_error(500))
    lab = Site(faults=Faults(scripted=(audit_fails,)))
    client = JiraClient(
        "https://tiny.atlassian.net",
        auth=lab.auth(),
        transport=Holding(lab.cloud, "/search/jql"),
        retry=RetryPolicy(max_retries=0),
    )
    db = tmp_path / "jira.duckdb"
    # a guard only: were the error to wait for the walks, the held searches would hold the load forever
    with pytest.raises(JiraApiError, match="500") as raised:
        await asyncio.wait_for(aload(db, client, progress=False), timeout=30)
    assert "auditing/record" in str(raised.value)
    conn = store.connect(db, read_only=True)
    failed = store.get_load(conn, 1)
    conn.close()
    assert failed.status == "failed" and failed.error is not None and "auditing/record" in failed.error


def test_a_project_filter_loads_and_sweeps_only_those_projects(tmp_path: Path) -> None:
    lab = Site()
    keys = sorted(p.key for p in lab.site.projects.values())
    chosen, other = keys[0], keys[1]
    chosen_id = lab.site.project_by_key(chosen).id  # type: ignore[union-attr]
    db = tmp_path / "jira.duckdb"

    load(db, lab.client(), progress=False, projects=[chosen.lower()])  # keys match as Jira's do, any case

    assert ids_in(db, "issues") == {i.id for i in lab.site.issues.values() if i.project_id == chosen_id}
    lab.clock.advance(3600)
    gone = next(i for i in lab.site.issues.values() if i.project_id != chosen_id)
    SiteMutator.for_cloud(lab.cloud).delete_issue(gone.id)
    load(db, lab.client(), progress=False, projects=[other])
    assert ids_in(db, "issues", "deleted_at IS NOT NULL") == set()  # never seen: nothing to mark
    with pytest.raises(ValueError, match=r"NOPE.*visible projects"):
        load(db, lab.client(), progress=False, projects=["NOPE"])


def test_since_loads_only_the_issues_updated_since_then(tmp_path: Path) -> None:
    lab = Site()
    moments = sorted(i.updated for i in lab.site.issues.values())
    since = moments[len(moments) // 2].replace(second=0, microsecond=0) + timedelta(minutes=1)
    load(tmp_path / "jira.duckdb", lab.client(), progress=False, since=since)
    assert ids_in(tmp_path / "jira.duckdb", "issues") == {i.id for i in lab.site.issues.values() if i.updated >= since}


def test_a_load_as_someone_else_than_expected_is_refused_before_writing(tmp_path: Path) -> None:
    lab = Site()
    with pytest.raises(ValueError, match="loads as"):
        load(tmp_path / "jira.duckdb", lab.client(), progress=False, principal_id="somebody-else")


def test_the_principals_own_permissions_and_another_accounts_checks_match_the_permission_engine(
    tmp_path: Path,
) -> None:
    lab = Site()
    analyst, technical = lab.account("analyst"), lab.account("technical_user")
    load(tmp_path / "jira.duckdb", lab.client(), progress=False, check_accounts=[technical])

    engine = PermissionEngine(lab.site)
    conn = duckdb.connect(str(tmp_path / "jira.duckdb"), read_only=True)
    mine = dict(
        conn.execute(
            "SELECT project_id, have_permission FROM my_permissions WHERE principal_id = ? "
            "AND permission = 'BROWSE_PROJECTS' AND project_id <> 0",
            [analyst],
        ).fetchall()
    )
    administer = conn.execute(
        "SELECT have_permission FROM my_permissions WHERE principal_id = ? AND permission = 'ADMINISTER'", [analyst]
    ).fetchall()
    checked = dict(
        conn.execute(
            "SELECT project_id, have_permission FROM permission_checks WHERE account_id = ? "
            "AND permission = 'BROWSE_PROJECTS' AND issue_id = 0",
            [technical],
        ).fetchall()
    )
    conn.close()
    projects = lab.site.projects.values()
    assert administer == [(engine.is_admin(analyst),)]
    assert mine == {p.id: engine.can_browse_project(analyst, p) for p in projects}
    assert checked == {p.id: engine.can_browse_project(technical, p) for p in projects}
    assert not all(checked.values()), "the technical user must miss a project on this site"


def lab_projects(lab: Site) -> list[int]:
    return list(lab.site.projects)


def test_a_failed_load_is_logged_and_the_next_load_resumes_it(tmp_path: Path) -> None:
    broken = Site(
        faults=Faults(scripted=(ScriptedFault("POST", "/rest/api/3/changelog/bulkfetch", 1, Fault.server_error(500)),))
    )
    db = tmp_path / "jira.duckdb"
    client = broken.client(retry=RetryPolicy(max_retries=0))

    with pytest.raises(JiraApiError, match="500"):
        load(db, client, progress=False)

    conn = store.connect(db, read_only=True)
    failed = store.get_load(conn, 1)
    conn.close()
    assert failed.status == "failed" and failed.error is not None and "500" in failed.error
    resumed = load(db, broken.client(), progress=False)
    clean = load(tmp_path / "clean.duckdb", Site().client(), progress=False)
    assert resumed.resumed_from == 1 and resumed.full_load is False
    for table in ("issues", "comments", "worklogs", "changelog_histories"):
        assert ids_in(db, table) == ids_in(tmp_path / "clean.duckdb", table), table
    # the issue walks were committed before the changelogs were asked for: the resumed load does not walk again
    assert resumed.requests < clean.requests - len(lab_projects(broken))


def test_the_load_command_prints_the_summary_and_refuses_missing_credentials(tmp_path: Path) -> None:
    lab = Site()
    user = lab.site.users[lab.account("analyst")]
    assert user.email is not None and user.api_token is not None
    runner = CliRunner()
    refused = runner.invoke(main, ["load", "--db", str(tmp_path / "jira.duckdb")])
    assert refused.exit_code == 2 and "--email" in refused.output

    with serve(lab.cloud) as urls:
        env = {"JIRA_LAB_EMAIL": user.email, "JIRA_LAB_API_TOKEN": user.api_token}
        arguments = ["load", "--db", str(tmp_path / "jira.duckdb"), "--site", urls.site_url(), "--quiet"]
        done = runner.invoke(main, arguments, env=env)
    assert done.exit_code == 0, done.output
    assert "succeeded" in done.output and user.api_token not in done.output
    conn = store.connect(tmp_path / "jira.duckdb", read_only=True)
    logged = store.get_load(conn, 1)
    conn.close()
    assert logged.status == "succeeded" and logged.rows_per_table["issues"] == len(lab.site.issues)
    assert f"requests {logged.requests}" in done.output


def test_every_declared_entity_table_is_sighted_by_a_full_load(tmp_path: Path) -> None:
    lab = Site()
    summary = load(tmp_path / "jira.duckdb", lab.client(), progress=False)
    conn = duckdb.connect(str(tmp_path / "jira.duckdb"), read_only=True)
    kinds = {row[0] for row in conn.execute("SELECT DISTINCT entity_kind FROM _jira_lab_sightings").fetchall()}
    cursors = {row[0] for row in conn.execute("SELECT resource FROM _jira_lab_cursors").fetchall()}
    conn.close()
    assert kinds == set(schema.ENTITY_TABLES)
    assert {f"issues:{pid}" for pid in lab.site.projects} <= cursors
    assert {"worklogs:updated", "worklogs:deleted", "audit_records", "access"} <= cursors
    assert summary.covering and not summary.full_load
