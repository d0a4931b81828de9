"""One load run: plan, fetch, frame, upsert, cursor — for one site and one principal, into one DuckDB file.

::

    summary = load("jira.duckdb", client)                  # blocking; works in a notebook cell too
    summary = await aload("jira.duckdb", client)           # the async core, for ``await`` in a notebook
    print("\\n".join(summary.lines()))

What a load fetches, and how cheaply (``shared/reference/jira-endpoints.md``):

* **Issues** through ``search/jql`` pages with the key fields and the embedded comments and worklogs, walked per
  project, oldest ``updated`` first; only issues whose embedded comments or worklogs were truncated get the
  per-issue endpoints. **Changelogs** through ``changelog/bulkfetch`` (1000 issues a request), only for issues that
  are new or changed, sized so that a request's histories fit one page. **Worklogs** of a whole walk either per
  truncated issue or through ``worklog/updated`` + ``worklog/list`` of only the ids not embedded in the search
  pages (whichever needs fewer requests, decided from the totals Jira reported; the feed is read beside the walks,
  never further ahead than the per-issue reads it may replace, so that its chain of pages does not follow them);
  incremental loads read
  ``worklog/updated`` since their cursor and ``worklog/deleted`` for tombstones. **Audit records** from their ``from``
  cursor. The **permission model** (users, groups and members, application roles, projects, roles and actors,
  permission schemes and grants, issue security, fields, the principal's own permissions) is read whole on a first
  or full load, and afterwards only where the audit log says something changed (users, projects, fields are always
  re-read: a page or two each). Independent resources run concurrently within the client's cap, by priority
  (:func:`~jira_lab.ratelimit.request_priority`): the chains of pages first (search walks, the worklog feed,
  changelog chunks), then the per-issue reads that complete the pages waiting to be committed, then the permission
  model.

Sync semantics (what each load guarantees):

* **Incremental.** Cursors per site, principal and resource live in ``_jira_lab_cursors`` and are written in the
  same transaction as the rows they cover. Issue cursors are times: a walk asks for ``updated >=`` its cursor minus
  a small overlap, and rows are deduplicated on their primary key. A load that finds nothing changed makes a dozen
  requests (who am I, what time is it, projects, fields, users, audit log, one search, one id sweep, the two
  worklog feeds).
* **Deletions and lost access.** Deleted worklogs come from ``worklog/deleted``. Every incremental load sweeps the
  ids of the issues in scope (``search/jql`` with ``fields=id``, 5000 a page): issues that disappeared are marked,
  issues that appeared (a security level or Browse Projects gained) are fetched whole. A changed issue is re-read
  with its complete comment and worklog sets, so items gone from it are marked. When the principal's own groups or
  project roles changed, restricted comments and worklogs are re-checked: by id (``comment/list``,
  ``worklog/list``) when access was only lost, by walking every issue again when access was gained. Marks set
  ``deleted_at`` and ``deleted_reason``: ``deleted`` when Jira reported it or nothing but a deletion explains it,
  ``no longer visible to <account id>`` when the data shows lost access (another principal's latest load still saw
  it; the item is restricted to a group or role the principal no longer holds, or the issue has a security level,
  or its project is no longer browsable). Jira answers a deleted and a hidden issue alike, so an issue without a
  security level that vanishes from a still browsable project, seen by no other principal, is marked ``deleted``.
  Marked rows are kept; a later load that sees the entity again clears the mark.
* **Several principals, one database.** Entity rows are stored once. What each principal could see is kept in
  ``_jira_lab_sightings``: after every successful load, the entities with ``last_seen_load`` equal to that load are
  exactly the principal's view at that load (entities not re-read because nothing changed are carried forward).
* **Resumable.** Every page of issues is committed with its comments, worklogs, sightings and the walk's cursor in
  one transaction (pages queued while the writer was busy share one); changelogs and deferred worklogs are queued
  in cursors in the same transactions. A walk asks for a page only once the page :data:`PAGES_IN_FLIGHT` before it
  is committed. A load killed at any point (even ``kill -9``) leaves the file at its last commit, and the next load
  of the same site and principal resumes that run: walks restart from their last committed cursor, queues are
  drained, and what the interrupted part saw counts as seen. It ends with exactly the rows a clean load gives.
* **One writer.** The file is opened for writing; a second process gets :class:`~jira_lab.errors.DatabaseLockedError`
  saying who holds it. DuckDB work (:class:`jira_lab.load_db.LoadStore`) runs on one dedicated thread and frames are
  built on another, so fetching goes on while a batch is written. Once a load has read 16 MB of search pages, they
  are decoded and framed in a process of their own (:mod:`jira_lab.framing_process`), which leaves the interpreter
  lock to the event loop and the writer.
* **Progress and summary.** One bar per resource (:mod:`jira_lab.progress`), or quiet, or a callback; the figures
  (rows per table, requests, retries, 429s by reason, time) go to the load log (``_jira_lab_loads``) and come back as
  a :class:`LoadSummary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from jira_lab import store
from jira_lab.client import JiraClient, SyncJiraClient
from jira_lab.errors import JiraApiError, JiraLabError
from jira_lab.framing_process import FramingProcess
from jira_lab.load_db import (
    ACCESS_CURSOR,
    AUDIT_CURSOR,
    ISSUE_CURSOR_PREFIX,
    WORKLOGS_DELETED_CURSOR,
    WORKLOGS_UPDATED_CURSOR,
    Finale,
    IssuePage,
    LoadStore,
    Principal,
    Run,
    Write,
    no_longer_visible,
)
from jira_lab.pagination import Page, page_bean_pages, search_pages
from jira_lab.progress import Progress, ProgressOption
from jira_lab.ratelimit import FlowEvent, RequestStats, request_priority
from jira_lab.resources import audit, changelogs, comments, fields, issues, permissions, projects, security, users
from jira_lab.resources import worklogs as worklog_resources
from jira_lab.resources.access import Refusal, refusable, refusal_of
from jira_lab.resources.convert import epoch_ms, jira_time, to_int

T = TypeVar("T")

#: How far back from a time cursor each incremental request reaches: Jira's search is eventually consistent and
#: JQL dates have minute precision; rows read twice are deduplicated on their primary key.
DEFAULT_OVERLAP = timedelta(minutes=5)
#: Pages of one walk fetched but not yet committed. Page ``n + PAGES_IN_FLIGHT`` is requested only once page ``n``
#: is committed, which bounds memory (and tells a test when a page is safely stored).
PAGES_IN_FLIGHT = 4
#: Walks (search queries) running at once; each has up to :data:`PAGES_IN_FLIGHT` pages in memory.
MAX_PARALLEL_WALKS = 16
#: Pages queued for commit that go into one transaction, at most (while the writer is busy, pages queue up).
MAX_PAGES_PER_COMMIT = 16
#: Request priorities (:func:`~jira_lab.ratelimit.request_priority`): the search walks, the worklog feed and the
#: changelog chunks go first (0), as each page is asked for once the last has come; then the per-issue reads that
#: complete the pages waiting to be committed; then the refresh of the permission model, which nothing waits for.
PER_ISSUE_PRIORITY = 1
FAMILY_PRIORITY = 2
#: Issue ids per page of the id sweep: ``search/jql`` gives 5000 when only ids are asked for.
SWEEP_PAGE_SIZE = 5000
#: ``project/search`` gives at most 100 projects a page.
PROJECTS_PAGE_SIZE = 100
#: Issues per query when fetching issues found by the sweep (``id in (...)``).
NEW_ISSUES_PER_QUERY = 500
#: Issues per ``changelog/bulkfetch`` request (its maximum) and queued changelog chunks fetched at once.
CHANGELOG_CHUNK = 1000
#: Histories a ``changelog/bulkfetch`` page holds at most, and how full chunks are sized to fill it.
CHANGELOG_PAGE_HISTORIES = 10_000
CHANGELOG_PAGE_FILL = 0.85
CHANGELOG_CHUNKS_IN_FLIGHT = 3
#: ``worklog/updated`` and ``worklog/list`` handle 1000 ids a request; ``issue/{id}/worklog`` 5000 worklogs a page.
WORKLOG_FEED_PAGE = 1000
ISSUE_WORKLOG_PAGE = 5000
#: How much DuckDB's write-ahead log may grow before a checkpoint, in files a load opens itself.
CHECKPOINT_THRESHOLD = "256MB"
#: DuckDB's memory limit in files a load opens itself.
MEMORY_LIMIT = "512MB"
#: New containers between CPython's young-generation collections while a load runs (the default is 700).
LOAD_GC_THRESHOLD = 50_000
#: Worklogs (and comments) a search page embeds per issue at most.
EMBEDDED_PER_ISSUE = 20
#: Feed pages whose ``worklog/list`` reads and writes run while the next feed page is asked for.
FEED_PAGES_AHEAD = 4
#: Deferred per-issue worklog reads committed together.
WORKLOG_ISSUES_PER_COMMIT = 50

#: The progress bar the permission model's rows (users, groups, projects, schemes ...) count on.
MODEL_PROGRESS = "permission model"


_BOOKKEEPING_KINDS = ("issue", "comment", "worklog", "changelog_history")


# -- the summary -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What one load did, as kept in the load log.

    Attributes:
        load_id: the load's id in ``_jira_lab_loads``.
        site_id: the site loaded.
        principal_id: the account that loaded it.
        principal_name: its display name.
        status: ``succeeded`` or ``failed``.
        full_load: every resource was read whole (asked for, or the run resumed was full).
        covering: issues, comments and worklogs were walked whole in every project in scope.
        resumed_from: the interrupted load this one resumed, if any.
        rows_per_table: rows written, per table.
        requests: HTTP requests sent (every attempt).
        retries: attempts that repeated an earlier one.
        throttled: 429 answers by ``RateLimit-Reason``.
        server_errors: 5xx answers.
        transport_errors: dropped connections, timeouts and the like.
        truncated_bodies: answers whose body arrived cut short.
        quota_pauses: times the client paused every request for the quota.
        seconds: wall time.
        refused: resources Jira refused to this principal (``_jira_lab_access``).
        marked: entities marked deleted or no longer visible, per table.
        error: why it failed, if it did.
    """

    load_id: int
    site_id: str
    principal_id: str
    principal_name: str | None
    status: str
    full_load: bool
    covering: bool
    resumed_from: int | None
    rows_per_table: dict[str, int]
    requests: int
    retries: int
    throttled: dict[str, int]
    server_errors: int
    transport_errors: int
    truncated_bodies: int
    quota_pauses: int
    seconds: float
    refused: tuple[str, ...] = ()
    marked: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def rate_limited(self) -> int:
        """429 answers, whatever their reason."""
        return sum(self.throttled.values())

    @property
    def rows(self) -> int:
        return sum(self.rows_per_table.values())

    def lines(self) -> list[str]:
        """The summary as lines for a terminal."""
        who = f"{self.principal_name} ({self.principal_id})" if self.principal_name else self.principal_id
        kind = "full" if self.full_load else "everything read" if self.covering else "incremental"
        lines = [f"Load {self.load_id} of {self.site_id} as {who}: {self.status} ({kind}) in {self.seconds:.1f} s"]
        if self.resumed_from is not None:
            lines.append(f"  resumed the interrupted load {self.resumed_from}")
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.throttled.items())) or "none"
        lines.append(
            f"  requests {self.requests}, retries {self.retries}, 429s {self.rate_limited} ({reasons}), "
            f"5xx {self.server_errors}, dropped {self.transport_errors}, cut bodies {self.truncated_bodies}"
        )
        if self.rows_per_table:
            width = max(len(name) for name in self.rows_per_table)
            lines.append(f"  rows written: {self.rows}")
            for name, count in sorted(self.rows_per_table.items()):
                lines.append(f"    {name:<{width}} {count:>9}")
        for name, count in sorted(self.marked.items()):
            lines.append(f"  marked deleted or no longer visible: {count} {name}")
        if self.refused:
            lines.append(f"  refused to this principal: {', '.join(self.refused)}")
        if self.error:
            lines.append(f"  error: {self.error}")
        return lines


