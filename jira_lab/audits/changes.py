"""Permission changes from the audit log: when, by whom and how the technical user's reach changed.

Jira's audit log (``audit_records`` with their ``audit_changed_values`` and ``audit_associated_items``) records each
change to the permission model as a record shaped by its kind. :func:`audit_changes` reads every record into
*elementary changes*, one row per thing added to or removed from something:

==================  =====================================================  ==========================================
change_kind         the records                                            target / holder
==================  =====================================================  ==========================================
membership          ``User added to group`` / ``User removed from group``  group / the user (associated USER item)
group_renamed       ``Group renamed`` (changed value ``Name``)             group / -
role_actor          ``Project roles changed`` (``Users``/``Groups``        project role in a project / each user or
                    before and after)                                      group added or removed
grant               ``Permission scheme updated`` (``Permission``,         permission in a scheme / the holder
                    ``Type``, ``Value``)
level_member        ``Issue security scheme updated`` (``Security          security level / the holder
                    level``, ``Type``, ``Value``)
global_permission   ``Global permission added`` / ``deleted``              global permission / the group
                    (``Permission``, ``Group``)
user_status         ``User updated`` (changed value ``Active``)            - / the user
==================  =====================================================  ==========================================

Groups appear in records by *name*, and a record keeps the name the group had when it was written: a group renamed
later (``Group renamed``, Name from -> to) appears under its old name in older records. Names are resolved to the
stable group id by following the renames forward in time from each record's moment to today's name in ``groups``.

:func:`permission_changes` keeps the changes that affect what one technical user sees (its memberships, the role
actors, grants, level members and global permissions that name it or one of its groups at the time) and says, for
each, whether it gained or lost something, and which of its current gaps the change explains (the latest loss on a
way in to that gap). :func:`gap_explanations` gives one row per gap with the change that explains it.

The record shapes (summaries, categories, changed-value field names) are those the simulator writes after the
Atlassian documentation and the OpenAPI spec's examples (``jira_lab.sim.auditlog``); the spec does not list every
category, so unknown records are ignored rather than guessed at.

All functions are pure: the loaded tables of one site (:class:`~jira_lab.audits.model.SiteTables`) in, a DataFrame
out. Their columns are listed in each docstring and in ``docs/audits.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from jira_lab.audits import model
from jira_lab.audits.model import SiteTables

__all__ = [
    "AUDIT_CHANGE_COLUMNS",
    "EXCLUDED",
    "GAINED",
    "GAP_COLUMNS",
    "GAP_EXPLANATION_COLUMNS",
    "LOST",
    "PERMISSION_CHANGE_COLUMNS",
    "RENAMED",
    "audit_changes",
    "gap_explanations",
    "gaps_from_findings",
    "global_permission_groups",
    "group_name_resolution",
    "permission_changes",
]

Frame = pl.DataFrame | pl.LazyFrame

#: Holder types as the admin UI (and so the audit log) names them -> Jira's API holder type.
HOLDER_TYPES_BY_AUDIT_NAME: Mapping[str, str] = {
    "Anyone": "anyone",
    "Application access": "applicationRole",
    "Group": "group",
    "Project Role": "projectRole",
    "Single User": "user",
    "Reporter": "reporter",
    "Current Assignee": "assignee",
    "Project Lead": "projectLead",
    "User Custom Field Value": "userCustomField",
    "Group Custom Field Value": "groupCustomField",
}
#: Global permissions as audit records name them -> their keys.
GLOBAL_PERMISSION_KEYS: Mapping[str, str] = {
    "Jira Administrators": "ADMINISTER",
    "Administer Jira": "ADMINISTER",
    "Browse Users": "USER_PICKER",
    "Browse users and groups": "USER_PICKER",
    "Create Shared Objects": "CREATE_SHARED_OBJECTS",
    "Share dashboards and filters": "CREATE_SHARED_OBJECTS",
    "Manage Group Filter Subscriptions": "MANAGE_GROUP_FILTER_SUBSCRIPTIONS",
    "Bulk Change": "BULK_CHANGE",
    "Make bulk changes": "BULK_CHANGE",
}
#: What a change did to the technical user (``effect``).
GAINED, LOST, EXCLUDED, RENAMED = "gained", "lost", "excluded", "renamed"
#: The holder value an ``applicationRole`` holder without an application shows: Jira's "Any logged in user".
ANY_LOGGED_IN_USER = "Any logged in user"

#: Columns of :func:`audit_changes`, in order, with their dtypes.
AUDIT_CHANGE_COLUMNS: Mapping[str, pl.DataType] = {
    "record_id": pl.Int64(),
    "created": pl.Datetime("us", "UTC"),
    "author_account_id": pl.String(),
    "category": pl.String(),
    "summary": pl.String(),
    "change_kind": pl.String(),
    "action": pl.String(),
    "group_id": pl.String(),
    "group_name_then": pl.String(),
    "project_id": pl.Int64(),
    "role_id": pl.Int64(),
    "role_name": pl.String(),
    "scheme_id": pl.Int64(),
    "scheme_name": pl.String(),
    "level_id": pl.Int64(),
    "level_name": pl.String(),
    "permission": pl.String(),
    "holder_type": pl.String(),
    "holder_value": pl.String(),
    "holder_name_then": pl.String(),
    "old_name": pl.String(),
    "new_name": pl.String(),
}

#: Columns of the ``gaps`` frame :func:`permission_changes` and :func:`gap_explanations` take (extra columns kept).
GAP_COLUMNS: Mapping[str, pl.DataType] = {
    "gap_kind": pl.String(),
    "gap": pl.String(),
    "project_id": pl.Int64(),
    "level_id": pl.Int64(),
    "role_id": pl.Int64(),
    "group_id": pl.String(),
    "permission": pl.String(),
}

#: Columns of :func:`permission_changes`: :data:`AUDIT_CHANGE_COLUMNS` plus these.
PERMISSION_CHANGE_COLUMNS: Mapping[str, pl.DataType] = {
    **AUDIT_CHANGE_COLUMNS,
    "author_name": pl.String(),
    "effect": pl.String(),
    "description": pl.String(),
    "explains": pl.String(),
}

#: Columns of :func:`gap_explanations`.
GAP_EXPLANATION_COLUMNS: Mapping[str, pl.DataType] = {
    "gap_kind": pl.String(),
    "gap": pl.String(),
    "record_id": pl.Int64(),
    "created": pl.Datetime("us", "UTC"),
    "author_account_id": pl.String(),
    "author_name": pl.String(),
    "change_kind": pl.String(),
    "effect": pl.String(),
    "description": pl.String(),
}

_FIELDS = {
    "Permission": "permission",
    "Type": "type",
    "Value": "value",
    "Security level": "level",
    "Group": "group",
    "Name": "name",
    "Users": "users",
    "Groups": "groups",
    "Active": "active",
}


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _blank_to_null(name: str) -> pl.Expr:
    """Jira writes "" for the side of a change that has no value (``changedFrom`` of an addition)."""
    column = pl.col(name)
    return pl.when(column.str.strip_chars() == "").then(None).otherwise(column).alias(name)


def _record_fields(changed_values: pl.LazyFrame) -> pl.LazyFrame:
    """One row per record: ``<field>_from``/``<field>_to`` for the changed values the change kinds read."""
    aggregations = []
    for field_name, short in _FIELDS.items():
        chosen = pl.col("field_name") == field_name
        aggregations.append(pl.col("changed_from").filter(chosen).first().alias(f"{short}_from"))
        aggregations.append(pl.col("changed_to").filter(chosen).first().alias(f"{short}_to"))
    wide = changed_values.group_by("audit_record_id").agg(aggregations)
    return wide.with_columns(_blank_to_null(f"{short}_{side}") for short in _FIELDS.values() for side in ("from", "to"))


def _associated(associated_items: pl.LazyFrame, type_name: str, prefix: str) -> pl.LazyFrame:
    """The first associated item of a type per record, as ``<prefix>_id``/``<prefix>_name``."""
    return (
        associated_items.filter(pl.col("type_name") == type_name)
        .sort("audit_record_id", "position")
        .group_by("audit_record_id")
        .agg(pl.col("item_id").first().alias(f"{prefix}_id"), pl.col("item_name").first().alias(f"{prefix}_name"))
    )


def _to_int(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Int64, strict=False)


def _base() -> list[pl.Expr]:
    return [
        pl.col("id").alias("record_id"),
        pl.col("created"),
        pl.col("author_account_id"),
        pl.col("category"),
        pl.col("summary"),
    ]


def _memberships(records: pl.LazyFrame, associated_items: pl.LazyFrame) -> pl.LazyFrame:
    users = associated_items.filter(pl.col("type_name") == "USER").select(
        pl.col("audit_record_id").alias("id"), pl.col("item_id").alias("holder_value")
    )
    return (
        records.filter(pl.col("summary").is_in(["User added to group", "User removed from group"]))
        .join(users, on="id", how="inner")
        .select(
            *_base(),
            pl.lit("membership").alias("change_kind"),
            pl.when(pl.col("summary").str.contains("added"))
            .then(pl.lit("added"))
            .otherwise(pl.lit("removed"))
            .alias("action"),
            pl.col("object_item_name").alias("group_name_then"),
            pl.lit("user").alias("holder_type"),
            pl.col("holder_value"),
            pl.col("holder_value").alias("holder_name_then"),
        )
    )


def _renames(records: pl.LazyFrame) -> pl.LazyFrame:
    return records.filter((pl.col("summary") == "Group renamed") & pl.col("name_from").is_not_null()).select(
        *_base(),
        pl.lit("group_renamed").alias("change_kind"),
        pl.lit("renamed").alias("action"),
        pl.coalesce("name_to", "object_item_name").alias("group_name_then"),
        pl.col("name_from").alias("old_name"),
        pl.coalesce("name_to", "object_item_name").alias("new_name"),
    )


def _actor_diff(records: pl.LazyFrame, side: str, actor_type: str) -> pl.LazyFrame:
    """Users or groups added to (or removed from) a project role: the difference of the before/after lists."""
    before = pl.col(f"{side}_from").fill_null("").str.split(", ")
    after = pl.col(f"{side}_to").fill_null("").str.split(", ")
    diffs = records.filter(pl.col(f"{side}_from").is_not_null() | pl.col(f"{side}_to").is_not_null()).with_columns(
        after.list.set_difference(before).alias("added"), before.list.set_difference(after).alias("removed")
    )
    parts = []
    for action in ("added", "removed"):
        parts.append(
            diffs.select(
                *_base(),
                pl.lit("role_actor").alias("change_kind"),
                pl.lit(action).alias("action"),
                _to_int("project_item_id").alias("project_id"),
                _to_int("object_item_id").alias("role_id"),
                pl.col("object_item_name").alias("role_name"),
                pl.lit(actor_type).alias("holder_type"),
                pl.col(action).alias("holder_name_then"),
            )
            .explode("holder_name_then")
            .filter(pl.col("holder_name_then").str.strip_chars() != "")
        )
    return pl.concat(parts, how="vertical")


def _role_actors(records: pl.LazyFrame) -> pl.LazyFrame:
    chosen = records.filter(pl.col("summary") == "Project roles changed")
    users = _actor_diff(chosen, "users", "user").with_columns(pl.col("holder_name_then").alias("holder_value"))
    groups = _actor_diff(chosen, "groups", "group")
    return pl.concat([users, groups], how="diagonal_relaxed")


def _holder_columns() -> list[pl.Expr]:
    """Holder type, recorded value and action of a grant or level member change (same shape for both)."""
    audit_type = pl.coalesce("type_to", "type_from")
    holder_type = audit_type.replace_strict(
        dict(HOLDER_TYPES_BY_AUDIT_NAME), default=audit_type, return_dtype=pl.String
    ).alias("holder_type")
    return [
        pl.when(pl.col("type_to").is_not_null()).then(pl.lit("added")).otherwise(pl.lit("removed")).alias("action"),
        holder_type,
        pl.coalesce("value_to", "value_from").alias("holder_name_then"),
    ]


def _grants(records: pl.LazyFrame) -> pl.LazyFrame:
    chosen = records.filter(
        (pl.col("summary") == "Permission scheme updated")
        & pl.coalesce("permission_to", "permission_from").is_not_null()
        & pl.coalesce("type_to", "type_from").is_not_null()
    )
    permission = pl.coalesce("permission_to", "permission_from").str.strip_chars().str.to_uppercase()
    return chosen.select(
        *_base(),
        pl.lit("grant").alias("change_kind"),
        *_holder_columns(),
        _to_int("object_item_id").alias("scheme_id"),
        pl.col("object_item_name").alias("scheme_name"),
        permission.str.replace_all(" ", "_").alias("permission"),
    )


def _level_members(records: pl.LazyFrame) -> pl.LazyFrame:
    chosen = records.filter(
        (pl.col("summary") == "Issue security scheme updated")
        & pl.coalesce("level_to", "level_from").is_not_null()
        & pl.coalesce("type_to", "type_from").is_not_null()
    )
    return chosen.select(
        *_base(),
        pl.lit("level_member").alias("change_kind"),
        *_holder_columns(),
        _to_int("object_item_id").alias("scheme_id"),
        pl.col("object_item_name").alias("scheme_name"),
        _to_int("level_item_id").alias("level_id"),
        pl.coalesce("level_item_name", "level_to", "level_from").alias("level_name"),
    )


def _global_permissions(records: pl.LazyFrame) -> pl.LazyFrame:
    chosen = records.filter(
        pl.col("summary").str.starts_with("Global permission") & pl.coalesce("group_to", "group_from").is_not_null()
    )
    name = pl.coalesce("permission_to", "permission_from")
    key = name.replace_strict(dict(GLOBAL_PERMISSION_KEYS), default=name, return_dtype=pl.String)
    return chosen.select(
        *_base(),
        pl.lit("global_permission").alias("change_kind"),
        pl.when(pl.col("group_to").is_not_null()).then(pl.lit("added")).otherwise(pl.lit("removed")).alias("action"),
        key.alias("permission"),
        pl.lit("group").alias("holder_type"),
        pl.coalesce("group_to", "group_from").alias("holder_name_then"),
    )


def _user_status(records: pl.LazyFrame) -> pl.LazyFrame:
    chosen = records.filter(pl.col("active_to").is_not_null() & (pl.col("object_item_type_name") == "USER"))
    return chosen.select(
        *_base(),
        pl.lit("user_status").alias("change_kind"),
        pl.when(pl.col("active_to").str.to_lowercase() == "inactive")
        .then(pl.lit("deactivated"))
        .otherwise(pl.lit("activated"))
        .alias("action"),
        pl.lit("user").alias("holder_type"),
        pl.col("object_item_id").alias("holder_value"),
        pl.col("object_item_name").alias("holder_name_then"),
    )


def group_name_resolution(
    references: Frame, *, audit_records: Frame, audit_changed_values: Frame, groups: Frame
) -> pl.DataFrame:
    """The group id each (name, moment) reference meant, following ``Group renamed`` records forward in time.

    A name at a moment before a rename of that name is followed to the new name at the rename's moment, and so on,
    until no later rename of the name exists; the name reached is today's name, looked up in ``groups``. A
    reference to a group deleted since (or never loaded) resolves to ``None``.

    Args:
        references: columns ``name`` (a group name as recorded) and ``at`` (when it was recorded).
        audit_records, audit_changed_values: the audit log (``Group renamed`` records, changed value ``Name``).
        groups: today's groups (``group_id``, ``name``).

    Returns:
        The distinct references with ``name``, ``at`` and ``group_id``.
    """
    renames = (
        _lazy(audit_records)
        .filter(pl.col("summary") == "Group renamed")
        .join(
            _lazy(audit_changed_values).filter(pl.col("field_name") == "Name"),
            left_on="id",
            right_on="audit_record_id",
        )
        .select(
            pl.col("changed_from").alias("name"),
            pl.col("changed_to").alias("renamed_to"),
            pl.col("created").alias("renamed_at"),
        )
        .drop_nulls()
        .sort("renamed_at")
        .collect()
    )
    references = _lazy(references).select("name", "at").unique().collect()
    moving = references.with_columns(pl.col("name").alias("current"), pl.col("at").alias("moment"))
    # each pass moves every reference across the next rename of its name: a chain of n renames needs n passes, and
    # renames are few, so this loops over renames, never over rows
    for _ in range(renames.height):
        moved = moving.sort("moment").join_asof(
            renames.rename({"name": "current"}),
            left_on="moment",
            right_on="renamed_at",
            by="current",
            strategy="forward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        if moved["renamed_to"].null_count() == moved.height:
            break
        moving = moved.select(
            "name",
            "at",
            pl.coalesce("renamed_to", "current").alias("current"),
            pl.coalesce("renamed_at", "moment").alias("moment"),
        )
    today = _lazy(groups).select(pl.col("name").alias("current"), "group_id").unique("current").collect()
    return moving.join(today, on="current", how="left").select("name", "at", "group_id")


def _resolve_groups(changes: pl.LazyFrame, tables: SiteTables) -> pl.LazyFrame:
    """Fill ``group_id`` (the changed group) and ``holder_value`` of group holders from the names in the records."""
    target_refs = changes.filter(pl.col("group_name_then").is_not_null()).select(
        pl.col("group_name_then").alias("name"), pl.col("created").alias("at")
    )
    holder_refs = changes.filter(pl.col("holder_type") == "group").select(
        pl.col("holder_name_then").alias("name"), pl.col("created").alias("at")
    )
    resolved = group_name_resolution(
        pl.concat([target_refs, holder_refs]),
        audit_records=tables.audit_records,
        audit_changed_values=tables.audit_changed_values,
        groups=tables.groups,
    ).lazy()
    known_ids = tables.groups.select(pl.col("group_id").alias("known_id")).unique()
    changes = (
        changes.join(
            resolved.rename({"name": "group_name_then", "at": "created", "group_id": "target_group_id"}),
            on=["group_name_then", "created"],
            how="left",
        )
        .join(
            resolved.rename({"name": "holder_name_then", "at": "created", "group_id": "holder_group_id"}),
            on=["holder_name_then", "created"],
            how="left",
        )
        # a record naming a group by its id (rather than by its name) needs no resolution
        .join(known_ids, left_on="holder_name_then", right_on="known_id", how="left", coalesce=False)
    )
    return changes.with_columns(
        pl.coalesce("group_id", "target_group_id").alias("group_id"),
        pl.when(pl.col("holder_type") == "group")
        .then(pl.coalesce("known_id", "holder_group_id"))
        .otherwise(pl.col("holder_value"))
        .alias("holder_value"),
    ).drop("target_group_id", "holder_group_id", "known_id")


def _resolve_named_holders(changes: pl.LazyFrame, tables: SiteTables) -> pl.LazyFrame:
    """Holder values as Jira's API gives them, from the names the records show: role id, application key, field
    id; "Any logged in user" has none, a user's value is its account id."""
    field_names = tables.fields.select("name", pl.col("id").alias("resolved"))
    lookups = [
        ("projectRole", tables.project_roles.select("name", pl.col("id").cast(pl.String).alias("resolved"))),
        ("applicationRole", tables.application_roles.select("name", pl.col("key").alias("resolved"))),
        ("userCustomField", field_names),
        ("groupCustomField", field_names),
    ]
    for holder_type, lookup in lookups:
        named = lookup.unique("name").rename({"name": "holder_name_then"})
        changes = (
            changes.join(
                named.with_columns(pl.lit(holder_type).alias("holder_type")),
                on=["holder_type", "holder_name_then"],
                how="left",
            )
            .with_columns(pl.coalesce("holder_value", "resolved").alias("holder_value"))
            .drop("resolved")
        )
    return changes.with_columns(
        pl.when((pl.col("holder_type") == "applicationRole") & (pl.col("holder_name_then") == ANY_LOGGED_IN_USER))
        .then(None)
        .when(pl.col("holder_type") == "user")
        .then(pl.coalesce("holder_value", "holder_name_then"))
        .otherwise(pl.col("holder_value"))
        .alias("holder_value")
    )


