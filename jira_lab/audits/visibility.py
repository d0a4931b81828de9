"""What the technical user cannot see: predicted from the permission model, observed from two loads, compared.

* :func:`restriction_gaps` (the **static prediction**): for every loaded issue, comment and worklog, can the account
  see it? One row per hidden item with the layer that hides it and what is missing, plus the smallest set of
  memberships that would close every gap, the items nobody could load, and what the data cannot tell.
* :func:`empirical_gaps`: when the analyst and the account have both loaded the site, the items the analyst saw and
  the account did not, id for id (``_jira_lab_sightings``).
* :func:`compare_prediction`: every item on which the two disagree. On a complete permission model there is none;
  each disagreement means the model or the data is incomplete.

**Layers**, outermost first (an item hidden by several is reported under the outermost, with a flag per layer):

* ``inactive_account``: the account is deactivated, which holds nothing (the other flags say what it would still
  need once reactivated);
* ``browse``: no ``BROWSE_PROJECTS`` grant of the project's permission scheme admits it (for this issue);
* ``security_level``: the issue has a security level the account is not a member of;
* ``visibility``: the comment or worklog is restricted to a group (by id) or a project role (in the issue's
  project) the account is not in.

**Fixes.** Each hidden item needs one *requirement* per failing layer: Browse Projects in its project, membership of
its level in its project, membership of its group, or being an actor of its role in its project. A fix is one
change to the account's memberships or grants:

* ``group_membership``: add the account to a group. It meets every requirement a grant, level member or
  restriction names that group for, through role group actors and application roles' groups too;
* ``role_actor``: make the account a (user) actor of a role in a project;
* ``security_level_member``: add the account as a (user) member of a level;
* ``browse_grant``: add a ``BROWSE_PROJECTS`` grant for the account to a permission scheme;
* ``activate_account``: reactivate the account.

The summary is the smallest set of fixes meeting every requirement: exact (a search over the few distinct
requirements, after taking the fixes a requirement leaves no choice about) when the search is small, otherwise greedy
(repeatedly the fix meeting the most requirements still unmet, ties broken by items, then by name), which is within
a factor ``ln(requirements)`` of the smallest; ``RestrictionGaps.method`` says which. Issue data grants (reporter,
assignee, custom fields, project lead, a single other user) are listed as what would give Browse but are not offered
as fixes: they change the issues, not the account.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Literal

import polars as pl

from jira_lab.audits import model
from jira_lab.audits.model import BROWSE_PROJECTS, COMMENT, ISSUE, WORKLOG, SiteTables

LAYERS = ("inactive_account", "browse", "security_level", "visibility")
FIX_KINDS = ("activate_account", "group_membership", "role_actor", "security_level_member", "browse_grant")
#: the fix kind of requirements no membership can meet (an undefined level, an unknown role)
NO_FIX = "none"
#: an exact search stops trying beyond this many combinations of fixes and falls back to the greedy answer
EXACT_SEARCH_LIMIT = 200_000

_KIND_ORDER = {ISSUE: 0, COMMENT: 1, WORKLOG: 2}
#: tables each layer's answer is built from: when one was unreadable, the answer "hidden" may be wrong
_LAYER_SOURCES = {
    "browse": (
        "permission_grants",
        "project_permission_schemes",
        "group_members",
        "role_actors",
        "application_role_groups",
        "issue_field_values",
        "users",
    ),
    "security_level": (
        "security_levels",
        "security_level_members",
        "project_security_schemes",
        "group_members",
        "role_actors",
        "application_role_groups",
        "issue_field_values",
        "users",
    ),
    "visibility": ("group_members", "role_actors", "project_roles", "users", "groups"),
}

GAP_COLUMNS = (
    "item_kind",
    "item_id",
    "issue_id",
    "issue_key",
    "project_id",
    "project_key",
    "layer",
    "hidden_by_browse",
    "hidden_by_security_level",
    "hidden_by_visibility",
    "missing",
    "browse_grants",
    "security_level_id",
    "security_level_name",
    "visibility_type",
    "visibility_key",
    "visibility_name",
    "cannot_tell",
)

FIX_COLUMNS = (
    "step",
    "fix_kind",
    "target",
    "group_id",
    "group_name",
    "project_id",
    "project_key",
    "role_id",
    "role_name",
    "level_id",
    "level_name",
    "scheme_id",
    "scheme_name",
    "requirements_met",
    "items_unblocked",
    "items_unlocked_alone",
    "items_unlocked",
)


@dataclass(frozen=True, slots=True)
class RestrictionGaps:
    """The restriction-gap audit of one account.

    Attributes:
        account_id: the account audited.
        gaps: one row per hidden item, ordered by kind (issue, comment, worklog) and id. Columns:
            ``item_kind`` (issue/comment/worklog), ``item_id``, ``issue_id``, ``issue_key``, ``project_id``,
            ``project_key``; ``layer`` (the outermost layer hiding it, :data:`LAYERS`); ``hidden_by_browse``,
            ``hidden_by_security_level``, ``hidden_by_visibility`` (every layer that hides it; all must be fixed);
            ``missing`` (what is missing, layer by layer, in words); ``browse_grants`` (the project's Browse
            Projects grants, any of which would admit it; set when hidden by browse); ``security_level_id``,
            ``security_level_name`` (the issue's level); ``visibility_type``, ``visibility_key`` (group id or role
            name), ``visibility_name`` (the group's current name, or the role name); ``cannot_tell`` (the
            unreadable resources the answer depends on, ``None`` when the data answers it).
        fixes: the fix summary, one row per fix in the order chosen, then one row per requirement no fix can meet.
            Columns: ``step`` (1, 2 ...; ``None`` for a requirement nothing meets), ``fix_kind``
            (:data:`FIX_KINDS`, or ``none``), ``target`` (in words), ``group_id``, ``group_name``, ``project_id``,
            ``project_key``, ``role_id``, ``role_name``, ``level_id``, ``level_name``, ``scheme_id``,
            ``scheme_name`` (those that apply), ``requirements_met`` (distinct requirements it meets),
            ``items_unblocked`` (hidden items it removes at least one layer from), ``items_unlocked_alone`` (items
            it alone makes visible), ``items_unlocked`` (items that become visible at this step, given the earlier
            steps: the column sums to every hidden item that can be made visible).
        out_of_reach: what no loading principal could load, per issue and kind, from the totals Jira reported
            (``issue_totals``): ``issue_id``, ``issue_key``, ``project_key``, ``item_kind`` (comment/worklog),
            ``loaded`` (items in the tables), ``reported_max`` (the highest total any principal was told),
            ``unloaded`` (``reported_max - loaded``: items no audit can look at), ``account_reported`` (the total the
            account itself was told, if it loaded the issue), ``account_hidden_reported`` (``reported_max -
            account_reported``: how many the account misses by Jira's own count, loaded or not). Only issues where
            something was not loaded.
        cannot_tell: resources no principal's latest load could read
            (:func:`jira_lab.audits.model.unreadable_resources`).
        method: ``exact`` or ``greedy`` (how the fix summary was chosen); ``none`` when nothing is hidden.
        notes: plain-language caveats about what the data cannot tell.
    """

    account_id: str
    gaps: pl.DataFrame
    fixes: pl.DataFrame
    out_of_reach: pl.DataFrame
    cannot_tell: pl.DataFrame
    method: Literal["exact", "greedy", "none"]
    notes: tuple[str, ...]

    def summary(self) -> pl.DataFrame:
        """Hidden items per kind and layer: ``item_kind``, ``layer``, ``items``."""
        return (
            self.gaps.group_by("item_kind", "layer")
            .agg(pl.len().cast(pl.Int64).alias("items"))
            .sort(pl.col("item_kind").replace_strict(_KIND_ORDER, return_dtype=pl.Int32), "layer")
        )


def _format(template: str, *values: str | pl.Expr) -> pl.Expr:
    """``pl.format`` built from ``concat_str`` (polars 2.1's streaming engine panics on some ``pl.format`` inputs).

    Null if any value is null, as ``pl.format`` is.
    """
    pieces = template.split("{}")
    if len(pieces) != len(values) + 1:
        raise ValueError(f"{template!r} has {len(pieces) - 1} placeholders for {len(values)} values")
    parts: list[pl.Expr] = []
    for piece, value in zip(pieces, values, strict=False):
        if piece:
            parts.append(pl.lit(piece))
        parts.append((pl.col(value) if isinstance(value, str) else value).cast(pl.String))
    if pieces[-1]:
        parts.append(pl.lit(pieces[-1]))
    return pl.concat_str(parts)


# -- the layers ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Subject:
    """The account audited and the tables its answers are computed from (with the account active in them)."""

    account_id: str
    #: deactivated accounts hold nothing; the audit still says what they would miss once active
    active: bool
    #: among the loaded users; an account that is not (the users list unreadable ...) is taken as active
    listed: bool
    tables: SiteTables


def _subject(tables: SiteTables, account: str) -> _Subject:
    account_id = model.resolve_account(tables, account)
    found = tables.users.filter(pl.col("account_id") == account_id).select("active").collect()
    listed = found.height > 0
    active = not listed or bool(found["active"].fill_null(False).any())
    if listed and active:
        return _Subject(account_id, True, True, tables)
    users = tables.users.with_columns(
        (pl.col("active").fill_null(False) | (pl.col("account_id") == account_id)).alias("active")
    )
    if not listed:
        extra = pl.LazyFrame({"site_id": [tables.site_id], "account_id": [account_id], "active": [True]})
        users = pl.concat([users, extra], how="diagonal_relaxed")
    return _Subject(account_id, active, listed, dataclasses.replace(tables, users=users))


def hidden_items(tables: SiteTables, account: str, *, seen_by: str | None = None) -> pl.LazyFrame:
    """Every loaded issue, comment and worklog the account cannot see, with the layers that hide it.

    The cheap core of :func:`restriction_gaps` (no descriptions, no fixes).

    Args:
        account: account id or email of the account audited.
        seen_by: only items this principal (account id or email) sighted; ``None``: every live loaded item.

    Returns:
        ``item_kind``, ``item_id``, ``issue_id``, ``project_id``, ``security_level_id``, ``visibility_type``,
        ``visibility_key``, ``layer``, ``hidden_by_browse``, ``hidden_by_security_level``, ``hidden_by_visibility``.
    """
    subject = _subject(tables, account)
    account_id, active, evaluated = subject.account_id, subject.active, subject.tables
    accounts = [account_id]
    issues = evaluated.issues.select(pl.col("id").alias("issue_id"), "project_id", "security_level_id")
    browsable = model.issue_browsers(evaluated, accounts).select("issue_id", pl.lit(True).alias("_browse"))
    in_level = model.issue_level_members(evaluated, accounts).select("issue_id", pl.lit(True).alias("_level"))
    issue_flags = (
        issues.join(browsable, on="issue_id", how="left")
        .join(in_level, on="issue_id", how="left")
        .select(
            "issue_id",
            "project_id",
            "security_level_id",
            pl.col("_browse").is_null().alias("hidden_by_browse"),
            (pl.col("security_level_id").is_not_null() & pl.col("_level").is_null()).alias("hidden_by_security_level"),
        )
    )
    all_items = model.items(evaluated).collect().lazy()  # read once, used twice
    satisfied = (
        model.visibility_holders(evaluated, accounts, of_items=all_items)
        .select("project_id", "visibility_type", "visibility_key")
        .unique()
        .with_columns(pl.lit(True).alias("_satisfied"))
    )
    restricted = all_items.join(satisfied, on=["project_id", "visibility_type", "visibility_key"], how="left")
    item_rows = restricted.join(issue_flags.drop("project_id"), on="issue_id", how="left").select(
        "item_kind",
        "item_id",
        "issue_id",
        "project_id",
        "security_level_id",
        "visibility_type",
        "visibility_key",
        pl.col("hidden_by_browse").fill_null(True),
        pl.col("hidden_by_security_level").fill_null(False),
        (pl.col("visibility_type").is_not_null() & pl.col("_satisfied").is_null()).alias("hidden_by_visibility"),
    )
    issue_rows = issue_flags.select(
        pl.lit(ISSUE).alias("item_kind"),
        pl.col("issue_id").alias("item_id"),
        "issue_id",
        "project_id",
        "security_level_id",
        pl.lit(None, dtype=pl.String).alias("visibility_type"),
        pl.lit(None, dtype=pl.String).alias("visibility_key"),
        "hidden_by_browse",
        "hidden_by_security_level",
        pl.lit(False).alias("hidden_by_visibility"),
    )
    layer = (
        pl.when(pl.lit(not active))
        .then(pl.lit("inactive_account"))
        .when(pl.col("hidden_by_browse"))
        .then(pl.lit("browse"))
        .when(pl.col("hidden_by_security_level"))
        .then(pl.lit("security_level"))
        .when(pl.col("hidden_by_visibility"))
        .then(pl.lit("visibility"))
    )
    every = pl.concat([issue_rows, item_rows]).with_columns(layer.alias("layer")).filter(pl.col("layer").is_not_null())
    if seen_by is not None:
        every = every.join(seen_items(tables, seen_by), on=["item_kind", "item_id"], how="semi")
    return every.select(
        "item_kind",
        "item_id",
        "issue_id",
        "project_id",
        "security_level_id",
        "visibility_type",
        "visibility_key",
        "layer",
        "hidden_by_browse",
        "hidden_by_security_level",
        "hidden_by_visibility",
    )


# -- describing what is missing ------------------------------------------------------------------------------------
def _holder_words(tables: SiteTables, holders: pl.LazyFrame) -> pl.LazyFrame:
    """``holder_words``: a holder in words (``group 'devs' (id)``, ``role 'Developers'``, ``reporter`` ...)."""
    groups = tables.groups.select(pl.col("group_id").alias("holder_value"), pl.col("name").alias("_group_name"))
    roles = tables.project_roles.select(
        pl.col("id").cast(pl.String).alias("holder_value"), pl.col("name").alias("_role_name")
    )
    kind, value = pl.col("holder_type"), pl.col("holder_value")
    words = (
        pl.when(kind == "group")
        .then(_format("group '{}' ({})", pl.coalesce("_group_name", "holder_parameter", value), value))
        .when(kind == "projectRole")
        .then(_format("role '{}' ({})", pl.coalesce("_role_name", value), value))
        .when((kind == "applicationRole") & value.is_null())
        .then(pl.lit("any logged-in user with product access"))
        .when(kind == "applicationRole")
        .then(_format("access to {}", value))
        .when(kind == "user")
        .then(_format("user {}", value))
        .when(kind == "projectLead")
        .then(pl.lit("project lead"))
        .when(kind.is_in(["userCustomField", "groupCustomField"]))
        .then(_format("{} {}", kind, value))
        .otherwise(kind)
    )
    return (
        holders.join(groups, on="holder_value", how="left")
        .join(roles, on="holder_value", how="left")
        .with_columns(words.alias("holder_words"))
        .drop("_group_name", "_role_name")
    )


def _browse_grant_words(tables: SiteTables) -> pl.LazyFrame:
    """``project_id``, ``browse_grants``: the project's Browse Projects grants in words, ``; ``-separated."""
    grants = _holder_words(tables, model.project_permission_grants(tables, BROWSE_PROJECTS))
    return grants.group_by("project_id").agg(
        pl.col("holder_words").unique().sort().str.join("; ").alias("browse_grants")
    )


def _describe(tables: SiteTables, hidden: pl.LazyFrame) -> pl.LazyFrame:
    issues = tables.issues.select(pl.col("id").alias("issue_id"), pl.col("key").alias("issue_key"))
    projects = tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("project_key"))
    levels = tables.security_levels.select(
        pl.col("id").alias("security_level_id"), pl.col("name").alias("security_level_name")
    )
    group_names = tables.groups.select(pl.col("group_id").alias("visibility_key"), pl.col("name").alias("_group"))
    roles = (
        model.role_ids_by_name(tables)
        .rename({"role_name": "visibility_key"})
        .with_columns(pl.lit("role").alias("visibility_type"))
    )
    described = (
        hidden.join(issues, on="issue_id", how="left")
        .join(projects, on="project_id", how="left")
        .join(levels, on="security_level_id", how="left")
        .join(group_names, on="visibility_key", how="left")
        .join(roles, on=["visibility_type", "visibility_key"], how="left")
        .join(_browse_grant_words(tables), on="project_id", how="left")
        .with_columns(
            pl.when(pl.col("visibility_type") == "group")
            .then(pl.col("_group"))
            .when(pl.col("visibility_type") == "role")
            .then(pl.col("visibility_key"))
            .alias("visibility_name"),
            pl.coalesce("project_key", pl.col("project_id").cast(pl.String)).alias("_project"),
        )
    )
    parts = [
        pl.when(pl.col("layer") == "inactive_account").then(pl.lit("an active account (it is deactivated)")),
        pl.when(pl.col("hidden_by_browse")).then(
            _format(
                "Browse Projects in {} (granted to: {})",
                "_project",
                pl.col("browse_grants").fill_null("nobody: no grant was loaded"),
            )
        ),
        pl.when(pl.col("hidden_by_security_level")).then(
            pl.when(pl.col("security_level_name").is_null())
            .then(_format("security level {}, which no loaded scheme defines (nobody can see it)", "security_level_id"))
            .otherwise(_format("membership of security level '{}' ({})", "security_level_name", "security_level_id"))
        ),
        pl.when(pl.col("hidden_by_visibility") & (pl.col("visibility_type") == "group")).then(
            _format("membership of group '{}' ({})", pl.col("_group").fill_null("name unknown"), "visibility_key")
        ),
        pl.when(pl.col("hidden_by_visibility") & (pl.col("visibility_type") == "role")).then(
            pl.when(pl.col("role_id").is_null())
            .then(_format("role '{}', which no loaded project role is called (nobody can see it)", "visibility_key"))
            .otherwise(_format("role '{}' in {}", "visibility_key", "_project"))
        ),
    ]
    return described.with_columns(
        pl.concat_str(parts, separator="; ", ignore_nulls=True).alias("missing"),
        pl.when(pl.col("hidden_by_browse")).then(pl.col("browse_grants")).alias("browse_grants"),
    )


def _cannot_tell(gaps: pl.LazyFrame, unreadable: pl.DataFrame) -> pl.LazyFrame:
    """``cannot_tell``: the unreadable resources an item's answer depends on (``None``: the data answers it)."""
    if unreadable.is_empty():
        return gaps.with_columns(pl.lit(None, dtype=pl.String).alias("cannot_tell"))
    relevant = pl.DataFrame(
        [(layer, table) for layer, tables in _LAYER_SOURCES.items() for table in tables],
        schema={"_layer": pl.String, "table": pl.String},
        orient="row",
    ).join(unreadable.select("resource", "table", "scope"), on="table")
    flags = {
        "browse": "hidden_by_browse",
        "security_level": "hidden_by_security_level",
        "visibility": "hidden_by_visibility",
    }
    keyed = gaps.with_row_index("_row")
    per_layer = []
    for layer, flag in flags.items():
        layer_rows = relevant.filter(pl.col("_layer") == layer).lazy()
        matched = (
            keyed.filter(pl.col(flag))
            .select("_row", "project_id", "visibility_key")
            .join(layer_rows, how="cross")
            .filter(
                pl.col("scope").is_null()
                | (pl.col("scope") == pl.col("project_id").cast(pl.String))
                | (pl.col("scope") == pl.col("visibility_key"))
            )
            .select("_row", "resource")
        )
        per_layer.append(matched)
    reasons = (
        pl.concat(per_layer)
        .unique()
        .group_by("_row")
        .agg(_format("unreadable: {}", pl.col("resource").sort().str.join(", ")).first().alias("cannot_tell"))
    )
    return keyed.join(reasons, on="_row", how="left").sort("_row").drop("_row")


# -- fixes ---------------------------------------------------------------------------------------------------------
def _signatures(hidden: pl.LazyFrame) -> pl.LazyFrame:
    """Hidden items grouped by what hides them: ``signature`` (an id), ``items`` (how many), and the columns
    requirements are made of. Items with one signature need the same fixes, so fixes are chosen per signature."""
    needs = [
        "hidden_by_browse",
        "hidden_by_security_level",
        "hidden_by_visibility",
        "project_id",
        "security_level_id",
        "visibility_type",
        "visibility_key",
    ]
    return (
        hidden.group_by(needs)
        .agg(pl.len().cast(pl.Int64).alias("items"))
        .sort(needs, nulls_last=True)
        .with_row_index("signature")
    )


def _requirements(signatures: pl.LazyFrame, active: bool) -> pl.LazyFrame:
    """``signature``, ``items``, ``requirement``, ``layer``, ``project_id``, ``level_id``, ``visibility_type``,
    ``visibility_key``: one row per signature of hidden items and requirement it has."""
    hidden = signatures
    base = ["signature", "items", "project_id"]
    browse = hidden.filter(pl.col("hidden_by_browse")).select(
        *base,
        pl.lit("browse").alias("layer"),
        _format("browse|{}", "project_id").alias("requirement"),
        pl.lit(None, dtype=pl.Int64).alias("level_id"),
        pl.lit(None, dtype=pl.String).alias("visibility_type"),
        pl.lit(None, dtype=pl.String).alias("visibility_key"),
    )
    level = hidden.filter(pl.col("hidden_by_security_level")).select(
        *base,
        pl.lit("security_level").alias("layer"),
        _format("level|{}|{}", "security_level_id", "project_id").alias("requirement"),
        pl.col("security_level_id").alias("level_id"),
        pl.lit(None, dtype=pl.String).alias("visibility_type"),
        pl.lit(None, dtype=pl.String).alias("visibility_key"),
    )
    restriction = hidden.filter(pl.col("hidden_by_visibility")).select(
        *base,
        pl.lit("visibility").alias("layer"),
        pl.when(pl.col("visibility_type") == "group")
        .then(_format("group|{}", "visibility_key"))
        .otherwise(_format("role|{}|{}", "visibility_key", "project_id"))
        .alias("requirement"),
        pl.lit(None, dtype=pl.Int64).alias("level_id"),
        "visibility_type",
        "visibility_key",
    )
    parts = [browse, level, restriction]
    if not active:
        parts.append(
            hidden.select(
                *base,
                pl.lit("inactive_account").alias("layer"),
                pl.lit("account").alias("requirement"),
                pl.lit(None, dtype=pl.Int64).alias("level_id"),
                pl.lit(None, dtype=pl.String).alias("visibility_type"),
                pl.lit(None, dtype=pl.String).alias("visibility_key"),
            )
        )
    return pl.concat(parts).select(
        "signature", "items", "requirement", "layer", "project_id", "level_id", "visibility_type", "visibility_key"
    )


_FIX_SCHEMA = {
    "requirement": pl.String,
    "fix_kind": pl.String,
    "group_id": pl.String,
    "project_id": pl.Int64,
    "role_id": pl.Int64,
    "level_id": pl.Int64,
    "scheme_id": pl.Int64,
}


def _fix(frame: pl.LazyFrame, kind: str, **columns: pl.Expr) -> pl.LazyFrame:
    exprs = [pl.col("requirement"), pl.lit(kind).alias("fix_kind")]
    for name, dtype in _FIX_SCHEMA.items():
        if name in ("requirement", "fix_kind"):
            continue
        exprs.append(columns.get(name, pl.lit(None)).cast(dtype).alias(name))
    return frame.select(exprs)


def _membership_fixes(tables: SiteTables, holders: pl.LazyFrame) -> pl.LazyFrame:
    """Group memberships and role actor additions that make the account one of ``holders`` (``requirement``,
    ``project_id``, ``holder_type``, ``holder_value``)."""
    kind = pl.col("holder_type")
    by_group = _fix(holders.filter(kind == "group"), "group_membership", group_id=pl.col("holder_value"))
    roles = (
        holders.filter(kind == "projectRole")
        .with_columns(pl.col("holder_value").str.strip_chars().cast(pl.Int64, strict=False).alias("role_id"))
        .filter(pl.col("role_id").is_not_null())
    )
    as_actor = _fix(roles, "role_actor", project_id=pl.col("project_id"), role_id=pl.col("role_id"))
    group_actors = tables.role_actors.filter(pl.col("actor_type") == "group").select(
        "project_id", "role_id", pl.col("actor_id").alias("group_id")
    )
    via_group_actor = _fix(
        roles.join(group_actors, on=["project_id", "role_id"]), "group_membership", group_id=pl.col("group_id")
    )
    role_groups = tables.application_role_groups.select("application_key", "group_id")
    applications = holders.filter(kind == "applicationRole")
    keyed = applications.filter(pl.col("holder_value").is_not_null()).join(
        role_groups, left_on="holder_value", right_on="application_key"
    )
    keyless = applications.filter(pl.col("holder_value").is_null()).join(
        role_groups.select("group_id").unique(), how="cross"
    )
    via_application = _fix(
        pl.concat([keyed.select("requirement", "group_id"), keyless.select("requirement", "group_id")]),
        "group_membership",
        group_id=pl.col("group_id"),
    )
    return pl.concat([by_group, as_actor, via_group_actor, via_application])


def _fix_candidates(tables: SiteTables, requirements: pl.DataFrame) -> pl.DataFrame:
    """Every fix that meets each requirement: ``requirement``, ``fix_kind``, ``group_id``, ``project_id``,
    ``role_id``, ``level_id``, ``scheme_id``."""
    distinct = (
        requirements.lazy()
        .select("requirement", "layer", "project_id", "level_id", "visibility_type", "visibility_key")
        .unique()
    )
    browse = distinct.filter(pl.col("layer") == "browse")
    grants = browse.join(
        model.project_permission_grants(tables, BROWSE_PROJECTS).select(
            "project_id", "scheme_id", "holder_type", "holder_value"
        ),
        on="project_id",
    )
    schemes = browse.join(tables.project_permission_schemes.select("project_id", "scheme_id"), on="project_id")
    levels = distinct.filter(pl.col("layer") == "security_level")
    members = levels.join(
        model.normalized_holders(
            tables.security_level_members.select("level_id", "holder_type", "holder_parameter", "holder_value"), tables
        ),
        on="level_id",
    )
    known_levels = levels.join(tables.security_levels.select(pl.col("id").alias("level_id")), on="level_id", how="semi")
    restrictions = distinct.filter(pl.col("layer") == "visibility")
    roles = model.role_ids_by_name(tables).rename({"role_name": "visibility_key"})
    role_restrictions = (
        restrictions.filter(pl.col("visibility_type") == "role")
        .join(roles, on="visibility_key")
        .select(
            "requirement",
            "project_id",
            pl.lit("projectRole").alias("holder_type"),
            pl.col("role_id").cast(pl.String).alias("holder_value"),
        )
    )
    group_restrictions = restrictions.filter(pl.col("visibility_type") == "group").select(
        "requirement",
        "project_id",
        pl.lit("group").alias("holder_type"),
        pl.col("visibility_key").alias("holder_value"),
    )
    holders = pl.concat(
        [
            grants.select("requirement", "project_id", "holder_type", "holder_value"),
            members.select("requirement", "project_id", "holder_type", "holder_value"),
            role_restrictions,
            group_restrictions,
        ]
    )
    candidates = pl.concat(
        [
            _membership_fixes(tables, holders),
            _fix(schemes, "browse_grant", scheme_id=pl.col("scheme_id")),
            _fix(known_levels, "security_level_member", level_id=pl.col("level_id")),
            _fix(distinct.filter(pl.col("layer") == "inactive_account"), "activate_account"),
        ]
    )
    return candidates.unique().collect()


def _fix_id() -> pl.Expr:
    return pl.concat_str(
        [
            pl.col(c).cast(pl.String).fill_null("")
            for c in ("fix_kind", "group_id", "project_id", "role_id", "level_id", "scheme_id")
        ],
        separator="|",
    ).alias("fix_id")


def _set_cover(
    coverage: dict[str, frozenset[str]], weight: dict[str, int], order: dict[str, int]
) -> tuple[list[str], Literal["exact", "greedy"]]:
    """The fewest fixes whose coverage (fix -> requirements) covers every coverable requirement, and how they were
    found. ``weight``: items per requirement (greedy tie-break); ``order``: a stable order of the fixes."""
    universe = frozenset().union(*coverage.values()) if coverage else frozenset()
    greedy = _greedy_cover(coverage, universe, weight, order)
    exact = _exact_cover(coverage, universe, len(greedy), order)
    if exact is None:
        return greedy, "greedy"
    return (_greedy_cover({f: coverage[f] for f in exact}, universe, weight, order) if exact else []), "exact"


def _greedy_cover(
    coverage: dict[str, frozenset[str]], universe: frozenset[str], weight: dict[str, int], order: dict[str, int]
) -> list[str]:
    uncovered = set(universe)
    chosen: list[str] = []
    while uncovered:
        best = max(
            coverage,
            key=lambda f: (len(coverage[f] & uncovered), sum(weight[r] for r in coverage[f] & uncovered), -order[f]),
        )
        chosen.append(best)
        uncovered -= coverage[best]
    return chosen


def _exact_cover(
    coverage: dict[str, frozenset[str]], universe: frozenset[str], greedy_size: int, order: dict[str, int]
) -> list[str] | None:
    """A smallest cover, or ``None`` when proving it would take more than :data:`EXACT_SEARCH_LIMIT` tries."""
    candidates_of: dict[str, list[str]] = {r: [] for r in universe}
    for fix, met in coverage.items():
        for requirement in met:
            candidates_of[requirement].append(fix)
    forced = sorted({fixes[0] for fixes in candidates_of.values() if len(fixes) == 1}, key=order.__getitem__)
    left = set(universe).difference(*(coverage[f] for f in forced))
    if not left:
        return forced
    useful = {f: coverage[f] & left for f in coverage if f not in forced and coverage[f] & left}
    # a fix meeting a subset of what another meets is never needed in a smallest cover
    kept = [
        f
        for f in sorted(useful, key=order.__getitem__)
        if not any(g != f and useful[f] < useful[g] for g in useful)
        and not any(useful[f] == useful[g] and order[g] < order[f] for g in useful)
    ]
    bits = {f: sum(1 << i for i, r in enumerate(sorted(left)) if r in useful[f]) for f in kept}
    full = (1 << len(left)) - 1
    tries = 0
    for size in range(1, greedy_size - len(forced) + 1):
        for combination in itertools.combinations(kept, size):
            tries += 1
            if tries > EXACT_SEARCH_LIMIT:
                return None
            mask = 0
            for fix in combination:
                mask |= bits[fix]
            if mask == full:
                return [*forced, *combination]
    return None


def _fix_summary(
    tables: SiteTables, hidden: pl.LazyFrame, active: bool
) -> tuple[pl.DataFrame, Literal["exact", "greedy", "none"]]:
    requirements = _requirements(_signatures(hidden), active).collect()
    if requirements.is_empty():
        return _empty_fixes(), "none"
    candidates = _fix_candidates(tables, requirements).with_columns(_fix_id())
    weight = dict(requirements.group_by("requirement").agg(pl.col("items").sum()).iter_rows())
    fixes_table = candidates.select("fix_id", *list(_FIX_SCHEMA)[1:]).unique("fix_id").sort("fix_id")
    order = {fix_id: index for index, fix_id in enumerate(fixes_table["fix_id"])}
    coverage: dict[str, frozenset[str]] = {
        fix_id: frozenset(met) for fix_id, met in candidates.group_by("fix_id").agg(pl.col("requirement")).iter_rows()
    }
    chosen, method = _set_cover(coverage, weight, order)
    # nothing else counts while the account is deactivated: reactivating it comes first
    chosen.sort(key=lambda fix_id: not fix_id.startswith("activate_account"))
    steps = pl.DataFrame(
        {"fix_id": chosen, "step": list(range(1, len(chosen) + 1))}, schema={"fix_id": pl.String, "step": pl.Int64}
    )
    chosen_candidates = candidates.join(steps, on="fix_id")
    needs = requirements.select("signature", "items", "requirement")
    per_signature = needs.group_by("signature").agg(pl.len().alias("_needs"), pl.col("items").first())
    met_per_signature_fix = (
        needs.join(chosen_candidates.select("requirement", "fix_id"), on="requirement")
        .group_by("signature", "fix_id")
        .agg(pl.len().alias("_met"))
        .join(per_signature, on="signature")
    )
    per_fix = met_per_signature_fix.group_by("fix_id").agg(
        pl.col("items").sum().cast(pl.Int64).alias("items_unblocked"),
        pl.col("items").filter(pl.col("_met") == pl.col("_needs")).sum().cast(pl.Int64).alias("items_unlocked_alone"),
    )
    first_step = chosen_candidates.group_by("requirement").agg(pl.col("step").min())
    unlocked_at = (
        needs.join(first_step, on="requirement", how="left")
        .group_by("signature")
        .agg(pl.col("step").max(), pl.col("step").is_null().any().alias("_blocked"), pl.col("items").first())
        .filter(~pl.col("_blocked"))
        .group_by("step")
        .agg(pl.col("items").sum().cast(pl.Int64).alias("items_unlocked"))
    )
    met = chosen_candidates.group_by("fix_id").agg(
        pl.col("requirement").n_unique().cast(pl.Int64).alias("requirements_met")
    )
    summary = (
        steps.join(fixes_table, on="fix_id")
        .join(met, on="fix_id", how="left")
        .join(per_fix, on="fix_id", how="left")
        .join(unlocked_at, on="step", how="left")
        .with_columns(
            pl.col("items_unlocked").fill_null(0),
            pl.col("items_unblocked").fill_null(0),
            pl.col("items_unlocked_alone").fill_null(0),
        )
        .sort("step")
    )
    summary = _name_fixes(tables, summary)
    uncoverable = requirements.join(candidates.select("requirement").unique(), on="requirement", how="anti")
    if uncoverable.height:
        summary = pl.concat([summary, _uncoverable_rows(tables, uncoverable)], how="diagonal_relaxed")
    return summary.select(FIX_COLUMNS), method


def _name_fixes(tables: SiteTables, summary: pl.DataFrame) -> pl.DataFrame:
    names = {
        "groups": tables.groups.select("group_id", pl.col("name").alias("group_name")),
        "projects": tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("project_key")),
        "roles": tables.project_roles.select(pl.col("id").alias("role_id"), pl.col("name").alias("role_name")),
        "levels": tables.security_levels.select(pl.col("id").alias("level_id"), pl.col("name").alias("level_name")),
        "schemes": tables.permission_schemes.select(
            pl.col("id").alias("scheme_id"), pl.col("name").alias("scheme_name")
        ),
    }
    frame = summary.lazy()
    for key, table in (
        ("group_id", "groups"),
        ("project_id", "projects"),
        ("role_id", "roles"),
        ("level_id", "levels"),
        ("scheme_id", "schemes"),
    ):
        frame = frame.join(names[table].unique(key), on=key, how="left")
    kind = pl.col("fix_kind")
    target = (
        pl.when(kind == "activate_account")
        .then(pl.lit("reactivate the account"))
        .when(kind == "group_membership")
        .then(_format("add to group '{}' ({})", pl.coalesce("group_name", pl.lit("name unknown")), "group_id"))
        .when(kind == "role_actor")
        .then(
            _format(
                "add as an actor of role '{}' in {}",
                pl.coalesce("role_name", pl.col("role_id").cast(pl.String)),
                pl.coalesce("project_key", pl.col("project_id").cast(pl.String)),
            )
        )
        .when(kind == "security_level_member")
        .then(
            _format("add as a member of security level '{}' ({})", pl.coalesce("level_name", pl.lit("?")), "level_id")
        )
        .when(kind == "browse_grant")
        .then(
            _format(
                "grant it Browse Projects in permission scheme '{}' ({})",
                pl.coalesce("scheme_name", pl.lit("?")),
                "scheme_id",
            )
        )
    )
    return frame.with_columns(target.alias("target")).sort("step").collect()


