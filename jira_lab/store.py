"""The DuckDB file: connect, create and migrate the declared schema, bulk upserts, cursors, load log, sightings.

Writes go through Arrow: a batch is a polars frame (or any Arrow stream), handed to DuckDB through the Arrow
PyCapsule interface (zero copy, no pyarrow needed) and merged with one ``INSERT ... ON CONFLICT DO UPDATE`` on the
table's primary key. Never row by row: DuckDB's ``executemany`` is orders of magnitude slower
(``bench/store_upsert.py`` measures both).

Everything a load writes can go into one transaction (:func:`transaction`): entity rows, sightings and the cursor
are committed together or not at all, so a load killed at any point (even ``kill -9``) leaves the file as the last
commit left it, and re-running it resumes from the last committed cursor.

A typical load step::

    conn = connect("jira.duckdb")
    ensure_schema(conn)
    load_id = start_load(conn, site_id=site, principal_id=me)
    with transaction(conn):
        upsert(conn, "comments", comments_frame)
        record_sightings(conn, site_id=site, principal_id=me, load_id=load_id, entity_kind="comment",
                         entity_ids=comments_frame["id"])
        set_cursor(conn, site_id=site, principal_id=me, resource="comments", value=watermark, load_id=load_id)
    finish_load(conn, load_id, status="succeeded", rows_per_table={"comments": comments_frame.height})

A DuckDB connection is not thread-safe: write from one thread (fetching can be concurrent).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import polars as pl

from jira_lab import schema
from jira_lab.errors import DatabaseLockedError, SchemaError
from jira_lab.schema import Table, quote

Connection = duckdb.DuckDBPyConnection

#: The schema version a file created from today's declarations is stamped with; migrations go beyond it.
BASELINE_VERSION = 1
LOAD_STATUSES = ("running", "succeeded", "failed", "interrupted")
AUTH_KINDS = ("oauth", "basic")
ACCESS_OUTCOMES = ("ok", "forbidden", "unauthorized", "missing_scope", "not_found", "error")

_LOCK_HOLDER = re.compile(r"lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_batch_names = itertools.count(1)
# connection -> depth of the transaction() blocks open on it; DuckDB cannot tell, and a second BEGIN aborts the first
_open_transactions: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, int] = weakref.WeakKeyDictionary()


class ArrowStreamExportable(Protocol):
    """Anything exporting an Arrow stream through the PyCapsule interface (pyarrow tables, polars frames ...)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


Frame = pl.DataFrame | pl.LazyFrame | ArrowStreamExportable


# -- connecting --------------------------------------------------------------------------------------------------
def connect(path: str | os.PathLike[str], *, read_only: bool = False) -> Connection:
    """Open (or create) the DuckDB file at ``path`` (``":memory:"`` for a throwaway database).

    Times are read back in UTC whatever the machine's time zone. Call :func:`ensure_schema` before writing.

    Args:
        path: the database file.
        read_only: open without the right to write (several read-only processes may share a file, but not with a
            writer).

    Raises:
        DatabaseLockedError: another process has the file open; the message says which and what to do.
    """
    target = os.fspath(path)
    try:
        conn = duckdb.connect(target, read_only=read_only)
    except duckdb.IOException as error:
        if "could not set lock" in str(error).lower():
            raise _locked(target, str(error)) from error
        raise
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def _locked(path: str, detail: str) -> DatabaseLockedError:
    holder = _LOCK_HOLDER.search(detail)
    pid = int(holder["pid"]) if holder else None
    who = f"process {pid} ({holder['program']})" if holder else "another process"
    return DatabaseLockedError(
        path,
        pid,
        f"{path} is open in {who}, and DuckDB lets only one process use a database file while it writes. "
        "It is usually another `jira-lab load` still running, or a notebook kernel holding a connection: "
        "wait for that load to finish, or close the connection there (`conn.close()`, or restart that kernel), "
        "then try again. To work meanwhile, load into another file.",
    )


# -- transactions ------------------------------------------------------------------------------------------------
@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """Run the block in one transaction: committed at the end, rolled back if the block raises.

    Inside another :func:`transaction` on the same connection the block joins the outer one (DuckDB has no
    savepoints): nothing is committed until the outermost block ends, and an exception that leaves any block rolls
    back everything. Open transactions with this function, not a bare ``BEGIN``, so that nesting is known.
    """
    depth = _open_transactions.get(conn, 0)
    if depth:
        _open_transactions[conn] = depth + 1
        try:
            yield conn
        finally:
            _open_transactions[conn] = depth
        return
    try:
        conn.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException as error:
        raise ValueError(
            "a transaction was opened on this connection with a bare BEGIN; use jira_lab.store.transaction()"
        ) from error
    _open_transactions[conn] = 1
    try:
        yield conn
    except BaseException:
        # the block's exception is the one worth seeing; a failed rollback (a closed connection) would hide it
        with suppress(duckdb.Error):
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise
    finally:
        del _open_transactions[conn]