def _empty_changes() -> pl.LazyFrame:
    return pl.LazyFrame(schema=AUDIT_CHANGE_COLUMNS)


def audit_changes(tables: SiteTables) -> pl.DataFrame:
    """Every permission-model change the audit log records, one row per elementary change, oldest first.

    Group names are resolved to group ids through renames (see the module doc); ``Project Role``, ``Application
    access`` and custom field holders are resolved by name through ``project_roles``, ``application_roles`` and
    ``fields``.

    Returns:
        :data:`AUDIT_CHANGE_COLUMNS`, ordered by ``created`` then ``record_id``:

        - ``record_id``, ``created``, ``author_account_id``, ``category``, ``summary``: the audit record.
        - ``change_kind``: membership, group_renamed, role_actor, grant, level_member, global_permission or
          user_status.
        - ``action``: added or removed (renamed; deactivated or activated for user_status).
        - ``group_id``: the group a membership or rename changed (resolved through renames); ``group_name_then``:
          its name in the record.
        - ``project_id``, ``role_id``, ``role_name``: the project role whose actors changed (role_actor).
        - ``scheme_id``, ``scheme_name``: the permission scheme (grant) or issue security scheme (level_member).
        - ``level_id``, ``level_name``: the security level (level_member).
        - ``permission``: the permission key (grant, global_permission), e.g. BROWSE_PROJECTS, ADMINISTER.
        - ``holder_type``: who was added or removed, in Jira's holder vocabulary (user, group, projectRole,
          applicationRole, reporter ...); ``holder_value``: its id as Jira's API gives it (account id, group id,
          role id, application key, field id; NULL for "Any logged in user" and holders without a value);
          ``holder_name_then``: the value as the record shows it.
        - ``old_name``, ``new_name``: a rename's names.
    """
    records = tables.audit_records
    associated = tables.audit_associated_items
    by_record = {"left_on": "id", "right_on": "audit_record_id", "how": "left"}
    wide = (
        records.join(_record_fields(tables.audit_changed_values), **by_record)  # type: ignore[arg-type]
        .join(_associated(associated, "PROJECT", "project_item"), **by_record)  # type: ignore[arg-type]
        .join(_associated(associated, "SECURITY_LEVEL", "level_item"), **by_record)  # type: ignore[arg-type]
    )
    parts = [
        _memberships(wide, associated),
        _renames(wide),
        _role_actors(wide),
        _grants(wide),
        _level_members(wide),
        _global_permissions(wide),
        _user_status(wide),
    ]
    changes = pl.concat([_empty_changes(), *parts], how="diagonal_relaxed")
    changes = _resolve_named_holders(_resolve_groups(changes, tables), tables)
    return (
        changes.select([pl.col(name).cast(dtype) for name, dtype in AUDIT_CHANGE_COLUMNS.items()])
        .sort("created", "record_id", "holder_type", "holder_value", nulls_last=True)
        .collect()
    )


