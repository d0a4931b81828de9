"""End to end: ``jira_lab.load`` against the simulated site, checked against the site's own ground truth.

Ground truth comes from the site's data and its :class:`~jira_lab.sim.PermissionEngine`, never from the loader: what
each principal may see, table by table. The sync semantics are checked by comparing files: an incremental load after
changes, a load under rate limits and faults, a load through an access-token expiry and a load killed with
``kill -9`` and resumed must each hold exactly what a clean full load into a new file holds (live rows, ignoring
bookkeeping columns, and the principal's latest view in ``_jira_lab_sightings``). The kill is deterministic: the
served site holds one search request until the test has killed the loading process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pytest
from site_clients import CountingTransport

from jira_lab import schema, store
from jira_lab.auth import MemoryTokenStore, OAuth2Auth, TokenKey, basic_auth
from jira_lab.auth.oauth import accessible_resources, api_base, authorization_request, exchange_code, parse_callback
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import Token
from jira_lab.client import JiraClient
from jira_lab.errors import DatabaseLockedError
from jira_lab.load import DEFAULT_OVERLAP, LOAD_GC_THRESHOLD, PAGES_IN_FLIGHT, LoadSummary, load, no_longer_visible
from jira_lab.ratelimit import RetryPolicy
from jira_lab.sim import PermissionEngine, SimCloud, Site
from jira_lab.sim.api.fields import SYSTEM_FIELDS
from jira_lab.sim.clock import FakeClock
from jira_lab.sim.faults import Fault, Faults, RandomFault
from jira_lab.sim.generator import generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Comment, Worklog
from jira_lab.sim.mutations import SiteMutator
from jira_lab.sim.server import serve

#: tables whose rows belong to a parent row; a row is live while its parent is
CHILDREN = {
    "issue_totals": ("issues", "issue_id", "id"),
    "issue_field_values": ("issues", "issue_id", "id"),
    "changelog_items": ("changelog_histories", "history_id", "id"),
    "permission_grants": ("permission_schemes", "scheme_id", "id"),
    "security_level_members": ("security_levels", "level_id", "id"),
    "role_actors": ("projects", "project_id", "id"),
    "group_members": ("groups", "group_id", "group_id"),
    "application_role_groups": ("application_roles", "application_key", "key"),
    "project_permission_schemes": ("projects", "project_id", "id"),
    "project_security_schemes": ("projects", "project_id", "id"),
}
BOOKKEEPING = {"load_id", "deleted_at", "deleted_reason"}
KINDS = {"issues": "issue", "comments": "comment", "worklogs": "worklog", "changelog_histories": "changelog_history"}


# -- the lab -------------------------------------------------------------------------------------------------------


@dataclass
class Lab:
    """A generated site on a fake clock, and how to load it as one of its accounts."""

    site: Site
    clock: FakeClock
    cloud: SimCloud

    def account(self, role: str) -> str:
        return self.site.accounts[role]

    def auth(self, role: str) -> httpx.Auth:
        user = self.site.users[self.account(role)]
        assert user.email is not None and user.api_token is not None
        return basic_auth(user.email, user.api_token)

    def client(self, role: str, transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> JiraClient:
        return JiraClient(
            f"https://{self.site.name}.atlassian.net",
            auth=self.auth(role),
            transport=transport or self.cloud.transport(),
            **options,
        )

    def load(self, db: Path, role: str = "analyst", **options: Any) -> LoadSummary:
        options.setdefault("progress", False)
        return load(db, self.client(role), **options)

    @property
    def change(self) -> SiteMutator:
        return SiteMutator.for_cloud(self.cloud)


def make_lab(seed: int = 0, **cloud_options: Any) -> Lab:
    site = generate_site("tiny", seed)
    clock = FakeClock()
    return Lab(site, clock, SimCloud(site, clock=clock, **cloud_options))


@pytest.fixture
def lab() -> Lab:
    return make_lab()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Full loads of the tiny site (seed 0, on the fake clock's start) as the analyst and as the technical user.

    Tests copy them instead of loading again: the same site generated again is the same site, at the same time.
    """
    folder = tmp_path_factory.mktemp("pristine")
    files = {}
    for role in ("analyst", "technical_user"):
        files[role] = folder / f"{role}.duckdb"
        make_lab().load(files[role], role)
    return files