def _run(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    # fetch every result: duckdb refuses other work on a connection while a result is left unread
    return conn.execute(sql, params).fetchall()


def _now(now: datetime | None) -> datetime:
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware (e.g. datetime.now(UTC))")
    return moment


# -- schema and migrations ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Migration:
    """One step from schema version ``version - 1`` to ``version``, applied inside :func:`ensure_schema`'s
    transaction to files created by an older jira_lab (new files are created from the declarations directly).

    Change ``jira_lab/schema.py`` and add a migration bringing old files to the same shape, e.g.
    ``ALTER TABLE comments ADD COLUMN IF NOT EXISTS ...``; write it so that it also works on a file where a later
    declaration already did part of the job (``IF NOT EXISTS``).
    """

    version: int
    description: str
    apply: Callable[[Connection], object]


#: Ordered steps beyond :data:`BASELINE_VERSION`.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        2,
        "user_details: author objects stored once per account, no longer on every comment, worklog and history",
        lambda conn: conn.execute(schema.table("user_details").ddl()),
    ),
)


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The version a file has once ``migrations`` are applied."""
    return max([BASELINE_VERSION, *(migration.version for migration in migrations)])


def schema_version(conn: Connection) -> int | None:
    """The file's schema version, or ``None`` when jira_lab never wrote to it."""
    if not _table_exists(conn, "_jira_lab_schema"):
        return None
    rows = _run(conn, "SELECT max(version) FROM _jira_lab_schema")
    return None if rows[0][0] is None else int(rows[0][0])


def ensure_schema(
    conn: Connection, *, migrations: Sequence[Migration] = MIGRATIONS, now: datetime | None = None
) -> int:
    """Create every declared table, or migrate an older file; safe to call on every run.

    A new file is created from the declarations and stamped with :func:`latest_version`; a file at an older
    version gets the missing migrations, in order, each recorded in ``_jira_lab_schema``. All of it happens in one
    transaction. The file is then checked against the declarations.

    Args:
        conn: from :func:`connect`.
        migrations: ordered steps (tests pass their own).
        now: the time recorded for applied versions.

    Returns:
        The file's schema version.

    Raises:
        SchemaError: the file is newer than this jira_lab, or its tables differ from the declared ones.
    """
    _check_migrations(migrations)
    latest = latest_version(migrations)
    current = schema_version(conn)
    if current == latest and not schema_differences(conn):
        return latest  # nothing to write: works on read-only connections too
    if current is not None and current > latest:
        raise SchemaError(
            f"this database has schema version {current}, written by a newer jira_lab (this one knows up to "
            f"{latest}): upgrade jira_lab to use it"
        )
    applied_at = _now(now)
    with transaction(conn):
        if current is None:
            for statement in schema.ddl():
                conn.execute(statement)
            _record_version(conn, latest, "created from the declared schema", applied_at)
        else:
            for migration in migrations:
                if migration.version > current:
                    migration.apply(conn)
                    _record_version(conn, migration.version, migration.description, applied_at)
        differences = schema_differences(conn)
        if differences:
            raise SchemaError(
                "the database's tables differ from jira_lab/schema.py (a schema change needs a migration in "
                "jira_lab/store.py): " + "; ".join(differences)
            )
    return latest


def _check_migrations(migrations: Sequence[Migration]) -> None:
    versions = [migration.version for migration in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] <= BASELINE_VERSION):
        raise ValueError(f"migration versions must be increasing and above {BASELINE_VERSION}: {versions}")


def _record_version(conn: Connection, version: int, description: str, applied_at: datetime) -> None:
    _run(conn, "INSERT INTO _jira_lab_schema VALUES (?, ?, ?)", [version, applied_at, description])


def _table_exists(conn: Connection, name: str) -> bool:
    rows = _run(
        conn,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
        [name],
    )
    return bool(rows[0][0])


