"""Every table jira_lab keeps in DuckDB, declared once: columns, types, meanings and primary keys.

A :class:`Table` holds its columns (each with one :class:`ColumnType`, which pairs the DuckDB type with the polars
dtype it round-trips to, and a one-line meaning) and its primary key. From these declarations come the DDL
(:meth:`Table.ddl`), the polars schema resource modules build frames with (:attr:`Table.polars_schema`), and the
data dictionary in ``docs/data-dictionary.md`` (:func:`data_dictionary`; regenerate it with
``uv run python -m jira_lab.schema``).

Conventions, which the data dictionary repeats for readers of the database:

* Column names are snake_case of Jira's camelCase; ids are kept as Jira gives them (numeric ids as ``BIGINT``,
  account ids and group ids as ``VARCHAR``).
* Every row belongs to one site: ``site_id`` (the site's cloud id, or its URL when the cloud id is unknown) is part
  of every primary key, so several sites can share one file.
* Entity rows are stored once, whoever loaded them. What each loading principal could see is kept apart, in
  ``_jira_lab_sightings``; the few facts that differ by principal (its own permissions, inline totals) carry a
  ``principal_id``.
* ``raw`` keeps the entity as Jira sent it, so nothing Jira sends is lost.
* ``deleted_at``/``deleted_reason`` mark entities found deleted or no longer visible; they are never removed.
* Tables starting with ``_jira_lab_`` are jira_lab's own bookkeeping.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

INTERNAL_PREFIX = "_jira_lab_"
#: The reasons :func:`jira_lab.store.mark_deleted` records in ``deleted_reason``.
DELETED = "deleted"
NO_LONGER_VISIBLE = "no longer visible"
#: ``project_id`` of a permission held in the global context rather than in one project (Jira's ids start at 10000).
GLOBAL_CONTEXT = 0

_SNAKE_CASE = re.compile(r"^_?[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A column type: DuckDB's canonical spelling (as ``information_schema`` reports it) and the polars dtype.

    Reading a column of ``sql`` type into polars gives ``polars``; writing ``polars`` into it needs no conversion
    other than DuckDB's own (a string into ``JSON`` is validated as JSON).
    """

    sql: str
    polars: pl.DataType


BIGINT = ColumnType("BIGINT", pl.Int64())
INTEGER = ColumnType("INTEGER", pl.Int32())
DOUBLE = ColumnType("DOUBLE", pl.Float64())
BOOLEAN = ColumnType("BOOLEAN", pl.Boolean())
TEXT = ColumnType("VARCHAR", pl.String())
# polars has no JSON dtype: JSON travels as text and DuckDB checks it is valid JSON on the way in
JSON = ColumnType("JSON", pl.String())
TIMESTAMP = ColumnType("TIMESTAMP WITH TIME ZONE", pl.Datetime("us", "UTC"))
# No LIST types on purpose: DuckDB's ON CONFLICT DO UPDATE rewrites list columns as delete + insert, which made
# re-upserting 100k rows take 8 s instead of 0.12 s (measured on duckdb 2.0.1); arrays are kept as JSON instead.


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    meaning: str