def copy_of(source: Path, folder: Path) -> Path:
    target = folder / "jira.duckdb"
    shutil.copyfile(source, target)
    return target


# -- ground truth --------------------------------------------------------------------------------------------------


def visible_ids(site: Site, account: str) -> dict[str, set[int]]:
    """What the permission engine says the account sees: issue, comment, worklog and history ids."""
    engine = PermissionEngine(site).snapshot()
    issues = [issue for issue in site.issues.values() if engine.can_browse_issue(account, issue)]
    return {
        "issues": {issue.id for issue in issues},
        "comments": {c.id for i in issues for c in i.comments if engine.can_see_item(account, i, c.visibility)},
        "worklogs": {w.id for i in issues for w in i.worklogs if engine.can_see_item(account, i, w.visibility)},
        "changelog_histories": {h.id for issue in issues for h in issue.changelog},
    }


def expected_rows(site: Site, account: str) -> dict[str, int]:
    """Rows per table a full load as ``account`` (a Jira administrator on generated sites) must write."""
    engine = PermissionEngine(site).snapshot()
    assert engine.is_admin(account), "the counts below are for an account that may read the permission model"
    ids = visible_ids(site, account)
    issues = [site.issues[i] for i in ids["issues"]]
    viewable = [p for p in site.projects.values() if engine.can_view_project(account, p)]
    pickers = {fid for fid, f in site.custom_fields.items() if f.kind in ("user", "group")}
    browses_any = any(engine.can_browse_project(account, p) for p in site.projects.values())
    items: list[Comment | Worklog] = [
        *(c for i in issues for c in i.comments if c.id in ids["comments"]),
        *(w for i in issues for w in i.worklogs if w.id in ids["worklogs"]),
    ]
    authors = {a for item in items for a in (item.author_account_id, item.update_author_account_id) if a}
    return {
        **{table: len(found) for table, found in ids.items()},
        "user_details": len(authors | {h.author_account_id for issue in issues for h in issue.changelog}),
        "issue_totals": len(issues),
        "changelog_items": sum(len(h.items) for issue in issues for h in issue.changelog),
        "issue_field_values": sum(
            len(value) if isinstance(value, list) else 1
            for issue in issues
            for fid, value in issue.custom_fields.items()
            if fid in pickers and value not in (None, [])
        ),
        "users": len(site.users),
        "groups": len(site.groups),
        "group_members": sum(len(members) for gid, members in site.group_members.items() if gid in site.groups),
        "application_roles": len(site.application_roles),
        "application_role_groups": sum(
            len({g for g in [*role.group_ids, *role.default_group_ids] if g in site.groups})
            for role in site.application_roles.values()
        ),
        "projects": len(viewable),
        "project_roles": len(site.project_roles),
        "role_actors": sum(
            len(actors.account_ids) + len(actors.group_ids) for p in viewable for actors in p.role_actors.values()
        ),
        "permission_schemes": len(site.permission_schemes),
        "permission_grants": sum(len(s.grants) for s in site.permission_schemes.values()),
        "project_permission_schemes": len(viewable),
        "security_schemes": len(site.security_schemes),
        "security_levels": sum(len(s.levels) for s in site.security_schemes.values()),
        "security_level_members": sum(len(lv.members) for s in site.security_schemes.values() for lv in s.levels),
        "project_security_schemes": sum(1 for p in viewable if p.security_scheme_id is not None),
        "fields": len(SYSTEM_FIELDS) + (len(site.custom_fields) if browses_any else 0),
        "audit_records": len(site.audit_records),
        "audit_changed_values": sum(len(r.changed_values) for r in site.audit_records),
        "audit_associated_items": sum(len(r.associated_items) for r in site.audit_records),
    }