def schema_differences(conn: Connection) -> list[str]:
    """How the file's tables differ from the declarations: missing tables and columns, other types, other keys.

    Tables and columns the declarations do not know are not differences (a user may add their own).
    """
    found: dict[str, dict[str, str]] = {}
    for table_name, column_name, data_type in _run(
        conn,
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main'",
    ):
        found.setdefault(table_name, {})[column_name] = data_type
    keys = {
        name: tuple(columns)
        for name, columns in _run(
            conn,
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND schema_name = 'main'",
        )
    }
    differences: list[str] = []
    for declared in schema.TABLES.values():
        columns = found.get(declared.name)
        if columns is None:
            differences.append(f"table {declared.name} is missing")
            continue
        for column in declared.columns:
            actual = columns.get(column.name)
            if actual is None:
                differences.append(f"{declared.name}.{column.name} is missing")
            elif actual != column.type.sql:
                differences.append(f"{declared.name}.{column.name} is {actual}, declared {column.type.sql}")
        if keys.get(declared.name) != declared.primary_key:
            differences.append(
                f"{declared.name} has primary key {keys.get(declared.name)}, declared {declared.primary_key}"
            )
    return differences


# -- bulk writes -------------------------------------------------------------------------------------------------
class _ArrowStream:
    """A frame seen only through its Arrow PyCapsule stream, so DuckDB scans it without pyarrow."""

    __slots__ = ("_frame",)

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._frame.__arrow_c_stream__(requested_schema)


@contextmanager
def registered(conn: Connection, frame: pl.DataFrame) -> Iterator[str]:
    """``frame`` as a view of ``conn`` under a fresh name (yielded) until the block ends."""
    name = f"_jira_lab_batch_{next(_batch_names)}"
    conn.register(name, _ArrowStream(frame))
    try:
        yield name
    finally:
        # in a transaction the block aborted, duckdb refuses this until the rollback, which drops the view anyway
        with suppress(duckdb.TransactionException):
            conn.unregister(name)


def _as_polars(frame: Frame) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if hasattr(frame, "__arrow_c_stream__"):
        return pl.DataFrame(frame)
    raise TypeError(f"expected a polars frame or an Arrow stream, got {type(frame).__name__}")


def conform(table: str | Table, frame: Frame, *, require_key: bool = True) -> pl.DataFrame:
    """``frame`` checked and cast to the declared dtypes of ``table``, ready to write.

    Columns must be declared (a subset is fine); the primary key must be present and non-null; times must be
    timezone-aware (they are stored in UTC).

    Raises:
        ValueError: an undeclared column, a missing or null key, a naive time, or a value the column's type cannot
            hold.
    """
    declared = table if isinstance(table, Table) else schema.table(table)
    batch = _as_polars(frame)
    for name, target in _casts(declared, batch.schema, require_key=require_key).items():
        try:
            batch = batch.with_columns(pl.col(name).cast(target, strict=True))
        except pl.exceptions.PolarsError as error:
            raise ValueError(f"{declared.name}.{name} cannot hold these values as {target}: {error}") from None
    key = [name for name in declared.primary_key if name in batch.columns]
    null_keys = batch.select(pl.any_horizontal(pl.col(key).is_null()).sum()).item() if key else 0
    if null_keys:
        raise ValueError(f"{null_keys} rows for {declared.name} have a null in the primary key {key}")
    return batch


def _casts(declared: Table, columns: pl.Schema, *, require_key: bool) -> dict[str, pl.DataType]:
    """The casts that bring ``columns`` to the declared dtypes, after checking names, key and time zones."""
    unknown = [name for name in columns if not declared.has_column(name)]
    if unknown:
        raise ValueError(f"{declared.name} has no columns {unknown}; its columns are {list(declared.column_names)}")
    missing_key = [name for name in declared.primary_key if name not in columns]
    if require_key and missing_key:
        raise ValueError(f"a batch for {declared.name} needs its primary key columns {missing_key}")
    casts: dict[str, pl.DataType] = {}
    for name, dtype in columns.items():
        target = declared.column(name).type.polars
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            raise ValueError(f"{declared.name}.{name} holds naive datetimes; give them a time zone (UTC)")
        if dtype != target:
            casts[name] = target
    return casts


def _merge_sql(declared: Table, columns: Sequence[str], source: str) -> str:
    """``INSERT ... ON CONFLICT DO UPDATE`` of ``columns`` from ``source`` (a quoted name); an upserted row is live
    again."""
    names = ", ".join(quote(name) for name in columns)
    assignments = [f"{quote(name)} = excluded.{quote(name)}" for name in columns if name not in declared.primary_key]
    if declared.tracks_deletion:
        assignments += [f"{quote(name)} = NULL" for name in ("deleted_at", "deleted_reason") if name not in columns]
    key = ", ".join(quote(name) for name in declared.primary_key)
    action = f"DO UPDATE SET {', '.join(assignments)}" if assignments else "DO NOTHING"
    return f"INSERT INTO {quote(declared.name)} ({names}) SELECT {names} FROM {source} ON CONFLICT ({key}) {action}"


