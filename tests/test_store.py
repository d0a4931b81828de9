"""The DuckDB store: schema and migrations, Arrow upserts, transactions, cursors, load log, sightings, locking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from jira_lab import schema, store
from jira_lab.errors import DatabaseLockedError, SchemaError
from jira_lab.store import Migration

SITE = "cloud-1"
ANALYST = "acc-analyst"
TECH_USER = "acc-tech"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = store.connect(":memory:")
    store.ensure_schema(connection, now=T0)
    yield connection
    connection.close()


def comments(*rows: tuple[int, str], site: str = SITE) -> pl.DataFrame:
    """Comment rows ``(id, body_text)`` on issue 10; everything else fixed."""
    return schema.table("comments").frame(
        {
            "site_id": site,
            "id": comment_id,
            "issue_id": 10,
            "author_account_id": ANALYST,
            "created": T0,
            "updated": T0,
            "body_text": text,
            "body_adf": f'{{"type":"doc","version":1,"text":"{text}"}}',
            "raw": f'{{"id":"{comment_id}"}}',
        }
        for comment_id, text in rows
    )


def rows_of(conn: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    return conn.execute(sql).fetchall()


def run_child(script: str, db: Path) -> subprocess.Popen[str]:
    """A Python child process running ``script`` (``DB`` is the database path) in this repository."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "DB": str(db)},
    )


# -- schema and migrations ---------------------------------------------------------------------------------------
def test_ensure_schema_creates_every_table_and_records_the_version(conn: duckdb.DuckDBPyConnection) -> None:
    tables = {name for (name,) in rows_of(conn, "SELECT table_name FROM information_schema.tables")}
    assert tables == set(schema.TABLES)
    assert rows_of(conn, "SELECT version, applied_at FROM _jira_lab_schema") == [(store.latest_version(), T0)]
    assert store.schema_differences(conn) == []


def test_ensure_schema_is_idempotent_and_the_version_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "jira.duckdb"
    first = store.connect(path)
    assert store.schema_version(first) is None
    assert store.ensure_schema(first) == store.latest_version()
    store.upsert(first, "comments", comments((1, "kept")))
    first.close()
    again = store.connect(path)
    assert store.ensure_schema(again) == store.latest_version()
    assert rows_of(again, "SELECT count(*) FROM _jira_lab_schema") == [(1,)]
    assert rows_of(again, "SELECT body_text FROM comments") == [("kept",)]
    again.close()


def test_a_read_only_connection_to_an_up_to_date_file_passes_ensure_schema(tmp_path: Path) -> None:
    path = tmp_path / "jira.duckdb"
    writer = store.connect(path)
    store.ensure_schema(writer)
    writer.close()
    reader = store.connect(path, read_only=True)
    assert store.ensure_schema(reader) == store.latest_version()
    reader.close()