def global_permission_groups(tables: SiteTables, changes: pl.DataFrame | None = None) -> pl.LazyFrame:
    """The groups holding each global permission according to the audit log: granted and not removed since.

    The log only knows what it recorded (grants older than its retention are missing), so use it as evidence of a
    grant, not as proof that none exists.

    Args:
        changes: :func:`audit_changes` of ``tables`` when already computed.

    Returns:
        ``permission``, ``group_id`` (NULL for a group since deleted), ``group_name_then`` (as last recorded),
        ``granted_at``, ``granted_by`` (account id).
    """
    found = audit_changes(tables) if changes is None else changes
    return (
        found.lazy()
        .filter(pl.col("change_kind") == "global_permission")
        .with_columns(pl.coalesce("holder_value", "holder_name_then").alias("_holder"))
        .sort("created", "record_id")
        .group_by("permission", "_holder")
        .agg(
            pl.col("action").last(),
            pl.col("holder_value").last().alias("group_id"),
            pl.col("holder_name_then").last().alias("group_name_then"),
            pl.col("created").last().alias("granted_at"),
            pl.col("author_account_id").last().alias("granted_by"),
        )
        .filter(pl.col("action") == "added")
        .select("permission", "group_id", "group_name_then", "granted_at", "granted_by")
        .sort("permission", "group_name_then")
    )


