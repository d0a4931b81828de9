"""The declared schema: complete for the loaders and audits, agreeing with DuckDB, documented in the docs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest

from jira_lab import schema
from jira_lab.schema import BIGINT, TEXT, Column, Table

# What the loaders (issue 4) and the audits (issue 5) need, table by table, written from those issues and Jira's
# shapes rather than read back from schema.py.
REQUIRED_COLUMNS: dict[str, set[str]] = {
    "issues": {
        "id",
        "key",
        "project_id",
        "project_key",
        "security_level_id",
        "reporter_account_id",
        "assignee_account_id",
        "status_name",
        "created",
        "updated",
        "raw",
    },
    "comments": {
        "id",
        "issue_id",
        "author_account_id",
        "update_author_account_id",
        "created",
        "updated",
        "visibility_type",
        "visibility_value",
        "visibility_identifier",
        "jsd_public",
        "body_adf",
        "body_text",
        "raw",
    },
    "worklogs": {
        "id",
        "issue_id",
        "author_account_id",
        "update_author_account_id",
        "created",
        "updated",
        "started",
        "time_spent_seconds",
        "visibility_type",
        "visibility_value",
        "visibility_identifier",
        "raw",
    },
    "changelog_histories": {"id", "issue_id", "author_account_id", "created", "raw"},
    "changelog_items": {"history_id", "field", "from_value", "from_string", "to_value", "to_string"},
    "audit_records": {"id", "summary", "category", "created", "author_account_id", "object_item_id", "raw"},
    "audit_changed_values": {"audit_record_id", "field_name", "changed_from", "changed_to"},
    "audit_associated_items": {"audit_record_id", "item_id", "item_name", "type_name"},
    "users": {"account_id", "active", "account_type", "display_name", "raw"},
    "groups": {"group_id", "name", "raw"},
    "group_members": {"group_id", "account_id"},
    "application_roles": {"key", "name", "raw"},
    "application_role_groups": {"application_key", "group_id"},
    "projects": {"id", "key", "name", "lead_account_id", "raw"},
    "project_roles": {"id", "name", "raw"},
    "role_actors": {"project_id", "role_id", "actor_type", "actor_id"},
    "permission_schemes": {"id", "name", "raw"},
    "permission_grants": {"scheme_id", "id", "permission", "holder_type", "holder_parameter", "holder_value"},
    "project_permission_schemes": {"project_id", "scheme_id"},
    "security_schemes": {"id", "name", "default_security_level_id", "raw"},
    "security_levels": {"id", "scheme_id", "name", "raw"},
    "security_level_members": {"level_id", "scheme_id", "holder_type", "holder_parameter", "holder_value"},
    "project_security_schemes": {"project_id", "scheme_id"},
    "fields": {"id", "name", "custom", "raw"},
    "my_permissions": {"principal_id", "project_id", "permission", "have_permission"},
    "_jira_lab_principals": {"site_id", "principal_id", "display_name", "auth_kind"},
    "_jira_lab_cursors": {"site_id", "principal_id", "resource", "cursor_value", "updated_at"},
    "_jira_lab_loads": {
        "load_id",
        "site_id",
        "principal_id",
        "started_at",
        "finished_at",
        "status",
        "rows_per_table",
        "requests",
        "retries",
        "rate_limited",
        "seconds",
    },
    "_jira_lab_sightings": {
        "site_id",
        "principal_id",
        "entity_kind",
        "entity_id",
        "first_seen_load",
        "last_seen_load",
    },
}

# Entities whose disappearance the loaders must be able to mark (issue 4: "deletions and lost access").
MUST_TRACK_DELETION = {"issues", "comments", "worklogs", "users", "groups", "projects"}
# Kinds the visibility audits compare between principals, id for id.
MUST_BE_SIGHTED = {"issues": "issue", "comments": "comment", "worklogs": "worklog"}


def created_tables() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(":memory:")
    conn.execute("SET TimeZone = 'UTC'")
    for statement in schema.ddl():
        conn.execute(statement)
    return conn


def test_the_ddl_creates_every_declared_table_with_its_columns_and_primary_key() -> None:
    conn = created_tables()
    tables = {name for (name,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert tables == set(schema.TABLES)
    for declared in schema.TABLES.values():
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [declared.name],
        ).fetchall()
        assert columns == [(column.name, column.type.sql) for column in declared.columns]
        (key,) = conn.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [declared.name],
        ).fetchall()[0]
        assert tuple(key) == declared.primary_key


def test_the_ddl_can_run_twice() -> None:
    conn = created_tables()
    for statement in schema.ddl():
        conn.execute(statement)
    assert conn.execute("SELECT count(*) FROM information_schema.tables").fetchall() == [(len(schema.TABLES),)]


@pytest.mark.parametrize("name", list(schema.TABLES))
def test_reading_a_created_table_into_polars_gives_the_declared_polars_schema(name: str) -> None:
    conn = created_tables()
    read = pl.DataFrame(conn.sql(f'SELECT * FROM "{name}"'))
    assert read.schema == schema.table(name).polars_schema


@pytest.mark.parametrize("name", sorted(REQUIRED_COLUMNS))
def test_tables_hold_what_the_loaders_and_audits_need(name: str) -> None:
    declared = schema.table(name)
    assert REQUIRED_COLUMNS[name] <= set(declared.column_names)


def test_every_jira_table_is_keyed_by_site_first() -> None:
    for declared in schema.TABLES.values():
        if not declared.is_internal:
            assert declared.primary_key[0] == "site_id", declared.name


def test_internal_tables_are_prefixed_and_jira_tables_are_not() -> None:
    internal = {name for name in schema.TABLES if name.startswith("_")}
    assert internal == {name for name, declared in schema.TABLES.items() if declared.is_internal}
    assert all(name.startswith("_jira_lab_") for name in internal)
    assert {"_jira_lab_principals", "_jira_lab_cursors", "_jira_lab_loads", "_jira_lab_sightings"} <= internal


def test_numeric_jira_ids_are_bigint_and_account_and_group_ids_are_text() -> None:
    numeric_refs = {"issue_id", "project_id", "role_id", "scheme_id", "level_id", "history_id", "audit_record_id"}
    for declared in schema.TABLES.values():
        for column in declared.columns:
            if column.name.endswith("account_id") or column.name in {"group_id", "principal_id", "site_id"}:
                assert column.type == TEXT, f"{declared.name}.{column.name}"
            if column.name in numeric_refs:
                assert column.type == BIGINT, f"{declared.name}.{column.name}"
    for name in ("issues", "comments", "worklogs", "changelog_histories", "projects", "project_roles"):
        assert schema.table(name).column("id").type == BIGINT
    assert schema.table("fields").column("id").type == TEXT  # "summary", "customfield_10050"


def test_entities_keep_raw_json_and_can_be_marked_deleted() -> None:
    for name in MUST_TRACK_DELETION:
        declared = schema.table(name)
        assert declared.tracks_deletion
        assert {"deleted_at", "deleted_reason", "raw"} <= set(declared.column_names)
        assert declared.column("raw").type == schema.JSON
    assert not schema.table("group_members").tracks_deletion


def test_the_kinds_the_audits_compare_are_sighted() -> None:
    for name, kind in MUST_BE_SIGHTED.items():
        assert schema.table(name).entity_kind == kind
        assert schema.ENTITY_TABLES[kind].name == name
    kinds = [declared.entity_kind for declared in schema.TABLES.values() if declared.entity_kind]
    assert len(kinds) == len(set(kinds))


def test_every_column_has_a_meaning() -> None:
    for declared in schema.TABLES.values():
        assert declared.meaning
        for column in declared.columns:
            assert column.meaning.strip(), f"{declared.name}.{column.name}"


def test_a_table_refuses_an_undeclared_key_a_repeated_column_or_a_camel_case_name() -> None:
    site = Column("site_id", TEXT, "site")
    with pytest.raises(ValueError, match="primary key"):
        Table("things", "a thing", (site,), ("site_id", "id"))
    with pytest.raises(ValueError, match="twice"):
        Table("things", "a thing", (site, site), ("site_id",))
    with pytest.raises(ValueError, match="snake_case"):
        Table("things", "a thing", (site, Column("issueId", BIGINT, "issue")), ("site_id",))


def test_unknown_tables_and_columns_are_value_errors() -> None:
    with pytest.raises(ValueError, match="no table 'issue'"):
        schema.table("issue")
    with pytest.raises(ValueError, match="no column 'body'"):
        schema.table("comments").column("body")


def test_frame_types_dicts_by_the_declaration_filling_missing_columns_with_nulls() -> None:
    created = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    frame = schema.table("comments").frame(
        [
            {"site_id": "s", "id": 10001, "issue_id": 10, "created": created, "not_a_column": 1},
            {"site_id": "s", "id": 10002, "issue_id": 10, "visibility_type": "group"},
        ]
    )
    assert frame.schema == schema.table("comments").polars_schema
    assert frame["id"].to_list() == [10001, 10002]
    assert frame["created"].to_list() == [created, None]
    assert frame["visibility_type"].to_list() == [None, "group"]
    assert schema.table("issues").empty_frame().schema == schema.table("issues").polars_schema


def test_frame_keeps_the_instant_of_times_in_any_zone_to_the_microsecond() -> None:
    berlin = timezone(timedelta(hours=2))
    times = [datetime(2024, 3, 1, 11, 30, 0, 123456, tzinfo=berlin), None, datetime(1969, 12, 31, 23, 59, tzinfo=UTC)]
    frame = schema.table("comments").frame({"site_id": "s", "id": i, "created": t} for i, t in enumerate(times))
    assert frame["created"].dtype == pl.Datetime("us", "UTC")
    assert frame["created"].to_list() == [
        datetime(2024, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
        None,
        datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
    ]


def test_frame_reads_a_naive_time_among_aware_ones_as_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    rows = [{"site_id": "s", "id": 1, "created": datetime(2024, 3, 1, 11, tzinfo=berlin)}]
    rows.append({"site_id": "s", "id": 2, "created": datetime(2024, 3, 1, 11)})
    frame = schema.table("comments").frame(rows)
    assert frame["created"].to_list() == [datetime(2024, 3, 1, 9, tzinfo=UTC), datetime(2024, 3, 1, 11, tzinfo=UTC)]


def test_the_data_dictionary_lists_every_column_with_its_types_and_meaning() -> None:
    text = schema.data_dictionary()
    for declared in schema.TABLES.values():
        assert f"## `{declared.name}`" in text
        for column in declared.columns:
            row = f"| `{column.name}` | `{column.type.sql}` | `{column.type.polars}` | "
            assert row + column.meaning.replace("|", "\\|") + " |" in text


def test_the_committed_data_dictionary_is_up_to_date() -> None:
    committed = schema.DATA_DICTIONARY_PATH.read_text(encoding="utf-8")
    assert committed == schema.data_dictionary(), (
        "docs/data-dictionary.md is stale: regenerate it with `uv run python -m jira_lab.schema`"
    )


def test_main_writes_the_data_dictionary_where_asked(tmp_path: Path) -> None:
    target = tmp_path / "dictionary.md"
    schema.main([str(target)])
    assert target.read_text(encoding="utf-8") == schema.data_dictionary()