def test_a_file_from_a_newer_jira_lab_is_refused(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("INSERT INTO _jira_lab_schema VALUES (7, now(), 'from the future')")
    with pytest.raises(SchemaError, match=r"schema version 7.*upgrade jira_lab"):
        store.ensure_schema(conn)


@pytest.fixture
def baseline() -> Iterator[duckdb.DuckDBPyConnection]:
    """A file at the baseline version, for tests that bring their own migrations."""
    connection = store.connect(":memory:")
    store.ensure_schema(connection, migrations=(), now=T0)
    yield connection
    connection.close()


def make_older(conn: duckdb.DuckDBPyConnection) -> None:
    """Make the file look like one written before ``comments.jsd_author_can_see_request`` was declared."""
    conn.execute("ALTER TABLE comments DROP COLUMN jsd_author_can_see_request")


def test_a_file_from_before_user_details_gains_the_table_and_keeps_its_rows(
    baseline: duckdb.DuckDBPyConnection,
) -> None:
    store.upsert(baseline, "comments", comments((1, "kept")))
    baseline.execute("DROP TABLE user_details")  # as the first jira_lab wrote it
    assert store.ensure_schema(baseline) == store.latest_version() == 2
    assert store.schema_differences(baseline) == []
    assert rows_of(baseline, "SELECT body_text FROM comments") == [("kept",)]
    assert rows_of(baseline, "SELECT version FROM _jira_lab_schema ORDER BY version") == [(1,), (2,)]


ADD_JSD_COLUMN = Migration(
    2,
    "comments.jsd_author_can_see_request",
    lambda c: c.execute("ALTER TABLE comments ADD COLUMN IF NOT EXISTS jsd_author_can_see_request BOOLEAN"),
)


def test_an_older_file_is_migrated_in_order_and_each_version_recorded(baseline: duckdb.DuckDBPyConnection) -> None:
    make_older(baseline)
    assert store.ensure_schema(baseline, migrations=[ADD_JSD_COLUMN], now=T0 + timedelta(days=1)) == 2
    assert rows_of(baseline, "SELECT version, description FROM _jira_lab_schema ORDER BY version") == [
        (1, "created from the declared schema"),
        (2, "comments.jsd_author_can_see_request"),
    ]
    assert store.schema_differences(baseline) == []
    assert store.ensure_schema(baseline, migrations=[ADD_JSD_COLUMN]) == 2
    assert rows_of(baseline, "SELECT count(*) FROM _jira_lab_schema") == [(2,)]


def test_a_new_file_is_created_at_the_latest_version_without_running_migrations() -> None:
    fresh = store.connect(":memory:")
    assert store.ensure_schema(fresh, migrations=[ADD_JSD_COLUMN]) == 2
    assert rows_of(fresh, "SELECT version FROM _jira_lab_schema") == [(2,)]


def test_a_schema_change_without_a_migration_is_reported_by_column(baseline: duckdb.DuckDBPyConnection) -> None:
    make_older(baseline)  # as if schema.py had gained the column and no migration came with it
    with pytest.raises(SchemaError, match=r"needs a migration.*: comments\.jsd_author_can_see_request is missing$"):
        store.ensure_schema(baseline)


def test_a_failing_migration_leaves_the_file_as_it_was(baseline: duckdb.DuckDBPyConnection) -> None:
    make_older(baseline)

    def half_done(c: duckdb.DuckDBPyConnection) -> None:
        c.execute("ALTER TABLE comments ADD COLUMN jsd_author_can_see_request BOOLEAN")
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        store.ensure_schema(baseline, migrations=[Migration(2, "broken", half_done)])
    assert store.schema_version(baseline) == 1
    assert store.schema_differences(baseline) == ["comments.jsd_author_can_see_request is missing"]


def test_migrations_must_be_ordered_above_the_baseline(conn: duckdb.DuckDBPyConnection) -> None:
    noop = lambda c: None  # noqa: E731
    with pytest.raises(ValueError, match="increasing"):
        store.ensure_schema(conn, migrations=[Migration(3, "b", noop), Migration(2, "a", noop)])
    with pytest.raises(ValueError, match="above 1"):
        store.ensure_schema(conn, migrations=[Migration(1, "baseline again", noop)])


# -- upserts -----------------------------------------------------------------------------------------------------
def test_upsert_inserts_then_updates_by_primary_key_without_duplicates(conn: duckdb.DuckDBPyConnection) -> None:
    assert store.upsert(conn, "comments", comments((1, "one"), (2, "two"), (3, "three"))) == 3
    assert store.upsert(conn, "comments", comments((2, "two, edited"), (4, "four"))) == 2
    assert rows_of(conn, "SELECT id, body_text FROM comments ORDER BY id") == [
        (1, "one"),
        (2, "two, edited"),
        (3, "three"),
        (4, "four"),
    ]


def test_the_same_id_on_another_site_is_another_row(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "here")))
    store.upsert(conn, "comments", comments((1, "there"), site="cloud-2"))
    assert rows_of(conn, "SELECT site_id, body_text FROM comments ORDER BY site_id") == [
        ("cloud-1", "here"),
        ("cloud-2", "there"),
    ]


def test_within_one_batch_the_last_row_of_a_key_wins(conn: duckdb.DuckDBPyConnection) -> None:
    assert store.upsert(conn, "comments", comments((1, "first"), (1, "second"), (2, "other"))) == 2
    assert rows_of(conn, "SELECT id, body_text FROM comments ORDER BY id") == [(1, "second"), (2, "other")]