def _delete_in_scope_sql(declared: Table, columns: Sequence[str], source: str) -> str:
    """``DELETE`` of the rows whose ``columns`` match a row of ``source`` (a quoted name)."""
    match = " AND ".join(f"{quote(declared.name)}.{quote(name)} = s.{quote(name)}" for name in columns)
    return f"DELETE FROM {quote(declared.name)} USING {source} AS s WHERE {match}"


def upsert(conn: Connection, table: str, frame: Frame) -> int:
    """Insert the rows of ``frame`` into ``table``, updating rows whose primary key exists, in one statement.

    The frame may hold any subset of the table's columns that includes the primary key: only those columns are
    written (others keep their value, or NULL for new rows). When several rows share a key the last one wins.
    Upserting an entity clears its ``deleted_at``/``deleted_reason`` unless the frame sets them: Jira just
    showed it. Runs in its own transaction, or in the caller's (:func:`transaction`).

    Args:
        conn: from :func:`connect`, after :func:`ensure_schema`.
        table: a table declared in :mod:`jira_lab.schema`.
        frame: a polars DataFrame/LazyFrame or any Arrow stream (e.g. a pyarrow Table).

    Returns:
        The number of rows written (after dropping duplicate keys).

    Raises:
        ValueError: see :func:`conform`.
    """
    declared = schema.table(table)
    batch = conform(declared, frame)
    if batch.is_empty():
        return 0
    batch = batch.unique(subset=list(declared.primary_key), keep="last", maintain_order=True)
    with registered(conn, batch) as source, transaction(conn):
        _run(conn, _merge_sql(declared, batch.columns, quote(source)))
    return batch.height


def replace_rows(conn: Connection, table: str, frame: Frame, *, scope: Frame) -> int:
    """Replace every row of ``table`` that matches a row of ``scope`` with the rows of ``frame``.

    For child rows loaded whole per parent: the members of some groups (``scope`` holds their ``site_id`` and
    ``group_id``), the grants of a scheme, the actors of a role in a project. A parent in ``scope`` with no row in
    ``frame`` ends with no rows (everyone left the group).

    Returns:
        The number of rows written.

    Raises:
        ValueError: ``scope`` has undeclared or null columns, or ``frame`` has rows outside ``scope``.
    """
    declared = schema.table(table)
    parents = conform(declared, scope, require_key=False).unique()
    if parents.width == 0:
        raise ValueError("scope needs at least one column")
    scope_nulls = parents.select(pl.any_horizontal(pl.all().is_null()).sum()).item()
    if scope_nulls:
        raise ValueError(f"scope for {declared.name} has {scope_nulls} rows with nulls")
    batch = conform(declared, frame)
    outside = batch.join(parents, on=parents.columns, how="anti", nulls_equal=False)
    if outside.height:
        raise ValueError(f"{outside.height} rows for {declared.name} are outside the scope {parents.columns}")
    batch = batch.unique(subset=list(declared.primary_key), keep="last", maintain_order=True)
    with registered(conn, parents) as scope_source, transaction(conn):
        _run(conn, _delete_in_scope_sql(declared, parents.columns, quote(scope_source)))
        if not batch.is_empty():
            with registered(conn, batch) as source:
                _run(conn, _merge_sql(declared, batch.columns, quote(source)))
    return batch.height


@dataclass(frozen=True, slots=True)
class Statement:
    """One more statement for :func:`upsert_all` to run: SQL that reads ``frame`` as ``{source}``."""

    sql: str
    frame: Frame


