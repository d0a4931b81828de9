"""The loader's DuckDB side: every read and write of a load, each one transaction, run on its writer thread.

:mod:`jira_lab.load` decides what to fetch and when; :class:`LoadStore` keeps what it found, with the cursors,
sightings and deletion marks that make the next load incremental and an interrupted one resumable. What it
writes is declared in :mod:`jira_lab.schema` and goes through :mod:`jira_lab.store`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from jira_lab import schema, store
from jira_lab.ratelimit import RequestStats
from jira_lab.resources import changelogs, issues
from jira_lab.resources.access import Refusal

#: Cursors of a load (``_jira_lab_cursors.resource``).
ISSUE_CURSOR_PREFIX = "issues:"
WORKLOGS_UPDATED_CURSOR = "worklogs:updated"
WORKLOGS_DELETED_CURSOR = "worklogs:deleted"
AUDIT_CURSOR = "audit_records"
ACCESS_CURSOR = "access"
PENDING_CHANGELOGS_CURSOR = "pending:changelogs"
PENDING_WORKLOGS_CURSOR = "pending:worklogs"

#: entity kinds Jira lists only as far as the caller may view them: gone means no longer visible
_VIEW_LIMITED_KINDS = frozenset({"project", "field"})


def no_longer_visible(principal_id: str) -> str:
    """The ``deleted_reason`` of an entity gone from this principal's view but not shown to be deleted."""
    return f"{schema.NO_LONGER_VISIBLE} to {principal_id}"


def _holds_restriction(
    access: Mapping[str, Any], kind: str, identifier: str | None, project_id: int | None, role_id: int | None
) -> bool:
    """Whether the principal, as its groups and roles were loaded, still satisfies an item's ``visibility``.

    Unknown (groups or roles unreadable, a role or project unknown) counts as not held.
    """
    if kind == "group":
        groups = access.get("groups")
        return groups is not None and identifier in groups
    if kind == "role":
        roles = access.get("roles")
        return roles is not None and project_id is not None and [project_id, role_id] in roles
    return False


def _ids_frame(table: schema.Table, site_id: str, entity_ids: Iterable[str]) -> pl.DataFrame:
    """Primary-key frame of entity rows from their sighting ids (text), cast to the table's key type."""
    key = [name for name in table.primary_key if name != "site_id"]
    if len(key) != 1:
        raise ValueError(f"{table.name} is not keyed by one id")
    column = table.column(key[0])
    ids = pl.Series(key[0], list(entity_ids), dtype=pl.String).cast(column.type.polars)
    return pl.DataFrame({"site_id": pl.Series([site_id] * len(ids), dtype=pl.String), key[0]: ids})


# -- what the database side is given ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """The account a load runs as (``/myself``)."""

    account_id: str
    display_name: str | None
    time_zone: str | None


@dataclass(slots=True)
class Write:
    """Rows, sightings and bookkeeping committed together."""

    upserts: list[tuple[str, pl.DataFrame]] = field(default_factory=list)
    replaces: list[tuple[str, pl.DataFrame, pl.DataFrame]] = field(default_factory=list)
    sightings: list[tuple[str, Sequence[Any] | pl.Series]] = field(default_factory=list)
    cursors: dict[str, str] = field(default_factory=dict)
    readable: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    progress: str | None = None


@dataclass(frozen=True, slots=True)
class IssuePage:
    """One search page made ready to commit: its frames, the per-issue reads it needed, its walk's cursors."""

    frames: issues.SearchPageFrames
    extra_comments: pl.DataFrame
    extra_worklogs: pl.DataFrame
    extra_users: pl.DataFrame
    deferred_worklogs: dict[int, int]
    cursors: dict[str, str]
    #: issues, comments and worklogs it holds
    counts: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Run:
    load_id: int
    run_start: int
    previous_ok: int | None
    full: bool
    resumed_from: int | None
    cursors: dict[str, tuple[str, int | None]]

    @property
    def base(self) -> int:
        """Sightings at or after this load make up the view being carried forward."""
        return self.previous_ok if self.previous_ok is not None else self.run_start

    def cursor(self, resource: str, *, this_run_only: bool = False) -> str | None:
        found = self.cursors.get(resource)
        if found is None:
            return None
        value, load_id = found
        if this_run_only and (load_id is None or load_id < self.run_start):
            return None
        return value