def test_a_partial_frame_updates_only_its_columns(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "text")))
    patch = pl.DataFrame({"site_id": [SITE], "id": [1], "visibility_type": ["role"], "visibility_value": ["Dev"]})
    store.upsert(conn, "comments", patch)
    assert rows_of(conn, "SELECT body_text, visibility_type, visibility_value, author_account_id FROM comments") == [
        ("text", "role", "Dev", ANALYST)
    ]


def one_row_of_every_type(declared: schema.Table) -> pl.DataFrame:
    samples: dict[str, object] = {
        schema.BIGINT.sql: 10_000_000_001,
        schema.INTEGER.sql: 7,
        schema.DOUBLE.sql: 1.25,
        schema.BOOLEAN.sql: True,
        schema.TEXT.sql: "ünïcode ✓",
        schema.JSON.sql: '{"a":[1,2],"b":null}',
        schema.TIMESTAMP.sql: datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC),
    }
    return declared.frame([{column.name: samples[column.type.sql] for column in declared.columns}])


@pytest.mark.parametrize("name", list(schema.TABLES))
def test_every_table_round_trips_a_row_of_every_column_type(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    declared = schema.table(name)
    row = one_row_of_every_type(declared)
    if name == "_jira_lab_schema":
        conn.execute("DELETE FROM _jira_lab_schema")
    assert store.upsert(conn, name, row) == 1
    assert_frame_equal(store.read_table(conn, name), row)


def test_upsert_takes_any_arrow_stream_and_lazy_frames(conn: duckdb.DuckDBPyConnection) -> None:
    other = duckdb.connect()
    relation = other.sql("SELECT 'cloud-1' AS site_id, 'g-1' AS group_id, 'admins' AS name")
    assert store.upsert(conn, "groups", relation) == 1
    lazy = pl.LazyFrame({"site_id": [SITE], "group_id": ["g-2"], "name": ["devs"]})
    assert store.upsert(conn, "groups", lazy) == 1
    assert rows_of(conn, "SELECT group_id, name FROM groups ORDER BY group_id") == [("g-1", "admins"), ("g-2", "devs")]


def test_upsert_casts_compatible_dtypes_to_the_declared_ones(conn: duckdb.DuckDBPyConnection) -> None:
    paris = datetime(2026, 1, 5, 10, 0, tzinfo=UTC) + timedelta(hours=1)
    frame = pl.DataFrame(
        {"site_id": [SITE], "id": pl.Series([5], dtype=pl.Int32), "issue_id": ["10"], "created": [paris]}
    ).with_columns(pl.col("created").dt.convert_time_zone("Europe/Paris"))
    store.upsert(conn, "comments", frame)
    assert rows_of(conn, "SELECT id, issue_id, created FROM comments") == [(5, 10, paris)]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"site_id": [SITE], "id": [1], "body": ["x"]}), r"comments has no columns \['body'\]"),
        (pl.DataFrame({"site_id": [SITE], "body_text": ["x"]}), r"needs its primary key columns \['id'\]"),
        (pl.DataFrame({"site_id": [SITE, SITE], "id": [1, None]}), "1 rows for comments have a null"),
        (pl.DataFrame({"site_id": [SITE], "id": [1], "created": [datetime(2026, 1, 5)]}), "naive datetimes"),
        (pl.DataFrame({"site_id": [SITE], "id": ["one"]}), r"comments\.id cannot hold these values"),
    ],
)
def test_upsert_refuses_frames_that_do_not_fit_the_table(
    conn: duckdb.DuckDBPyConnection, frame: pl.DataFrame, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.upsert(conn, "comments", frame)
    assert rows_of(conn, "SELECT count(*) FROM comments") == [(0,)]


def test_upsert_into_an_undeclared_table_is_a_value_error(conn: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="no table 'comment'"):
        store.upsert(conn, "comment", comments((1, "x")))


def test_an_empty_frame_writes_nothing(conn: duckdb.DuckDBPyConnection) -> None:
    assert store.upsert(conn, "comments", schema.table("comments").empty_frame()) == 0


def test_upsert_leaves_no_registered_batch_behind(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "x")))
    with pytest.raises(duckdb.Error), store.transaction(conn):
        store.upsert(conn, "comments", comments((2, "y")).with_columns(raw=pl.lit("{not json")))
    assert rows_of(conn, "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '_jira_lab_batch%'") == [(0,)]