def upsert_all(
    conn: Connection,
    batches: Sequence[tuple[str, Frame]],
    *,
    scopes: Mapping[str, Frame] | None = None,
    then: Sequence[Statement] = (),
) -> dict[str, int]:
    """:func:`upsert` several tables' batches (or :func:`replace_rows`, for a table given a scope), then ``then``:
    with one polars pass over every frame and one DuckDB ``execute`` of every statement.

    For a thread that writes while other threads run Python, as a load's writer does: each polars operation and
    each statement hands the interpreter lock back, and getting it again may mean waiting for another thread's
    turn. A commit of a load's search pages handed it back some fifty times one statement at a time; now a few.

    Args:
        conn: from :func:`connect`, after :func:`ensure_schema`.
        batches: ``(table, frame)`` pairs, written in this order (a table at most once).
        scopes: for tables whose rows are replaced, the parents whose rows go (see :func:`replace_rows`).
        then: statements run after the writes, in the same transaction.

    Returns:
        Rows written per table (after dropping duplicate keys).

    Raises:
        ValueError: a batch :func:`conform` would refuse, a table given twice, or rows outside their scope.
    """
    scopes = scopes or {}
    tables = [schema.table(name) for name, _ in batches]
    if len({table.name for table in tables}) < len(tables):
        raise ValueError("each table may come once in upsert_all")
    unknown_scopes = set(scopes) - {table.name for table in tables}
    if unknown_scopes:
        raise ValueError(f"scopes for tables without a batch: {sorted(unknown_scopes)}")
    plans: list[pl.LazyFrame] = []
    checks: list[pl.LazyFrame] = []
    for declared, (_, frame) in zip(tables, batches, strict=True):
        batch = _lazy(frame)
        batch = batch.with_columns(
            pl.col(name).cast(target, strict=True)
            for name, target in _casts(declared, batch.collect_schema(), require_key=True).items()
        )
        key = list(declared.primary_key)
        checks.append(batch.select(pl.any_horizontal(pl.col(key).is_null()).sum().alias("null_keys")))
        if declared.name in scopes:
            scope = _lazy(scopes[declared.name])
            scope = scope.with_columns(
                pl.col(name).cast(target, strict=True)
                for name, target in _casts(declared, scope.collect_schema(), require_key=False).items()
            ).unique()
            keys = scope.collect_schema().names()
            outside = batch.join(scope, on=keys, how="anti", nulls_equal=False).select(pl.len().alias("outside"))
            plans.append(scope)
            checks.append(outside)
        plans.append(batch.unique(subset=key, keep="last", maintain_order=True))
    extra = [_lazy(statement.frame) for statement in then]
    try:
        collected = pl.collect_all([*plans, *checks, *extra])
    except pl.exceptions.PolarsError as error:
        raise ValueError(f"cannot write these batches to {[t.name for t in tables]}: {error}") from None
    frames = collected[: len(plans)]
    counts = collected[len(plans) : len(plans) + len(checks)]
    extra_frames = collected[len(plans) + len(checks) :]
    written: dict[str, int] = {}
    script: list[str] = []
    frames_left = iter(frames)
    counts_left = iter(count.item() for count in counts)
    with ExitStack() as stack:

        def source(frame: pl.DataFrame) -> str:
            """The frame registered for the script's run (a quoted name)."""
            return quote(stack.enter_context(registered(conn, frame)))

        for declared in tables:
            null_keys = next(counts_left)
            if null_keys:
                raise ValueError(f"{null_keys} rows for {declared.name} have a null in the primary key")
            if declared.name in scopes:
                parents, outside = next(frames_left), next(counts_left)
                if outside:
                    raise ValueError(f"{outside} rows for {declared.name} are outside the scope {parents.columns}")
                if not parents.is_empty():
                    script.append(_delete_in_scope_sql(declared, parents.columns, source(parents)))
            rows = next(frames_left)
            written[declared.name] = rows.height
            if not rows.is_empty():
                script.append(_merge_sql(declared, rows.columns, source(rows)))
        for statement, frame in zip(then, extra_frames, strict=True):
            script.append(statement.sql.format(source=source(frame)))
        if script:
            with transaction(conn):
                _run(conn, ";\n".join(script))
    return written


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame if isinstance(frame, pl.LazyFrame) else _as_polars(frame).lazy()


def mark_deleted(
    conn: Connection, table: str, keys: Frame, *, reason: str = schema.DELETED, at: datetime | None = None
) -> int:
    """Mark the rows of ``table`` whose primary key is in ``keys`` as deleted (or no longer visible).

    Rows are kept. A row already marked keeps its mark, except that Jira's own report of a deletion
    (:data:`~jira_lab.schema.DELETED`) replaces a :data:`~jira_lab.schema.NO_LONGER_VISIBLE` guess.

    Returns:
        The number of rows marked.
    """
    declared = schema.table(table)
    if not declared.tracks_deletion:
        raise ValueError(f"{declared.name} does not track deletions")
    if not reason:
        raise ValueError("a deletion needs a reason")
    batch = conform(declared, _as_polars(keys).select(declared.primary_key)).unique()
    if batch.is_empty():
        return 0
    match = " AND ".join(f"t.{quote(name)} = k.{quote(name)}" for name in declared.primary_key)
    with registered(conn, batch) as source, transaction(conn):
        rows = _run(
            conn,
            f"UPDATE {quote(declared.name)} AS t SET deleted_at = $at, deleted_reason = $reason "
            f"FROM {quote(source)} AS k WHERE {match} "
            "AND (t.deleted_at IS NULL OR ($reason = $deleted AND t.deleted_reason IS DISTINCT FROM $deleted))",
            {"at": _now(at), "reason": reason, "deleted": schema.DELETED},  # type: ignore[arg-type]
        )
    return int(rows[0][0])