# -- what concerns the technical user ----------------------------------------------------------------------------
def _membership_at(changes: pl.LazyFrame, tables: SiteTables, account_id: str) -> pl.LazyFrame:
    """Adds ``member_then``: was the account a member of the group in ``_group`` at the change's moment?

    The latest membership record of the account and that group at or before the moment decides; with no record
    at all, today's membership (``group_members``) stands for every moment; with records only later, it was not.
    """
    events = (
        changes.filter(
            (pl.col("change_kind") == "membership")
            & (pl.col("holder_value") == account_id)
            & pl.col("group_id").is_not_null()
        )
        .select(
            pl.col("group_id").alias("_group"),
            pl.col("created").alias("_event_at"),
            (pl.col("action") == "added").alias("_member_after"),
        )
        .sort("_event_at")
    )
    recorded = events.select("_group").unique().with_columns(pl.lit(True).alias("_has_events"))
    today = (
        tables.group_members.filter(pl.col("account_id") == account_id)
        .select(pl.col("group_id").alias("_group"))
        .unique()
        .with_columns(pl.lit(True).alias("_member_today"))
    )
    return (
        changes.sort("created")
        .join_asof(
            events,
            left_on="created",
            right_on="_event_at",
            by="_group",
            strategy="backward",
            check_sortedness=False,
        )
        .join(recorded, on="_group", how="left")
        .join(today, on="_group", how="left")
        .with_columns(
            pl.when(pl.col("_group").is_null())
            .then(pl.lit(False))
            .when(pl.col("_member_after").is_not_null())
            .then(pl.col("_member_after"))
            .when(pl.col("_has_events").fill_null(False))
            .then(pl.lit(False))
            .otherwise(pl.col("_member_today").fill_null(False))
            .alias("member_then")
        )
        .drop("_event_at", "_member_after", "_has_events", "_member_today")
    )