# -- transactions ------------------------------------------------------------------------------------------------
def test_a_failing_batch_rolls_back_every_write_of_its_transaction(conn: duckdb.DuckDBPyConnection) -> None:
    load_id = store.start_load(conn, site_id=SITE, principal_id=ANALYST, now=T0)
    with store.transaction(conn):
        store.upsert(conn, "comments", comments((1, "committed")))
        store.set_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="comments", value="v1")
    broken = comments((3, "never")).with_columns(raw=pl.lit("{this is not json"))
    with pytest.raises(duckdb.Error), store.transaction(conn):
        store.upsert(conn, "comments", comments((1, "changed"), (2, "new")))
        store.record_sightings(
            conn, site_id=SITE, principal_id=ANALYST, load_id=load_id, entity_kind="comment", entity_ids=[1, 2]
        )
        store.set_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="comments", value="v2")
        store.upsert(conn, "comments", broken)
    assert rows_of(conn, "SELECT id, body_text FROM comments") == [(1, "committed")]
    assert store.get_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="comments") == "v1"
    assert rows_of(conn, "SELECT count(*) FROM _jira_lab_sightings") == [(0,)]
    store.upsert(conn, "comments", comments((2, "the connection is usable again")))
    assert rows_of(conn, "SELECT count(*) FROM comments") == [(2,)]