def _uncoverable_rows(tables: SiteTables, uncoverable: pl.DataFrame) -> pl.DataFrame:
    """One ``none`` row per requirement no membership can meet, with the items it keeps hidden."""
    projects = tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("project_key")).collect()
    grouped = (
        uncoverable.group_by("requirement", "layer", "project_id", "level_id", "visibility_type", "visibility_key")
        .agg(pl.col("items").sum().cast(pl.Int64).alias("items_unblocked"))
        .join(projects, on="project_id", how="left")
    )
    target = (
        pl.when(pl.col("layer") == "security_level")
        .then(_format("security level {} is not defined in any loaded scheme: nobody can see its issues", "level_id"))
        .when(pl.col("layer") == "visibility")
        .then(_format("no loaded project role is called '{}': nobody can see items restricted to it", "visibility_key"))
        .otherwise(_format("no fix for {}", "requirement"))
    )
    return grouped.select(
        pl.lit(None, dtype=pl.Int64).alias("step"),
        pl.lit(NO_FIX).alias("fix_kind"),
        target.alias("target"),
        "project_id",
        "project_key",
        "level_id",
        pl.lit(0, dtype=pl.Int64).alias("requirements_met"),
        "items_unblocked",
        pl.lit(0, dtype=pl.Int64).alias("items_unlocked_alone"),
        pl.lit(0, dtype=pl.Int64).alias("items_unlocked"),
    ).sort("target")