# -- reading a file back -------------------------------------------------------------------------------------------


def live_rows(db: Path, site_id: str | None = None) -> dict[str, pl.DataFrame]:
    """Every declared table's live rows (children of live parents), bookkeeping columns dropped, sorted."""
    conn = store.connect(db, read_only=True)
    try:
        found: dict[str, pl.DataFrame] = {}
        for table in schema.TABLES.values():
            if table.is_internal:
                continue
            columns = [c for c in table.column_names if c not in BOOKKEEPING and not (site_id and c == "site_id")]
            sql = f"SELECT {', '.join('t.' + schema.quote(c) for c in columns)} FROM {schema.quote(table.name)} t"
            if table.tracks_deletion:
                sql += " WHERE t.deleted_at IS NULL"
            elif table.name in CHILDREN and schema.table(CHILDREN[table.name][0]).tracks_deletion:
                parent, column, key = CHILDREN[table.name]
                sql += (
                    f" JOIN {schema.quote(parent)} p ON p.site_id = t.site_id AND p.{schema.quote(key)} = "
                    f"t.{schema.quote(column)} WHERE p.deleted_at IS NULL"
                )
            found[table.name] = store.read_frame(conn, sql).sort(columns, nulls_last=True)
        return found
    finally:
        conn.close()


def latest_view(db: Path, principal: str) -> set[tuple[str, str]]:
    """The principal's view at its latest load: (entity kind, id) of every sighting at that load."""
    conn = store.connect(db, read_only=True)
    try:
        latest = conn.execute(
            "SELECT max(load_id) FROM _jira_lab_loads WHERE principal_id = ? AND status = 'succeeded'", [principal]
        ).fetchall()[0][0]
        rows = conn.execute(
            "SELECT entity_kind, entity_id FROM _jira_lab_sightings WHERE principal_id = ? AND last_seen_load = ?",
            [principal, latest],
        ).fetchall()
        return {(str(kind), str(entity)) for kind, entity in rows}
    finally:
        conn.close()


def view_of(db: Path, principal: str, kind: str) -> set[int]:
    return {int(entity) for k, entity in latest_view(db, principal) if k == kind}


def assert_same_contents(first: Path, second: Path, principal: str, *, ignore_site_id: bool = False) -> None:
    one, two = live_rows(first, "x" if ignore_site_id else None), live_rows(second, "x" if ignore_site_id else None)
    different = [name for name in one if not one[name].equals(two[name])]
    assert not different, {name: (one[name].height, two[name].height) for name in different}
    assert latest_view(first, principal) == latest_view(second, principal)


def marks(db: Path, table: str) -> dict[int, str]:
    conn = store.connect(db, read_only=True)
    try:
        rows = conn.execute(f"SELECT id, deleted_reason FROM {table} WHERE deleted_at IS NOT NULL").fetchall()
        return {int(i): str(reason) for i, reason in rows}
    finally:
        conn.close()


# -- a full load ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["analyst", "technical_user"])
def test_a_full_load_holds_exactly_what_the_principal_may_see_table_by_table(
    pristine: dict[str, Path], role: str
) -> None:
    lab = make_lab()
    account = lab.account(role)
    db = pristine[role]

    counts = {name: frame.height for name, frame in live_rows(db).items()}
    expected = expected_rows(lab.site, account)
    assert {name: counts[name] for name in expected} == expected
    conn = duckdb.connect(str(db), read_only=True)
    for table, ids in visible_ids(lab.site, account).items():
        stored = {int(r[0]) for r in conn.execute(f"SELECT id FROM {table}").fetchall()}
        assert stored == ids, table
    conn.close()
    for table, ids in visible_ids(lab.site, account).items():
        assert view_of(db, account, KINDS[table]) == ids, table
    # an author is stored once, whole, in user_details; each comment's raw keeps only the account id
    conn = duckdb.connect(str(db), read_only=True)
    details = dict(conn.execute("SELECT account_id, raw FROM user_details").fetchall())
    for author, raw in conn.execute("SELECT author_account_id, raw FROM comments").fetchall():
        assert json.loads(raw)["author"] == {"accountId": author}
        whole = json.loads(details[author])
        assert whole["displayName"] == lab.site.users[author].display_name and len(whole["avatarUrls"]) == 4
    conn.close()
    logged = store.get_load(store.connect(db, read_only=True), 1)
    assert logged.status == "succeeded" and logged.options["figures"]["covering"]