def test_a_nested_transaction_joins_the_outer_one(conn: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(RuntimeError, match="later failure"), store.transaction(conn):
        with store.transaction(conn):
            store.upsert(conn, "comments", comments((1, "inner")))
        assert rows_of(conn, "SELECT count(*) FROM comments") == [(1,)]
        raise RuntimeError("later failure")
    assert rows_of(conn, "SELECT count(*) FROM comments") == [(0,)]
    with store.transaction(conn), store.transaction(conn):
        store.upsert(conn, "comments", comments((1, "inner")))
    assert rows_of(conn, "SELECT count(*) FROM comments") == [(1,)]


def test_a_bare_begin_is_reported_rather_than_silently_nested(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("BEGIN TRANSACTION")
    with pytest.raises(ValueError, match=r"bare BEGIN; use jira_lab\.store\.transaction"):
        store.upsert(conn, "comments", comments((1, "x")))
    conn.execute("ROLLBACK")


def test_a_process_killed_mid_transaction_leaves_the_last_commit(tmp_path: Path) -> None:
    db = tmp_path / "killed.duckdb"
    child = run_child(
        """
        import os, sys
        import polars as pl
        from jira_lab import store
        conn = store.connect(os.environ["DB"])
        store.ensure_schema(conn)
        def batch(ids, text):
            return pl.DataFrame({"site_id": "cloud-1", "id": ids, "issue_id": 10, "body_text": text})
        with store.transaction(conn):
            store.upsert(conn, "comments", batch([1, 2], "committed"))
            store.set_cursor(conn, site_id="cloud-1", principal_id="acc", resource="comments", value="v1")
        conn.execute("CHECKPOINT")
        with store.transaction(conn):
            store.upsert(conn, "comments", batch(list(range(1, 20_001)), "uncommitted"))
            store.set_cursor(conn, site_id="cloud-1", principal_id="acc", resource="comments", value="v2")
            print("mid-transaction", flush=True)
            sys.stdin.read()
        """,
        db,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "mid-transaction"
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    conn = store.connect(db)
    assert store.ensure_schema(conn) == store.latest_version()
    assert rows_of(conn, "SELECT id, body_text FROM comments ORDER BY id") == [(1, "committed"), (2, "committed")]
    assert store.get_cursor(conn, site_id=SITE, principal_id="acc", resource="comments") == "v1"
    conn.close()


# -- locking -----------------------------------------------------------------------------------------------------
def test_a_second_process_gets_a_clear_message_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    child = run_child(
        """
        import os, sys
        from jira_lab import store
        conn = store.connect(os.environ["DB"])
        store.ensure_schema(conn)
        print("holding", flush=True)
        sys.stdin.read()
        """,
        db,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        assert child.stdout.readline().strip() == "holding"
        with pytest.raises(DatabaseLockedError) as caught:
            store.connect(db)
        assert caught.value.pid == child.pid
        assert caught.value.path == str(db)
        message = str(caught.value)
        assert f"{db} is open in process {child.pid}" in message
        assert "close the connection" in message
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    reopened = store.connect(db)
    assert store.schema_version(reopened) == store.latest_version()
    reopened.close()


# -- child rows and deletions ------------------------------------------------------------------------------------
def members(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"site_id": [SITE] * len(pairs), "group_id": [g for g, _ in pairs], "account_id": [a for _, a in pairs]},
        schema=schema.table("group_members").polars_schema,
    )


def test_replace_rows_replaces_exactly_the_scoped_parents(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "group_members", members(("g1", "ann"), ("g1", "bob"), ("g2", "cy"), ("g3", "dee")))
    scope = pl.DataFrame({"site_id": [SITE, SITE], "group_id": ["g1", "g2"]})
    assert store.replace_rows(conn, "group_members", members(("g1", "bob"), ("g1", "eve")), scope=scope) == 2
    assert rows_of(conn, "SELECT group_id, account_id FROM group_members ORDER BY ALL") == [
        ("g1", "bob"),
        ("g1", "eve"),
        ("g3", "dee"),
    ]


def test_replace_rows_refuses_rows_outside_its_scope(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "group_members", members(("g1", "ann")))
    scope = pl.DataFrame({"site_id": [SITE], "group_id": ["g1"]})
    with pytest.raises(ValueError, match="1 rows for group_members are outside the scope"):
        store.replace_rows(conn, "group_members", members(("g2", "bob")), scope=scope)
    assert rows_of(conn, "SELECT group_id, account_id FROM group_members") == [("g1", "ann")]


def test_mark_deleted_keeps_the_rows_and_the_first_mark(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "a"), (2, "b"), (3, "c")))
    keys = pl.DataFrame({"site_id": [SITE, SITE], "id": [1, 2]})
    assert store.mark_deleted(conn, "comments", keys, reason=schema.NO_LONGER_VISIBLE, at=T0) == 2
    later = T0 + timedelta(hours=1)
    assert store.mark_deleted(conn, "comments", keys.head(1), reason=schema.NO_LONGER_VISIBLE, at=later) == 0
    # Jira's own word (worklog/deleted, a 404 to an admin) replaces the guess
    assert store.mark_deleted(conn, "comments", keys.head(1), reason=schema.DELETED, at=later) == 1
    assert rows_of(conn, "SELECT id, deleted_at, deleted_reason FROM comments ORDER BY id") == [
        (1, later, "deleted"),
        (2, T0, "no longer visible"),
        (3, None, None),
    ]


def test_upserting_a_marked_row_makes_it_live_again(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "a")))
    store.mark_deleted(conn, "comments", pl.DataFrame({"site_id": [SITE], "id": [1]}), reason="no longer visible")
    store.upsert(conn, "comments", comments((1, "visible again")))
    assert rows_of(conn, "SELECT body_text, deleted_at, deleted_reason FROM comments") == [
        ("visible again", None, None)
    ]


def test_mark_deleted_needs_a_table_that_tracks_deletions(conn: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="group_members does not track deletions"):
        store.mark_deleted(conn, "group_members", members(("g1", "ann")))


# -- cursors, sites, principals ----------------------------------------------------------------------------------
def test_cursors_are_kept_per_site_principal_and_resource(conn: duckdb.DuckDBPyConnection) -> None:
    assert store.get_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="worklogs") is None
    store.set_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="worklogs", value="1767600000000", now=T0)
    store.set_cursor(conn, site_id=SITE, principal_id=TECH_USER, resource="worklogs", value="1")
    store.set_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="worklogs", value="1767603600000", load_id=4)
    assert store.get_cursor(conn, site_id=SITE, principal_id=ANALYST, resource="worklogs") == "1767603600000"
    assert store.get_cursor(conn, site_id=SITE, principal_id=TECH_USER, resource="worklogs") == "1"
    assert store.get_cursor(conn, site_id="cloud-2", principal_id=ANALYST, resource="worklogs") is None
    assert rows_of(conn, "SELECT count(*), max(load_id) FROM _jira_lab_cursors") == [(2, 4)]