def _holder_includes(changes: pl.LazyFrame, tables: SiteTables, account_id: str) -> pl.LazyFrame:
    """Adds ``includes_it``: does the changed holder (grant, level member, role actor, global permission) name the
    account or admit it? Groups are judged at the change's moment; roles, product access and project leads by
    today's data (the log does not record them fully enough to replay)."""
    projects_of_scheme = pl.concat(
        [
            tables.project_permission_schemes.select("project_id", "scheme_id").with_columns(
                pl.lit("grant").alias("change_kind")
            ),
            tables.project_security_schemes.select("project_id", "scheme_id").with_columns(
                pl.lit("level_member").alias("change_kind")
            ),
        ]
    )
    roles_held = (
        model.role_members(tables, [account_id])
        .select("project_id", pl.col("role_id").cast(pl.String).alias("holder_value"))
        .unique()
        .join(projects_of_scheme, on="project_id")
        .select("change_kind", "scheme_id", "holder_value", pl.lit(True).alias("_role_held"))
        .unique()
    )
    leads = (
        tables.projects.filter(pl.col("lead_account_id") == account_id)
        .select(pl.col("id").alias("project_id"))
        .join(projects_of_scheme, on="project_id")
        .select("change_kind", "scheme_id", pl.lit(True).alias("_leads"))
        .unique()
    )
    access = model.product_access(tables, [account_id]).select(pl.col("application_key").alias("holder_value"))
    has_any_access = access.select(pl.len() > 0).collect().item()
    keyed_access = access.unique().with_columns(pl.lit(True).alias("_access"))
    kind = pl.col("holder_type")
    with_group = changes.with_columns(
        pl.when(pl.col("change_kind") == "membership")
        .then(pl.col("group_id"))
        .when(kind == "group")
        .then(pl.col("holder_value"))
        .alias("_group")
    )
    judged = (
        _membership_at(with_group, tables, account_id)
        .join(roles_held, on=["change_kind", "scheme_id", "holder_value"], how="left")
        .join(leads, on=["change_kind", "scheme_id"], how="left")
        .join(keyed_access, on="holder_value", how="left")
    )
    includes = (
        pl.when(kind == "user")
        .then(pl.col("holder_value") == account_id)
        .when(kind == "group")
        .then(pl.col("member_then"))
        .when(kind == "anyone")
        .then(pl.lit(True))
        .when((kind == "applicationRole") & pl.col("holder_value").is_null())
        .then(pl.lit(has_any_access))
        .when(kind == "applicationRole")
        .then(pl.col("_access").fill_null(False))
        .when(kind == "projectRole")
        .then(pl.col("_role_held").fill_null(False))
        .when(kind == "projectLead")
        .then(pl.col("_leads").fill_null(False))
        .otherwise(pl.lit(False))  # issue data holders (reporter, assignee, custom fields) hold only for some issues
    )
    return judged.with_columns(includes.alias("includes_it")).drop("_role_held", "_leads", "_access")