def test_the_loaded_visibility_of_comments_is_the_sites_group_id_and_role_name(
    lab: Lab, pristine: dict[str, Path]
) -> None:
    conn = duckdb.connect(str(pristine["analyst"]), read_only=True)
    stored = {
        int(i): (kind, identifier)
        for i, kind, identifier in conn.execute(
            "SELECT id, visibility_type, visibility_identifier FROM comments"
        ).fetchall()
    }
    conn.close()
    truth = {
        c.id: (c.visibility.type, c.visibility.identifier) if c.visibility else (None, None)
        for issue in lab.site.issues.values()
        for c in issue.comments
    }
    assert stored == truth
    assert any(kind == "group" for kind, _ in truth.values()) and any(kind == "role" for kind, _ in truth.values())


# -- incremental ---------------------------------------------------------------------------------------------------


def test_reloading_with_nothing_changed_makes_only_the_few_requests_needed(
    lab: Lab, pristine: dict[str, Path], tmp_path: Path
) -> None:
    started = lab.clock.time()  # the site's clock when the first load started: its issue cursors
    db = copy_of(pristine["analyst"], tmp_path)
    lab.clock.advance(3600)
    transport = CountingTransport(lab.cloud)

    summary = load(db, lab.client("analyst", transport), progress=False)

    assert sorted(transport.seen) == sorted(
        [
            "GET /rest/api/3/myself",
            "GET /rest/api/3/serverInfo",
            "GET /rest/api/3/project/search",  # the projects, with their leads
            "GET /rest/api/3/project/search",  # the ones whose issues may be searched (action=browse)
            "GET /rest/api/3/field",
            "GET /rest/api/3/users/search",
            "GET /rest/api/3/users/search",  # an empty page ends the walk: privacy can shorten any page
            "GET /rest/api/3/auditing/record",
            "POST /rest/api/3/search/jql",  # issues updated since the cursor
            "POST /rest/api/3/search/jql",  # the id sweep
            "GET /rest/api/3/worklog/updated",
            "GET /rest/api/3/worklog/deleted",
        ]
    )
    assert summary.requests == 12 and not summary.covering
    # the overlap reads again the issues updated in the few minutes before the first load, and nothing else
    window = (started - DEFAULT_OVERLAP).replace(second=0, microsecond=0)
    overlapping = [i for i in lab.site.issues.values() if i.updated >= window]
    assert summary.rows_per_table.get("issues", 0) == len(overlapping)
    for table in ("changelog_histories", "role_actors", "group_members", "permission_grants"):
        assert summary.rows_per_table.get(table, 0) == 0, table
    assert latest_view(db, lab.account("analyst")) >= {("issue", str(i)) for i in lab.site.issues}