def test_sites_and_principals_are_registered_once_and_updated(conn: duckdb.DuckDBPyConnection) -> None:
    store.register_site(conn, site_id=SITE, url="https://demo.atlassian.net", now=T0)
    store.register_site(conn, site_id=SITE, cloud_id=SITE, title="Demo", now=T0)
    assert rows_of(conn, "SELECT url, cloud_id, title FROM _jira_lab_sites") == [
        ("https://demo.atlassian.net", SITE, "Demo")
    ]
    store.register_principal(
        conn, site_id=SITE, principal_id=TECH_USER, display_name="Tech", auth_kind="oauth", scopes=["b", "a"], now=T0
    )
    later = T0 + timedelta(days=1)
    store.register_principal(
        conn, site_id=SITE, principal_id=TECH_USER, display_name="Tech user", auth_kind="oauth", now=later
    )
    assert rows_of(conn, "SELECT display_name, scopes, first_seen_at, last_seen_at FROM _jira_lab_principals") == [
        ("Tech user", None, T0, later)
    ]
    with pytest.raises(ValueError, match="auth_kind"):
        store.register_principal(conn, site_id=SITE, principal_id=ANALYST, display_name=None, auth_kind="token")


# -- the load log ------------------------------------------------------------------------------------------------
def test_a_load_is_logged_from_start_to_finish(conn: duckdb.DuckDBPyConnection) -> None:
    load_id = store.start_load(
        conn, site_id=SITE, principal_id=ANALYST, full_load=True, options={"projects": ["DEMO"]}, now=T0
    )
    assert store.get_load(conn, load_id).status == "running"
    finished = store.finish_load(
        conn,
        load_id,
        rows_per_table={"comments": 120, "issues": 12},
        requests=30,
        retries=2,
        rate_limited=1,
        now=T0 + timedelta(seconds=42.5),
    )
    assert finished == store.Load(
        load_id=load_id,
        site_id=SITE,
        principal_id=ANALYST,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=42.5),
        status="succeeded",
        full_load=True,
        options={"projects": ["DEMO"]},
        rows_per_table={"comments": 120, "issues": 12},
        requests=30,
        retries=2,
        rate_limited=1,
        seconds=42.5,
        error=None,
    )
    with pytest.raises(ValueError, match="is succeeded, not running"):
        store.finish_load(conn, load_id)


def test_a_load_left_running_is_marked_interrupted_by_the_next_one(conn: duckdb.DuckDBPyConnection) -> None:
    killed = store.start_load(conn, site_id=SITE, principal_id=ANALYST, now=T0)
    other_principal = store.start_load(conn, site_id=SITE, principal_id=TECH_USER, now=T0)
    resumed = store.start_load(conn, site_id=SITE, principal_id=ANALYST, now=T0)
    assert (killed, other_principal, resumed) == (1, 2, 3)
    assert [store.get_load(conn, i).status for i in (killed, other_principal, resumed)] == [
        "interrupted",
        "running",
        "running",
    ]
    failed = store.finish_load(conn, resumed, status="failed", error="Jira answered 500", seconds=1.0)
    assert (failed.status, failed.error, failed.seconds) == ("failed", "Jira answered 500", 1.0)
    with pytest.raises(ValueError, match="'succeeded' or 'failed'"):
        store.finish_load(conn, other_principal, status="interrupted")
    with pytest.raises(ValueError, match="no load 99"):
        store.get_load(conn, 99)


def test_access_outcomes_are_recorded_against_the_load(conn: duckdb.DuckDBPyConnection) -> None:
    load_id = store.start_load(conn, site_id=SITE, principal_id=TECH_USER)
    store.record_access(conn, load_id=load_id, resource="server_info", outcome="ok")
    store.record_access(
        conn, load_id=load_id, resource="group_members", outcome="forbidden", http_status=403, message="Forbidden"
    )
    assert rows_of(
        conn, "SELECT resource, site_id, principal_id, outcome, http_status FROM _jira_lab_access ORDER BY resource"
    ) == [("group_members", SITE, TECH_USER, "forbidden", 403), ("server_info", SITE, TECH_USER, "ok", None)]
    with pytest.raises(ValueError, match="outcome"):
        store.record_access(conn, load_id=load_id, resource="x", outcome="denied")