def _effects(account_id: str, permissions: Iterable[str]) -> pl.Expr:
    """gained / lost / renamed (a group of its renamed) / NULL (does not concern it)."""
    kind = pl.col("change_kind")
    action = pl.col("action")
    direction = pl.when(action == "added").then(pl.lit(GAINED)).otherwise(pl.lit(LOST))
    return (
        pl.when(kind == "membership")
        .then(pl.when(pl.col("holder_value") == account_id).then(direction))
        .when(kind == "user_status")
        .then(
            pl.when(pl.col("holder_value") == account_id).then(
                pl.when(action == "activated").then(pl.lit(GAINED)).otherwise(pl.lit(LOST))
            )
        )
        .when(kind == "group_renamed")
        .then(pl.when(pl.col("_ever_its_group")).then(pl.lit(RENAMED)))
        .when(kind == "grant")
        .then(pl.when(pl.col("includes_it") & pl.col("permission").is_in(list(permissions))).then(direction))
        .when(kind.is_in(["role_actor", "level_member", "global_permission"]))
        .then(pl.when(pl.col("includes_it")).then(direction))
    )


def _paths(changes: pl.LazyFrame) -> pl.LazyFrame:
    """Adds ``path``: the part of the permission model a change altered, as the gaps name their ways in."""
    kind = pl.col("change_kind")
    return changes.with_columns(
        pl.when(kind == "membership")
        .then(pl.format("group:{}", pl.col("group_id")))
        .when(kind == "role_actor")
        .then(pl.format("role:{}:{}", pl.col("project_id"), pl.col("role_id")))
        .when(kind == "grant")
        .then(pl.format("grant:{}:{}", pl.col("scheme_id"), pl.col("permission")))
        .when(kind == "level_member")
        .then(pl.format("level:{}", pl.col("level_id")))
        .when(kind == "global_permission")
        .then(pl.format("global:{}", pl.col("permission")))
        .when(kind == "user_status")
        .then(pl.lit("account"))
        .alias("path")
    )


def _gap_paths(gaps: pl.LazyFrame, tables: SiteTables, admin_groups: pl.LazyFrame) -> pl.LazyFrame:
    """``gap`` + ``path``: every part of the permission model through which the gap could have been open."""
    kind = pl.col("gap_kind")
    own = gaps.select(
        "gap",
        pl.when(kind == "group")
        .then(pl.format("group:{}", pl.col("group_id")))
        .when(kind == "role")
        .then(pl.format("role:{}:{}", pl.col("project_id"), pl.col("role_id")))
        .when(kind == "level")
        .then(pl.format("level:{}", pl.col("level_id")))
        .when(kind == "admin")
        .then(pl.lit("global:ADMINISTER"))
        .alias("path"),
    )
    account = gaps.select("gap", pl.lit("account").alias("path"))
    group_actors = tables.role_actors.filter(pl.col("actor_type") == "group").select(
        "project_id", "role_id", pl.col("actor_id").alias("group_id")
    )
    role_groups = (
        gaps.filter(kind == "role")
        .select("gap", "project_id", "role_id")
        .join(group_actors, on=["project_id", "role_id"])
        .select("gap", pl.format("group:{}", pl.col("group_id")).alias("path"))
    )
    # browse: the project's scheme's Browse Projects grants, their groups and roles (and the roles' groups)
    browse = gaps.filter(kind == "browse").select("gap", "project_id")
    # the scheme's own path comes from the project, not from its grants: the grant that was removed is gone
    scheme_paths = browse.join(tables.project_permission_schemes.select("project_id", "scheme_id"), on="project_id")
    browse_grants = browse.join(model.project_permission_grants(tables, model.BROWSE_PROJECTS), on="project_id")
    browse_paths = pl.concat(
        [
            scheme_paths.select(
                "gap", pl.format("grant:{}:{}", pl.col("scheme_id"), pl.lit(model.BROWSE_PROJECTS)).alias("path")
            ),
            _holder_paths(browse_grants, group_actors),
        ],
        how="vertical_relaxed",
    )
    levels = gaps.filter(kind == "level").select("gap", "level_id", "project_id")
    members = model.normalized_holders(
        tables.security_level_members.select("level_id", "holder_type", "holder_parameter", "holder_value"), tables
    )
    level_paths = _holder_paths(levels.join(members, on="level_id"), group_actors)
    admin_paths = (
        gaps.filter(kind == "admin")
        .select("gap")
        .join(admin_groups.select("group_id").drop_nulls(), how="cross")
        .select("gap", pl.format("group:{}", pl.col("group_id")).alias("path"))
    )
    return (
        pl.concat(
            [own, account, role_groups, browse_paths, level_paths, admin_paths],
            how="vertical_relaxed",
        )
        .drop_nulls()
        .unique()
    )


