"""The permission model of one loaded site, resolved in polars: who holds what, through which grant.

Every audit reads the same loaded tables (:mod:`jira_lab.schema`) and asks the same questions of them: who holds
*Browse Projects* in a project, who is a member of a security level for an issue, who satisfies a comment's or
worklog's ``visibility``. This module answers them once, as pure functions of :class:`SiteTables` (the tables of
one site as polars LazyFrames) that return LazyFrames with documented columns. It is a second, independent
implementation of the rules the simulator's permission engine (``jira_lab.sim.permissions``) applies, written
against the loaded data only, so it works on a real site's file too.

The rules (``shared/reference/jira-semantics.md`` §2):

* **Holders** (permission grants and security level members share the vocabulary; ``holder_type`` is matched
  case-insensitively, so the add-member request's ``projectrole`` reads as ``projectRole``):

  - ``anyone``: every active account;
  - ``applicationRole``: product access, i.e. membership of one of the application role's groups
    (``application_role_groups``); without a key (Jira's "Any logged in user") any application role's groups;
  - ``group``: members of the group, joined on the group **id** (``holder_value``; the name in
    ``holder_parameter`` is used only when the id is missing), so a renamed group keeps its grants;
  - ``projectRole``: actors of the role (``holder_value`` = role id) in the project, users directly and group
    actors through their members;
  - ``user``: that account id; ``projectLead``: the project's lead;
  - ``reporter``, ``assignee``, ``userCustomField``, ``groupCustomField`` (**issue data holders**): read on each
    issue (``issues`` and ``issue_field_values``; a group custom field admits the members of the groups it holds).
    For a project rather than an issue they count, as Jira's ``mypermissions`` does, when they match *any* issue.
  - anything else (``sd.customer.portal.only``, app-defined types) admits nobody.

* **Inactive accounts hold nothing**, not even ``anyone``; their memberships and role actors stay data.
* **Browse an issue**: a ``BROWSE_PROJECTS`` grant of the project's permission scheme admits the account for the
  project or, for issue data holders, for this issue; **and**, when the issue has a security level, a member of the
  level admits it (evaluated in the issue's project, against the issue's data). A level no loaded scheme defines
  admits nobody (fail closed, as Jira does).
* **Comments and worklogs**: browse the issue **and**, when restricted, be a member of the group (by group id) or an
  actor of the project role (by role name, in the issue's project, directly or through a group). Jira
  administrators get no exemption.

Functions take ``accounts``: the account ids to resolve (``None``: every account). Restricting to the one or two
accounts an audit is about keeps a million-comment site fast; the answers for those accounts are the same.

Readers: :func:`from_db` (DuckDB file) and :func:`from_frames` (frames in memory, e.g. tests). Rows Jira reported
deleted (``deleted_reason`` ``deleted``) or gone from every loading view (``no longer visible``) are left out unless
asked for; rows gone from one principal's view only (``no longer visible to <account>``) stay: another principal
may still see them, and ``_jira_lab_sightings`` says who saw what.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

import polars as pl

from jira_lab import schema, store

BROWSE_PROJECTS = "BROWSE_PROJECTS"

#: Holder types whose answer depends on an issue's data rather than on the account and project alone.
ISSUE_DATA_HOLDERS = ("reporter", "assignee", "userCustomField", "groupCustomField")
#: Holder types decided by the account and the project alone.
ACCOUNT_HOLDERS = ("anyone", "applicationRole", "group", "projectRole", "user", "projectLead")
_CANONICAL_HOLDER_TYPES = {name.lower(): name for name in (*ACCOUNT_HOLDERS, *ISSUE_DATA_HOLDERS)}

#: Item kinds as ``_jira_lab_sightings`` records them.
ISSUE, COMMENT, WORKLOG = "issue", "comment", "worklog"

#: Columns of every "who holds it" frame beside its own keys: how the account came to hold it.
HOLDING_COLUMNS = ("account_id", "holder_type", "holder_value", "via_group_id", "via_role_id")


# -- the tables of one site --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SiteTables:
    """The loaded tables of one site as LazyFrames, each with exactly its declared columns (:mod:`jira_lab.schema`).

    Build it with :func:`from_db` or :func:`from_frames`. Attribute names are the table names, without the
    leading underscore for jira_lab's own tables (``jira_lab_sightings`` is ``_jira_lab_sightings``).
    """

    site_id: str
    issues: pl.LazyFrame
    issue_totals: pl.LazyFrame
    issue_field_values: pl.LazyFrame
    comments: pl.LazyFrame
    worklogs: pl.LazyFrame
    changelog_histories: pl.LazyFrame
    changelog_items: pl.LazyFrame
    audit_records: pl.LazyFrame
    audit_changed_values: pl.LazyFrame
    audit_associated_items: pl.LazyFrame
    users: pl.LazyFrame
    groups: pl.LazyFrame
    group_members: pl.LazyFrame
    application_roles: pl.LazyFrame
    application_role_groups: pl.LazyFrame
    projects: pl.LazyFrame
    project_roles: pl.LazyFrame
    role_actors: pl.LazyFrame
    permission_schemes: pl.LazyFrame
    permission_grants: pl.LazyFrame
    project_permission_schemes: pl.LazyFrame
    security_schemes: pl.LazyFrame
    security_levels: pl.LazyFrame
    security_level_members: pl.LazyFrame
    project_security_schemes: pl.LazyFrame
    fields: pl.LazyFrame
    my_permissions: pl.LazyFrame
    permission_checks: pl.LazyFrame
    jira_lab_sites: pl.LazyFrame
    jira_lab_principals: pl.LazyFrame
    jira_lab_loads: pl.LazyFrame
    jira_lab_sightings: pl.LazyFrame
    jira_lab_access: pl.LazyFrame
    jira_lab_cursors: pl.LazyFrame

    def table(self, name: str) -> pl.LazyFrame:
        """The table called ``name`` as declared in :mod:`jira_lab.schema` (``_jira_lab_loads`` etc. included)."""
        attribute = name.lstrip("_")
        if attribute not in _TABLE_ATTRIBUTES:
            raise ValueError(f"SiteTables has no table {name!r}; known: {sorted(_TABLE_ATTRIBUTES.values())}")
        frame: pl.LazyFrame = getattr(self, attribute)
        return frame


#: ``deleted_reason`` of a row gone from one principal's view only (the loader's ``no longer visible to <account>``):
#: another principal may still see it, so it stays in the audits; sightings tell who saw what.
_ONE_VIEW_LOST = f"{schema.NO_LONGER_VISIBLE} to "

#: attribute name -> declared table name
_TABLE_ATTRIBUTES: dict[str, str] = {
    f.name: (f"_{f.name}" if f.name.startswith("jira_lab_") else f.name)
    for f in fields(SiteTables)
    if f.name != "site_id"
}


def _conformed(name: str, frame: pl.DataFrame | pl.LazyFrame | None, *, include_deleted: bool) -> pl.LazyFrame:
    declared = schema.table(name)
    if frame is None:
        return declared.empty_frame().lazy()
    lazy = frame.lazy()
    present = set(lazy.collect_schema().names())
    missing = [column for column in declared.column_names if column not in present]
    lazy = lazy.with_columns(pl.lit(None, dtype=declared.column(c).type.polars).alias(c) for c in missing)
    lazy = lazy.select(pl.col(c).cast(declared.column(c).type.polars) for c in declared.column_names)
    if declared.tracks_deletion and not include_deleted:
        lazy = lazy.filter(pl.col("deleted_at").is_null() | pl.col("deleted_reason").str.starts_with(_ONE_VIEW_LOST))
    return lazy


def from_frames(
    site_id: str,
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame] | None = None,
    *,
    include_deleted: bool = False,
    **named: pl.DataFrame | pl.LazyFrame,
) -> SiteTables:
    """The tables of one site from frames in memory; a table not given is empty.

    Each frame is conformed to its declared schema: missing columns become nulls, columns are cast to the declared
    dtypes and put in order, so a unit test can give only the columns it means.

    Args:
        site_id: the site the frames belong to (frames are taken as they are, not filtered by it).
        frames: table name -> frame (``"_jira_lab_sightings"`` or ``"jira_lab_sightings"`` both work).
        include_deleted: keep rows marked deleted or gone from every view (``deleted_at`` set).
        **named: more tables by keyword.
    """
    given: dict[str, pl.DataFrame | pl.LazyFrame] = {}
    for name, frame in {**(frames or {}), **named}.items():
        attribute = name.lstrip("_")
        if attribute not in _TABLE_ATTRIBUTES:
            raise ValueError(f"no table {name!r} is declared in jira_lab.schema")
        given[attribute] = frame
    tables = {
        attribute: _conformed(table_name, given.get(attribute), include_deleted=include_deleted)
        for attribute, table_name in _TABLE_ATTRIBUTES.items()
    }
    return SiteTables(site_id=site_id, **tables)


def site_ids(conn: store.Connection) -> list[str]:
    """The sites loaded into this file, in order."""
    return [str(row[0]) for row in conn.sql("SELECT site_id FROM _jira_lab_sites ORDER BY site_id").fetchall()]


def from_db(
    conn: store.Connection,
    site_id: str | None = None,
    *,
    tables: Iterable[str] | None = None,
    include_deleted: bool = False,
) -> SiteTables:
    """Read the tables of one site from a DuckDB file.

    Args:
        conn: an open connection (:func:`jira_lab.store.connect`).
        site_id: the site; ``None`` when the file holds exactly one.
        tables: read only these tables (the others are empty): an audit that needs a few tables of a large file
            reads less. ``None``: every table.
        include_deleted: keep rows marked deleted or gone from every view (``deleted_at`` set).

    Raises:
        ValueError: ``site_id`` is ``None`` and the file holds no site or several, or an unknown table is named.
    """
    if site_id is None:
        known = site_ids(conn)
        if len(known) != 1:
            raise ValueError(f"the file holds {len(known)} sites ({', '.join(known) or 'none'}): pass site_id")
        site_id = known[0]
    wanted = None if tables is None else {name.lstrip("_") for name in tables}
    if wanted is not None and (unknown := wanted - set(_TABLE_ATTRIBUTES)):
        raise ValueError(f"unknown tables {sorted(unknown)}")
    frames = {
        attribute: store.read_table(conn, table_name, site_id=site_id)
        for attribute, table_name in _TABLE_ATTRIBUTES.items()
        if wanted is None or attribute in wanted
    }
    return from_frames(site_id, frames, include_deleted=include_deleted)


# -- accounts ----------------------------------------------------------------------------------------------------
def resolve_account(tables: SiteTables, who: str) -> str:
    """The account id of ``who``: an account id, or an email address (matched case-insensitively).

    Raises:
        ValueError: no loaded user or loading principal has that account id or email.
    """
    text = who.strip()
    known_ids = (
        pl.concat(
            [
                tables.users.select("account_id"),
                tables.jira_lab_principals.select(pl.col("principal_id").alias("account_id")),
            ]
        )
        .filter(pl.col("account_id") == text)
        .collect()
    )
    if known_ids.height:
        return text
    by_email = (
        tables.users.filter(pl.col("email_address").str.to_lowercase() == text.lower())
        .select("account_id")
        .unique()
        .collect()
    )
    if by_email.height == 1:
        return str(by_email.item())
    if by_email.height > 1:
        raise ValueError(f"{by_email.height} accounts have the email {who!r}: pass the account id")
    raise ValueError(
        f"no loaded account has the id or email {who!r} (emails are only known where Jira showed them: "
        "pass the account id)"
    )


def _accounts_filter(frame: pl.LazyFrame, column: str, accounts: Sequence[str] | None) -> pl.LazyFrame:
    if accounts is None:
        return frame
    return frame.filter(pl.col(column).is_in(list(accounts)))


def active_accounts(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Accounts that can hold anything: active users.

    Returns:
        ``account_id``, one row per active account (of ``accounts``, if given).
    """
    users = tables.users.filter(pl.col("active").fill_null(False)).select("account_id")
    return _accounts_filter(users, "account_id", accounts).unique()