# -- reading -----------------------------------------------------------------------------------------------------
def read_frame(conn: Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
    """The result of ``sql`` as a polars frame, through Arrow."""
    return pl.DataFrame(conn.sql(sql, params=params))


def read_table(conn: Connection, table: str, *, site_id: str | None = None) -> pl.DataFrame:
    """Every row of a declared table (of one site, if given), with exactly the declared columns and dtypes."""
    declared = schema.table(table)
    names = ", ".join(quote(name) for name in declared.column_names)
    key = ", ".join(quote(name) for name in declared.primary_key)
    where = " WHERE site_id = ?" if site_id is not None and declared.has_column("site_id") else ""
    frame = read_frame(
        conn, f"SELECT {names} FROM {quote(declared.name)}{where} ORDER BY {key}", [site_id] if where else None
    )
    return frame.cast(dict(declared.polars_schema))  # type: ignore[arg-type]


# -- sites and principals ----------------------------------------------------------------------------------------
def register_site(
    conn: Connection,
    *,
    site_id: str,
    url: str | None = None,
    cloud_id: str | None = None,
    title: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record a site; values left ``None`` keep what is already known."""
    _run(
        conn,
        "INSERT INTO _jira_lab_sites VALUES ($site, $url, $cloud, $title, $now) ON CONFLICT (site_id) DO UPDATE SET "
        "url = coalesce(excluded.url, _jira_lab_sites.url), "
        "cloud_id = coalesce(excluded.cloud_id, _jira_lab_sites.cloud_id), "
        "title = coalesce(excluded.title, _jira_lab_sites.title), updated_at = excluded.updated_at",
        {"site": site_id, "url": url, "cloud": cloud_id, "title": title, "now": _now(now)},  # type: ignore[arg-type]
    )


def register_principal(
    conn: Connection,
    *,
    site_id: str,
    principal_id: str,
    display_name: str | None,
    auth_kind: str,
    scopes: Iterable[str] | None = None,
    now: datetime | None = None,
) -> None:
    """Record who is loading ``site_id``: its account id, name, how it authenticated and the app's scopes."""
    if auth_kind not in AUTH_KINDS:
        raise ValueError(f"auth_kind must be one of {AUTH_KINDS}, not {auth_kind!r}")
    scope_list = None if scopes is None else json.dumps(sorted(set(scopes)))
    _run(
        conn,
        "INSERT INTO _jira_lab_principals VALUES ($site, $principal, $name, $kind, $scopes, $now, $now) "
        "ON CONFLICT (site_id, principal_id) DO UPDATE SET display_name = excluded.display_name, "
        "auth_kind = excluded.auth_kind, scopes = excluded.scopes, last_seen_at = excluded.last_seen_at",
        {  # type: ignore[arg-type]
            "site": site_id,
            "principal": principal_id,
            "name": display_name,
            "kind": auth_kind,
            "scopes": scope_list,
            "now": _now(now),
        },
    )


# -- cursors -----------------------------------------------------------------------------------------------------
def get_cursor(conn: Connection, *, site_id: str, principal_id: str, resource: str) -> str | None:
    """The cursor last committed for this site, principal and resource; ``None`` before the first load."""
    rows = _run(
        conn,
        "SELECT cursor_value FROM _jira_lab_cursors WHERE site_id = ? AND principal_id = ? AND resource = ?",
        [site_id, principal_id, resource],
    )
    return rows[0][0] if rows else None


_CURSOR_CONFLICT = (
    "ON CONFLICT (site_id, principal_id, resource) DO UPDATE SET cursor_value = excluded.cursor_value, "
    "load_id = excluded.load_id, updated_at = excluded.updated_at"
)


def set_cursor(
    conn: Connection,
    *,
    site_id: str,
    principal_id: str,
    resource: str,
    value: str,
    load_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Set the cursor; call it in the :func:`transaction` that writes the rows it covers."""
    _run(
        conn,
        f"INSERT INTO _jira_lab_cursors VALUES (?, ?, ?, ?, ?, ?) {_CURSOR_CONFLICT}",
        [site_id, principal_id, resource, value, load_id, _now(now)],
    )


def cursors_statement(
    cursors: Mapping[str, str], *, site_id: str, principal_id: str, load_id: int | None = None
) -> Statement:
    """Cursors (resource -> value) to set, as one merge for :func:`upsert_all` (see :func:`set_cursor`)."""
    frame = pl.DataFrame(
        {
            "resource": list(cursors),
            "cursor_value": list(cursors.values()),
            "site_id": site_id,
            "principal_id": principal_id,
            "load_id": load_id,
            "updated_at": _now(None),
        },
        schema={
            "resource": pl.String,
            "cursor_value": pl.String,
            "site_id": pl.String,
            "principal_id": pl.String,
            "load_id": pl.Int64,
            "updated_at": pl.Datetime("us", "UTC"),
        },
    )
    return Statement(
        "INSERT INTO _jira_lab_cursors (site_id, principal_id, resource, cursor_value, load_id, updated_at) "
        f"SELECT site_id, principal_id, resource, cursor_value, load_id, updated_at FROM {{source}} {_CURSOR_CONFLICT}",
        frame,
    )


# -- the load log ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Load:
    """One row of the load log."""

    load_id: int
    site_id: str
    principal_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    full_load: bool
    options: dict[str, Any]
    rows_per_table: dict[str, int]
    requests: int
    retries: int
    rate_limited: int
    seconds: float | None
    error: str | None


def start_load(
    conn: Connection,
    *,
    site_id: str,
    principal_id: str,
    full_load: bool = False,
    options: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> int:
    """Open a load in the load log and return its id.

    Loads of the same site and principal still ``running`` were killed before they finished: they are marked
    ``interrupted``.
    """
    with transaction(conn):
        _run(
            conn,
            "UPDATE _jira_lab_loads SET status = 'interrupted' "
            "WHERE site_id = ? AND principal_id = ? AND status = 'running'",
            [site_id, principal_id],
        )
        load_id = int(_run(conn, "SELECT coalesce(max(load_id), 0) + 1 FROM _jira_lab_loads")[0][0])
        _run(
            conn,
            "INSERT INTO _jira_lab_loads (load_id, site_id, principal_id, started_at, status, full_load, options, "
            "rows_per_table, requests, retries, rate_limited) VALUES (?, ?, ?, ?, 'running', ?, ?, '{}', 0, 0, 0)",
            [load_id, site_id, principal_id, _now(now), full_load, json.dumps(dict(options or {}), default=str)],
        )
    return load_id


def finish_load(
    conn: Connection,
    load_id: int,
    *,
    status: str = "succeeded",
    rows_per_table: Mapping[str, int] | None = None,
    requests: int = 0,
    retries: int = 0,
    rate_limited: int = 0,
    error: str | None = None,
    seconds: float | None = None,
    now: datetime | None = None,
) -> Load:
    """Close a running load with its outcome and figures; ``seconds`` defaults to the time since it started.

    Raises:
        ValueError: no such load, it is not running, or ``status`` is not ``succeeded`` or ``failed``.
    """
    if status not in ("succeeded", "failed"):
        raise ValueError(f"a load finishes as 'succeeded' or 'failed', not {status!r}")
    finished_at = _now(now)
    current = get_load(conn, load_id)
    if current.status != "running":
        raise ValueError(f"load {load_id} is {current.status}, not running")
    elapsed = (finished_at - current.started_at).total_seconds() if seconds is None else seconds
    _run(
        conn,
        "UPDATE _jira_lab_loads SET finished_at = ?, status = ?, rows_per_table = ?, requests = ?, retries = ?, "
        "rate_limited = ?, seconds = ?, error = ? WHERE load_id = ?",
        [
            finished_at,
            status,
            json.dumps(dict(rows_per_table or {})),
            requests,
            retries,
            rate_limited,
            elapsed,
            error,
            load_id,
        ],
    )
    return get_load(conn, load_id)


def get_load(conn: Connection, load_id: int) -> Load:
    """One load from the load log; ``ValueError`` when there is none."""
    columns = [field.name for field in fields(Load)]
    rows = _run(conn, f"SELECT {', '.join(columns)} FROM _jira_lab_loads WHERE load_id = ?", [load_id])
    if not rows:
        raise ValueError(f"no load {load_id} in the load log")
    values = dict(zip(columns, rows[0], strict=True))
    values["options"] = json.loads(values["options"] or "{}")
    values["rows_per_table"] = json.loads(values["rows_per_table"] or "{}")
    return Load(**values)


def record_access(
    conn: Connection,
    *,
    load_id: int,
    resource: str,
    outcome: str,
    http_status: int | None = None,
    message: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record whether ``resource`` was readable in this load, so audits can tell "none" from "not allowed to see"."""
    if outcome not in ACCESS_OUTCOMES:
        raise ValueError(f"outcome must be one of {ACCESS_OUTCOMES}, not {outcome!r}")
    load = get_load(conn, load_id)
    _run(
        conn,
        "INSERT INTO _jira_lab_access VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (load_id, resource) DO UPDATE SET "
        "outcome = excluded.outcome, http_status = excluded.http_status, message = excluded.message, "
        "checked_at = excluded.checked_at",
        [load_id, resource, load.site_id, load.principal_id, outcome, http_status, message, _now(now)],
    )


# -- sightings ---------------------------------------------------------------------------------------------------
def record_sightings(
    conn: Connection,
    *,
    site_id: str,
    principal_id: str,
    load_id: int,
    entity_kind: str,
    entity_ids: pl.Series | Iterable[int | str],
) -> int:
    """Record that this principal saw these entities in this load: one bulk merge, whatever the number of ids.

    A new entity gets ``first_seen_load = last_seen_load = load_id``; a known one moves its ``last_seen_load``.

    Args:
        entity_kind: ``issue``, ``comment``, ``worklog`` ... (:data:`jira_lab.schema.ENTITY_TABLES`).
        entity_ids: the entities' ids (numbers are stored as text).

    Returns:
        The number of distinct ids recorded.
    """
    if entity_kind not in schema.ENTITY_TABLES:
        raise ValueError(f"unknown entity kind {entity_kind!r}; known: {sorted(schema.ENTITY_TABLES)}")
    ids = entity_ids if isinstance(entity_ids, pl.Series) else pl.Series(list(entity_ids))
    if ids.null_count():
        raise ValueError(f"{ids.null_count()} {entity_kind} ids are null")
    batch = pl.DataFrame({"entity_id": ids.cast(pl.String).unique()}).select(
        pl.lit(entity_kind).alias("entity_kind"), "entity_id"
    )
    if batch.is_empty():
        return 0
    upsert_all(conn, [], then=[sightings_statement(batch, site_id=site_id, principal_id=principal_id, load_id=load_id)])
    return batch.height


def sightings_statement(sightings: Frame, *, site_id: str, principal_id: str, load_id: int) -> Statement:
    """Sightings (``entity_kind``, and ``entity_id`` as text) as one merge for :func:`upsert_all` (see
    :func:`record_sightings`)."""
    frame = (
        _lazy(sightings)
        .unique()
        .with_columns(
            pl.lit(site_id, dtype=pl.String).alias("site_id"),
            pl.lit(principal_id, dtype=pl.String).alias("principal_id"),
            pl.lit(load_id, dtype=pl.Int64).alias("load_id"),
        )
    )
    return Statement(
        "INSERT INTO _jira_lab_sightings (site_id, principal_id, entity_kind, entity_id, first_seen_load, "
        "last_seen_load) SELECT site_id, principal_id, entity_kind, entity_id, load_id, load_id FROM {source} "
        "ON CONFLICT (site_id, principal_id, entity_kind, entity_id) DO UPDATE SET "
        "last_seen_load = greatest(_jira_lab_sightings.last_seen_load, excluded.last_seen_load)",
        frame,
    )


def not_seen_in_load(
    conn: Connection, *, site_id: str, principal_id: str, entity_kind: str, load_id: int
) -> pl.DataFrame:
    """Entities of ``entity_kind`` this principal saw in earlier loads but not in ``load_id``.

    After a sweep that saw every visible id of a kind, these are the ones deleted or no longer visible to it.

    Returns:
        Columns ``entity_id``, ``first_seen_load``, ``last_seen_load``, ordered by ``entity_id``.
    """
    return read_frame(
        conn,
        "SELECT entity_id, first_seen_load, last_seen_load FROM _jira_lab_sightings WHERE site_id = ? "
        "AND principal_id = ? AND entity_kind = ? AND last_seen_load < ? ORDER BY entity_id",
        [site_id, principal_id, entity_kind, load_id],
    )