@dataclass(frozen=True, slots=True)
class Table:
    """One table: its columns in order, its primary key and what a row means.

    Args:
        name: plural snake_case; ``_jira_lab_`` first for jira_lab's own tables.
        meaning: one line saying what one row is.
        columns: in order.
        primary_key: column names; DuckDB makes them ``NOT NULL``.
        entity_kind: the kind recorded in ``_jira_lab_sightings`` for rows of this table (``None``: not sighted).
    """

    name: str
    meaning: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    entity_kind: str | None = None
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {column.name: column for column in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"table {self.name} declares a column twice")
        missing = [name for name in self.primary_key if name not in by_name]
        if missing or not self.primary_key:
            raise ValueError(f"table {self.name}: primary key columns {missing or '(none)'} are not declared")
        for name in (self.name, *by_name):
            if not _SNAKE_CASE.match(name):
                raise ValueError(f"{name!r} in table {self.name} is not snake_case")
        object.__setattr__(self, "_by_name", by_name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        """The column called ``name``; ``ValueError`` when the table has none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"table {self.name} has no column {name!r}") from None

    def has_column(self, name: str) -> bool:
        return name in self._by_name

    @property
    def is_internal(self) -> bool:
        return self.name.startswith(INTERNAL_PREFIX)

    @property
    def tracks_deletion(self) -> bool:
        """Rows carry ``deleted_at``/``deleted_reason``, which every upsert of a row clears (Jira just showed it)."""
        return "deleted_at" in self._by_name

    @property
    def polars_schema(self) -> pl.Schema:
        """The polars schema of a frame holding every column, in order."""
        return pl.Schema({column.name: column.type.polars for column in self.columns})

    def ddl(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` with every column and the primary key."""
        lines = [f"    {quote(column.name)} {column.type.sql}" for column in self.columns]
        lines.append(f"    PRIMARY KEY ({', '.join(quote(name) for name in self.primary_key)})")
        body = ",\n".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {quote(self.name)} (\n{body}\n)"

    def empty_frame(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema)

    def frame(self, rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """A frame of ``rows`` (dicts keyed by column name) with exactly this table's columns and dtypes.

        Missing keys become nulls and keys that are not columns are dropped, so a pure ``*_rows`` function can build
        dicts and leave the typing to the declaration.
        """
        listed = rows if isinstance(rows, list) else list(rows)
        # column by column: several times faster than pl.from_dicts, which infers and converts row by row
        columns: dict[str, list[Any] | pl.Series] = {}
        for name, dtype in self.polars_schema.items():
            values = [row.get(name) for row in listed]
            columns[name] = _times(values, dtype) if isinstance(dtype, pl.Datetime) else values
        return pl.DataFrame(columns, schema=self.polars_schema, strict=True)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _times(values: list[Any], dtype: pl.Datetime) -> pl.Series | list[Any]:
    """Aware datetimes as a column, through epoch microseconds: polars converts aware datetimes one by one, five
    times slower (a large load has half a million of them). Anything else is left to polars (and its errors)."""
    if dtype.time_unit != "us" or dtype.time_zone is None:
        return values
    try:
        micros = [None if value is None else (value - _EPOCH) // _MICROSECOND for value in values]
    except TypeError:  # a naive datetime, or not a datetime at all
        return values
    return pl.Series(micros, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone(dtype.time_zone)


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (some column names, like ``key``, are SQL keywords)."""
    return '"' + identifier.replace('"', '""') + '"'


# -- columns shared by many tables -------------------------------------------------------------------------------
SITE_ID = Column("site_id", TEXT, "the site: its cloud id, or its URL when the cloud id is unknown")
PRINCIPAL_ID = Column("principal_id", TEXT, "account id of the loading principal this row is about")
LOAD_ID = Column("load_id", BIGINT, "the load (`_jira_lab_loads.load_id`) that wrote this row")
DELETION = (
    Column("deleted_at", TIMESTAMP, "when jira_lab found it deleted or no longer visible; NULL while it is live"),
    Column(
        "deleted_reason",
        TEXT,
        f"'{DELETED}' (Jira reported the deletion) or '{NO_LONGER_VISIBLE}' (gone from every loading view)",
    ),
)


def raw(what: str) -> Column:
    return Column("raw", JSON, f"{what} as Jira sent it")


def user_ref(prefix: str, who: str) -> Column:
    return Column(f"{prefix}_account_id", TEXT, f"account id of {who}")


def visibility(item: str) -> tuple[Column, ...]:
    return (
        Column("visibility_type", TEXT, f"'group' or 'role' when the {item} is restricted; NULL when it is not"),
        Column("visibility_value", TEXT, "the group's or role's name when loaded (group names change)"),
        Column("visibility_identifier", TEXT, "group id for a group restriction, role name for a role restriction"),
    )


def holder(of: str) -> tuple[Column, ...]:
    return (
        Column(
            "holder_type",
            TEXT,
            f"who {of}: group, projectRole, user, applicationRole, reporter, assignee, projectLead, "
            "userCustomField, groupCustomField, anyone, ...",
        ),
        Column("holder_parameter", TEXT, "Jira's holder parameter: group name, role id, account id, field id ..."),
        Column("holder_value", TEXT, "Jira's holder value: group id (join groups on this), role id, account id ..."),
    )


# -- the tables --------------------------------------------------------------------------------------------------
_TABLES: tuple[Table, ...] = (
    Table(
        "issues",
        "one issue (IssueBean) as last loaded",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's issue id"),
            Column("key", TEXT, "issue key, e.g. DEMO-12 (changes when the issue moves)"),
            Column("project_id", BIGINT, "id of the issue's project"),
            Column("project_key", TEXT, "key of the issue's project when loaded"),
            Column("issue_type_id", BIGINT, "id of the issue type"),
            Column("issue_type_name", TEXT, "name of the issue type"),
            Column("parent_id", BIGINT, "id of the parent issue (sub-tasks inherit its security level); NULL if none"),
            Column("summary", TEXT, "the summary"),
            Column("status_id", BIGINT, "id of the status"),
            Column("status_name", TEXT, "name of the status"),
            Column("status_category_key", TEXT, "key of the status category: new, indeterminate, done"),
            Column("security_level_id", BIGINT, "id of the issue security level (fields.security); NULL: no level"),
            user_ref("reporter", "the reporter; NULL if none"),
            user_ref("assignee", "the assignee; NULL if unassigned"),
            user_ref("creator", "the creator"),
            Column("labels", JSON, "array of the issue's labels"),
            Column("created", TIMESTAMP, "when the issue was created"),
            Column("updated", TIMESTAMP, "when the issue was last updated"),
            raw("the issue, minus the embedded comment, worklog and changelog pages (kept in their own tables),"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="issue",
    ),
    Table(
        "issue_totals",
        "how many comments, worklogs and histories Jira reported on an issue to one principal",
        (
            SITE_ID,
            PRINCIPAL_ID,
            Column("issue_id", BIGINT, "the issue"),
            Column("comment_total", BIGINT, "fields.comment.total: the comments this principal may see"),
            Column("worklog_total", BIGINT, "fields.worklog.total: the worklogs this principal may see"),
            Column("changelog_total", BIGINT, "changelog.total, when the changelog was expanded"),
            LOAD_ID,
        ),
        ("site_id", "principal_id", "issue_id"),
    ),
    Table(
        "issue_field_values",
        "one user or group held by a user/group picker custom field of an issue",
        (
            SITE_ID,
            Column("issue_id", BIGINT, "the issue"),
            Column("field_id", TEXT, "the custom field, e.g. customfield_10050"),
            Column("position", INTEGER, "0-based position in a multi-valued field"),
            Column("value_type", TEXT, "'user' or 'group'"),
            Column("value_id", TEXT, "account id of the user, or group id of the group"),
            Column("value_name", TEXT, "display name of the user, or name of the group, when loaded"),
        ),
        ("site_id", "issue_id", "field_id", "position"),
    ),
    Table(
        "comments",
        "one comment on an issue",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's comment id"),
            Column("issue_id", BIGINT, "the issue it is on"),
            user_ref("author", "the author"),
            user_ref("update_author", "who last updated it"),
            Column("created", TIMESTAMP, "when it was created"),
            Column("updated", TIMESTAMP, "when it was last updated"),
            *visibility("comment"),
            Column("jsd_public", BOOLEAN, "service desk: customers see it (false: an internal note; not `visibility`)"),
            Column("jsd_author_can_see_request", BOOLEAN, "service desk: the author can see the request"),
            Column("body_adf", JSON, "the body as an Atlassian Document Format document"),
            Column("body_text", TEXT, "the body as plain text"),
            raw("the comment, minus `body` (kept whole in body_adf), its authors as their accountId (user_details),"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="comment",
    ),
    Table(
        "worklogs",
        "one worklog on an issue",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's worklog id"),
            Column("issue_id", BIGINT, "the issue it is on"),
            user_ref("author", "the author"),
            user_ref("update_author", "who last updated it"),
            Column("created", TIMESTAMP, "when it was created"),
            Column("updated", TIMESTAMP, "when it was last updated"),
            Column("started", TIMESTAMP, "when the logged work started"),
            Column("time_spent", TEXT, "time spent as Jira writes it, e.g. 3h 20m"),
            Column("time_spent_seconds", BIGINT, "time spent in seconds"),
            *visibility("worklog"),
            Column("comment_adf", JSON, "the worklog's comment as an Atlassian Document Format document"),
            Column("comment_text", TEXT, "the worklog's comment as plain text"),
            raw(
                "the worklog, minus `comment` (kept whole in comment_adf), its authors as their accountId "
                "(user_details),"
            ),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="worklog",
    ),
    Table(
        "changelog_histories",
        "one change history of an issue (several field changes made at once)",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's history id"),
            Column("issue_id", BIGINT, "the issue changed"),
            user_ref("author", "who made the change"),
            Column("created", TIMESTAMP, "when the change was made"),
            Column("history_metadata", JSON, "historyMetadata (type, description, actor, cause ...), if any"),
            raw(
                "the history, without its items (kept in changelog_items), its author as its accountId (user_details),"
            ),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="changelog_history",
    ),
    Table(
        "changelog_items",
        "one field change within a change history",
        (
            SITE_ID,
            Column("history_id", BIGINT, "the change history"),
            Column("position", INTEGER, "0-based position of the item in the history"),
            Column("issue_id", BIGINT, "the issue changed (copied from the history for joins)"),
            Column("field", TEXT, "the field's name"),
            Column("field_id", TEXT, "the field's id"),
            Column("fieldtype", TEXT, "jira or custom"),
            Column("from_value", TEXT, "Jira's `from`: the old value's id"),
            Column("from_string", TEXT, "the old value as text"),
            Column("to_value", TEXT, "Jira's `to`: the new value's id"),
            Column("to_string", TEXT, "the new value as text"),
        ),
        ("site_id", "history_id", "position"),
    ),
    Table(
        "audit_records",
        "one record of the audit log",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's record id"),
            Column("summary", TEXT, "what happened, e.g. User added to group"),
            Column("category", TEXT, "e.g. group management, permissions"),
            Column("event_source", TEXT, "where the event came from"),
            Column("created", TIMESTAMP, "when it happened"),
            user_ref("author", "who did it (authorAccountId)"),
            Column("remote_address", TEXT, "the address the change came from"),
            Column("description", TEXT, "longer description, if any"),
            Column("object_item_id", TEXT, "id of the object changed (an account id for a user)"),
            Column("object_item_name", TEXT, "name of the object changed"),
            Column("object_item_type_name", TEXT, "type of the object changed, e.g. USER, GROUP"),
            Column("object_item_parent_id", TEXT, "id of the object's parent, if any"),
            Column("object_item_parent_name", TEXT, "name of the object's parent, if any"),
            raw("the record"),
        ),
        ("site_id", "id"),
        entity_kind="audit_record",
    ),
    Table(
        "audit_changed_values",
        "one value an audit record says was changed",
        (
            SITE_ID,
            Column("audit_record_id", BIGINT, "the audit record"),
            Column("position", INTEGER, "0-based position in changedValues"),
            Column("field_name", TEXT, "the field changed"),
            Column("changed_from", TEXT, "the old value"),
            Column("changed_to", TEXT, "the new value"),
        ),
        ("site_id", "audit_record_id", "position"),
    ),
    Table(
        "audit_associated_items",
        "one object an audit record is associated with (e.g. the group a user was added to)",
        (
            SITE_ID,
            Column("audit_record_id", BIGINT, "the audit record"),
            Column("position", INTEGER, "0-based position in associatedItems"),
            Column("item_id", TEXT, "the item's id (an account id for a user, a group id for a group)"),
            Column("item_name", TEXT, "the item's name"),
            Column("type_name", TEXT, "the item's type, e.g. USER, GROUP"),
            Column("parent_id", TEXT, "id of the item's parent, if any"),
            Column("parent_name", TEXT, "name of the item's parent, if any"),
        ),
        ("site_id", "audit_record_id", "position"),
    ),
    Table(
        "users",
        "one Atlassian account known to the site",
        (
            SITE_ID,
            Column("account_id", TEXT, "the account id"),
            Column("account_type", TEXT, "atlassian, app, customer or unknown"),
            Column("app_type", TEXT, "service, agent or unknown for app accounts; NULL otherwise"),
            Column("active", BOOLEAN, "the account is active"),
            Column("display_name", TEXT, "the display name"),
            Column("email_address", TEXT, "the email address, when the caller may see it"),
            Column("time_zone", TEXT, "the account's time zone"),
            Column("locale", TEXT, "the account's locale"),
            raw("the user"),
            *DELETION,
        ),
        ("site_id", "account_id"),
        entity_kind="user",
    ),
    Table(
        "user_details",
        "the `UserDetails` Jira embeds for an account as author of comments, worklogs and changelog histories, as last "
        "sent; those rows' `raw` keep only its accountId, so each object is stored once, not on every row",
        (
            SITE_ID,
            Column("account_id", TEXT, "the account id"),
            Column("display_name", TEXT, "the display name"),
            raw("the object"),
        ),
        ("site_id", "account_id"),
    ),
    Table(
        "groups",
        "one group, by its stable id",
        (
            SITE_ID,
            Column("group_id", TEXT, "the group's id (stable; names can change)"),
            Column("name", TEXT, "the group's name when loaded"),
            raw("the group"),
            *DELETION,
        ),
        ("site_id", "group_id"),
        entity_kind="group",
    ),
    Table(
        "group_members",
        "one account's membership of a group (inactive accounts included)",
        (
            SITE_ID,
            Column("group_id", TEXT, "the group"),
            Column("account_id", TEXT, "the member"),
        ),
        ("site_id", "group_id", "account_id"),
    ),
    Table(
        "application_roles",
        "one application role (product access, e.g. jira-software)",
        (
            SITE_ID,
            Column("key", TEXT, "the application key, e.g. jira-software"),
            Column("name", TEXT, "the application's name"),
            Column("selected_by_default", BOOLEAN, "new users get it by default"),
            Column("number_of_seats", BIGINT, "seats in the licence"),
            Column("remaining_seats", BIGINT, "seats left"),
            Column("user_count", BIGINT, "users holding it"),
            Column("has_unlimited_seats", BOOLEAN, "the licence has unlimited seats"),
            Column("platform", BOOLEAN, "it is the platform application"),
            raw("the application role"),
            *DELETION,
        ),
        ("site_id", "key"),
        entity_kind="application_role",
    ),
    Table(
        "application_role_groups",
        "one group that grants an application role",
        (
            SITE_ID,
            Column("application_key", TEXT, "the application role"),
            Column("group_id", TEXT, "the group"),
            Column("group_name", TEXT, "the group's name when loaded"),
            Column("is_default", BOOLEAN, "also one of the role's default groups (new users join it)"),
        ),
        ("site_id", "application_key", "group_id"),
    ),
    Table(
        "projects",
        "one project",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's project id"),
            Column("key", TEXT, "the project key"),
            Column("name", TEXT, "the project's name"),
            Column("project_type_key", TEXT, "software, service_desk or business"),
            Column("style", TEXT, "classic (company-managed) or next-gen (team-managed)"),
            Column("simplified", BOOLEAN, "team-managed"),
            Column("is_private", BOOLEAN, "the project is private"),
            Column("archived", BOOLEAN, "the project is archived"),
            user_ref("lead", "the project lead"),
            raw("the project"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="project",
    ),
    Table(
        "project_roles",
        "one project role (roles are global; their actors differ per project)",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's role id"),
            Column("name", TEXT, "the role's name (a role restriction's identifier)"),
            Column("description", TEXT, "the role's description"),
            raw("the role"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="project_role",
    ),
    Table(
        "role_actors",
        "one user or group holding a project role in one project",
        (
            SITE_ID,
            Column("project_id", BIGINT, "the project"),
            Column("role_id", BIGINT, "the project role"),
            Column("actor_type", TEXT, "'user' (atlassian-user-role-actor) or 'group' (atlassian-group-role-actor)"),
            Column("actor_id", TEXT, "account id for a user actor, group id for a group actor"),
            Column("actor_name", TEXT, "display name of the user, or name of the group, when loaded"),
            Column("role_actor_id", BIGINT, "Jira's id of the role actor"),
            raw("the role actor"),
        ),
        ("site_id", "project_id", "role_id", "actor_type", "actor_id"),
    ),
    Table(
        "permission_schemes",
        "one permission scheme",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's scheme id"),
            Column("name", TEXT, "the scheme's name"),
            Column("description", TEXT, "the scheme's description"),
            raw("the scheme, without its grants (kept in permission_grants)"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="permission_scheme",
    ),
    Table(
        "permission_grants",
        "one grant of a project permission in a permission scheme",
        (
            SITE_ID,
            Column("scheme_id", BIGINT, "the permission scheme"),
            Column("id", BIGINT, "Jira's grant id"),
            Column("permission", TEXT, "the permission key, e.g. BROWSE_PROJECTS"),
            *holder("holds it"),
            raw("the grant"),
        ),
        ("site_id", "scheme_id", "id"),
    ),
    Table(
        "project_permission_schemes",
        "the permission scheme a project uses",
        (
            SITE_ID,
            Column("project_id", BIGINT, "the project"),
            Column("scheme_id", BIGINT, "its permission scheme"),
        ),
        ("site_id", "project_id"),
    ),
    Table(
        "security_schemes",
        "one issue security scheme",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's scheme id"),
            Column("name", TEXT, "the scheme's name"),
            Column("description", TEXT, "the scheme's description"),
            Column("default_security_level_id", BIGINT, "the level new issues get; NULL if none"),
            raw("the scheme, without its levels (kept in security_levels)"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="security_scheme",
    ),
    Table(
        "security_levels",
        "one issue security level",
        (
            SITE_ID,
            Column("id", BIGINT, "Jira's level id (a string in some endpoints, normalised)"),
            Column("scheme_id", BIGINT, "the security scheme it belongs to"),
            Column("name", TEXT, "the level's name"),
            Column("description", TEXT, "the level's description"),
            Column("is_default", BOOLEAN, "it is the scheme's default level"),
            raw("the level"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="security_level",
    ),
    Table(
        "security_level_members",
        "one holder that may see issues at a security level",
        (
            SITE_ID,
            Column("level_id", BIGINT, "the security level"),
            Column("id", BIGINT, "Jira's member id"),
            Column("scheme_id", BIGINT, "the security scheme"),
            *holder("may see the level's issues"),
            raw("the member"),
        ),
        ("site_id", "level_id", "id"),
    ),
    Table(
        "project_security_schemes",
        "the issue security scheme a project uses",
        (
            SITE_ID,
            Column("project_id", BIGINT, "the project"),
            Column("scheme_id", BIGINT, "its issue security scheme"),
        ),
        ("site_id", "project_id"),
    ),
    Table(
        "fields",
        "one system or custom field",
        (
            SITE_ID,
            Column("id", TEXT, "the field id, e.g. summary or customfield_10050"),
            Column("key", TEXT, "the field key"),
            Column("name", TEXT, "the field's name"),
            Column("custom", BOOLEAN, "it is a custom field"),
            Column("orderable", BOOLEAN, "it can be used in ORDER BY"),
            Column("navigable", BOOLEAN, "it can be shown in the issue navigator"),
            Column("searchable", BOOLEAN, "it can be searched with JQL"),
            Column("schema_type", TEXT, "schema.type, e.g. user, group, array, string"),
            Column("schema_items", TEXT, "schema.items for arrays, e.g. user, group"),
            Column("schema_system", TEXT, "schema.system for system fields"),
            Column("schema_custom", TEXT, "schema.custom: the custom field type, e.g. ...:userpicker"),
            Column("schema_custom_id", BIGINT, "schema.customId"),
            Column("clause_names", JSON, "array of the JQL names of the field"),
            raw("the field"),
            *DELETION,
        ),
        ("site_id", "id"),
        entity_kind="field",
    ),
    Table(
        "my_permissions",
        "one permission the loading principal holds or lacks, globally or in one project (mypermissions)",
        (
            SITE_ID,
            PRINCIPAL_ID,
            Column("project_id", BIGINT, f"the project context; {GLOBAL_CONTEXT} for the global context"),
            Column("permission", TEXT, "the permission key, e.g. ADMINISTER, BROWSE_PROJECTS"),
            Column("permission_type", TEXT, "GLOBAL or PROJECT"),
            Column("have_permission", BOOLEAN, "the principal holds it in that context"),
            LOAD_ID,
        ),
        ("site_id", "principal_id", "project_id", "permission"),
    ),
    Table(
        "permission_checks",
        "one permission checked for an account with permissions/check (another account needs Administer Jira)",
        (
            SITE_ID,
            Column("account_id", TEXT, "the account checked"),
            Column("permission", TEXT, "the permission key"),
            Column("project_id", BIGINT, f"the project checked; {GLOBAL_CONTEXT} for a global permission"),
            Column("issue_id", BIGINT, f"the issue checked; {GLOBAL_CONTEXT} for a project or global check"),
            Column("have_permission", BOOLEAN, "the account holds it there"),
            Column("principal_id", TEXT, "account id of the principal that asked"),
            LOAD_ID,
        ),
        ("site_id", "account_id", "permission", "project_id", "issue_id"),
    ),
    # -- jira_lab's bookkeeping --------------------------------------------------------------------------------
    Table(
        "_jira_lab_schema",
        "one schema version applied to this file",
        (
            Column("version", INTEGER, "the schema version"),
            Column("applied_at", TIMESTAMP, "when it was applied"),
            Column("description", TEXT, "what the version changed"),
        ),
        ("version",),
    ),
    Table(
        "_jira_lab_sites",
        "one site loaded into this file",
        (
            SITE_ID,
            Column("url", TEXT, "the site's URL, e.g. https://example.atlassian.net"),
            Column("cloud_id", TEXT, "the site's cloud id, when known"),
            Column("title", TEXT, "the site's title (serverInfo.serverTitle), when known"),
            Column("updated_at", TIMESTAMP, "when this row was last written"),
        ),
        ("site_id",),
    ),
    Table(
        "_jira_lab_principals",
        "one account that loaded a site (the analyst, the technical user ...)",
        (
            SITE_ID,
            Column("principal_id", TEXT, "the principal's account id"),
            Column("display_name", TEXT, "the principal's display name"),
            Column("auth_kind", TEXT, "how it authenticated: oauth (3LO) or basic (API token)"),
            Column("scopes", JSON, "array of the OAuth scopes granted to the app; NULL for basic auth"),
            Column("first_seen_at", TIMESTAMP, "its first load"),
            Column("last_seen_at", TIMESTAMP, "its latest load"),
        ),
        ("site_id", "principal_id"),
    ),
    Table(
        "_jira_lab_cursors",
        "how far one principal's incremental load of one resource got",
        (
            SITE_ID,
            PRINCIPAL_ID,
            Column("resource", TEXT, "the resource, e.g. issues, worklogs, audit_records"),
            Column("cursor_value", TEXT, "the cursor (a time, an epoch in ms, a token ...) as the resource writes it"),
            LOAD_ID,
            Column("updated_at", TIMESTAMP, "when it was written (in the same transaction as the rows)"),
        ),
        ("site_id", "principal_id", "resource"),
    ),
    Table(
        "_jira_lab_loads",
        "one load run: who, when, how it ended and what it cost",
        (
            Column("load_id", BIGINT, "the load's id, increasing"),
            SITE_ID,
            PRINCIPAL_ID,
            Column("started_at", TIMESTAMP, "when it started"),
            Column("finished_at", TIMESTAMP, "when it finished; NULL while running or if it was killed"),
            Column("status", TEXT, "running, succeeded, failed or interrupted (found running by the next load)"),
            Column("full_load", BOOLEAN, "a full load (cursors ignored) rather than an incremental one"),
            Column("options", JSON, "the options it ran with (projects, since ...)"),
            Column("rows_per_table", JSON, "object: table name -> rows written"),
            Column("requests", BIGINT, "HTTP requests made"),
            Column("retries", BIGINT, "requests retried"),
            Column("rate_limited", BIGINT, "429 responses received"),
            Column("seconds", DOUBLE, "wall time in seconds"),
            Column("error", TEXT, "why it failed, if it did"),
        ),
        ("load_id",),
    ),
    Table(
        "_jira_lab_sightings",
        "one entity one principal could see: in which loads it first and last saw it",
        (
            SITE_ID,
            PRINCIPAL_ID,
            Column("entity_kind", TEXT, "the entity's kind: issue, comment, worklog, group ... (see each table)"),
            Column("entity_id", TEXT, "the entity's id as text (cast numeric ids to join)"),
            Column("first_seen_load", BIGINT, "the first load that saw it"),
            Column("last_seen_load", BIGINT, "the latest load that saw it"),
        ),
        ("site_id", "principal_id", "entity_kind", "entity_id"),
    ),
    Table(
        "_jira_lab_access",
        "how one resource answered one load: readable, or refused and why",
        (
            Column("load_id", BIGINT, "the load"),
            Column("resource", TEXT, "the resource or endpoint, e.g. group_members, audit_records, server_info"),
            SITE_ID,
            PRINCIPAL_ID,
            Column("outcome", TEXT, "ok, forbidden, unauthorized, missing_scope, not_found or error"),
            Column("http_status", INTEGER, "the HTTP status of the refusal; NULL when ok"),
            Column("message", TEXT, "Jira's error message, if any"),
            Column("checked_at", TIMESTAMP, "when it was recorded"),
        ),
        ("load_id", "resource"),
    ),
)

TABLES: dict[str, Table] = {table.name: table for table in _TABLES}
#: entity kind (as recorded in ``_jira_lab_sightings``) -> its table
ENTITY_TABLES: dict[str, Table] = {table.entity_kind: table for table in _TABLES if table.entity_kind}


def table(name: str) -> Table:
    """The declared table called ``name``; ``ValueError`` when there is none."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"no table {name!r} is declared in jira_lab.schema") from None


def ddl() -> list[str]:
    """The ``CREATE TABLE`` statements of every declared table, in declaration order."""
    return [declared.ddl() for declared in _TABLES]


# -- the data dictionary -----------------------------------------------------------------------------------------
DATA_DICTIONARY_PATH = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"

_DICTIONARY_INTRO = """\
# Data dictionary

Every table jira_lab writes to its DuckDB file, column by column. Generated from `jira_lab/schema.py` by
`uv run python -m jira_lab.schema`; do not edit by hand (a test fails when this file is stale).

- Column names are snake_case of Jira's camelCase; ids are kept as Jira gives them (numeric ids as `BIGINT`,
  account ids and group ids as `VARCHAR`).
- Every row belongs to one site: `site_id` (the site's cloud id, or its URL when the cloud id is unknown) is in
  every primary key, so several sites can share one file.
- Entity rows are stored once, whoever loaded them. What each loading principal could see is recorded in
  `_jira_lab_sightings` (by entity kind and id); facts that differ by principal carry a `principal_id`.
- `raw` keeps the entity as Jira sent it. `deleted_at`/`deleted_reason` mark entities found deleted or no longer
  visible; marked rows are kept.
- Permission holders (`holder_type`/`holder_parameter`/`holder_value`) follow Jira: for a `group` holder the value
  is the group id, for a `projectRole` holder the role id. A comment's or worklog's `visibility_identifier` is the
  group id (type `group`) or the role name (type `role`, resolved against the issue's project).
- `project_id` (and `issue_id` in `permission_checks`) is 0 for a permission held in the global context.
- Tables starting with `_jira_lab_` are jira_lab's own bookkeeping.
"""


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table_section(declared: Table) -> str:
    key = ", ".join(f"`{name}`" for name in declared.primary_key)
    lines = [f"## `{declared.name}`", "", f"{declared.meaning[0].upper()}{declared.meaning[1:]}.", ""]
    facts = [f"Primary key: {key}."]
    if declared.entity_kind:
        facts.append(f"Sighted as `{declared.entity_kind}`.")
    lines += [" ".join(facts), "", "| column | DuckDB type | polars type | meaning |", "| --- | --- | --- | --- |"]
    for column in declared.columns:
        lines.append(
            f"| `{column.name}` | `{column.type.sql}` | `{column.type.polars}` | {_escape_cell(column.meaning)} |"
        )
    return "\n".join(lines) + "\n"


def data_dictionary() -> str:
    """The data dictionary as Markdown: every table, its primary key and each column's types and meaning."""
    sections = [_DICTIONARY_INTRO, *(_table_section(declared) for declared in _TABLES)]
    return "\n".join(sections)


def write_data_dictionary(path: Path = DATA_DICTIONARY_PATH) -> Path:
    """Write :func:`data_dictionary` to ``path`` (by default ``docs/data-dictionary.md``) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data_dictionary(), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m jira_lab.schema [PATH]``: regenerate the data dictionary."""
    args = list(sys.argv[1:] if argv is None else argv)
    written = write_data_dictionary(Path(args[0]) if args else DATA_DICTIONARY_PATH)
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