def _holder_paths(holders: pl.LazyFrame, group_actors: pl.LazyFrame) -> pl.LazyFrame:
    """``gap`` + ``path`` of group and project role holders (``gap``, ``project_id``, ``holder_type``,
    ``holder_value``), and of the group actors of those roles in the project."""
    kind = pl.col("holder_type")
    groups = holders.filter(kind == "group").select("gap", pl.format("group:{}", pl.col("holder_value")).alias("path"))
    roles = holders.filter(kind == "projectRole").with_columns(
        pl.col("holder_value").cast(pl.Int64, strict=False).alias("role_id")
    )
    role_paths = roles.select("gap", pl.format("role:{}:{}", pl.col("project_id"), pl.col("role_id")).alias("path"))
    role_group_paths = roles.join(group_actors, on=["project_id", "role_id"]).select(
        "gap", pl.format("group:{}", pl.col("group_id")).alias("path")
    )
    return pl.concat([groups, role_paths, role_group_paths])


def _excluded_levels(changes: pl.LazyFrame, gaps: pl.LazyFrame) -> pl.LazyFrame:
    """Adds ``_level_created``: the record is among the first of a security level the technical user lacks
    (the log has no "level created" record: the level appears with its first members)."""
    gapped = gaps.filter(pl.col("gap_kind") == "level").select("level_id").unique()
    first = (
        changes.filter(pl.col("change_kind") == "level_member")
        .join(gapped, on="level_id", how="semi")
        .group_by("level_id")
        .agg(pl.col("created").min().alias("_first_at"))
    )
    return (
        changes.join(first, on="level_id", how="left")
        .with_columns(
            (
                (pl.col("change_kind") == "level_member")
                & (pl.col("created") == pl.col("_first_at"))
                & (pl.col("action") == "added")
            )
            .fill_null(False)
            .alias("_level_created")
        )
        .drop("_first_at")
    )


def _conformed_gaps(gaps: Frame) -> pl.LazyFrame:
    lazy = _lazy(gaps)
    present = set(lazy.collect_schema().names())
    return lazy.with_columns(
        pl.lit(None, dtype=dtype).alias(name) for name, dtype in GAP_COLUMNS.items() if name not in present
    ).with_columns(pl.col(name).cast(dtype) for name, dtype in GAP_COLUMNS.items())


def gaps_from_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """The failing subjects of checks 1-4 of :func:`jira_lab.audits.preflight.preflight_findings` as gaps.

    Returns:
        :data:`GAP_COLUMNS` (``gap_kind``: admin, browse, level, role or group; ``gap``: the finding's subject)
        plus ``issues``, ``comments``, ``worklogs``, ``hidden_issues``, ``hidden_comments``, ``hidden_worklogs``.
    """
    failing = findings.filter((pl.col("status") == "fail") & pl.col("check").is_in([1, 2, 3, 4]))
    kind = (
        pl.when(pl.col("check") == 1)
        .then(pl.lit("admin"))
        .when(pl.col("check") == 2)
        .then(pl.lit("browse"))
        .when(pl.col("check") == 3)
        .then(pl.lit("level"))
        .when(pl.col("group_id").is_not_null())
        .then(pl.lit("group"))
        .otherwise(pl.lit("role"))
    )
    counts = ["issues", "comments", "worklogs", "hidden_issues", "hidden_comments", "hidden_worklogs"]
    return failing.select(
        kind.alias("gap_kind"),
        pl.col("subject").alias("gap"),
        pl.col("project_id"),
        pl.col("level_id"),
        pl.col("role_id"),
        pl.col("group_id"),
        pl.col("permission"),
        *counts,
    )


def _description(name: str) -> pl.Expr:
    kind, action = pl.col("change_kind"), pl.col("action")
    group = pl.coalesce("group_name_then", "group_id")
    holder = pl.concat_str(
        [pl.col("holder_type"), pl.coalesce("_holder_display", "holder_name_then", "holder_value")],
        separator=" ",
        ignore_nulls=True,
    )
    verb = pl.when(action == "added").then(pl.lit("added to")).otherwise(pl.lit("removed from"))
    return (
        pl.when(kind == "membership")
        .then(pl.format("{} {} group {}", pl.lit(name), verb, group))
        .when(kind == "group_renamed")
        .then(pl.format("group {} renamed to {}", pl.col("old_name"), pl.col("new_name")))
        .when(kind == "role_actor")
        .then(
            pl.format(
                "{} {} role {} in {}",
                holder,
                verb,
                pl.col("role_name"),
                pl.coalesce("_project_key", pl.col("project_id").cast(pl.String)),
            )
        )
        .when(kind == "grant")
        .then(
            pl.format(
                "{} for {} {} {}",
                pl.col("permission"),
                holder,
                verb,
                pl.col("scheme_name"),
            )
        )
        .when((kind == "level_member") & pl.col("_level_created") & (pl.col("effect") == EXCLUDED))
        .then(
            pl.format(
                "level {} set up without {} ({} added)",
                pl.col("level_name"),
                pl.lit(name),
                holder,
            )
        )
        .when(kind == "level_member")
        .then(pl.format("{} {} level {}", holder, verb, pl.col("level_name")))
        .when(kind == "global_permission")
        .then(
            pl.format(
                "{} {} {}",
                pl.col("permission"),
                pl.when(action == "added").then(pl.lit("granted to")).otherwise(pl.lit("removed from")),
                holder,
            )
        )
        .when(kind == "user_status")
        .then(pl.format("{} {}", pl.lit(name), action))
    )