# -- small pure helpers ----------------------------------------------------------------------------------------------


def jql_time(moment: datetime, zone: tzinfo) -> str:
    """A time as a JQL date (``yyyy/MM/dd HH:mm``) in the principal's time zone, floored to the minute.

    Jira reads absolute JQL dates in the caller's profile time zone, to the minute, so flooring never skips anything.
    """
    if moment.tzinfo is None:
        raise ValueError("give the time a time zone (e.g. UTC)")
    return moment.astimezone(zone).strftime("%Y/%m/%d %H:%M")


def walk_jql(project_ids: Iterable[int], start: datetime | None, zone: tzinfo) -> str:
    """The query of an issue walk: these projects, ``updated >= start`` when given, oldest ``updated`` first."""
    ids = sorted(set(project_ids))
    if not ids:
        raise ValueError("a walk needs at least one project")
    clauses = [f"project in ({', '.join(str(i) for i in ids)})"]
    if start is not None:
        clauses.append(f'updated >= "{jql_time(start, zone)}"')
    return " AND ".join(clauses) + " ORDER BY updated ASC, id ASC"


def page_position(updated: Iterable[datetime | None], started: datetime, previous: datetime | None) -> datetime | None:
    """Where a walk ordered by ``updated`` stands after a page: a time no later than the page's last position.

    Jira fixes a search's order when its first page is read but returns each issue's current data, so an issue
    changed since then shows a newer ``updated`` than the one it was sorted by. Only issues unchanged since the load
    started (``updated <= started``) show their sort key; the latest of those is a safe position to resume from.
    """
    candidates = [moment for moment in updated if moment is not None and moment <= started]
    if previous is not None:
        candidates.append(previous)
    return max(candidates, default=None)


def worklog_strategy(truncated_totals: Iterable[int], visible_worklogs: int, *, whole_site: bool) -> str:
    """``per_issue`` or ``feed``: the cheaper way to complete the worklogs of a whole walk.

    Per issue costs one page of ``issue/{id}/worklog`` per 5000 worklogs of each truncated issue. The feed costs a
    ``worklog/updated`` page per 1000 visible worklogs (plus a last check), and ``worklog/list`` only for the ids
    not embedded in the search pages already: 1000 a request. The feed lists the whole site, so it only serves a
    load of every project.
    """
    totals = list(truncated_totals)
    per_issue = sum(math.ceil(total / ISSUE_WORKLOG_PAGE) for total in totals)
    if not whole_site or per_issue == 0:
        return "per_issue"
    beyond_embedded = sum(max(0, total - EMBEDDED_PER_ISSUE) for total in totals)
    feed = math.ceil(visible_worklogs / WORKLOG_FEED_PAGE) + math.ceil(beyond_embedded / WORKLOG_FEED_PAGE) + 1
    return "feed" if feed < per_issue else "per_issue"