def _empty_fixes() -> pl.DataFrame:
    dtypes = {
        "step": pl.Int64,
        "project_id": pl.Int64,
        "role_id": pl.Int64,
        "level_id": pl.Int64,
        "scheme_id": pl.Int64,
        "requirements_met": pl.Int64,
        "items_unblocked": pl.Int64,
        "items_unlocked_alone": pl.Int64,
        "items_unlocked": pl.Int64,
    }
    return pl.DataFrame(schema={c: dtypes.get(c, pl.String) for c in FIX_COLUMNS})


# -- what nobody could load ----------------------------------------------------------------------------------------
def out_of_reach(tables: SiteTables, account_id: str) -> pl.DataFrame:
    """Comments and worklogs Jira counted on an issue that no principal loaded, per issue and kind.

    Returns:
        The ``out_of_reach`` frame of :class:`RestrictionGaps` (see its columns there).
    """
    issues = tables.issues.select(pl.col("id").alias("issue_id"), pl.col("key").alias("issue_key"), "project_key")
    rows = []
    for kind, table, total in (
        (COMMENT, tables.comments, "comment_total"),
        (WORKLOG, tables.worklogs, "worklog_total"),
    ):
        loaded = table.group_by("issue_id").agg(pl.len().cast(pl.Int64).alias("loaded"))
        reported = tables.issue_totals.filter(pl.col(total).is_not_null())
        best = reported.group_by("issue_id").agg(pl.col(total).max().alias("reported_max"))
        own = reported.filter(pl.col("principal_id") == account_id).select(
            "issue_id", pl.col(total).alias("account_reported")
        )
        rows.append(
            best.join(loaded, on="issue_id", how="left")
            .join(own, on="issue_id", how="left")
            .with_columns(pl.col("loaded").fill_null(0))
            .filter(pl.col("reported_max") > pl.col("loaded"))
            .select(
                "issue_id",
                pl.lit(kind).alias("item_kind"),
                "loaded",
                "reported_max",
                (pl.col("reported_max") - pl.col("loaded")).alias("unloaded"),
                "account_reported",
                (pl.col("reported_max") - pl.col("account_reported")).alias("account_hidden_reported"),
            )
        )
    return (
        pl.concat(rows)
        .join(issues, on="issue_id", how="left")
        .select(
            "issue_id",
            "issue_key",
            "project_key",
            "item_kind",
            "loaded",
            "reported_max",
            "unloaded",
            "account_reported",
            "account_hidden_reported",
        )
        .sort("issue_id", "item_kind")
        .collect()
    )