def group_memberships(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Group memberships that count: those of active accounts (Jira Cloud has no nested groups).

    Returns:
        ``account_id``, ``group_id``.
    """
    members = tables.group_members.select("account_id", "group_id")
    return _accounts_filter(members, "account_id", accounts).join(
        active_accounts(tables, accounts), on="account_id", how="semi"
    )


def product_access(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Product access: membership of a group of an application role.

    Returns:
        ``account_id``, ``application_key``, ``via_group_id`` (one row per group that gives the access).
    """
    role_groups = tables.application_role_groups.select("application_key", pl.col("group_id").alias("via_group_id"))
    return (
        group_memberships(tables, accounts)
        .join(role_groups, left_on="group_id", right_on="via_group_id")
        .select("account_id", "application_key", pl.col("group_id").alias("via_group_id"))
    )


def role_members(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Actors of project roles per project that count (active accounts), directly or through a group actor.

    Returns:
        ``project_id``, ``role_id``, ``account_id``, ``via_group_id`` (``None`` for a user actor).
    """
    actors = tables.role_actors.select("project_id", "role_id", "actor_type", "actor_id")
    direct = (
        actors.filter(pl.col("actor_type") == "user")
        .select("project_id", "role_id", pl.col("actor_id").alias("account_id"))
        .join(active_accounts(tables, accounts), on="account_id", how="semi")
        .with_columns(pl.lit(None, dtype=pl.String).alias("via_group_id"))
    )
    through_groups = (
        actors.filter(pl.col("actor_type") == "group")
        .select("project_id", "role_id", pl.col("actor_id").alias("via_group_id"))
        .join(group_memberships(tables, accounts), left_on="via_group_id", right_on="group_id")
        .select("project_id", "role_id", "account_id", "via_group_id")
    )
    return pl.concat([direct, through_groups])


def role_ids_by_name(tables: SiteTables) -> pl.LazyFrame:
    """The role a role restriction names (roles are global; with two roles of one name, the lowest id wins).

    Returns:
        ``role_name``, ``role_id``.
    """
    return tables.project_roles.group_by(pl.col("name").alias("role_name")).agg(pl.col("id").min().alias("role_id"))


def group_ids_by_name(tables: SiteTables) -> pl.LazyFrame:
    """Group ids by their current name (only to read holders or restrictions that came without a group id).

    Returns:
        ``group_name``, ``group_id``.
    """
    return tables.groups.group_by(pl.col("name").alias("group_name")).agg(pl.col("group_id").min())


# -- holders -----------------------------------------------------------------------------------------------------
def normalized_holders(holders: pl.LazyFrame, tables: SiteTables) -> pl.LazyFrame:
    """Holders with a canonical ``holder_type`` and the id each type is matched on in ``holder_value``.

    ``holder_type`` is matched case-insensitively; a ``group`` holder without a value is resolved from its name
    (``holder_parameter``), other types fall back to the parameter when the value is missing.
    """
    canonical = (
        pl.col("holder_type")
        .str.to_lowercase()
        .replace_strict(_CANONICAL_HOLDER_TYPES, default=pl.col("holder_type"), return_dtype=pl.String)
    )
    by_name = group_ids_by_name(tables).rename({"group_name": "holder_parameter", "group_id": "_group_by_name"})
    return (
        holders.with_columns(canonical.alias("holder_type"))
        .join(by_name, on="holder_parameter", how="left")
        .with_columns(
            pl.when(pl.col("holder_type") == "group")
            .then(pl.coalesce("holder_value", "_group_by_name"))
            .otherwise(pl.coalesce("holder_value", "holder_parameter"))
            .alias("holder_value")
        )
        .drop("_group_by_name")
    )


def _holding(
    frame: pl.LazyFrame, keys: Sequence[str], *, via_group_id: pl.Expr | None = None, via_role_id: pl.Expr | None = None
) -> pl.LazyFrame:
    """``keys`` + :data:`HOLDING_COLUMNS` of a frame holding ``account_id``, ``holder_type`` and ``holder_value``."""
    return frame.select(
        *keys,
        pl.col("account_id").cast(pl.String),
        pl.col("holder_type").cast(pl.String),
        pl.col("holder_value").cast(pl.String),
        (pl.lit(None) if via_group_id is None else via_group_id).cast(pl.String).alias("via_group_id"),
        (pl.lit(None) if via_role_id is None else via_role_id).cast(pl.Int64).alias("via_role_id"),
    )


def account_holder_matches(
    tables: SiteTables, holders: pl.LazyFrame, keys: Sequence[str], accounts: Sequence[str] | None = None
) -> pl.LazyFrame:
    """The accounts each holder decided by account and project admits (``anyone``, ``applicationRole``, ``group``,
    ``projectRole``, ``user``, ``projectLead``).

    Args:
        holders: ``keys`` + ``project_id`` + ``holder_type``, ``holder_parameter``, ``holder_value`` (normalized or
            not); other holder types are ignored.
        keys: the columns identifying a holder row (e.g. ``grant_id``), kept in the output.

    Returns:
        ``keys``, ``project_id``, then :data:`HOLDING_COLUMNS`: one row per account and way it is admitted.
    """
    keys = [*keys, "project_id"] if "project_id" not in keys else list(keys)
    holders = normalized_holders(holders, tables)
    kind = pl.col("holder_type")
    active = active_accounts(tables, accounts)
    anyone = _holding(holders.filter(kind == "anyone").join(active, how="cross"), keys)
    role_groups = tables.application_role_groups.select("application_key", "group_id")
    keyed = holders.filter((kind == "applicationRole") & pl.col("holder_value").is_not_null()).join(
        role_groups, left_on="holder_value", right_on="application_key"
    )
    keyless = holders.filter((kind == "applicationRole") & pl.col("holder_value").is_null()).join(
        role_groups.select("group_id").unique(), how="cross"
    )
    application = _holding(
        pl.concat(
            [
                keyed.select(*keys, "holder_type", "holder_value", "group_id"),
                keyless.select(*keys, "holder_type", "holder_value", "group_id"),
            ]
        ).join(group_memberships(tables, accounts), on="group_id"),
        keys,
        via_group_id=pl.col("group_id"),
    )
    group = _holding(
        holders.filter(kind == "group").join(
            group_memberships(tables, accounts), left_on="holder_value", right_on="group_id"
        ),
        keys,
        via_group_id=pl.col("holder_value"),
    )
    user = _holding(
        holders.filter(kind == "user")
        .with_columns(pl.col("holder_value").alias("account_id"))
        .join(active, on="account_id", how="semi"),
        keys,
    )
    role = _holding(
        holders.filter(kind == "projectRole")
        .with_columns(pl.col("holder_value").str.strip_chars().cast(pl.Int64, strict=False).alias("role_id"))
        .join(role_members(tables, accounts), on=["project_id", "role_id"]),
        keys,
        via_group_id=pl.col("via_group_id"),
        via_role_id=pl.col("role_id"),
    )
    lead = _holding(
        holders.filter(kind == "projectLead")
        .join(
            tables.projects.select(pl.col("id").alias("project_id"), pl.col("lead_account_id").alias("account_id")),
            on="project_id",
        )
        .join(active, on="account_id", how="semi"),
        keys,
    )
    return pl.concat([anyone, application, group, user, role, lead])


def issue_data_holder_matches(
    tables: SiteTables, holders: pl.LazyFrame, keys: Sequence[str], accounts: Sequence[str] | None = None
) -> pl.LazyFrame:
    """The accounts each issue data holder (``reporter``, ``assignee``, ``userCustomField``, ``groupCustomField``)
    admits on each issue.

    Args:
        holders: ``keys`` + ``issue_id`` + ``holder_type``, ``holder_parameter``, ``holder_value``; other holder
            types are ignored.
        keys: the columns identifying a holder row, kept in the output.

    Returns:
        ``keys``, ``issue_id``, then :data:`HOLDING_COLUMNS` (``via_group_id``: the group a group custom field holds).
    """
    keys = [*keys, "issue_id"] if "issue_id" not in keys else list(keys)
    holders = normalized_holders(holders, tables)
    kind = pl.col("holder_type")
    active = active_accounts(tables, accounts)
    people = tables.issues.select(
        pl.col("id").alias("issue_id"),
        pl.col("reporter_account_id").alias("reporter"),
        pl.col("assignee_account_id").alias("assignee"),
    )
    on_issue = holders.filter(kind.is_in(["reporter", "assignee"])).join(people, on="issue_id")
    reporter_or_assignee = _holding(
        on_issue.with_columns(
            pl.when(kind == "reporter").then(pl.col("reporter")).otherwise(pl.col("assignee")).alias("account_id")
        ).join(active, on="account_id", how="semi"),
        keys,
    )
    field_values = tables.issue_field_values.select("issue_id", pl.col("field_id").alias("holder_value"), "value_id")
    user_field = _holding(
        holders.filter(kind == "userCustomField")
        .join(field_values, on=["issue_id", "holder_value"])
        .rename({"value_id": "account_id"})
        .join(active, on="account_id", how="semi"),
        keys,
    )
    group_field = _holding(
        holders.filter(kind == "groupCustomField")
        .join(field_values, on=["issue_id", "holder_value"])
        .join(group_memberships(tables, accounts), left_on="value_id", right_on="group_id"),
        keys,
        via_group_id=pl.col("value_id"),
    )
    return pl.concat([reporter_or_assignee, user_field, group_field])


# -- project permissions -----------------------------------------------------------------------------------------
def project_permission_grants(tables: SiteTables, permission: str = BROWSE_PROJECTS) -> pl.LazyFrame:
    """The grants of ``permission`` in each project's permission scheme.

    Returns:
        ``project_id``, ``scheme_id``, ``grant_id``, ``holder_type`` (canonical), ``holder_parameter``,
        ``holder_value`` (the id it is matched on).
    """
    grants = tables.permission_grants.filter(pl.col("permission") == permission).select(
        "scheme_id", pl.col("id").alias("grant_id"), "holder_type", "holder_parameter", "holder_value"
    )
    projects = tables.project_permission_schemes.select("project_id", "scheme_id")
    return normalized_holders(projects.join(grants, on="scheme_id"), tables)


def project_permission_holders(
    tables: SiteTables,
    permission: str = BROWSE_PROJECTS,
    accounts: Sequence[str] | None = None,
    *,
    any_issue: bool = False,
) -> pl.LazyFrame:
    """Who holds ``permission`` in each project, through which grant.

    Args:
        any_issue: also count issue data holders (reporter, assignee, custom fields) that match some loaded issue
            of the project, as Jira's ``mypermissions`` does for a project. Without it these holders are left out:
            they hold the permission only for their issues (:func:`issue_permission_holders`).

    Returns:
        ``project_id``, ``scheme_id``, ``grant_id``, then :data:`HOLDING_COLUMNS` (``via_group_id``: the group that
        admits the account; ``via_role_id``: the project role). One row per account, grant and way.
    """
    grants = project_permission_grants(tables, permission)
    holders = account_holder_matches(tables, grants, ["scheme_id", "grant_id"], accounts).select(
        "project_id", "scheme_id", "grant_id", *HOLDING_COLUMNS
    )
    if not any_issue:
        return holders
    per_issue = issue_permission_holders(tables, permission, accounts)
    from_issues = per_issue.drop("issue_id").unique().select("project_id", "scheme_id", "grant_id", *HOLDING_COLUMNS)
    return pl.concat([holders, from_issues])


def issue_permission_holders(
    tables: SiteTables, permission: str = BROWSE_PROJECTS, accounts: Sequence[str] | None = None
) -> pl.LazyFrame:
    """Who holds ``permission`` on each issue through an issue data grant (reporter, assignee, custom fields).

    Grants to other holder types hold for the whole project: see :func:`project_permission_holders`.

    Returns:
        ``issue_id``, ``project_id``, ``scheme_id``, ``grant_id``, then :data:`HOLDING_COLUMNS`.
    """
    grants = project_permission_grants(tables, permission).filter(pl.col("holder_type").is_in(ISSUE_DATA_HOLDERS))
    issues = tables.issues.select(pl.col("id").alias("issue_id"), "project_id")
    per_issue = grants.join(issues, on="project_id")
    return issue_data_holder_matches(tables, per_issue, ["project_id", "scheme_id", "grant_id"], accounts).select(
        "issue_id", "project_id", "scheme_id", "grant_id", *HOLDING_COLUMNS
    )


def issue_browsers(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Who holds Browse Projects for each issue (its security level not considered).

    Returns:
        ``issue_id``, ``account_id``: one row per issue and account.
    """
    issues = tables.issues.select(pl.col("id").alias("issue_id"), "project_id")
    by_project = (
        project_permission_holders(tables, BROWSE_PROJECTS, accounts)
        .select("project_id", "account_id")
        .unique()
        .join(issues, on="project_id")
        .select("issue_id", "account_id")
    )
    by_issue = issue_permission_holders(tables, BROWSE_PROJECTS, accounts).select("issue_id", "account_id")
    return pl.concat([by_project, by_issue]).unique()


# -- issue security ----------------------------------------------------------------------------------------------
def _level_members(tables: SiteTables) -> pl.LazyFrame:
    members = tables.security_level_members.select(
        "level_id", pl.col("id").alias("member_id"), "holder_type", "holder_parameter", "holder_value"
    )
    return normalized_holders(members, tables)


def security_level_holders(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Members of each security level in each project where it applies, through holders decided by account and
    project (issue data members: :func:`issue_security_level_holders`).

    A level applies in the projects whose issue security scheme defines it, and in any project holding a loaded
    issue at that level.

    Returns:
        ``level_id``, ``project_id``, ``member_id``, then :data:`HOLDING_COLUMNS`.
    """
    by_scheme = tables.project_security_schemes.select("project_id", "scheme_id").join(
        tables.security_levels.select(pl.col("id").alias("level_id"), "scheme_id"), on="scheme_id"
    )
    by_issue = tables.issues.filter(pl.col("security_level_id").is_not_null()).select(
        "project_id", pl.col("security_level_id").alias("level_id")
    )
    pairs = pl.concat([by_scheme.select("project_id", "level_id"), by_issue]).unique()
    members = _level_members(tables).filter(pl.col("holder_type").is_in(ACCOUNT_HOLDERS)).join(pairs, on="level_id")
    return account_holder_matches(tables, members, ["level_id", "member_id"], accounts).select(
        "level_id", "project_id", "member_id", *HOLDING_COLUMNS
    )


def issue_security_level_holders(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Members of each issue's security level through issue data members (reporter, assignee, custom fields).

    Returns:
        ``issue_id``, ``level_id``, ``member_id``, then :data:`HOLDING_COLUMNS`.
    """
    issues = tables.issues.filter(pl.col("security_level_id").is_not_null()).select(
        pl.col("id").alias("issue_id"), pl.col("security_level_id").alias("level_id")
    )
    members = _level_members(tables).filter(pl.col("holder_type").is_in(ISSUE_DATA_HOLDERS)).join(issues, on="level_id")
    return issue_data_holder_matches(tables, members, ["level_id", "member_id"], accounts).select(
        "issue_id", "level_id", "member_id", *HOLDING_COLUMNS
    )


def issue_level_members(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Who is a member of each issue's security level, for issues that have one (an undefined level: nobody).

    Returns:
        ``issue_id``, ``account_id``: one row per issue with a level and member account.
    """
    issues = tables.issues.filter(pl.col("security_level_id").is_not_null()).select(
        pl.col("id").alias("issue_id"), "project_id", pl.col("security_level_id").alias("level_id")
    )
    by_level = (
        security_level_holders(tables, accounts)
        .select("level_id", "project_id", "account_id")
        .unique()
        .join(issues, on=["level_id", "project_id"])
        .select("issue_id", "account_id")
    )
    by_issue = issue_security_level_holders(tables, accounts).select("issue_id", "account_id")
    return pl.concat([by_level, by_issue]).unique()


def issue_viewers(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Who can see each issue: Browse Projects for it and, if it has a security level, membership of the level.

    Returns:
        ``issue_id``, ``account_id``: one row per visible issue and account.
    """
    secured = tables.issues.filter(pl.col("security_level_id").is_not_null()).select(pl.col("id").alias("issue_id"))
    browsers = issue_browsers(tables, accounts)
    open_issues = browsers.join(secured, on="issue_id", how="anti")
    secured_and_member = browsers.join(issue_level_members(tables, accounts), on=["issue_id", "account_id"], how="semi")
    return pl.concat([open_issues, secured_and_member])


# -- comment and worklog visibility ------------------------------------------------------------------------------
def items(tables: SiteTables) -> pl.LazyFrame:
    """Every loaded comment and worklog with its issue, project and restriction.

    ``visibility_key`` is what the restriction is matched on: the group id (``identifier``; the group's id by its
    name when the identifier is missing) for a group, the role name for a role; ``None`` when unrestricted.

    Returns:
        ``item_kind`` (``comment``/``worklog``), ``item_id``, ``issue_id``, ``project_id``, ``visibility_type``,
        ``visibility_key``, ``visibility_value`` (the name when loaded).
    """
    columns = ["id", "issue_id", "visibility_type", "visibility_value", "visibility_identifier"]
    both = pl.concat(
        [
            tables.comments.select(columns).with_columns(pl.lit(COMMENT).alias("item_kind")),
            tables.worklogs.select(columns).with_columns(pl.lit(WORKLOG).alias("item_kind")),
        ]
    )
    # only a group restriction that came without its id needs the (slower) lookup by name
    nameless = (pl.col("visibility_type") == "group") & pl.col("visibility_identifier").is_null()
    by_name = group_ids_by_name(tables).rename({"group_name": "visibility_value", "group_id": "visibility_key"})
    resolved = pl.concat(
        [
            both.filter(~nameless | nameless.is_null()).with_columns(
                pl.when(pl.col("visibility_type").is_not_null())
                .then(pl.coalesce("visibility_identifier", "visibility_value"))
                .alias("visibility_key")
            ),
            both.filter(nameless).join(by_name, on="visibility_value", how="left"),
        ],
        how="diagonal",
    )
    return resolved.join(
        tables.issues.select(pl.col("id").alias("issue_id"), "project_id"), on="issue_id", how="left"
    ).select(
        "item_kind",
        pl.col("id").alias("item_id"),
        "issue_id",
        "project_id",
        "visibility_type",
        "visibility_key",
        "visibility_value",
    )


def restrictions(tables: SiteTables, *, of_items: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """The distinct restrictions loaded items carry, per project (a role is resolved in the issue's project).

    Args:
        of_items: :func:`items` already computed (e.g. collected once by the caller); ``None``: compute it.

    Returns:
        ``project_id``, ``visibility_type``, ``visibility_key``, ``role_id`` (the role a role restriction names;
        ``None`` for a group or an unknown role).
    """
    distinct = (
        (items(tables) if of_items is None else of_items)
        .filter(pl.col("visibility_type").is_not_null())
        .select("project_id", "visibility_type", "visibility_key")
        .unique()
    )
    roles = role_ids_by_name(tables).rename({"role_name": "visibility_key"})
    return distinct.join(roles, on="visibility_key", how="left").with_columns(
        pl.when(pl.col("visibility_type") == "role").then(pl.col("role_id")).alias("role_id")
    )


def visibility_holders(
    tables: SiteTables, accounts: Sequence[str] | None = None, *, of_items: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Who satisfies each restriction loaded items carry: group members (by id), role actors in the project.

    Args:
        of_items: :func:`items` already computed; ``None``: compute it.

    Returns:
        ``project_id``, ``visibility_type``, ``visibility_key``, ``account_id``, ``via_group_id``, ``via_role_id``.
    """
    found = restrictions(tables, of_items=of_items)
    by_group = (
        found.filter(pl.col("visibility_type") == "group")
        .join(group_memberships(tables, accounts), left_on="visibility_key", right_on="group_id")
        .select(
            "project_id",
            "visibility_type",
            "visibility_key",
            "account_id",
            pl.col("visibility_key").alias("via_group_id"),
            pl.lit(None, dtype=pl.Int64).alias("via_role_id"),
        )
    )
    by_role = (
        found.filter(pl.col("visibility_type") == "role")
        .join(role_members(tables, accounts), on=["project_id", "role_id"])
        .select(
            "project_id",
            "visibility_type",
            "visibility_key",
            "account_id",
            "via_group_id",
            pl.col("role_id").alias("via_role_id"),
        )
    )
    return pl.concat([by_group, by_role])


def item_viewers(tables: SiteTables, accounts: Sequence[str] | None = None) -> pl.LazyFrame:
    """Who can see each comment and worklog: the issue, and the restriction if any.

    Returns:
        ``item_kind``, ``item_id``, ``account_id``: one row per visible item and account.
    """
    all_items = items(tables)
    viewers = issue_viewers(tables, accounts)
    unrestricted = (
        all_items.filter(pl.col("visibility_type").is_null())
        .join(viewers, on="issue_id")
        .select("item_kind", "item_id", "account_id")
    )
    satisfied = (
        visibility_holders(tables, accounts)
        .select("project_id", "visibility_type", "visibility_key", "account_id")
        .unique()
    )
    restricted = (
        all_items.filter(pl.col("visibility_type").is_not_null())
        .join(viewers, on="issue_id")
        .join(satisfied, on=["project_id", "visibility_type", "visibility_key", "account_id"], how="semi")
        .select("item_kind", "item_id", "account_id")
    )
    return pl.concat([unrestricted, restricted])


# -- loads and what they could read ------------------------------------------------------------------------------
def latest_loads(tables: SiteTables, *, full_only: bool = False) -> pl.LazyFrame:
    """Each principal's latest succeeded load of the site.

    Args:
        full_only: the latest succeeded *full* load (one that swept every item it could see).

    Returns:
        ``principal_id``, ``load_id``, ``full_load``, ``finished_at``.
    """
    loads = tables.jira_lab_loads.filter((pl.col("site_id") == tables.site_id) & (pl.col("status") == "succeeded"))
    if full_only:
        loads = loads.filter(pl.col("full_load"))
    return (
        loads.sort("load_id")
        .group_by("principal_id")
        .agg(pl.col("load_id").last(), pl.col("full_load").last(), pl.col("finished_at").last())
    )


def unreadable_resources(tables: SiteTables) -> pl.LazyFrame:
    """Resources that no principal's latest load could read (``_jira_lab_access``): answers built on them cannot be
    trusted, and audits say "cannot tell" rather than "nobody".

    A resource scoped to a project or a group is named ``table:scope`` (``role_actors:10002``).

    Returns:
        ``resource``, ``table`` (the part before the colon), ``scope`` (after it; ``None`` if unscoped),
        ``principals`` (how many latest loads were refused), ``outcome``, ``http_status``, ``message`` (of one
        refusal).
    """
    latest = latest_loads(tables).select("principal_id", "load_id")
    access = tables.jira_lab_access.join(latest, on=["principal_id", "load_id"], how="semi")
    readable = access.filter(pl.col("outcome") == "ok").select("resource").unique()
    refused = access.filter(pl.col("outcome") != "ok").join(readable, on="resource", how="anti")
    return (
        refused.sort("principal_id")
        .group_by("resource")
        .agg(
            pl.len().cast(pl.Int64).alias("principals"),
            pl.col("outcome").first(),
            pl.col("http_status").first(),
            pl.col("message").first(),
        )
        .with_columns(
            pl.col("resource").str.split_exact(":", 1).struct.field("field_0").alias("table"),
            pl.col("resource").str.split_exact(":", 1).struct.field("field_1").alias("scope"),
        )
        .select("resource", "table", "scope", "principals", "outcome", "http_status", "message")
        .sort("resource")
    )


def principal_scopes(tables: SiteTables) -> pl.LazyFrame:
    """The OAuth scopes granted to each principal's app, one row per scope (none for basic auth).

    Returns:
        ``principal_id``, ``auth_kind``, ``scope``.
    """
    return (
        tables.jira_lab_principals.filter(pl.col("scopes").is_not_null())
        .select(
            "principal_id",
            "auth_kind",
            pl.col("scopes").str.json_decode(pl.List(pl.String)).alias("scope"),
        )
        .explode("scope")
        .filter(pl.col("scope").is_not_null())
    )