def change_content(lab: Lab) -> dict[str, set[int]]:
    """New, edited and deleted issues, comments and worklogs; returns the ids the checks need."""
    change = lab.change
    issues = sorted(lab.site.issues.values(), key=lambda i: i.id)
    project = lab.site.projects[issues[0].project_id]
    created = change.create_issue(project.key, "A new issue", security_level=None)
    for n in range(25):  # more than a search page embeds
        change.add_comment(created, f"comment {n}")
    change.add_worklog(created, 3600, text="work")
    change.edit_issue(issues[1].id, summary="an edited summary", status="Done")
    deleted_issue = next(i for i in issues[2:] if i.security_level_id is None and i.comments)
    deleted_issue_comments = {c.id for c in deleted_issue.comments}
    change.delete_issue(deleted_issue.id)
    live = [i for i in issues if i.id in lab.site.issues]
    plain = next(c for i in live for c in i.comments if c.visibility is None)
    change.delete_comment(plain.id)
    edited = next(c for i in live for c in i.comments if c.visibility is None)
    change.edit_comment(edited.id, "an edited body")
    worklog_issue = next(i for i in live if len(i.worklogs) > 1)
    deleted_worklog = worklog_issue.worklogs[0].id
    change.delete_worklog(deleted_worklog)
    change.edit_worklog(worklog_issue.worklogs[0].id, seconds=999)
    return {
        "created": {created},
        "deleted_issue": {deleted_issue.id},
        "deleted_issue_comments": deleted_issue_comments,
        "deleted_comment": {plain.id},
        "deleted_worklog": {deleted_worklog},
    }


def restricted_group_of(lab: Lab, account: str, *, member: bool) -> str:
    """A group some comment is restricted to, which the account is (or is not) a member of."""
    groups = sorted(
        {
            c.visibility.identifier
            for issue in lab.site.issues.values()
            for c in issue.comments
            if c.visibility is not None and c.visibility.type == "group"
        }
    )
    return next(g for g in groups if (account in lab.site.group_members.get(g, set())) == member)


def test_an_incremental_load_after_changes_equals_a_fresh_full_load_and_marks_why(
    lab: Lab, pristine: dict[str, Path], tmp_path: Path
) -> None:
    analyst = lab.account("analyst")
    copy_of(pristine["analyst"], tmp_path)
    lab.clock.advance(3600)
    ids = change_content(lab)
    lost_group = restricted_group_of(lab, analyst, member=True)
    lab.change.remove_group_member(lost_group, analyst)
    hidden_now = {
        c.id
        for issue in lab.site.issues.values()
        for c in issue.comments
        if c.visibility is not None and c.visibility.identifier == lost_group
    }
    lab.clock.advance(120)

    incremental = lab.load(tmp_path / "jira.duckdb")
    fresh = lab.load(tmp_path / "fresh.duckdb")

    assert not incremental.covering and incremental.requests < fresh.requests / 2
    assert_same_contents(tmp_path / "jira.duckdb", tmp_path / "fresh.duckdb", analyst)
    comments_marked = marks(tmp_path / "jira.duckdb", "comments")
    deleted = ids["deleted_comment"] | ids["deleted_issue_comments"]
    assert hidden_now and set(comments_marked) == hidden_now | deleted
    assert {comments_marked[c] for c in deleted} == {schema.DELETED}
    assert {comments_marked[c] for c in hidden_now} == {no_longer_visible(analyst)}
    (deleted_issue,) = ids["deleted_issue"]
    assert marks(tmp_path / "jira.duckdb", "issues") == {deleted_issue: schema.DELETED}
    (deleted_worklog,) = ids["deleted_worklog"]
    assert marks(tmp_path / "jira.duckdb", "worklogs")[deleted_worklog] == schema.DELETED
    conn = duckdb.connect(str(tmp_path / "jira.duckdb"), read_only=True)
    kept = conn.execute("SELECT count(*) FROM issues WHERE id = ?", [deleted_issue]).fetchall()[0][0]
    conn.close()
    assert kept == 1  # marked, never removed


def test_access_gained_through_a_group_is_loaded_by_the_next_incremental_load(
    lab: Lab, pristine: dict[str, Path], tmp_path: Path
) -> None:
    technical = lab.account("technical_user")
    copy_of(pristine["technical_user"], tmp_path)
    lab.clock.advance(3600)
    gained = restricted_group_of(lab, technical, member=False)
    lab.change.add_group_member(gained, technical)
    lab.clock.advance(120)

    incremental = lab.load(tmp_path / "jira.duckdb", "technical_user")
    lab.load(tmp_path / "fresh.duckdb", "technical_user")

    assert incremental.covering
    assert_same_contents(tmp_path / "jira.duckdb", tmp_path / "fresh.duckdb", technical)
    assert view_of(tmp_path / "jira.duckdb", technical, "comment") == visible_ids(lab.site, technical)["comments"]