# -- sightings ---------------------------------------------------------------------------------------------------
def test_sightings_record_the_first_and_last_load_that_saw_each_entity(conn: duckdb.DuckDBPyConnection) -> None:
    first = store.start_load(conn, site_id=SITE, principal_id=ANALYST)
    recorded = store.record_sightings(
        conn, site_id=SITE, principal_id=ANALYST, load_id=first, entity_kind="comment", entity_ids=[1, 2, 3, 3]
    )
    assert recorded == 3
    second = store.start_load(conn, site_id=SITE, principal_id=ANALYST)
    store.record_sightings(
        conn, site_id=SITE, principal_id=ANALYST, load_id=second, entity_kind="comment", entity_ids=pl.Series([2, 4])
    )
    assert rows_of(
        conn, "SELECT entity_id, first_seen_load, last_seen_load FROM _jira_lab_sightings ORDER BY entity_id"
    ) == [("1", 1, 1), ("2", 1, 2), ("3", 1, 1), ("4", 2, 2)]
    gone = store.not_seen_in_load(conn, site_id=SITE, principal_id=ANALYST, entity_kind="comment", load_id=second)
    assert gone["entity_id"].to_list() == ["1", "3"]


def test_two_principals_views_can_be_compared_id_for_id(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "public"), (2, "restricted"), (3, "public")))
    for principal, seen in ((ANALYST, [1, 2, 3]), (TECH_USER, [1, 3])):
        load_id = store.start_load(conn, site_id=SITE, principal_id=principal)
        store.record_sightings(
            conn, site_id=SITE, principal_id=principal, load_id=load_id, entity_kind="comment", entity_ids=seen
        )
    hidden = store.read_frame(
        conn,
        "SELECT c.id, c.body_text FROM comments c "
        "JOIN _jira_lab_sightings a ON a.site_id = c.site_id AND a.entity_kind = 'comment' "
        "AND a.entity_id = CAST(c.id AS VARCHAR) AND a.principal_id = $analyst "
        "ANTI JOIN _jira_lab_sightings t ON t.site_id = c.site_id AND t.entity_kind = 'comment' "
        "AND t.entity_id = a.entity_id AND t.principal_id = $tech",
        {"analyst": ANALYST, "tech": TECH_USER},
    )
    assert hidden.rows() == [(2, "restricted")]


def test_a_full_load_of_100k_sightings_is_one_bulk_write(conn: duckdb.DuckDBPyConnection) -> None:
    load_id = store.start_load(conn, site_id=SITE, principal_id=ANALYST)
    ids = pl.Series(range(10_000, 110_000))
    recorded = store.record_sightings(
        conn, site_id=SITE, principal_id=ANALYST, load_id=load_id, entity_kind="comment", entity_ids=ids
    )
    assert recorded == 100_000
    assert rows_of(conn, "SELECT count(*), min(entity_id), max(first_seen_load) FROM _jira_lab_sightings") == [
        (100_000, "10000", load_id)
    ]


def test_sightings_refuse_unknown_kinds_and_null_ids(conn: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="unknown entity kind 'comments'"):
        store.record_sightings(
            conn, site_id=SITE, principal_id=ANALYST, load_id=1, entity_kind="comments", entity_ids=[1]
        )
    with pytest.raises(ValueError, match="1 comment ids are null"):
        store.record_sightings(
            conn, site_id=SITE, principal_id=ANALYST, load_id=1, entity_kind="comment", entity_ids=pl.Series([1, None])
        )


def test_times_are_read_back_in_utc(conn: duckdb.DuckDBPyConnection) -> None:
    store.upsert(conn, "comments", comments((1, "x")))
    read = store.read_table(conn, "comments")
    assert read.schema["created"] == pl.Datetime("us", "UTC")
    assert read["created"].to_list() == [T0]