def site_id_for(client: JiraClient) -> str:
    """The site's id in the database: the cloud id of a gateway URL, else the site URL."""
    base = client.base_url
    marker = "/ex/jira/"
    if marker in base:
        return base.split(marker, 1)[1].split("/", 1)[0]
    return base


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _as_datetime(value: datetime | date | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = jira_time(value)
    if parsed is None:
        raise ValueError(f"not a date: {value!r}")
    return parsed


@dataclass(slots=True)
class _FeedAhead:
    """The ``worklog/updated`` feed as read during the walks: the worklog ids it named, up to ``until``."""

    until: int
    ids: list[int] = field(default_factory=list)


# -- what the permission model needs to re-read ----------------------------------------------------------------------


@dataclass(slots=True)
class _Refresh:
    """The permission-model families a load re-reads."""

    everything: bool = False
    groups: bool = False
    member_groups: set[str] = field(default_factory=set)
    application_roles: bool = False
    role_projects: set[int] = field(default_factory=set)
    all_roles: bool = False
    permission_schemes: bool = False
    project_permission_schemes: set[int] = field(default_factory=set)
    all_project_permission_schemes: bool = False
    security: bool = False
    project_security_schemes: set[int] = field(default_factory=set)
    all_project_security_schemes: bool = False
    my_permissions: bool = False

    @classmethod
    def all(cls) -> _Refresh:
        return cls(
            everything=True,
            groups=True,
            application_roles=True,
            all_roles=True,
            permission_schemes=True,
            all_project_permission_schemes=True,
            security=True,
            all_project_security_schemes=True,
            my_permissions=True,
        )

    def add_projects(self, project_ids: Iterable[int]) -> None:
        ids = set(project_ids)
        if ids:
            self.role_projects |= ids
            self.project_permission_schemes |= ids
            self.project_security_schemes |= ids
            self.my_permissions = True

    @property
    def touches_access(self) -> bool:
        """Whether the principal's own groups or roles are re-read."""
        return self.groups or bool(self.member_groups) or self.all_roles or bool(self.role_projects)


#: Audit categories about nothing the permission model holds (fields are read on every load anyway).
_UNRELATED_AUDIT_CATEGORIES = frozenset({"auditing", "fields", "notifications", "system", "workflows"})


def refresh_from_audit(records: Iterable[Mapping[str, Any]]) -> _Refresh:
    """What to re-read, from the audit records written since the last load (their category and summary).

    Membership changes re-read the groups concerned; role changes the project concerned; grant and level changes
    the schemes; workflow, notification, field and system records change nothing of it; anything unrecognised
    re-reads everything.
    """
    plan = _Refresh()
    for record in records:
        plan.my_permissions = True
        category = str(record.get("category") or "").lower()
        summary = str(record.get("summary") or "").lower()
        item = record.get("objectItem") or {}
        associated = record.get("associatedItems") or []
        projects_named = {
            pid
            for entry in [item, *associated]
            if str(entry.get("typeName") or "").upper() == "PROJECT" and (pid := to_int(entry.get("id"))) is not None
        }
        if category == "group management":
            if summary in ("user added to group", "user removed from group") and item.get("name"):
                plan.member_groups.add(str(item["name"]))
            else:
                plan.groups = plan.application_roles = plan.permission_schemes = plan.security = True
                plan.all_roles = True
        elif category == "user management":
            continue  # users are re-read on every load
        elif category == "projects":
            if summary == "project roles changed" and projects_named:
                plan.role_projects |= projects_named
            elif projects_named:
                plan.add_projects(projects_named)
            else:
                plan.all_roles = plan.all_project_permission_schemes = plan.all_project_security_schemes = True
        elif category == "permissions":
            if summary.startswith("global permission"):
                continue
            if summary.startswith("issue security"):
                plan.security = True
                if "updated" not in summary:
                    plan.all_project_security_schemes = True
            else:
                plan.permission_schemes = True
                if "updated" not in summary:
                    plan.all_project_permission_schemes = True
        elif category not in _UNRELATED_AUDIT_CATEGORIES:
            return _Refresh.all()
    return plan


# -- the loader ------------------------------------------------------------------------------------------------------


class _Loader:
    """One load in progress: the event-loop side (requests, ordering, concurrency)."""

    def __init__(
        self,
        conn: store.Connection,
        client: JiraClient,
        principal: Principal,
        *,
        site_id: str,
        full: bool,
        projects: Sequence[str] | None,
        since: datetime | None,
        search_page_size: int,
        check_accounts: Sequence[str],
        overlap: timedelta,
        progress: Progress,
        framing_process: bool | None,
    ) -> None:
        self.client = client
        self.principal = principal
        self.site_id = site_id
        self.requested_full = full
        self.project_filter = list(dict.fromkeys(projects)) if projects else None
        self.since = since
        self.search_page_size = search_page_size
        self.check_accounts = list(check_accounts)
        self.overlap = overlap
        self.progress = progress
        self.zone = _zone(principal.time_zone)
        self.db_side = LoadStore(conn, site_id, principal)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jira-lab-duckdb")
        self._framer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jira-lab-frames")
        self._framing = FramingProcess(self._framer, enabled=framing_process)
        self._page_queue: list[tuple[IssuePage, asyncio.Future[None]]] = []
        self._committer: asyncio.Future[None] | None = None
        self.started = datetime.now(UTC)
        self.picker_fields: list[str] = []
        self.viewable_projects: dict[int, str] = {}
        self.visible_projects: dict[int, str] = {}
        self.scope_projects: dict[int, str] = {}
        self.refreshed_kinds: set[str] = set()
        self.refusals: dict[str, Refusal] = {}
        self.deleted_worklog_ids: set[int] = set()
        self.unseen_restricted: dict[str, set[int]] = {}
        self.finale_cursors: dict[str, str] = {}
        self.covering = False
        self.figures: dict[str, Any] = {}
        self._changelog_wakeup = asyncio.Event()
        self._changelog_tally = (0, 0)
        self._walks_done = False
        self._access_known = {"groups": False, "roles": False}
        # the worklog feed read beside a covering walk of every project (read_feed_ahead)
        self._feed_ahead: asyncio.Future[_FeedAhead] | None = None
        self._feed_signal = asyncio.Event()
        self._feed_verdict: bool | None = None
        self._deferred_seen = 0

    # -- plumbing --------------------------------------------------------------------------------------------------
    async def db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a database function on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, partial(function, *args, **kwargs))

    def close(self) -> None:
        self._framing.close()
        self._framer.shutdown(wait=True)
        self._writer.shutdown(wait=True)

    @property
    def run(self) -> Run:
        return self.db_side.current

    @property
    def defers_worklogs(self) -> bool:
        """Whether walks leave truncated worklogs for after them (to the feed or per-issue reads, whichever is
        cheaper): in a covering load of every project."""
        return self.covering and self.project_filter is None

    @property
    def full(self) -> bool:
        return self.run.full

    async def commit(self, batch: Write) -> int:
        written = await self.db(self.db_side.write, batch)
        for refusal in batch.refusals:
            self.refusals[refusal.resource] = refusal
        if batch.progress:
            self.progress.advance(batch.progress, written)
        return written

    # -- the run ---------------------------------------------------------------------------------------------------
    async def start(self, *, url: str, title: str | None, auth_kind: str, scopes: Iterable[str] | None) -> Run:
        options = {
            "full": self.requested_full,
            "projects": self.project_filter,
            "since": self.since.isoformat() if self.since else None,
        }
        run = await self.db(
            self.db_side.start,
            url=url,
            title=title,
            auth_kind=auth_kind,
            scopes=scopes,
            full=self.requested_full,
            options=options,
        )
        if run.resumed_from is not None:
            self.progress.note(f"resuming the run of load {run.run_start} (last interrupted: load {run.resumed_from})")
        return run

    async def execute(self) -> None:
        """Everything between the start and the last transaction."""
        background: list[asyncio.Future[Any]] = []
        try:
            await self._execute(background)
        finally:
            # a failure anywhere stops what still runs beside it, so nothing writes after the load is failed
            unfinished = [task for task in background if not task.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _execute(self, background: list[asyncio.Future[Any]]) -> None:
        first_load = self.run.previous_ok is None
        projects_seen = {int(pid) for pid in await self.db(self.db_side.view_of, "project")}
        audit_task = asyncio.ensure_future(self.load_audit())
        background.append(audit_task)
        base = await asyncio.gather(
            self.load_projects(), self.browsable_projects(), self.load_fields(), self.load_users()
        )
        self.viewable_projects, self.visible_projects = base[0], base[1]
        known_projects = await self.db(self.db_side.known_projects)
        self.scope_projects = self.resolve_scope(known_projects)
        new_projects = set(self.viewable_projects) - projects_seen

        async def refresh_plan() -> _Refresh:
            audit_records = await audit_task
            if self.full or first_load or audit_records is None:
                return _Refresh.all()
            plan = refresh_from_audit(audit_records)
            plan.add_projects(new_projects)
            return plan

        access_before = self.run.cursor(ACCESS_CURSOR)
        self.covering = self.full or access_before is None
        lost_only = False
        if self.covering:
            # a covering walk depends on nothing the audit log says: it starts while the log is still being read
            with request_priority(FAMILY_PRIORITY):
                families = asyncio.ensure_future(self.refresh_families(refresh_plan()))
        else:
            # whether the walks may be incremental depends on the principal's own groups and roles
            plan = await refresh_plan()
            await self.refresh_access_families(plan)
            self.covering, lost_only = await self.compare_access(access_before)
            with request_priority(FAMILY_PRIORITY):
                families = asyncio.ensure_future(self.refresh_other_families(plan))
        drainer = asyncio.ensure_future(self.drain_changelogs())
        background += [families, drainer]
        if self.defers_worklogs:
            resumed = self.run.cursor(WORKLOGS_UPDATED_CURSOR, this_run_only=True)
            self._deferred_seen = len(self.db_side.pending_worklogs)
            self._feed_ahead = asyncio.ensure_future(self.read_feed_ahead(int(resumed) if resumed else 0))
            background.append(self._feed_ahead)
        await _unless_one_fails(self.walk_issues(), background)
        if not self.covering:
            await self.sweep_issues()
        if lost_only:
            await self.recheck_restricted()
        self._walks_done = True
        self._changelog_wakeup.set()
        # independent of each other: the last changelogs, the worklogs' completion and their tombstones
        await asyncio.gather(drainer, self.complete_worklogs(), self.read_deleted_worklogs())
        await asyncio.gather(*background)
        self.finale_cursors[ACCESS_CURSOR] = json.dumps(await self.own_access())

    def resolve_scope(self, known_projects: Mapping[int, str]) -> dict[int, str]:
        """The projects whose issues this load keeps in step: the filter's, or every visible one."""
        if self.project_filter is None:
            return dict(self.visible_projects)
        scope: dict[int, str] = {}
        by_key = {
            key.upper(): pid
            for pid, key in {**known_projects, **self.viewable_projects, **self.visible_projects}.items()
        }
        for wanted in self.project_filter:
            pid = by_key.get(wanted.upper())
            if (
                pid is None
                and wanted.isdigit()
                and int(wanted) in {**known_projects, **self.viewable_projects, **self.visible_projects}
            ):
                pid = int(wanted)
            if pid is None:
                visible = ", ".join(sorted(self.visible_projects.values())) or "none"
                raise ValueError(
                    f"project {wanted!r} is not visible to {self.principal.account_id} and was never loaded; "
                    f"visible projects: {visible}"
                )
            scope[pid] = self.viewable_projects.get(pid, known_projects.get(pid, str(pid)))
        return scope

    # -- reference data and the permission model -------------------------------------------------------------------
    async def _pages(self, source: AsyncIterator[Any]) -> tuple[list[Any], list[Refusal]]:
        items: list[Any] = []
        refused: list[Refusal] = []
        async for entry in source:
            if isinstance(entry, Refusal):
                refused.append(entry)
            elif isinstance(entry, Page):
                items.extend(entry.items)
            else:
                items.append(entry)
        return items, refused

    async def load_projects(self) -> dict[int, str]:
        found, refused = await self._pages(projects.fetch_projects(self.client))
        frame = projects.projects_frame(found, site_id=self.site_id)
        batch = Write(upserts=[("projects", frame)], refusals=refused, progress=MODEL_PROGRESS)
        if not refused:
            batch.sightings.append(("project", frame["id"]))
            batch.readable.append("projects")
            self.refreshed_kinds.add("project")
        await self.commit(batch)
        return {int(pid): str(key) for pid, key in zip(frame["id"].to_list(), frame["key"].to_list(), strict=True)}

    async def browsable_projects(self) -> dict[int, str]:
        """The projects whose issues this principal may search: ``project/search?action=browse``.

        ``project/search`` alone lists the projects it may *view*, which Administer Jira grants everywhere; searching
        a project without Browse Projects is a 400 ("does not exist").
        """
        found: dict[int, str] = {}
        pages = page_bean_pages(
            self.client, "/rest/api/3/project/search", params={"action": "browse"}, max_results=PROJECTS_PAGE_SIZE
        )
        async for page in pages:
            for project in page.items:
                project_id = to_int(project.get("id"))
                if project_id is not None:
                    found[project_id] = str(project.get("key"))
        return found

    async def load_fields(self) -> None:
        found, refused = await self._pages(fields.fetch_fields(self.client))
        frame = fields.fields_frame(found, site_id=self.site_id)
        self.picker_fields = list(fields.picker_fields(found))
        batch = Write(upserts=[("fields", frame)], refusals=refused, progress=MODEL_PROGRESS)
        if not refused:
            batch.sightings.append(("field", frame["id"]))
            batch.readable.append("fields")
            self.refreshed_kinds.add("field")
        await self.commit(batch)

    async def load_users(self) -> None:
        found, refused = await self._pages(users.fetch_users(self.client))
        frame = users.users_frame(found, site_id=self.site_id)
        batch = Write(upserts=[("users", frame)], refusals=refused, progress=MODEL_PROGRESS)
        if not refused:
            batch.sightings.append(("user", frame["account_id"]))
            batch.readable.append("users")
            self.refreshed_kinds.add("user")
        await self.commit(batch)

    async def load_audit(self) -> list[dict[str, Any]] | None:
        """Audit records since the cursor; ``None`` when this principal may not read them."""
        stored = self.run.cursor(AUDIT_CURSOR)
        seen_until = _as_datetime(stored)
        since = seen_until - self.overlap if seen_until is not None else self.since
        until = self.started
        if since is not None and since > until:
            since = until
        pages = audit.fetch_audit_records(self.client, since=since, until=until)
        records: list[dict[str, Any]] = []
        try:
            async for page in pages:
                records.extend(page.items)
        except JiraLabError as error:
            refusal = refusal_of("audit_records", error)
            if refusal is None:
                raise
            await self.commit(Write(refusals=[refusal]))
            return None
        frames = audit.audit_frames(records, site_id=self.site_id)
        newest = audit.newest_record_time(records)
        if newest is not None:
            self.finale_cursors[AUDIT_CURSOR] = newest.isoformat()
        elif stored is None:
            self.finale_cursors[AUDIT_CURSOR] = until.isoformat()
        scope = pl.DataFrame(
            {"site_id": [self.site_id] * frames.records.height, "audit_record_id": frames.records["id"]}
        )
        await self.commit(
            Write(
                upserts=[("audit_records", frames.records)],
                replaces=[
                    ("audit_changed_values", frames.changed_values, scope),
                    ("audit_associated_items", frames.associated_items, scope),
                ],
                sightings=[("audit_record", frames.records["id"])],
                readable=["audit_records"],
                progress="audit records",
            )
        )
        if seen_until is not None:
            # records read again because of the overlap were planned for by the load that first read them
            records = [r for r in records if (jira_time(r.get("created")) or until) > seen_until]
        return records

    async def refresh_families(self, plan: Awaitable[_Refresh]) -> None:
        """Every family the plan names, once it is known."""
        ready = await plan
        await asyncio.gather(self.refresh_access_families(ready), self.refresh_other_families(ready))

    async def refresh_access_families(self, plan: _Refresh) -> None:
        """Groups with their members and the project role actors: what the principal's own access is made of."""
        await asyncio.gather(self.refresh_groups(plan), self.refresh_roles(plan))

    async def refresh_groups(self, plan: _Refresh) -> None:
        group_ids: list[str] = []
        if plan.groups:
            found, refused = await self._pages(users.fetch_groups(self.client))
            frame = users.groups_frame(found, site_id=self.site_id)
            batch = Write(upserts=[("groups", frame)], refusals=refused, progress=MODEL_PROGRESS)
            if not refused:
                batch.sightings.append(("group", frame["group_id"]))
                batch.readable.append("groups")
                self.refreshed_kinds.add("group")
                group_ids = users.group_ids(found)
            await self.commit(batch)
            if refused:
                return
        elif plan.member_groups:
            by_name = await self.db(self.db_side.group_ids_by_name)
            unknown = [name for name in plan.member_groups if name not in by_name]
            if unknown:
                plan.groups = True
                await self.refresh_groups(plan)
                return
            group_ids = [by_name[name] for name in sorted(plan.member_groups)]
        else:
            return
        pages, refused = await self._pages(users.fetch_group_members(self.client, group_ids))
        frame = users.group_members_frame(pages, site_id=self.site_id)
        read = sorted({page.group_id for page in pages})
        scope = pl.DataFrame(
            {"site_id": [self.site_id] * len(read), "group_id": read},
            schema={"site_id": pl.String, "group_id": pl.String},
        )
        batch = Write(replaces=[("group_members", frame, scope)], refusals=refused, progress=MODEL_PROGRESS)
        if not any(r.resource == "group_members" for r in refused):
            batch.readable.append("group_members")
            self._access_known["groups"] = True
        await self.commit(batch)

    async def refresh_roles(self, plan: _Refresh) -> None:
        targets = set(self.viewable_projects) if plan.all_roles else plan.role_projects & set(self.viewable_projects)
        if not targets:
            return
        pages, refused = await self._pages(projects.fetch_role_actors(self.client, sorted(targets)))
        roles = projects.project_roles_frame(pages, site_id=self.site_id)
        actors = projects.role_actors_frame(pages, site_id=self.site_id)
        read = sorted(
            {
                (page.project_id, to_int(page.role.get("id")))
                for page in pages
                if to_int(page.role.get("id")) is not None
            }
        )
        scope = pl.DataFrame(
            {
                "site_id": [self.site_id] * len(read),
                "project_id": [p for p, _ in read],
                "role_id": [r for _, r in read],
            },
            schema={"site_id": pl.String, "project_id": pl.Int64, "role_id": pl.Int64},
        )
        batch = Write(
            upserts=[("project_roles", roles)],
            replaces=[("role_actors", actors, scope)],
            refusals=refused,
            progress=MODEL_PROGRESS,
        )
        batch.sightings.append(("project_role", roles["id"]))
        if not any(r.resource == "role_actors" for r in refused):
            batch.readable.append("role_actors")
            self._access_known["roles"] = True
            if plan.all_roles and not refused:
                self.refreshed_kinds.add("project_role")
        await self.commit(batch)

    async def refresh_other_families(self, plan: _Refresh) -> None:
        jobs: list[Awaitable[None]] = []
        if plan.application_roles:
            jobs.append(self.refresh_application_roles())
        if plan.permission_schemes:
            jobs.append(self.refresh_permission_schemes())
        targets = (
            set(self.viewable_projects) if plan.all_project_permission_schemes else plan.project_permission_schemes
        )
        if targets & set(self.viewable_projects):
            jobs.append(self.refresh_project_permission_schemes(sorted(targets & set(self.viewable_projects))))
        if plan.security:
            jobs.append(self.refresh_security())
        targets = set(self.viewable_projects) if plan.all_project_security_schemes else plan.project_security_schemes
        if targets & set(self.viewable_projects):
            jobs.append(self.refresh_project_security_schemes(sorted(targets & set(self.viewable_projects))))
        if plan.my_permissions:
            jobs.append(self.refresh_my_permissions())
        await asyncio.gather(*jobs)

    async def refresh_application_roles(self) -> None:
        found, refused = await self._pages(users.fetch_application_roles(self.client))
        frames = users.application_roles_frames(found, site_id=self.site_id)
        await self._commit_parents_with_children(
            frames,
            ("application_roles", "key"),
            ("application_role_groups", "application_key"),
            "application_role",
            readable=["application_roles"],
            refused=refused,
        )

    async def refresh_permission_schemes(self) -> None:
        found, refused = await self._pages(permissions.fetch_permission_schemes(self.client))
        frames = permissions.permission_schemes_frames(found, site_id=self.site_id)
        await self._commit_parents_with_children(
            frames,
            ("permission_schemes", "id"),
            ("permission_grants", "scheme_id"),
            "permission_scheme",
            readable=["permission_schemes", "permission_grants"],
            refused=refused,
        )

    async def _commit_parents_with_children(
        self,
        frames: dict[str, pl.DataFrame],
        parent: tuple[str, str],
        child: tuple[str, str],
        kind: str,
        *,
        readable: list[str],
        refused: list[Refusal],
    ) -> None:
        """Upsert parent rows and replace each parent's child rows whole (children that went away go away too)."""
        (parent_table, parent_key), (child_table, child_key) = parent, child
        parents = frames[parent_table]
        scope = pl.DataFrame({"site_id": [self.site_id] * parents.height, child_key: parents[parent_key]})
        batch = Write(
            upserts=[(parent_table, parents)],
            replaces=[(child_table, frames[child_table], scope)],
            refusals=refused,
            progress=MODEL_PROGRESS,
        )
        if not refused:
            batch.sightings.append((kind, parents[parent_key]))
            batch.readable += readable
            self.refreshed_kinds.add(kind)
        await self.commit(batch)

    async def refresh_project_permission_schemes(self, project_ids: list[int]) -> None:
        found, refused = await self._pages(permissions.fetch_project_permission_schemes(self.client, project_ids))
        frame = permissions.project_permission_schemes_frame(found, site_id=self.site_id)
        batch = Write(upserts=[("project_permission_schemes", frame)], refusals=refused, progress=MODEL_PROGRESS)
        if len(refused) < len(project_ids):
            batch.readable.append("project_permission_schemes")
        await self.commit(batch)

    async def refresh_security(self) -> None:
        schemes, refused_schemes = await self._pages(security.fetch_security_schemes(self.client))
        levels, refused_levels = await self._pages(security.fetch_security_levels(self.client))
        members, refused_members = await self._pages(security.fetch_security_level_members(self.client))
        scheme_frame = security.security_schemes_frame(schemes, site_id=self.site_id)
        level_frame = security.security_levels_frame(levels, site_id=self.site_id)
        member_frame = security.security_level_members_frame(members, site_id=self.site_id)
        batch = Write(
            upserts=[("security_schemes", scheme_frame), ("security_levels", level_frame)],
            refusals=[*refused_schemes, *refused_levels, *refused_members],
            progress=MODEL_PROGRESS,
        )
        if not refused_schemes:
            batch.sightings.append(("security_scheme", scheme_frame["id"]))
            batch.readable.append("security_schemes")
            self.refreshed_kinds.add("security_scheme")
        if not refused_levels:
            batch.sightings.append(("security_level", level_frame["id"]))
            batch.readable.append("security_levels")
            self.refreshed_kinds.add("security_level")
            if not refused_members:
                scope = pl.DataFrame({"site_id": [self.site_id] * level_frame.height, "level_id": level_frame["id"]})
                batch.replaces.append(("security_level_members", member_frame, scope))
                batch.readable.append("security_level_members")
        await self.commit(batch)

    async def refresh_project_security_schemes(self, project_ids: list[int]) -> None:
        found, refused = await self._pages(security.fetch_project_security_schemes(self.client, project_ids))
        frame = security.project_security_schemes_frame(found, site_id=self.site_id)
        batch = Write(upserts=[("project_security_schemes", frame)], refusals=refused, progress=MODEL_PROGRESS)
        extra_levels = security.levels_of_schemes(s.scheme for s in found if s.scheme is not None)
        if extra_levels:
            batch.upserts.append(
                ("security_levels", security.security_levels_frame(extra_levels, site_id=self.site_id))
            )
        if len(refused) < len(project_ids):
            batch.readable.append("project_security_schemes")
        await self.commit(batch)

    async def refresh_my_permissions(self) -> None:
        catalogue, _ = await self._pages(permissions.fetch_permission_catalogue(self.client))
        keys = permissions.permission_keys(catalogue)
        project_ids = sorted(self.viewable_projects)
        answers, refused = await self._pages(permissions.fetch_my_permissions(self.client, project_ids, keys=keys))
        frame = permissions.my_permissions_frame(
            answers, site_id=self.site_id, principal_id=self.principal.account_id, load_id=self.run.load_id
        )
        scope = pl.DataFrame({"site_id": [self.site_id], "principal_id": [self.principal.account_id]})
        batch = Write(replaces=[("my_permissions", frame, scope)], refusals=refused, progress=MODEL_PROGRESS)
        if not refused:
            batch.readable.append("my_permissions")
        for account in self.check_accounts:
            checks, check_refused = await self._pages(
                permissions.fetch_permission_checks(self.client, account, project_ids, keys=keys)
            )
            check_frame = permissions.permission_checks_frame(
                checks, site_id=self.site_id, principal_id=self.principal.account_id, load_id=self.run.load_id
            )
            check_scope = pl.DataFrame({"site_id": [self.site_id], "account_id": [account]})
            batch.replaces.append(("permission_checks", check_frame, check_scope))
            batch.refusals.extend(check_refused)
        await self.commit(batch)

    async def own_access(self) -> dict[str, Any]:
        stored = self.run.cursor(ACCESS_CURSOR)
        previous: dict[str, Any] = json.loads(stored) if stored else {"groups": None, "roles": None}
        current = await self.db(self.db_side.own_access, self._access_known["groups"], self._access_known["roles"])
        # a family not re-read in this load is as it was
        for part in ("groups", "roles"):
            if not self._access_known[part] and not self._refused_part(part):
                current[part] = previous.get(part)
        return current

    def _refused_part(self, part: str) -> bool:
        resource = "group_members" if part == "groups" else "role_actors"
        return resource in self.refusals

    async def compare_access(self, stored: str | None) -> tuple[bool, bool]:
        """(walk everything again, re-check restricted items by id) after the principal's own access changed."""
        before: dict[str, Any] = json.loads(stored) if stored else {"groups": None, "roles": None}
        after = await self.own_access()
        if any(after.get(part) is None or before.get(part) is None for part in ("groups", "roles")):
            return True, False
        gained = set(after["groups"]) - set(before["groups"]) or {tuple(r) for r in after["roles"]} - {
            tuple(r) for r in before["roles"]
        }
        lost = set(before["groups"]) - set(after["groups"]) or {tuple(r) for r in before["roles"]} - {
            tuple(r) for r in after["roles"]
        }
        if gained:
            self.progress.note("this principal's groups or project roles grew: walking every issue again")
            return True, False
        return False, bool(lost)

    # -- issues --------------------------------------------------------------------------------------------------
    def plan_walks(self) -> list[tuple[tuple[int, ...], datetime | None]]:
        """The walks of this load: (projects, updated lower bound) — one per project when walking whole."""
        walks: dict[datetime | None, list[int]] = {}
        singles: list[tuple[tuple[int, ...], datetime | None]] = []
        visible_scope = [pid for pid in self.scope_projects if pid in self.visible_projects]
        for pid in sorted(visible_scope):
            raw = self.run.cursor(f"{ISSUE_CURSOR_PREFIX}{pid}")
            state = json.loads(raw) if raw else None
            in_run = self.run.cursor(f"{ISSUE_CURSOR_PREFIX}{pid}", this_run_only=True) is not None
            start: datetime | None
            if self.covering:
                if state is not None and in_run and state.get("state") == "complete":
                    continue  # walked whole earlier in this run
                start = (
                    _as_datetime(state["updated"]) if state is not None and in_run and state.get("updated") else None
                )
            else:
                if state is not None and in_run and state.get("state") == "complete":
                    continue
                start = _as_datetime(state["updated"]) if state is not None and state.get("updated") else None
            if start is not None:
                start -= self.overlap
            if self.since is not None and (start is None or start < self.since):
                start = self.since
            if self.covering and start is None:
                singles.append(((pid,), None))
            else:
                walks.setdefault(start, []).append(pid)
        grouped = [(tuple(ids), start) for start, ids in walks.items()]
        if self.covering:
            # whole walks run one per project, concurrently; resumed ones too
            grouped = [((pid,), start) for ids, start in grouped for pid in ids]
        return singles + grouped

    async def walk_issues(self) -> None:
        limit = asyncio.Semaphore(MAX_PARALLEL_WALKS)

        async def bounded(project_ids: tuple[int, ...], start: datetime | None) -> None:
            async with limit:
                await self.walk(walk_jql(project_ids, start, self.zone), project_ids, cursor=True)

        await _gather_or_cancel([bounded(ids, start) for ids, start in self.plan_walks()])

    async def walk(self, jql: str, project_ids: tuple[int, ...], *, cursor: bool) -> None:
        """One search walk: pages committed in order, each with its per-issue reads, at most two pages ahead."""
        gate = asyncio.Semaphore(PAGES_IN_FLIGHT)
        previous: asyncio.Future[None] | None = None
        tasks: list[asyncio.Future[None]] = []
        position: list[datetime | None] = [None]
        decode = partial(
            self._framing.decode,
            # a covering walk leaves truncated worklogs to the feed or to per-issue reads after the walks
            reread_worklogs=not self.defers_worklogs,
            site_id=self.site_id,
            principal_id=self.principal.account_id,
            load_id=self.run.load_id,
        )
        pages = issues.fetch_issue_pages(
            self.client, jql, picker_fields=self.picker_fields, max_results=self.search_page_size, decode=decode
        )
        loop = asyncio.get_running_loop()
        try:
            while True:
                await gate.acquire()
                if any(task.done() and not task.cancelled() and task.exception() for task in tasks):
                    gate.release()
                    break  # the gather below raises it
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    gate.release()
                    break
                queued: asyncio.Future[None] = loop.create_future()
                tasks.append(
                    asyncio.ensure_future(
                        self.issue_page(
                            page.body[issues.FRAMES_KEY], project_ids, cursor, position, previous, queued, gate
                        )
                    )
                )
                previous = queued
            await asyncio.gather(*tasks)
        except BaseException:
            for pending in tasks:
                pending.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()
        if cursor:
            # the walk is complete: a resumed run need not walk these projects again
            await self.commit(Write(cursors=self.walk_cursors(project_ids, None, partial=False)))

    def walk_cursors(self, project_ids: Iterable[int], position: datetime | None, *, partial: bool) -> dict[str, str]:
        """Issue cursors of these projects: ``partial`` at a position within a walk, else complete as of the start."""
        moment = position if partial else self.started
        if moment is None:
            return {}
        text = json.dumps({"state": "partial" if partial else "complete", "updated": moment.isoformat()})
        return {f"{ISSUE_CURSOR_PREFIX}{pid}": text for pid in project_ids}

    async def issue_page(
        self,
        frames: issues.SearchPageFrames,
        project_ids: tuple[int, ...],
        cursor: bool,
        position: list[datetime | None],
        previous: asyncio.Future[None] | None,
        queued: asyncio.Future[None],
        gate: asyncio.Semaphore,
    ) -> None:
        """Complete one page (its truncated comments and worklogs), queue it for commit after the walk's previous
        page, and release its place in the walk once it is committed."""
        try:
            defer = self.defers_worklogs
            comment_ids = frames.truncated_comment_issue_ids
            worklog_ids = frames.truncated_worklog_issue_ids
            comment_jobs = [self.issue_comments(i) for i in comment_ids]
            worklog_jobs = [] if defer else [self.issue_worklogs(i) for i in worklog_ids]
            extra = await _gather_or_cancel([*comment_jobs, *worklog_jobs])
            extra_comments = [item for found in extra[: len(comment_jobs)] for item in found]
            extra_worklogs = [item for found in extra[len(comment_jobs) :] for item in found]
            page = await self.frame(issue_page_to_commit, frames, extra_comments, extra_worklogs, site_id=self.site_id)
            deferred: dict[int, int] = {}
            if defer and worklog_ids:
                totals = dict(
                    zip(
                        frames.issue_totals["issue_id"].to_list(),
                        frames.issue_totals["worklog_total"].to_list(),
                        strict=True,
                    )
                )
                deferred = {int(i): int(totals.get(i) or 0) for i in worklog_ids}
                self._deferred_seen += len(deferred)
                self._feed_signal.set()
            if previous is not None:
                await previous
            cursors: dict[str, str] = {}
            if cursor:
                position[0] = page_position(frames.issues["updated"].to_list(), self.started, position[0])
                cursors = self.walk_cursors(project_ids, position[0], partial=True)
            commit = self.commit_page(replace(page, deferred_worklogs=deferred, cursors=cursors))
            queued.set_result(None)
            await commit
            for resource, count in zip(("issues", "comments", "worklogs"), page.counts, strict=True):
                self.progress.advance(resource, count)
            if len(self.db_side.pending_changelogs) - len(self.db_side.taken_changelogs) >= CHANGELOG_CHUNK:
                self._changelog_wakeup.set()
        finally:
            if not queued.done():
                queued.set_exception(RuntimeError("an earlier page of this walk failed"))
            gate.release()

    def commit_page(self, page: IssuePage) -> asyncio.Future[None]:
        """Queue a page for the committer, which writes whatever is queued in one transaction."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._page_queue.append((page, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_queued())
        return done

    async def _commit_queued(self) -> None:
        while self._page_queue:
            batch = self._page_queue[:MAX_PAGES_PER_COMMIT]
            del self._page_queue[: len(batch)]
            try:
                await self.db(self.db_side.write_issue_pages, [page for page, _ in batch], full=self.full)
            except BaseException as error:
                for _, done in [*batch, *self._page_queue]:
                    if not done.done():
                        done.set_exception(error)
                self._page_queue.clear()
                if not isinstance(error, Exception):
                    raise
                return
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def frame(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Build frames on their own thread, beside the database writer (which releases the GIL in DuckDB)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._framer, partial(function, *args, **kwargs))

    async def issue_comments(self, issue_id: int) -> list[dict[str, Any]]:
        """Every comment of an issue whose embedded ones were truncated (``self`` names the issue)."""
        found: list[dict[str, Any]] = []
        try:
            with request_priority(PER_ISSUE_PRIORITY):
                async for page in comments.fetch_issue_comments(self.client, issue_id):
                    found.extend(page.items)
        except JiraApiError as error:
            if error.status != 404:
                raise  # a 404: the issue went away since its page was read; the next sweep marks it
        return found

    async def issue_worklogs(self, issue_id: int) -> list[dict[str, Any]]:
        """Every worklog of an issue whose embedded ones were truncated."""
        found: list[dict[str, Any]] = []
        try:
            with request_priority(PER_ISSUE_PRIORITY):
                async for page in worklog_resources.fetch_issue_worklogs(self.client, issue_id):
                    found.extend(page.items)
        except JiraApiError as error:
            if error.status != 404:
                raise
        return found

    async def sweep_issues(self) -> None:
        """The ids of every issue in scope (``fields=id``): sightings for all, and the new ones fetched whole."""
        visible_scope = sorted(pid for pid in self.scope_projects if pid in self.visible_projects)
        found: list[int] = []
        if visible_scope:
            jql = f"project in ({', '.join(str(p) for p in visible_scope)})"
            if self.since is not None:
                jql += f' AND updated >= "{jql_time(self.since, self.zone)}"'
            async for page in search_pages(
                self.client, jql + " ORDER BY id ASC", fields=("id",), max_results=SWEEP_PAGE_SIZE
            ):
                found.extend(int(issue["id"]) for issue in page.items)
        new, read = await self.db(self.db_side.record_sweep, found)
        self.figures["swept_issues"] = len(found)
        fetch = sorted(new - read)
        self.figures["issues_found_by_sweep"] = len(fetch)
        await self.fetch_issues(fetch)

    async def fetch_issues(self, issue_ids: Sequence[int]) -> None:
        """Read these issues whole (with their comments and worklogs), ``id in (...)`` a query."""
        jobs = []
        for start in range(0, len(issue_ids), NEW_ISSUES_PER_QUERY):
            chunk = issue_ids[start : start + NEW_ISSUES_PER_QUERY]
            jql = f"id in ({', '.join(str(i) for i in chunk)}) ORDER BY id ASC"
            jobs.append(self.walk(jql, (), cursor=False))
        await _gather_or_cancel(jobs)

    # -- changelogs ----------------------------------------------------------------------------------------------
    async def drain_changelogs(self) -> None:
        """Read queued changelogs 1000 issues at a time while the walks go on, and the rest once they are done."""
        running: set[asyncio.Future[None]] = set()
        try:
            while True:
                for task in [t for t in running if t.done()]:
                    running.discard(task)
                    task.result()
                free = len(self.db_side.pending_changelogs) - len(self.db_side.taken_changelogs)
                if free >= CHANGELOG_CHUNK or (self._walks_done and free > 0):
                    if len(running) < CHANGELOG_CHUNKS_IN_FLIGHT:
                        chunk = await self.db(self.db_side.take_changelogs, self.changelog_chunk_size())
                        task = asyncio.ensure_future(self.changelog_chunk(chunk))
                        task.add_done_callback(lambda _: self._changelog_wakeup.set())
                        running.add(task)
                        continue
                elif self._walks_done and not running:
                    return
                self._changelog_wakeup.clear()
                if any(t.done() for t in running):
                    continue
                await self._changelog_wakeup.wait()
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise

    def changelog_chunk_size(self) -> int:
        """Issues per ``changelog/bulkfetch`` request: 1000, or fewer when their histories would not fit one page.

        A page holds at most 10,000 histories; sized on the histories per issue seen so far, a chunk needs one page
        instead of two.
        """
        issues_read, histories = self._changelog_tally
        if issues_read < CHANGELOG_CHUNK:
            return CHANGELOG_CHUNK
        per_issue = max(histories / issues_read, 1e-9)
        fitting = int(CHANGELOG_PAGE_HISTORIES * CHANGELOG_PAGE_FILL / per_issue)
        return max(1, min(CHANGELOG_CHUNK, fitting))

    async def changelog_chunk(self, issue_ids: list[int]) -> None:
        entries: list[dict[str, Any]] = []
        async for page in changelogs.fetch_changelog_pages(self.client, issue_ids):
            entries.extend(page.items)
        frames = await self.frame(changelogs.changelog_frames, entries, site_id=self.site_id)
        written = await self.db(self.db_side.write_changelogs, issue_ids, frames)
        issues_read, histories = self._changelog_tally
        self._changelog_tally = (issues_read + len(issue_ids), histories + written)
        self.progress.advance("changelogs", written)

    # -- worklogs ------------------------------------------------------------------------------------------------
    async def complete_worklogs(self) -> None:
        """Worklogs of truncated issues deferred by whole walks, then (incremental) the ``worklog/updated`` feed."""
        pending = dict(self.db_side.pending_worklogs)
        feed_cursor = self.run.cursor(WORKLOGS_UPDATED_CURSOR)
        if pending:
            visible = await self.db(self.db_side.worklog_totals_in_run)
            strategy = worklog_strategy(pending.values(), visible, whole_site=self.project_filter is None)
            self.figures["worklog_strategy"] = strategy
            if strategy == "feed":
                ahead = await self.settle_feed_ahead(read_all=True)
                if ahead is not None:
                    # the ids the walks did not bring, listed 1000 a request, written with the feed's cursor
                    await self.feed_page(ahead.ids, ahead.until, None)
                    self.finale_cursors[WORKLOGS_UPDATED_CURSOR] = str(ahead.until)
                else:
                    resumed = self.run.cursor(WORKLOGS_UPDATED_CURSOR, this_run_only=True)
                    await self.worklog_feed(int(resumed) if resumed else 0)
                await self.db(self.db_side.clear_pending_worklogs, {})
                return
        await self.settle_feed_ahead(read_all=False)
        if pending:
            await self.worklogs_per_issue(sorted(pending))
        if not self.covering and feed_cursor is not None:
            since = max(0, int(feed_cursor) - int(self.overlap.total_seconds() * 1000))
            await self.worklog_feed(since)
        elif WORKLOGS_UPDATED_CURSOR not in self.finale_cursors:
            self.finale_cursors[WORKLOGS_UPDATED_CURSOR] = str(epoch_ms(self.started))

    async def read_feed_ahead(self, since: int) -> _FeedAhead:
        """The ``worklog/updated`` feed's ids, read beside a covering walk of every project.

        Whether the feed or per-issue reads complete the worklogs of truncated issues is known only when the walks
        are done (:func:`worklog_strategy`); the feed is a chain of pages, one after another, so reading it only then
        would add its whole length to the load. It is read during the walks instead, but never further than the
        evidence: a feed page is asked for only while fewer have been read than truncated issues were deferred
        (each of which would cost a per-issue request), until :meth:`settle_feed_ahead` gives the verdict. When
        per-issue reads win, the pages read ahead cost no more requests than the per-issue reads themselves.
        """
        ahead = _FeedAhead(until=since)
        pages = worklog_resources.fetch_worklog_changes(self.client, since)
        read = 0
        try:
            while True:
                while self._feed_verdict is None and read >= self._deferred_seen:
                    self._feed_signal.clear()
                    await self._feed_signal.wait()
                if self._feed_verdict is False:
                    break
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    break
                read += 1
                until = page.body.get("until") if isinstance(page.body, dict) else None
                ahead.until = int(until) if isinstance(until, int) else ahead.until
                ahead.ids += [int(change["worklogId"]) for change in page.items if change.get("worklogId") is not None]
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()
        return ahead

    async def settle_feed_ahead(self, *, read_all: bool) -> _FeedAhead | None:
        """Let the feed read ahead run to its end (``read_all``) or stop where it is; ``None`` if none runs."""
        if self._feed_ahead is None:
            return None
        self._feed_verdict = read_all
        self._feed_signal.set()
        return await self._feed_ahead

    async def worklogs_per_issue(self, issue_ids: list[int]) -> None:
        for start in range(0, len(issue_ids), WORKLOG_ISSUES_PER_COMMIT):
            chunk = issue_ids[start : start + WORKLOG_ISSUES_PER_COMMIT]
            found = [w for items in await _gather_or_cancel([self.issue_worklogs(i) for i in chunk]) for w in items]
            frame = await self.frame(worklog_resources.worklogs_frame, found, site_id=self.site_id)
            authors = await self.frame(users.user_details_frame, found, site_id=self.site_id)
            written = await self.db(self.db_side.write_worklogs, frame, authors, done_issues=chunk)
            self.progress.advance("worklogs", written)

    async def worklog_feed(self, since: int) -> None:
        """``worklog/updated`` from ``since``, and ``worklog/list`` for the ids this run has not read yet.

        The feed is read page after page; each page's list read and write runs while the next page is asked for, and
        the writes (with the feed's cursor) happen in feed order.
        """
        last = since
        previous: asyncio.Future[None] | None = None
        running: list[asyncio.Future[None]] = []
        try:
            async for page in worklog_resources.fetch_worklog_changes(self.client, since):
                until = page.body.get("until") if isinstance(page.body, dict) else None
                last = int(until) if isinstance(until, int) else last
                ids = [int(change["worklogId"]) for change in page.items if change.get("worklogId") is not None]
                previous = asyncio.ensure_future(self.feed_page(ids, last, previous))
                running.append(previous)
                running = [task for task in running if not task.done() or task.exception() is not None]
                if len(running) >= FEED_PAGES_AHEAD:
                    await running[0]
            await asyncio.gather(*running)
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        self.finale_cursors[WORKLOGS_UPDATED_CURSOR] = str(last)

    async def feed_page(self, ids: list[int], cursor: int, previous: asyncio.Future[None] | None) -> None:
        """The worklogs of one feed page this run has not read yet, written after the previous page's."""
        unread = sorted(set(ids) - await self.db(self.db_side.sighted_in_run, "worklog", ids))
        found: list[dict[str, Any]] = []
        if unread:
            async for listed in worklog_resources.fetch_worklogs_by_ids(self.client, unread):
                found.extend(listed.items)
        frame = await self.frame(worklog_resources.worklogs_frame, found, site_id=self.site_id)
        authors = await self.frame(users.user_details_frame, found, site_id=self.site_id)
        if previous is not None:
            await previous
        issue_projects = await self.db(self.db_side.issue_projects, frame["issue_id"].unique().to_list())
        # a worklog of an issue not stored (yet) comes with its issue; one outside the scope is not this load's
        scope = set(self.scope_projects) if self.project_filter is not None else None
        keep = [iid for iid, pid in issue_projects.items() if scope is None or pid in scope]
        frame = frame.filter(pl.col("issue_id").is_in(keep))
        written = await self.db(
            self.db_side.write_worklogs, frame, authors, cursors={WORKLOGS_UPDATED_CURSOR: str(cursor)}
        )
        self.progress.advance("worklogs", written)

    async def read_deleted_worklogs(self) -> None:
        stored = self.run.cursor(WORKLOGS_DELETED_CURSOR)
        if stored is None:
            self.finale_cursors[WORKLOGS_DELETED_CURSOR] = str(epoch_ms(self.started))
            return
        since = max(0, int(stored) - int(self.overlap.total_seconds() * 1000))
        last = since
        async for page in worklog_resources.fetch_deleted_worklogs(self.client, since):
            tombstones = worklog_resources.deleted_worklogs_frame(page.items, site_id=self.site_id)
            until = page.body.get("until") if isinstance(page.body, dict) else None
            last = int(until) if isinstance(until, int) else last
            marked = await self.db(self.db_side.mark_deleted_worklogs, tombstones, str(last))
            self.deleted_worklog_ids |= marked
        self.finale_cursors[WORKLOGS_DELETED_CURSOR] = str(last)

    async def recheck_restricted(self) -> None:
        """After the principal lost a group or role: which restricted comments and worklogs it still sees, by id."""
        self.progress.note("this principal lost a group or a project role: re-checking restricted items by id")
        comment_ids = await self.db(self.db_side.restricted_in_view, "comments", "comment")
        worklog_ids = await self.db(self.db_side.restricted_in_view, "worklogs", "worklog")
        seen_comments: set[int] = set()
        async for page in comments.fetch_comments_by_ids(self.client, comment_ids):
            seen_comments.update(int(c["id"]) for c in page.items)
        seen_worklogs: set[int] = set()
        async for page in worklog_resources.fetch_worklogs_by_ids(self.client, worklog_ids):
            seen_worklogs.update(int(w["id"]) for w in page.items)
        self.unseen_restricted = {
            "comment": set(comment_ids) - seen_comments,
            "worklog": set(worklog_ids) - seen_worklogs,
        }
        await self.commit(Write(sightings=[("comment", sorted(seen_comments)), ("worklog", sorted(seen_worklogs))]))
        # their issues' totals (what Jira reports to this principal) changed too: read those issues again
        affected = await self.db(
            self.db_side.issues_of_items, self.unseen_restricted["comment"], self.unseen_restricted["worklog"]
        )
        await self.fetch_issues(sorted(affected))

    # -- the end ---------------------------------------------------------------------------------------------------
    def finale(self, stats: RequestStats) -> Finale:
        walked = [pid for pid in self.scope_projects if pid in self.visible_projects]
        cursors = dict(self.finale_cursors)
        cursors.update(self.walk_cursors(walked, None, partial=False))
        return Finale(
            issue_scope=None if self.project_filter is None else sorted(self.scope_projects),
            issues_complete=True,
            since=self.since,
            visible_project_ids=set(self.visible_projects),
            refreshed_kinds={k for k in self.refreshed_kinds if k not in _BOOKKEEPING_KINDS},
            deleted_worklog_ids=self.deleted_worklog_ids,
            unseen_restricted=self.unseen_restricted,
            own_access=json.loads(cursors.get(ACCESS_CURSOR, "{}")),
            cursors=cursors,
            figures=self.request_figures(stats),
            stats=stats,
        )

    def request_figures(self, stats: RequestStats) -> dict[str, Any]:
        return {
            **self.figures,
            "covering": self.covering,
            "search_pages_framed_in_process": self._framing.pages_in_process,
            "throttled": dict(stats.throttled),
            "server_errors": stats.server_errors,
            "transport_errors": stats.transport_errors,
            "truncated_bodies": stats.truncated_bodies,
            "quota_pauses": stats.quota_pauses,
            "waited_seconds": round(stats.waited_seconds, 3),
            "refused": sorted(self.refusals),
        }


def issue_page_to_commit(
    frames: issues.SearchPageFrames,
    extra_comments: list[dict[str, Any]],
    extra_worklogs: list[dict[str, Any]],
    *,
    site_id: str,
) -> IssuePage:
    """A walk's page with what its per-issue reads brought, framed, and the issues, comments and worklogs it holds
    (counted here, on the framer thread, rather than by the writer)."""
    comment_frame = comments.comments_frame(extra_comments, site_id=site_id)
    worklog_frame = worklog_resources.worklogs_frame(extra_worklogs, site_id=site_id)
    authors = users.user_details_frame([*extra_comments, *extra_worklogs], site_id=site_id)
    counts = (
        frames.issues.height,
        pl.concat([frames.comments["id"], comment_frame["id"]]).n_unique(),
        pl.concat([frames.worklogs["id"], worklog_frame["id"]]).n_unique(),
    )
    return IssuePage(frames, comment_frame, worklog_frame, authors, {}, {}, counts)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run CPython's cyclic garbage collector less often while loads run.

    A load turns hundreds of megabytes of JSON into short-lived dicts and lists. At the default threshold the
    collector starts every 700 new containers and walks the young ones, which took about a sixth of a large load's
    CPU. Nothing here waits on cycles being freed promptly; the process's thresholds are restored when the last
    load running in it ends.
    """
    global _collection_holders, _saved_thresholds
    with _collection_lock:
        if _collection_holders == 0:
            _saved_thresholds = gc.get_threshold()
            gc.set_threshold(LOAD_GC_THRESHOLD, *_saved_thresholds[1:])
        _collection_holders += 1
    try:
        yield
    finally:
        with _collection_lock:
            _collection_holders -= 1
            if _collection_holders == 0 and _saved_thresholds is not None:
                gc.set_threshold(*_saved_thresholds)


_collection_lock = threading.Lock()
_collection_holders = 0
_saved_thresholds: tuple[int, int, int] | None = None


async def _gather_or_cancel(jobs: Sequence[Awaitable[T]]) -> list[T]:
    """Run ``jobs`` concurrently; if one fails, cancel the others and raise its error."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _unless_one_fails(job: Awaitable[T], beside: Sequence[asyncio.Future[Any]]) -> T:
    """Run ``job`` to its end, unless a task ``beside`` it fails first: then cancel ``job`` and raise that error.

    A walk of a large site can take hours; the audit log or a part of the permission model failing beside it stops
    the load at once (what the walk committed stays, for the next load to resume), not once the walk is over.
    """
    task = asyncio.ensure_future(job)
    try:
        while not task.done():
            for other in beside:
                error = other.exception() if other.done() and not other.cancelled() else None
                if error is not None:
                    raise error
            await asyncio.wait(
                {task, *(other for other in beside if not other.done())}, return_when=asyncio.FIRST_COMPLETED
            )
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _stats_since(before: RequestStats, after: RequestStats) -> RequestStats:
    throttled = {
        reason: after.throttled.get(reason, 0) - before.throttled.get(reason, 0)
        for reason in after.throttled
        if after.throttled.get(reason, 0) - before.throttled.get(reason, 0)
    }
    return RequestStats(
        requests=after.requests - before.requests,
        retries=after.retries - before.retries,
        throttled=throttled,
        server_errors=after.server_errors - before.server_errors,
        transport_errors=after.transport_errors - before.transport_errors,
        truncated_bodies=after.truncated_bodies - before.truncated_bodies,
        quota_pauses=after.quota_pauses - before.quota_pauses,
        waited_seconds=after.waited_seconds - before.waited_seconds,
        max_in_flight=after.max_in_flight,
    )


# -- the public functions --------------------------------------------------------------------------------------------

Database = str | Path | store.Connection


async def aload(
    db: Database,
    client: JiraClient,
    *,
    site_id: str | None = None,
    principal_id: str | None = None,
    full: bool = False,
    projects: Sequence[str] | None = None,
    since: datetime | date | str | None = None,
    progress: ProgressOption | Progress = True,
    search_page_size: int = issues.SEARCH_MAX_RESULTS,
    check_accounts: Sequence[str] = (),
    overlap: timedelta = DEFAULT_OVERLAP,
    framing_process: bool | None = None,
) -> LoadSummary:
    """Load one site, as the client's principal, into a DuckDB file (the async core of :func:`load`).

    Args:
        db: the DuckDB file (created if missing), or an open connection (left open).
        client: a :class:`~jira_lab.client.JiraClient` for the site (gateway + 3LO, or site URL + Basic auth).
        site_id: the site's id in the file; by default the cloud id of a gateway URL, else the site URL.
        principal_id: the account expected to load; a load as any other account (``/myself``) is refused.
        full: read everything again instead of from the cursors.
        projects: project keys (or ids) to keep in step; every visible project by default.
        since: load only issues updated since then (a date, a time, or Jira's date text).
        progress: ``True`` for bars, ``False`` for quiet, a callable for :class:`~jira_lab.progress.ProgressEvent`
            values, or a :class:`~jira_lab.progress.Progress`.
        search_page_size: issues per search page to ask for; Jira gives fewer for the field set a load needs.
        check_accounts: accounts (e.g. the technical user) whose permissions to check with ``permissions/check``
            (the principal needs Administer Jira).
        overlap: how far back each time cursor reaches.
        framing_process: frame search pages in a process of their own (:mod:`jira_lab.framing_process`): ``None``
            once the load has proved large, ``True`` from the start, ``False`` never.

    Returns:
        The :class:`LoadSummary`, also kept in the load log.

    Raises:
        DatabaseLockedError: another process has the file open.
        ValueError: a project of ``projects`` is unknown, or ``principal_id`` is not who the client loads as.
        JiraLabError: the load failed (it is recorded as failed, and the next load resumes it).
    """
    if search_page_size < 1:
        raise ValueError("search_page_size must be positive")
    bars = progress if isinstance(progress, Progress) else Progress(progress)
    owned = not isinstance(db, store.Connection)
    conn = store.connect(db) if not isinstance(db, store.Connection) else db
    if owned:
        # DuckDB checkpoints whenever its WAL passes 16 MB, rewriting the same growing row groups again and again
        # during a large load; a file of our own checkpoints less often (and once more when it is closed)
        conn.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        # DuckDB's buffer pool may take 80 % of the machine by default; a load needs far less
        conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    started = time.monotonic()
    before = client.stats
    previous_sink = client.governor.on_event
    try:
        with _fewer_collections():
            me = await client.get("/rest/api/3/myself")
            principal = Principal(str(me["accountId"]), me.get("displayName"), me.get("timeZone"))
            if principal_id is not None and principal_id != principal.account_id:
                raise ValueError(f"the client loads as {principal.account_id}, not {principal_id}")
            info = await refusable("server_info", client.get("/rest/api/3/serverInfo"))
            loader = _Loader(
                conn,
                client,
                principal,
                site_id=site_id or site_id_for(client),
                full=full,
                projects=projects,
                since=_as_datetime(since),
                search_page_size=search_page_size,
                check_accounts=check_accounts,
                overlap=overlap,
                progress=bars,
                framing_process=framing_process,
            )
            if isinstance(info, dict) and info.get("serverTime"):
                loader.started = jira_time(info["serverTime"]) or loader.started

            def on_event(event: FlowEvent) -> None:
                if previous_sink is not None:
                    previous_sink(event)
                if event.kind in ("quota_pause", "quota_exhausted"):
                    bars.note(event.message)

            client.governor.on_event = on_event
            try:
                auth_kind = "oauth" if "/ex/jira/" in client.base_url else "basic"
                run = await loader.start(
                    url=str(info.get("baseUrl")) if isinstance(info, dict) and info.get("baseUrl") else client.base_url,
                    title=info.get("serverTitle") if isinstance(info, dict) else None,
                    auth_kind=auth_kind,
                    scopes=sorted(client.scopes) if client.scopes is not None else None,
                )
                access = Write(readable=["server_info"]) if not isinstance(info, Refusal) else Write(refusals=[info])
                await loader.commit(access)
                try:
                    await loader.execute()
                    stats = _stats_since(before, client.stats)
                    marked = await loader.db(loader.db_side.finish, loader.finale(stats))
                except BaseException as error:
                    stats = _stats_since(before, client.stats)
                    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                    # the file may be gone or closed; the load then stays "running" and the next one resumes it
                    with contextlib.suppress(Exception):
                        await asyncio.shield(
                            loader.db(loader.db_side.fail, message, stats, loader.request_figures(stats))
                        )
                    raise
                return LoadSummary(
                    load_id=run.load_id,
                    site_id=loader.site_id,
                    principal_id=principal.account_id,
                    principal_name=principal.display_name,
                    status="succeeded",
                    full_load=run.full,
                    covering=loader.covering,
                    resumed_from=run.resumed_from,
                    rows_per_table=dict(loader.db_side.rows),
                    requests=stats.requests,
                    retries=stats.retries,
                    throttled=dict(stats.throttled),
                    server_errors=stats.server_errors,
                    transport_errors=stats.transport_errors,
                    truncated_bodies=stats.truncated_bodies,
                    quota_pauses=stats.quota_pauses,
                    seconds=time.monotonic() - started,
                    refused=tuple(sorted(loader.refusals)),
                    marked=marked,
                )
            finally:
                loader.close()
    finally:
        client.governor.on_event = previous_sink
        bars.close()
        if owned:
            conn.close()


def load(
    db: Database,
    client: JiraClient | SyncJiraClient,
    **options: Any,
) -> LoadSummary:
    """Load one site into a DuckDB file, blocking until done; safe inside a running event loop (a notebook).

    With a :class:`~jira_lab.client.SyncJiraClient` the load runs on that client's private loop, and the client stays
    open. With a :class:`~jira_lab.client.JiraClient` it runs on a fresh loop (in a worker thread when the calling
    thread already runs one), and the client is closed at the end: its connections belong to that loop. Such a
    client must not have been used on another loop. Takes the keyword arguments of :func:`aload`.
    """
    if isinstance(client, SyncJiraClient):
        return client.run(aload(db, client.aio, **options))

    async def run_and_close() -> LoadSummary:
        # the client's connections belong to the loop this load runs on, which ends with it
        try:
            return await aload(db, client, **options)
        finally:
            await client.aclose()

    return _run_blocking(run_and_close())


def _run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # handed back to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name="jira-lab-load", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


__all__ = [
    "DEFAULT_OVERLAP",
    "LoadSummary",
    "Principal",
    "aload",
    "jql_time",
    "load",
    "no_longer_visible",
    "page_position",
    "refresh_from_audit",
    "site_id_for",
    "walk_jql",
    "worklog_strategy",
]