def test_issues_hidden_by_a_security_level_are_found_by_the_sweep_and_marked_no_longer_visible(
    tmp_path: Path,
) -> None:
    lab = make_lab(1)  # a site where the technical user sees issues of a project with issue security
    technical = lab.account("technical_user")
    engine = PermissionEngine(lab.site)
    level_id, issue = next(
        (level.id, issue)
        for scheme in lab.site.security_schemes.values()
        for level in scheme.levels
        for issue in lab.site.issues.values()
        if issue.security_level_id is None
        and lab.site.projects[issue.project_id].security_scheme_id == scheme.id
        and engine.can_browse_issue(technical, issue)
        and not engine.in_security_level(technical, level.id, issue)
    )
    lab.load(tmp_path / "jira.duckdb", "analyst")
    lab.load(tmp_path / "jira.duckdb", "technical_user")
    lab.clock.advance(3600)
    lab.change.set_issue_security_level(issue.id, level_id)

    lab.load(tmp_path / "jira.duckdb", "technical_user")

    # Jira answers a hidden issue as it answers a deleted one; the analyst's view tells them apart
    assert marks(tmp_path / "jira.duckdb", "issues") == {issue.id: no_longer_visible(technical)}
    assert issue.id not in view_of(tmp_path / "jira.duckdb", technical, "issue")
    assert issue.id in view_of(tmp_path / "jira.duckdb", lab.account("analyst"), "issue")


# -- several principals --------------------------------------------------------------------------------------------


def test_a_load_runs_the_garbage_collector_less_often_and_restores_its_thresholds(lab: Lab, tmp_path: Path) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []

    lab.load(tmp_path / "gc.duckdb", progress=lambda event: during.append(gc.get_threshold()))

    assert during and {thresholds[0] for thresholds in during} == {LOAD_GC_THRESHOLD}
    assert gc.get_threshold() == before != during[0]


def test_two_principals_share_one_file_and_their_views_differ_exactly_where_the_permissions_say(
    lab: Lab, pristine: dict[str, Path], tmp_path: Path
) -> None:
    db = copy_of(pristine["analyst"], tmp_path)
    analyst, technical = lab.account("analyst"), lab.account("technical_user")
    lab.load(db, "technical_user")

    seen_by_analyst, seen_by_technical = visible_ids(lab.site, analyst), visible_ids(lab.site, technical)
    for table, kind in KINDS.items():
        assert view_of(db, analyst, kind) == seen_by_analyst[table], table
        assert view_of(db, technical, kind) == seen_by_technical[table], table
        hidden = view_of(db, analyst, kind) - view_of(db, technical, kind)
        assert hidden == seen_by_analyst[table] - seen_by_technical[table], table
    assert seen_by_analyst["comments"] - seen_by_technical["comments"], "the site must hide something"
    counts = {name: frame.height for name, frame in live_rows(db).items()}
    assert counts["issues"] == len(lab.site.issues)  # entity rows stored once
    assert counts["issue_totals"] == len(seen_by_analyst["issues"]) + len(seen_by_technical["issues"])


# -- rate limits, faults, an expiring token ------------------------------------------------------------------------


def fake_sleep(clock: FakeClock) -> Any:
    async def sleep(seconds: float) -> None:
        clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    return sleep