def _notes(reach: pl.DataFrame, unreadable: pl.DataFrame, subject: _Subject) -> tuple[str, ...]:
    notes = [
        "Only what some principal loaded is audited: issues in projects no loading principal could browse, and "
        "items hidden from every loading principal, cannot be seen or counted by any audit."
    ]
    if not subject.active:
        notes.append("The account is inactive: it sees nothing; the layer flags say what it would miss once active.")
    if not subject.listed:
        notes.append(
            "The account is not among the loaded users (was the user list readable?): it is taken as active, and "
            "its group memberships are only those the loaded group members show."
        )
    if reach.height:
        for kind in (COMMENT, WORKLOG):
            of_kind = reach.filter(pl.col("item_kind") == kind)
            if of_kind.height:
                notes.append(
                    f"{int(of_kind['unloaded'].sum())} {kind}s on {of_kind.height} issues were counted by Jira but "
                    "loaded by no principal: out of reach of any audit (see out_of_reach)."
                )
    if unreadable.height:
        notes.append(
            "Some of the permission model could not be read ("
            + ", ".join(unreadable["resource"].to_list())
            + "): items whose answer depends on it are marked in cannot_tell."
        )
    return tuple(notes)


# -- the audit -----------------------------------------------------------------------------------------------------
def restriction_gaps(tables: SiteTables, account: str, *, seen_by: str | None = None) -> RestrictionGaps:
    """The static prediction: every loaded issue, comment and worklog the account cannot see, why, and how to fix it.

    Args:
        tables: the loaded tables of one site (:func:`jira_lab.audits.model.from_db`).
        account: account id or email of the technical user.
        seen_by: audit only the items this principal (e.g. the analyst) sighted; ``None``: every live loaded item.

    Returns:
        A :class:`RestrictionGaps`: ``gaps``, ``fixes``, ``out_of_reach``, ``cannot_tell``, ``method``, ``notes``.
    """
    subject = _subject(tables, account)
    account_id, active, evaluated = subject.account_id, subject.active, subject.tables
    hidden = hidden_items(tables, account_id, seen_by=seen_by).collect().lazy()
    unreadable = model.unreadable_resources(tables).collect()
    gaps = (
        _cannot_tell(_describe(evaluated, hidden), unreadable)
        .sort(pl.col("item_kind").replace_strict(_KIND_ORDER, return_dtype=pl.Int32), "item_id")
        .select(GAP_COLUMNS)
        .collect()
    )
    fixes, method = _fix_summary(evaluated, hidden, active)
    reach = out_of_reach(tables, account_id)
    return RestrictionGaps(
        account_id=account_id,
        gaps=gaps,
        fixes=fixes,
        out_of_reach=reach,
        cannot_tell=unreadable,
        method=method,
        notes=_notes(reach, unreadable, subject),
    )