def permission_changes(
    tables: SiteTables,
    technical_user: str,
    *,
    gaps: Frame | None = None,
    permissions: Iterable[str] = (model.BROWSE_PROJECTS,),
    changes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The timeline of changes that affect what ``technical_user`` sees, and the current gaps each explains.

    A change concerns it when it adds or removes the technical user to or from a group; adds or removes a role
    actor, a grant of one of ``permissions``, a security level member or a global permission whose holder includes
    it (a group it was a member of at the time, its account, a role it acts in, product access it has, anyone);
    deactivates or reactivates it; or renames one of its groups. The first records of a security level it lacks
    show the level appearing without it (``excluded``).

    Each current gap (``gaps``; by default the failing checks 1-4 of
    :func:`jira_lab.audits.preflight.preflight_findings`) is explained by the latest change that took away a way
    in (a loss, or a level created without it) among the latest changes on each of its ways in (the group, the
    role in the project, the scheme's grant, the level, the group's global permission, the account itself).

    Args:
        tables: the loaded site.
        technical_user: account id or email.
        gaps: :data:`GAP_COLUMNS` (e.g. :func:`gaps_from_findings`); ``None``: computed by preflight.
        permissions: project permissions whose grants count (Browse Projects: the one that decides visibility).
        changes: :func:`audit_changes` of ``tables`` when already computed.

    Returns:
        :data:`PERMISSION_CHANGE_COLUMNS`, oldest first: the columns of :func:`audit_changes`, plus
        ``author_name`` (display name of who made the change), ``effect`` (gained, lost, excluded: a level set up
        without it, renamed: a group of its renamed), ``description`` (one readable line) and ``explains`` (the
        gaps this change explains, "; "-joined; NULL for none).
    """
    account_id = model.resolve_account(tables, technical_user)
    name_row = tables.users.filter(pl.col("account_id") == account_id).select("display_name").collect()
    name = str(name_row.item()) if name_row.height and name_row.item() else account_id
    found = audit_changes(tables) if changes is None else changes
    if gaps is None:
        from jira_lab.audits.preflight import preflight_findings  # preflight builds on this module

        gaps = gaps_from_findings(preflight_findings(tables, account_id, checks=[1, 2, 3, 4]))
    gap_frame = _conformed_gaps(gaps)
    its_groups = pl.concat(
        [
            tables.group_members.filter(pl.col("account_id") == account_id).select("group_id"),
            found.lazy()
            .filter((pl.col("change_kind") == "membership") & (pl.col("holder_value") == account_id))
            .select("group_id"),
        ]
    ).unique()
    judged = _holder_includes(found.lazy(), tables, account_id)
    judged = judged.join(
        its_groups.with_columns(pl.lit(True).alias("_ever_its_group")).rename({"group_id": "_renamed_group"}),
        left_on="group_id",
        right_on="_renamed_group",
        how="left",
    ).with_columns(pl.col("_ever_its_group").fill_null(False))
    judged = _excluded_levels(_paths(judged), gap_frame)
    effect = _effects(account_id, permissions)
    timeline = judged.with_columns(
        pl.when(effect.is_null() & pl.col("_level_created")).then(pl.lit(EXCLUDED)).otherwise(effect).alias("effect")
    ).filter(pl.col("effect").is_not_null())
    admin_groups = global_permission_groups(tables, found).filter(pl.col("permission") == "ADMINISTER")
    ways_in = _gap_paths(gap_frame, tables, admin_groups)
    latest_per_way = (
        timeline.filter(pl.col("path").is_not_null())
        .join(ways_in, on="path")
        .sort("created", "record_id")
        .group_by("gap", "path")
        .agg(pl.col("record_id").last(), pl.col("created").last(), pl.col("effect").last())
    )
    explaining = (
        latest_per_way.filter(pl.col("effect").is_in([LOST, EXCLUDED]))
        .sort("created", "record_id")
        .group_by("gap")
        .agg(pl.col("record_id").last())
    )
    explains = explaining.group_by("record_id").agg(pl.col("gap").sort().str.join("; ").alias("explains"))
    authors = tables.users.select(
        pl.col("account_id").alias("author_account_id"), pl.col("display_name").alias("author_name")
    )
    project_keys = tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("_project_key"))
    user_names = tables.users.select(
        pl.lit("user").alias("holder_type"),
        pl.col("account_id").alias("holder_value"),
        pl.col("display_name").alias("_holder_display"),
    )
    return (
        timeline.join(explains, on="record_id", how="left")
        .join(authors, on="author_account_id", how="left")
        .join(project_keys, on="project_id", how="left")
        .join(user_names, on=["holder_type", "holder_value"], how="left")
        .with_columns(_description(name).alias("description"))
        .select([pl.col(column).cast(dtype) for column, dtype in PERMISSION_CHANGE_COLUMNS.items()])
        .sort("created", "record_id", "holder_type", "holder_value", nulls_last=True)
        .collect()
    )


def gap_explanations(timeline: pl.DataFrame, gaps: Frame) -> pl.DataFrame:
    """One row per gap with the change of :func:`permission_changes` that explains it (NULLs when none does:
    the log holds no change that took the way in away, e.g. it never had it).

    Args:
        timeline: :func:`permission_changes`' result for the same technical user.
        gaps: the gaps it was computed with (:data:`GAP_COLUMNS`).

    Returns:
        :data:`GAP_EXPLANATION_COLUMNS`: ``gap_kind``, ``gap``, then the explaining change's ``record_id``,
        ``created``, ``author_account_id``, ``author_name``, ``change_kind``, ``effect``, ``description``.
    """
    explaining = (
        timeline.lazy()
        .filter(pl.col("explains").is_not_null())
        .with_columns(pl.col("explains").str.split("; ").alias("gap"))
        .explode("gap")
        .unique(["gap", "record_id"])
        .select(
            "gap", "record_id", "created", "author_account_id", "author_name", "change_kind", "effect", "description"
        )
    )
    return (
        _conformed_gaps(gaps)
        .select("gap_kind", "gap")
        .unique()
        .join(explaining, on="gap", how="left")
        .select([pl.col(column).cast(dtype) for column, dtype in GAP_EXPLANATION_COLUMNS.items()])
        .sort("gap_kind", "gap")
        .collect()
    )