# -- several tables at once --------------------------------------------------------------------------------------
def test_upsert_all_writes_what_upsert_and_replace_rows_write_one_by_one(conn: duckdb.DuckDBPyConnection) -> None:
    other = duckdb.connect()
    store.ensure_schema(other)
    for target in (conn, other):
        store.upsert(target, "comments", comments((1, "one"), (2, "two")))
        store.upsert(target, "group_members", members(("g1", "ann"), ("g2", "cy"), ("g3", "dee")))
    batch = comments((2, "two, edited"), (3, "three"), (3, "three, last"))
    replaced = members(("g1", "bob"), ("g1", "eve"))
    scope = pl.DataFrame({"site_id": [SITE, SITE], "group_id": ["g1", "g2"]})
    note = pl.DataFrame({"site_id": [SITE], "group_id": ["g9"], "name": ["written after"]})

    written = store.upsert_all(
        conn,
        [("comments", batch.lazy()), ("group_members", replaced)],
        scopes={"group_members": scope},
        then=[store.Statement("INSERT INTO groups (site_id, group_id, name) SELECT * FROM {source}", note)],
    )
    assert written == {"comments": 2, "group_members": 2}
    store.upsert(other, "comments", batch)
    store.replace_rows(other, "group_members", replaced, scope=scope)
    for sql in ("SELECT * FROM comments ORDER BY id", "SELECT * FROM group_members ORDER BY ALL"):
        assert rows_of(conn, sql) == rows_of(other, sql)
    assert rows_of(conn, "SELECT group_id, name FROM groups") == [("g9", "written after")]
    assert rows_of(conn, "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '_jira_lab_batch%'") == [(0,)]


@pytest.mark.parametrize(
    ("batches", "scopes", "message"),
    [
        (
            [("comments", pl.DataFrame({"site_id": [SITE, SITE], "id": [1, None]}))],
            {},
            "1 rows for comments have a null",
        ),
        ([("comments", pl.DataFrame({"site_id": [SITE], "id": ["one"]}))], {}, "cannot write these batches"),
        ([("comments", pl.DataFrame({"site_id": [SITE], "id": [1], "body": ["x"]}))], {}, "has no columns"),
        ([("comments", comments((1, "x"))), ("comments", comments((2, "y")))], {}, "each table may come once"),
        ([("comments", comments((1, "x")))], {"projects": pl.DataFrame({"site_id": [SITE]})}, "scopes for tables"),
        (
            [("group_members", members(("g1", "ann"), ("g2", "bob")))],
            {"group_members": pl.DataFrame({"site_id": [SITE], "group_id": ["g1"]})},
            "1 rows for group_members are outside the scope",
        ),
    ],
)
def test_upsert_all_refuses_bad_batches_and_writes_none_of_them(
    conn: duckdb.DuckDBPyConnection,
    batches: list[tuple[str, pl.DataFrame]],
    scopes: dict[str, pl.DataFrame],
    message: str,
) -> None:
    store.upsert(conn, "group_members", members(("g1", "zoe")))
    with pytest.raises(ValueError, match=message):
        store.upsert_all(
            conn, [*batches, ("groups", pl.DataFrame({"site_id": [SITE], "group_id": ["g1"]}))], scopes=scopes
        )
    assert rows_of(conn, "SELECT count(*) FROM comments") == [(0,)]
    assert rows_of(conn, "SELECT count(*) FROM groups") == [(0,)]
    assert rows_of(conn, "SELECT account_id FROM group_members") == [("zoe",)]


def test_upsert_all_rolls_back_every_table_when_a_statement_fails(conn: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.Error):
        store.upsert_all(
            conn,
            [("comments", comments((1, "x"))), ("groups", pl.DataFrame({"site_id": [SITE], "group_id": ["g1"]}))],
            then=[store.Statement("INSERT INTO no_such_table SELECT * FROM {source}", comments((2, "y")))],
        )
    assert rows_of(conn, "SELECT count(*) FROM comments") == [(0,)]
    assert rows_of(conn, "SELECT count(*) FROM groups") == [(0,)]
    assert rows_of(conn, "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '_jira_lab_batch%'") == [(0,)]