# -- the empirical check -------------------------------------------------------------------------------------------
def seen_items(tables: SiteTables, principal: str) -> pl.LazyFrame:
    """The live issues, comments and worklogs a principal saw in its latest succeeded load.

    The loader's contract (:mod:`jira_lab.load`): after a successful load, the entities whose ``last_seen_load`` is
    that load are exactly the principal's view (what it did not re-read because nothing changed is carried
    forward). Items no longer in the tables (deleted, or gone from every view) are left out.

    Raises:
        ValueError: the principal has no succeeded load of the site.

    Returns:
        ``item_kind``, ``item_id``.
    """
    principal_id = model.resolve_account(tables, principal)
    latest = model.latest_loads(tables).filter(pl.col("principal_id") == principal_id).collect()
    if latest.is_empty():
        raise ValueError(f"{principal} has no succeeded load of site {tables.site_id}: load the site as it first")
    load_id = int(latest["load_id"][0])
    sighted = tables.jira_lab_sightings.filter(
        (pl.col("principal_id") == principal_id)
        & pl.col("entity_kind").is_in([ISSUE, COMMENT, WORKLOG])
        & (pl.col("last_seen_load") == load_id)
    ).select(
        pl.col("entity_kind").alias("item_kind"), pl.col("entity_id").cast(pl.Int64, strict=False).alias("item_id")
    )
    live = pl.concat(
        [
            tables.issues.select(pl.lit(ISSUE).alias("item_kind"), pl.col("id").alias("item_id")),
            model.items(tables).select("item_kind", "item_id"),
        ]
    )
    return sighted.join(live, on=["item_kind", "item_id"], how="semi")