@dataclass(slots=True)
class Finale:
    """What the last transaction of a successful load needs to know."""

    issue_scope: list[int] | None
    issues_complete: bool
    since: datetime | None
    visible_project_ids: set[int]
    refreshed_kinds: set[str]
    deleted_worklog_ids: set[int]
    unseen_restricted: dict[str, set[int]]
    own_access: dict[str, Any]
    cursors: dict[str, str]
    figures: dict[str, Any]
    stats: RequestStats


# -- the database side (runs on the writer thread only) --------------------------------------------------------------


class LoadStore:
    """Every DuckDB read and write of one load, run on the loader's single writer thread."""

    def __init__(self, conn: store.Connection, site_id: str, principal: Principal) -> None:
        self.conn = conn
        self.site_id = site_id
        self.principal = principal
        self.rows: Counter[str] = Counter()
        self.run: Run | None = None
        self.pending_changelogs: set[int] = set()
        self.taken_changelogs: set[int] = set()
        self.pending_worklogs: dict[int, int] = {}

    @property
    def me(self) -> str:
        return self.principal.account_id

    @property
    def current(self) -> Run:
        if self.run is None:
            raise RuntimeError("the load has not started")
        return self.run

    # -- starting --------------------------------------------------------------------------------------------------
    def start(
        self,
        *,
        url: str,
        title: str | None,
        auth_kind: str,
        scopes: Iterable[str] | None,
        full: bool,
        options: dict[str, Any],
    ) -> Run:
        conn = self.conn
        store.ensure_schema(conn)
        with store.transaction(conn):
            store.register_site(
                conn, site_id=self.site_id, url=url, cloud_id=None if url == self.site_id else self.site_id, title=title
            )
            store.register_principal(
                conn,
                site_id=self.site_id,
                principal_id=self.me,
                display_name=self.principal.display_name,
                auth_kind=auth_kind,
                scopes=scopes,
            )
            last = conn.execute(
                "SELECT load_id, status, full_load, options FROM _jira_lab_loads "
                "WHERE site_id = ? AND principal_id = ? ORDER BY load_id DESC LIMIT 1",
                [self.site_id, self.me],
            ).fetchall()
            previous_ok = conn.execute(
                "SELECT max(load_id) FROM _jira_lab_loads WHERE site_id = ? AND principal_id = ? "
                "AND status = 'succeeded'",
                [self.site_id, self.me],
            ).fetchall()[0][0]
            next_id = int(conn.execute("SELECT coalesce(max(load_id), 0) + 1 FROM _jira_lab_loads").fetchall()[0][0])
            resumed_from: int | None = None
            run_start = next_id
            if last and last[0][1] != "succeeded":
                resumed_from = int(last[0][0])
                previous_options = json.loads(last[0][3] or "{}")
                run_start = int(previous_options.get("run_start", resumed_from))
                full = full or bool(last[0][2])
            load_id = store.start_load(
                conn,
                site_id=self.site_id,
                principal_id=self.me,
                full_load=full,
                options={**options, "run_start": run_start, "resumed_from": resumed_from},
            )
            if load_id != next_id:
                raise RuntimeError(f"another writer started load {next_id} meanwhile")
            cursors = {
                str(resource): (str(value), None if load is None else int(load))
                for resource, value, load in conn.execute(
                    "SELECT resource, cursor_value, load_id FROM _jira_lab_cursors "
                    "WHERE site_id = ? AND principal_id = ?",
                    [self.site_id, self.me],
                ).fetchall()
            }
        self.run = Run(
            load_id, run_start, None if previous_ok is None else int(previous_ok), full, resumed_from, cursors
        )
        pending = self.run.cursor(PENDING_CHANGELOGS_CURSOR)
        self.pending_changelogs = set(json.loads(pending)) if pending else set()
        pending_worklogs = self.run.cursor(PENDING_WORKLOGS_CURSOR)
        self.pending_worklogs = (
            {int(k): int(v) for k, v in json.loads(pending_worklogs).items()} if pending_worklogs else {}
        )
        return self.run

    # -- reads -----------------------------------------------------------------------------------------------------
    def view_of(self, kind: str) -> set[str]:
        """Ids of the entities of a kind in this principal's view so far (the last load's, and this run's)."""
        rows = self.conn.execute(
            "SELECT entity_id FROM _jira_lab_sightings WHERE site_id = ? AND principal_id = ? AND entity_kind = ? "
            "AND last_seen_load >= ?",
            [self.site_id, self.me, kind, self.current.base],
        ).fetchall()
        return {str(r[0]) for r in rows}

    def known_projects(self) -> dict[int, str]:
        rows = self.conn.execute("SELECT id, key FROM projects WHERE site_id = ?", [self.site_id]).fetchall()
        return {int(i): str(k) for i, k in rows}

    def seen_before(self, kind: str, ids: Iterable[int | str]) -> set[str]:
        """Which of these entities this principal's view held before this run (or already holds in it)."""
        return self._sighted_since(kind, ids, self.current.base)

    def fetched_in_run(self, issue_ids: Iterable[int]) -> set[int]:
        """Issues this run already read whole (their totals, comments and worklogs were committed)."""
        wanted = list(issue_ids)
        if not wanted:
            return set()
        rows = self.conn.execute(
            "SELECT issue_id FROM issue_totals WHERE site_id = ? AND principal_id = ? AND load_id >= ? "
            "AND issue_id IN (SELECT unnest(?))",
            [self.site_id, self.me, self.current.run_start, wanted],
        ).fetchall()
        return {int(r[0]) for r in rows}

    def sighted_in_run(self, kind: str, ids: Iterable[int]) -> set[int]:
        return {int(i) for i in self._sighted_since(kind, ids, self.current.run_start)}

    def _sighted_since(self, kind: str, ids: Iterable[int | str], load_id: int) -> set[str]:
        """Which of these entities this principal saw in ``load_id`` or a later load (ids as sightings hold them)."""
        wanted = [str(i) for i in ids]
        if not wanted:
            return set()
        rows = self.conn.execute(
            "SELECT entity_id FROM _jira_lab_sightings WHERE site_id = ? AND principal_id = ? AND entity_kind = ? "
            "AND last_seen_load >= ? AND entity_id IN (SELECT unnest(?))",
            [self.site_id, self.me, kind, load_id, wanted],
        ).fetchall()
        return {str(r[0]) for r in rows}

    def issue_projects(self, issue_ids: Iterable[int]) -> dict[int, int]:
        wanted = list(issue_ids)
        if not wanted:
            return {}
        rows = self.conn.execute(
            "SELECT id, project_id FROM issues WHERE site_id = ? AND id IN (SELECT unnest(?))", [self.site_id, wanted]
        ).fetchall()
        return {int(i): int(p) for i, p in rows if p is not None}

    def issues_of_items(self, comment_ids: Iterable[int], worklog_ids: Iterable[int]) -> set[int]:
        """The issues these comments and worklogs are on (live issues only)."""
        found: set[int] = set()
        for table, ids in (("comments", list(comment_ids)), ("worklogs", list(worklog_ids))):
            if ids:
                rows = self.conn.execute(
                    f"SELECT DISTINCT t.issue_id FROM {table} t JOIN issues i ON i.site_id = t.site_id "
                    "AND i.id = t.issue_id AND i.deleted_at IS NULL WHERE t.site_id = ? AND t.id IN (SELECT unnest(?))",
                    [self.site_id, ids],
                ).fetchall()
                found |= {int(r[0]) for r in rows}
        return found

    def group_ids_by_name(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT name, group_id FROM groups WHERE site_id = ?", [self.site_id]).fetchall()
        return {str(n): str(g) for n, g in rows if n is not None}

    def worklog_totals_in_run(self) -> int:
        """Worklogs Jira reported on the issues this run read, to this principal."""
        rows = self.conn.execute(
            "SELECT coalesce(sum(worklog_total), 0) FROM issue_totals WHERE site_id = ? AND principal_id = ? "
            "AND load_id >= ?",
            [self.site_id, self.me, self.current.run_start],
        ).fetchall()
        return int(rows[0][0])

    def restricted_in_view(self, table: str, kind: str) -> list[int]:
        """Ids of restricted comments or worklogs in this principal's current view."""
        rows = self.conn.execute(
            f"SELECT t.id FROM {schema.quote(table)} t JOIN _jira_lab_sightings s ON s.site_id = t.site_id "
            "AND s.entity_kind = ? AND s.entity_id = CAST(t.id AS VARCHAR) WHERE t.site_id = ? AND s.principal_id = ? "
            "AND s.last_seen_load >= ? AND t.visibility_type IS NOT NULL AND t.deleted_at IS NULL ORDER BY t.id",
            [kind, self.site_id, self.me, self.current.base],
        ).fetchall()
        return [int(r[0]) for r in rows]

    def own_access(self, groups_known: bool, roles_known: bool) -> dict[str, Any]:
        """The principal's own groups and project roles as loaded: what restricted items it may see depends on."""
        # the memberships stored are the latest read, whether or not this load re-read them
        member_of = sorted(
            str(r[0])
            for r in self.conn.execute(
                "SELECT DISTINCT group_id FROM group_members WHERE site_id = ? AND account_id = ?",
                [self.site_id, self.me],
            ).fetchall()
        )
        groups: list[str] | None = member_of if groups_known else None
        roles: list[list[int]] | None = None
        if roles_known:
            roles = sorted(
                [int(p), int(r)]
                for p, r in self.conn.execute(
                    "SELECT DISTINCT project_id, role_id FROM role_actors WHERE site_id = ? AND ((actor_type = 'user' "
                    "AND actor_id = ?) OR (actor_type = 'group' AND actor_id IN (SELECT unnest(?))))",
                    [self.site_id, self.me, member_of],
                ).fetchall()
            )
        return {"groups": groups, "roles": roles}

    # -- writes ----------------------------------------------------------------------------------------------------
    def _upsert(self, table: str, frame: pl.DataFrame) -> int:
        if frame.is_empty():
            return 0
        written = store.upsert(self.conn, table, frame)
        self.rows[table] += written
        return written

    def _replace(self, table: str, frame: pl.DataFrame, scope: pl.DataFrame) -> int:
        if scope.is_empty():
            return 0
        written = store.replace_rows(self.conn, table, frame, scope=scope)
        self.rows[table] += written
        return written

    def _sight(self, kind: str, ids: Sequence[Any] | pl.Series) -> None:
        if len(ids):
            store.record_sightings(
                self.conn,
                site_id=self.site_id,
                principal_id=self.me,
                load_id=self.current.load_id,
                entity_kind=kind,
                entity_ids=ids,
            )

    def _cursor(self, resource: str, value: str) -> None:
        store.set_cursor(
            self.conn,
            site_id=self.site_id,
            principal_id=self.me,
            resource=resource,
            value=value,
            load_id=self.current.load_id,
        )

    def write(self, batch: Write) -> int:
        """Commit one batch; returns the rows written."""
        before = sum(self.rows.values())
        with store.transaction(self.conn):
            for table, frame in batch.upserts:
                self._upsert(table, frame)
            for table, frame, scope in batch.replaces:
                self._replace(table, frame, scope)
            for kind, ids in batch.sightings:
                self._sight(kind, ids)
            for resource, value in batch.cursors.items():
                self._cursor(resource, value)
            for resource in batch.readable:
                store.record_access(self.conn, load_id=self.current.load_id, resource=resource, outcome="ok")
            for refusal in batch.refusals:
                store.record_access(self.conn, load_id=self.current.load_id, **refusal.access_fields())
        return sum(self.rows.values()) - before

    def write_issue_pages(self, pages: Sequence[IssuePage], *, full: bool) -> None:
        """Commit pages of issues (in walk order) with everything they hold, in one transaction; queue the changelogs
        they need.

        One polars pass and one statement script (:func:`jira_lab.store.upsert_all`): this thread shares the
        interpreter lock with the loader's busiest threads, and each hand-back may cost it a wait.
        """
        every = [page.frames for page in pages]
        issue_ids = [i for f in every for i in f.issues["id"].to_list()]
        updated = [u for f in every for u in f.issues["updated"].to_list()]
        comments = pl.concat(
            [*(f.comments.lazy() for f in every), *(page.extra_comments.lazy() for page in pages)],
            how="vertical_relaxed",
        )
        worklogs = pl.concat(
            [*(f.worklogs.lazy() for f in every), *(page.extra_worklogs.lazy() for page in pages)],
            how="vertical_relaxed",
        )
        scope = pl.LazyFrame(
            {"site_id": [self.site_id] * len(issue_ids), "issue_id": issue_ids},
            schema={"site_id": pl.String, "issue_id": pl.Int64},
        )
        cursors: dict[str, str] = {}
        for page in pages:
            cursors.update(page.cursors)  # a later page of the same walk is further on
        with store.transaction(self.conn):
            needing = self._changelogs_needed(issue_ids, updated, full=full)
            if needing:
                self.pending_changelogs.update(needing)
                cursors[PENDING_CHANGELOGS_CURSOR] = json.dumps(sorted(self.pending_changelogs))
            deferred = {k: v for page in pages for k, v in page.deferred_worklogs.items()}
            if deferred:
                self.pending_worklogs.update(deferred)
                cursors[PENDING_WORKLOGS_CURSOR] = json.dumps({str(k): v for k, v in self.pending_worklogs.items()})
            sightings = pl.concat(
                [
                    pl.LazyFrame(
                        {"entity_kind": ["issue"] * len(issue_ids), "entity_id": [str(i) for i in issue_ids]},
                        schema={"entity_kind": pl.String, "entity_id": pl.String},
                    ),
                    comments.select(
                        pl.lit("comment").alias("entity_kind"), pl.col("id").cast(pl.String).alias("entity_id")
                    ),
                    worklogs.select(
                        pl.lit("worklog").alias("entity_kind"), pl.col("id").cast(pl.String).alias("entity_id")
                    ),
                ]
            )
            written = store.upsert_all(
                self.conn,
                [
                    ("issues", pl.concat([f.issues.lazy() for f in every], how="vertical_relaxed")),
                    ("comments", comments),
                    ("worklogs", worklogs),
                    ("issue_totals", pl.concat([f.issue_totals.lazy() for f in every], how="vertical_relaxed")),
                    (
                        "user_details",
                        pl.concat(
                            [*(f.user_details.lazy() for f in every), *(page.extra_users.lazy() for page in pages)]
                        ),
                    ),
                    (
                        "issue_field_values",
                        pl.concat([f.issue_field_values.lazy() for f in every], how="vertical_relaxed"),
                    ),
                ],
                scopes={"issue_field_values": scope},
                then=[self._sightings_statement(sightings), self._cursors_statement(cursors)],
            )
            self.rows.update(written)

    def _sightings_statement(self, sightings: pl.LazyFrame) -> store.Statement:
        """Sightings (``entity_kind``, ``entity_id`` as text) in this load, as one merge for the script."""
        return store.sightings_statement(
            sightings, site_id=self.site_id, principal_id=self.me, load_id=self.current.load_id
        )

    def _cursors_statement(self, cursors: Mapping[str, str]) -> store.Statement:
        """Cursors to set in this load, as one merge for the script."""
        return store.cursors_statement(
            cursors, site_id=self.site_id, principal_id=self.me, load_id=self.current.load_id
        )

    def _changelogs_needed(self, ids: list[int], updated: list[datetime], *, full: bool) -> list[int]:
        """Issues of a page whose changelog must be read: new to this principal or changed (every one on a full run,
        once)."""
        run = self.current
        window = run.run_start if full else run.base
        rows = self.conn.execute(
            "SELECT i.id, i.updated, s.last_seen_load FROM issues i LEFT JOIN _jira_lab_sightings s "
            "ON s.site_id = i.site_id AND s.principal_id = ? AND s.entity_kind = 'issue' "
            "AND s.entity_id = CAST(i.id AS VARCHAR) "
            "WHERE i.site_id = ? AND i.id IN (SELECT unnest(?))",
            [self.me, self.site_id, ids],
        ).fetchall()
        stored = {int(i): (stored_updated, seen) for i, stored_updated, seen in rows}
        needing = []
        for issue_id, moment in zip(ids, updated, strict=True):
            old = stored.get(int(issue_id))
            if old is None or old[1] is None or old[1] < window or (not full and old[0] != moment):
                needing.append(int(issue_id))
        return needing

    def take_changelogs(self, count: int) -> list[int]:
        free = sorted(self.pending_changelogs - self.taken_changelogs)[:count]
        self.taken_changelogs.update(free)
        return free

    def write_changelogs(self, issue_ids: list[int], frames: changelogs.ChangelogFrames) -> int:
        """Commit some issues' changelogs, with their sightings, and take the issues off the pending list; in one
        statement script, as :meth:`write_issue_pages` does."""
        pending = self.pending_changelogs - set(issue_ids)
        sightings = frames.histories.lazy().select(
            pl.lit("changelog_history").alias("entity_kind"), pl.col("id").cast(pl.String).alias("entity_id")
        )
        with store.transaction(self.conn):
            written = store.upsert_all(
                self.conn,
                [
                    ("changelog_histories", frames.histories),
                    ("changelog_items", frames.items),
                    ("user_details", frames.user_details),
                ],
                then=[
                    self._sightings_statement(sightings),
                    self._cursors_statement({PENDING_CHANGELOGS_CURSOR: json.dumps(sorted(pending))}),
                ],
            )
        self.rows.update(written)
        self.pending_changelogs = pending
        self.taken_changelogs.difference_update(issue_ids)
        return frames.histories.height

    def write_worklogs(
        self,
        frame: pl.DataFrame,
        authors: pl.DataFrame,
        *,
        done_issues: Iterable[int] = (),
        cursors: Mapping[str, str] | None = None,
    ) -> int:
        done = list(done_issues)
        with store.transaction(self.conn):
            self._upsert("worklogs", frame)
            self._upsert("user_details", authors)
            self._sight("worklog", frame["id"])
            if done:
                for issue_id in done:
                    self.pending_worklogs.pop(issue_id, None)
                self._cursor(PENDING_WORKLOGS_CURSOR, json.dumps({str(k): v for k, v in self.pending_worklogs.items()}))
            for resource, value in (cursors or {}).items():
                self._cursor(resource, value)
        return frame.height

    def clear_pending_worklogs(self, cursors: Mapping[str, str]) -> None:
        with store.transaction(self.conn):
            self.pending_worklogs.clear()
            self._cursor(PENDING_WORKLOGS_CURSOR, "{}")
            for resource, value in cursors.items():
                self._cursor(resource, value)

    def mark_deleted_worklogs(self, tombstones: pl.DataFrame, cursor: str) -> set[int]:
        """Mark stored worklogs ``worklog/deleted`` listed; returns the ids marked."""
        with store.transaction(self.conn):
            known = self.live_worklogs(tombstones["id"].to_list())
            marked = tombstones.filter(pl.col("id").is_in(list(known)))
            if not marked.is_empty():
                store.upsert(self.conn, "worklogs", marked)
            self._cursor(WORKLOGS_DELETED_CURSOR, cursor)
        return known

    def live_worklogs(self, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        rows = self.conn.execute(
            "SELECT id FROM worklogs WHERE site_id = ? AND id IN (SELECT unnest(?)) "
            "AND deleted_reason IS DISTINCT FROM ?",
            [self.site_id, ids, schema.DELETED],
        ).fetchall()
        return {int(r[0]) for r in rows}

    def record_sweep(self, issue_ids: list[int]) -> tuple[set[int], set[int]]:
        """Record the sweep's sightings; returns (ids new to this principal's view, ids already read in this run)."""
        with store.transaction(self.conn):
            before = self.seen_before("issue", issue_ids)
            read = self.fetched_in_run(issue_ids)
            self._sight("issue", issue_ids)
        new = {i for i in issue_ids if str(i) not in before}
        return new, read

    # -- finishing -------------------------------------------------------------------------------------------------
    def finish(self, finale: Finale) -> dict[str, int]:
        """The last transaction: marks, the view carried forward, cursors, the load log."""
        now = datetime.now(UTC)
        with store.transaction(self.conn):
            missing = self._missing(finale)
            marked = self._mark(missing, finale, now)
            gone_issues = sorted(int(i) for i in missing.get("issue", set()))
            if gone_issues:
                # what Jira reports to this principal about an issue it no longer sees: nothing
                self.conn.execute(
                    "DELETE FROM issue_totals WHERE site_id = ? AND principal_id = ? "
                    "AND issue_id IN (SELECT unnest(?))",
                    [self.site_id, self.me, gone_issues],
                ).fetchall()
            self._carry_forward(missing)
            for resource, value in finale.cursors.items():
                self._cursor(resource, value)
            self._cursor(PENDING_CHANGELOGS_CURSOR, "[]")
            self._cursor(PENDING_WORKLOGS_CURSOR, "{}")
            self._close_log("succeeded", finale.stats, {**finale.figures, "marked": marked})
        return marked

    def fail(self, error: str, stats: RequestStats, figures: dict[str, Any]) -> None:
        with store.transaction(self.conn):
            self._close_log("failed", stats, figures, error=error)

    def _close_log(
        self, status: str, stats: RequestStats, figures: dict[str, Any], *, error: str | None = None
    ) -> None:
        """End this run's load log entry: its figures (kept in its options), status, rows and requests."""
        load_id = self.current.load_id
        stored = self.conn.execute("SELECT options FROM _jira_lab_loads WHERE load_id = ?", [load_id]).fetchall()
        options = json.loads(stored[0][0] or "{}")
        options["figures"] = figures
        self.conn.execute("UPDATE _jira_lab_loads SET options = ? WHERE load_id = ?", [json.dumps(options), load_id])
        store.finish_load(
            self.conn,
            load_id,
            status=status,
            rows_per_table=dict(self.rows),
            requests=stats.requests,
            retries=stats.retries,
            rate_limited=sum(stats.throttled.values()),
            error=error,
        )

    def _previous_view(
        self, kind: str, table: str, condition: str = "TRUE", params: Sequence[Any] = ()
    ) -> pl.DataFrame:
        """Entities of this principal's previous view not seen in this run, joined to their rows (alias ``t``)."""
        run = self.current
        if run.previous_ok is None:
            return pl.DataFrame(schema={"entity_id": pl.String})
        declared = schema.table(table)
        key = next(name for name in declared.primary_key if name != "site_id")
        return store.read_frame(
            self.conn,
            f"SELECT s.entity_id FROM _jira_lab_sightings s JOIN {schema.quote(table)} t ON t.site_id = s.site_id "
            f"AND CAST(t.{schema.quote(key)} AS VARCHAR) = s.entity_id WHERE s.site_id = ? AND s.principal_id = ? "
            f"AND s.entity_kind = ? AND s.last_seen_load >= ? AND s.last_seen_load < ? AND ({condition})",
            [self.site_id, self.me, kind, run.previous_ok, run.run_start, *params],
        )

    def _missing(self, finale: Finale) -> dict[str, set[str]]:
        """Entities this principal saw before and, as far as this run can tell, sees no more."""
        run = self.current
        missing: dict[str, set[str]] = {}
        if finale.issues_complete:
            condition, params = "TRUE", list[Any]()
            if finale.issue_scope is not None:
                condition, params = "t.project_id IN (SELECT unnest(?))", [finale.issue_scope]
            if finale.since is not None:
                condition += " AND t.updated >= ?"
                params.append(finale.since)
            missing["issue"] = set(self._previous_view("issue", "issues", condition, params)["entity_id"].to_list())
        gone_issues = [int(i) for i in missing.get("issue", set())]
        reread = (
            "t.issue_id IN (SELECT unnest(?)) OR t.issue_id IN (SELECT issue_id FROM issue_totals WHERE site_id = ? "
            "AND principal_id = ? AND load_id >= ?)"
        )
        reread_params = [gone_issues, self.site_id, self.me, run.run_start]
        for kind, table in (("comment", "comments"), ("worklog", "worklogs")):
            found = set(self._previous_view(kind, table, reread, reread_params)["entity_id"].to_list())
            found |= {str(i) for i in finale.unseen_restricted.get(kind, set())}
            missing[kind] = found
        missing["worklog"] |= {str(i) for i in finale.deleted_worklog_ids}
        if gone_issues:
            histories = self._previous_view(
                "changelog_history", "changelog_histories", "t.issue_id IN (SELECT unnest(?))", [gone_issues]
            )
            missing["changelog_history"] = set(histories["entity_id"].to_list())
        for kind in finale.refreshed_kinds:
            declared = schema.ENTITY_TABLES[kind]
            missing[kind] = set(self._previous_view(kind, declared.name)["entity_id"].to_list())
        return {kind: ids for kind, ids in missing.items() if ids}

    def _still_seen_by_others(self, kind: str, ids: set[str]) -> set[str]:
        """Which of these another principal's latest successful load still saw."""
        if not ids:
            return set()
        rows = self.conn.execute(
            "WITH latest AS (SELECT principal_id, max(load_id) AS load_id FROM _jira_lab_loads WHERE site_id = ? "
            "AND status = 'succeeded' AND principal_id <> ? GROUP BY principal_id) "
            "SELECT DISTINCT s.entity_id FROM _jira_lab_sightings s JOIN latest l ON l.principal_id = s.principal_id "
            "AND s.last_seen_load = l.load_id WHERE s.site_id = ? AND s.entity_kind = ? "
            "AND s.entity_id IN (SELECT unnest(?))",
            [self.site_id, self.me, self.site_id, kind, sorted(ids)],
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _mark(self, missing: dict[str, set[str]], finale: Finale, now: datetime) -> dict[str, int]:
        lost = no_longer_visible(self.me)
        reasons: dict[str, dict[str, str]] = {}
        issue_reason: dict[str, str] = {}
        if missing.get("issue"):
            ids = missing["issue"]
            others = self._still_seen_by_others("issue", ids)
            rows = self.conn.execute(
                "SELECT CAST(id AS VARCHAR), project_id, security_level_id FROM issues WHERE site_id = ? "
                "AND CAST(id AS VARCHAR) IN (SELECT unnest(?))",
                [self.site_id, sorted(ids)],
            ).fetchall()
            for issue_id, project_id, level in rows:
                hidden = issue_id in others or level is not None or project_id not in finale.visible_project_ids
                issue_reason[str(issue_id)] = lost if hidden else schema.DELETED
            reasons["issue"] = issue_reason
        for kind, table in (("comment", "comments"), ("worklog", "worklogs")):
            ids = missing.get(kind, set())
            if not ids:
                continue
            others = self._still_seen_by_others(kind, ids)
            rows = self.conn.execute(
                "SELECT CAST(t.id AS VARCHAR), CAST(t.issue_id AS VARCHAR), t.visibility_type, "
                f"t.visibility_identifier, i.project_id, r.id FROM {schema.quote(table)} t "
                "LEFT JOIN issues i ON i.site_id = t.site_id AND i.id = t.issue_id "
                "LEFT JOIN project_roles r ON r.site_id = t.site_id AND t.visibility_type = 'role' "
                "AND r.name = t.visibility_identifier "
                "WHERE t.site_id = ? AND CAST(t.id AS VARCHAR) IN (SELECT unnest(?))",
                [self.site_id, sorted(ids)],
            ).fetchall()
            chosen: dict[str, str] = {}
            for item_id, issue_id, visibility_type, identifier, project_id, role_id in rows:
                if kind == "worklog" and int(item_id) in finale.deleted_worklog_ids:
                    continue  # marked already, as Jira reported
                if issue_id in issue_reason:
                    chosen[item_id] = issue_reason[issue_id]
                elif item_id in others:
                    chosen[item_id] = lost
                elif visibility_type is None:
                    chosen[item_id] = schema.DELETED
                else:
                    held = _holds_restriction(finale.own_access, visibility_type, identifier, project_id, role_id)
                    chosen[item_id] = schema.DELETED if held else lost
            reasons[kind] = chosen
        if missing.get("changelog_history"):
            rows = self.conn.execute(
                "SELECT CAST(id AS VARCHAR), CAST(issue_id AS VARCHAR) FROM changelog_histories WHERE site_id = ? "
                "AND CAST(id AS VARCHAR) IN (SELECT unnest(?))",
                [self.site_id, sorted(missing["changelog_history"])],
            ).fetchall()
            reasons["changelog_history"] = {h: issue_reason.get(i, lost) for h, i in rows}
        for kind in finale.refreshed_kinds:
            ids = missing.get(kind, set())
            if not ids:
                continue
            others = self._still_seen_by_others(kind, ids)
            default = lost if kind in _VIEW_LIMITED_KINDS else schema.DELETED
            reasons[kind] = {i: (lost if i in others else default) for i in ids}
        marked: dict[str, int] = {}
        for kind, chosen in reasons.items():
            declared = schema.ENTITY_TABLES[kind]
            by_reason: dict[str, list[str]] = {}
            for entity_id, reason in chosen.items():
                by_reason.setdefault(reason, []).append(entity_id)
            for reason, entity_ids in by_reason.items():
                count = store.mark_deleted(
                    self.conn, declared.name, _ids_frame(declared, self.site_id, entity_ids), reason=reason, at=now
                )
                if count:
                    marked[declared.name] = marked.get(declared.name, 0) + count
        return marked

    def _carry_forward(self, missing: dict[str, set[str]]) -> None:
        """Everything of the view not found missing is still seen: its sighting moves to this load."""
        run = self.current
        gone = pl.DataFrame(
            {
                "entity_kind": [kind for kind, ids in missing.items() for _ in ids],
                "entity_id": [i for ids in missing.values() for i in ids],
            },
            schema={"entity_kind": pl.String, "entity_id": pl.String},
        )
        with store.registered(self.conn, gone) as name:
            self.conn.execute(
                f"UPDATE _jira_lab_sightings AS s SET last_seen_load = ? WHERE s.site_id = ? AND s.principal_id = ? "
                f"AND s.last_seen_load >= ? AND s.last_seen_load < ? AND NOT EXISTS (SELECT 1 FROM {name} m "
                "WHERE m.entity_kind = s.entity_kind AND m.entity_id = s.entity_id)",
                [run.load_id, self.site_id, self.me, run.base, run.load_id],
            ).fetchall()