def test_a_load_through_429s_5xx_resets_and_cut_bodies_ends_with_the_same_rows(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    limits = RateLimits(
        steady_rates={"GET": 4.0, "POST": 4.0}, endpoint_rates={}, hourly_points=None, omit_retry_after_every=3
    )
    faults = Faults(
        random=(
            RandomFault(0.05, Fault.server_error(503)),
            RandomFault(0.04, Fault.connection_reset()),
            RandomFault(0.03, Fault.truncated_body()),
            RandomFault(0.03, Fault.truncated_body(declared_length=False)),
        ),
        seed=7,
    )
    rough = make_lab(limits=limits, faults=faults)
    client = JiraClient(
        f"https://{rough.site.name}.atlassian.net",
        auth=rough.auth("analyst"),
        transport=rough.cloud.transport(),
        clock=rough.clock,
        sleep=fake_sleep(rough.clock),
        retry=RetryPolicy(max_retries=10),
    )

    summary = load(tmp_path / "rough.duckdb", client, progress=False)

    assert summary.rate_limited > 0 and summary.server_errors > 0
    assert summary.transport_errors > 0 and summary.truncated_bodies > 0
    assert summary.retries >= summary.rate_limited
    assert_same_contents(tmp_path / "rough.duckdb", pristine["analyst"], rough.account("analyst"))
    logged = store.get_load(store.connect(tmp_path / "rough.duckdb", read_only=True), summary.load_id)
    assert logged.rate_limited == summary.rate_limited and logged.options["figures"]["throttled"]


class AdvancingTransport(httpx.AsyncBaseTransport):
    """The cloud's transport, moving the fake clock on by ``step`` seconds per request."""

    def __init__(self, cloud: SimCloud, clock: FakeClock, step: float) -> None:
        self.inner = cloud.transport()
        self.clock = clock
        self.step = step

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.advance(self.step)
        return await self.inner.handle_async_request(request)


def test_an_access_token_expiring_mid_load_is_refreshed_and_the_load_completes(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    lab = make_lab()
    analyst = lab.site.users[lab.account("analyst")]
    app = lab.cloud.auth.register_app("loader", callback_url="http://localhost:13131/", scopes=REQUIRED_SCOPES)
    lab.cloud.auth.auto_consent = analyst.email
    request = authorization_request(app.client_id, scopes=REQUIRED_SCOPES)
    with httpx.Client(transport=lab.cloud.transport()) as http:
        code = parse_callback(http.get(request.url).headers["location"], request.state)
        grant = exchange_code(http, app.client_id, app.client_secret, code, request.redirect_uri, clock=lab.clock)
        sites = tuple(accessible_resources(http, grant.access_token))
    token = Token.from_grant(grant, app.client_id, analyst.account_id, sites)
    tokens = MemoryTokenStore()
    key = TokenKey(app.client_id, analyst.account_id)
    tokens.save(key, token)
    auth = OAuth2Auth(tokens, key, app.client_secret, clock=lab.clock)
    # ten minutes pass with every request: the one-hour access token expires several times during the load
    client = JiraClient(api_base(sites[0]), auth=auth, transport=AdvancingTransport(lab.cloud, lab.clock, 600))

    summary = load(tmp_path / "oauth.duckdb", client, progress=False)

    assert lab.cloud.auth.request_count("refresh_token") >= 3
    stored = tokens.load(key)
    assert stored is not None and stored.refresh_token != token.refresh_token  # every rotation was kept
    assert summary.status == "succeeded"
    # the gateway renders links on the API host and names the site by its cloud id: compare all the rest
    one, two = live_rows(tmp_path / "oauth.duckdb", "x"), live_rows(pristine["analyst"], "x")
    for name in one:
        keys = [c for c in one[name].columns if c != "raw"]
        assert one[name].select(keys).equals(two[name].select(keys)), name


# -- killed and resumed --------------------------------------------------------------------------------------------


class HeldCloud(SimCloud):
    """A cloud that holds the ``hold_at``-th search request until released: a deterministic place to kill a load."""

    def __init__(self, *sites: Site, hold_at: int, **options: Any) -> None:
        super().__init__(*sites, **options)
        self.hold_at = hold_at
        self.searches = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/rest/api/3/search/jql"):
            self.searches += 1
            if self.searches == self.hold_at:
                self.holding.set()
                self.release.wait(timeout=60)
        return super().handle(request)


@pytest.fixture
def held() -> Iterator[tuple[HeldCloud, str]]:
    # page n + PAGES_IN_FLIGHT of a walk is asked for once page n is committed: at this request two pages are
    cloud = HeldCloud(generate_site("tiny", 0), hold_at=PAGES_IN_FLIGHT + 2)
    with serve(cloud) as urls:
        try:
            yield cloud, urls.site_url()
        finally:
            cloud.release.set()


def test_a_load_killed_mid_way_and_resumed_equals_a_clean_load(held: tuple[HeldCloud, str], tmp_path: Path) -> None:
    cloud, site_url = held
    site = cloud.default_site
    analyst = site.users[site.accounts["analyst"]]
    assert analyst.email is not None and analyst.api_token is not None
    env = {**os.environ, "JIRA_LAB_EMAIL": analyst.email, "JIRA_LAB_API_TOKEN": analyst.api_token}
    project = max(site.projects.values(), key=lambda p: sum(i.project_id == p.id for i in site.issues.values()))
    db = tmp_path / "jira.duckdb"

    command = [sys.executable, "-m", "jira_lab.cli", "load", "--db", str(db), "--site", site_url, "--quiet"]
    command += ["--project", project.key, "--page-size", "2"]
    loading = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cloud.holding.wait(timeout=60), loading.communicate(timeout=5)
        # this test process is a second process opening the file: it is told who holds it and what to do
        with pytest.raises(DatabaseLockedError, match=rf"process {loading.pid}.*wait for that load to finish"):
            store.connect(db)
    finally:
        loading.send_signal(signal.SIGKILL)
        loading.wait(timeout=30)
        cloud.release.set()
    assert loading.returncode == -signal.SIGKILL

    conn = store.connect(db, read_only=True)
    committed = conn.execute("SELECT count(*) FROM issues").fetchall()[0][0]
    status = conn.execute("SELECT status FROM _jira_lab_loads").fetchall()
    conn.close()
    in_project = sum(i.project_id == project.id for i in site.issues.values())
    assert 4 <= committed < in_project and status == [("running",)]

    auth = basic_auth(analyst.email, analyst.api_token)
    options: dict[str, Any] = {"progress": False, "projects": [project.key], "search_page_size": 2}
    resumed = load(db, JiraClient.for_site(site_url, auth=auth), **options)
    load(tmp_path / "clean.duckdb", JiraClient.for_site(site_url, auth=auth), **options)

    assert resumed.resumed_from == 1 and resumed.status == "succeeded"
    assert_same_contents(db, tmp_path / "clean.duckdb", analyst.account_id)
    conn = store.connect(db, read_only=True)
    statuses = conn.execute("SELECT load_id, status FROM _jira_lab_loads ORDER BY load_id").fetchall()
    conn.close()
    assert statuses == [(1, "interrupted"), (2, "succeeded")]


def figures_of_last_load(db: Path) -> dict[str, Any]:
    conn = store.connect(db, read_only=True)
    try:
        last = conn.execute("SELECT max(load_id) FROM _jira_lab_loads").fetchall()[0][0]
        return dict(store.get_load(conn, last).options["figures"])
    finally:
        conn.close()


@pytest.mark.parametrize("role", ["analyst", "technical_user"])
def test_search_pages_framed_in_a_process_of_their_own_give_the_same_file(
    pristine: dict[str, Path], lab: Lab, tmp_path: Path, role: str
) -> None:
    db = tmp_path / "framed.duckdb"
    # small pages: several of them, so that some are framed while others are read
    lab.load(db, role, framing_process=True, search_page_size=7)
    assert figures_of_last_load(db)["search_pages_framed_in_process"] > 1
    assert_same_contents(pristine[role], db, lab.account(role))
    pristine_figures = figures_of_last_load(pristine[role])
    assert pristine_figures["search_pages_framed_in_process"] == 0  # a tiny site never starts the process