def empirical_gaps(tables: SiteTables, analyst: str, account: str) -> pl.DataFrame:
    """Items the analyst saw and the account did not, id for id, from both principals' latest loads.

    Args:
        analyst: account id or email of the principal that sees (nearly) everything.
        account: account id or email of the technical user.

    Returns:
        ``item_kind``, ``item_id``, ``issue_id``, ``issue_key``, ``project_id``, ``project_key``, ordered by kind
        (issue, comment, worklog) and id.
    """
    hidden = seen_items(tables, analyst).join(seen_items(tables, account), on=["item_kind", "item_id"], how="anti")
    return _with_issue(tables, hidden).collect()


def _with_issue(tables: SiteTables, frame: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` (``item_kind``, ``item_id``, ...) with the item's issue and project, sorted by kind and id."""
    places = pl.concat(
        [
            tables.issues.select(
                pl.lit(ISSUE).alias("item_kind"), pl.col("id").alias("item_id"), pl.col("id").alias("issue_id")
            ),
            model.items(tables).select("item_kind", "item_id", "issue_id"),
        ]
    )
    issues = tables.issues.select(
        pl.col("id").alias("issue_id"), pl.col("key").alias("issue_key"), "project_id", "project_key"
    )
    return (
        frame.join(places, on=["item_kind", "item_id"], how="left")
        .join(issues, on="issue_id", how="left")
        .sort(pl.col("item_kind").replace_strict(_KIND_ORDER, return_dtype=pl.Int32), "item_id")
        .select(
            "item_kind",
            "item_id",
            "issue_id",
            "issue_key",
            "project_id",
            "project_key",
            pl.exclude("item_kind", "item_id", "issue_id", "issue_key", "project_id", "project_key"),
        )
    )


def compare_prediction(
    tables: SiteTables, analyst: str, account: str, prediction: RestrictionGaps | pl.DataFrame | None = None
) -> pl.DataFrame:
    """Every item on which the static prediction and the two principals' loads disagree (none on a complete model).

    The items compared are those either principal saw: an item the account saw is visible to it; one only the
    analyst saw is hidden from it.

    Args:
        analyst: account id or email of the principal that sees (nearly) everything.
        account: account id or email of the technical user.
        prediction: :func:`restriction_gaps` (or its ``gaps``) for the account; computed when ``None``.

    Returns:
        ``item_kind``, ``item_id``, ``issue_id``, ``issue_key``, ``project_id``, ``project_key``,
        ``predicted_hidden``, ``predicted_layer``, ``seen_by_account``, ``disagreement`` (``predicted hidden, but
        the account saw it`` or ``predicted visible, but the account did not see it``), ordered by kind and id.
    """
    account_id = model.resolve_account(tables, account)
    if prediction is None:
        prediction = restriction_gaps(tables, account_id)
    predicted = prediction.gaps if isinstance(prediction, RestrictionGaps) else prediction
    by_account = seen_items(tables, account_id).with_columns(pl.lit(True).alias("seen_by_account"))
    universe = pl.concat([seen_items(tables, analyst), seen_items(tables, account_id)]).unique()
    compared = (
        universe.join(by_account, on=["item_kind", "item_id"], how="left")
        .join(
            predicted.lazy().select("item_kind", "item_id", pl.col("layer").alias("predicted_layer")),
            on=["item_kind", "item_id"],
            how="left",
        )
        .with_columns(
            pl.col("seen_by_account").fill_null(False),
            pl.col("predicted_layer").is_not_null().alias("predicted_hidden"),
        )
        .filter(pl.col("predicted_hidden") == pl.col("seen_by_account"))
        .with_columns(
            pl.when(pl.col("predicted_hidden"))
            .then(pl.lit("predicted hidden, but the account saw it"))
            .otherwise(pl.lit("predicted visible, but the account did not see it"))
            .alias("disagreement")
        )
        .select("item_kind", "item_id", "predicted_hidden", "predicted_layer", "seen_by_account", "disagreement")
    )
    return _with_issue(tables, compared).collect()
