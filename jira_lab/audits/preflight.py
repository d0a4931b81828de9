"""Preflight: Atlassian's preconfiguration checklist for a technical user, measured on the loaded data.

For one technical user (account id or email), :func:`preflight_findings` gives one row per thing the checklist asks
about (each project, each security level, each restriction, each scope ...) and :func:`preflight` one row per check:

1. ``jira_administrators``: it holds *Jira Administrators* (``ADMINISTER``) through one of its groups. Jira's own
   answer comes first: ``my_permissions`` when the technical user loaded the site itself, ``permission_checks`` for
   its account when an administrator loaded it. The groups come from ``group_members`` and the audit log's global
   permission records. Without any of these: "cannot tell".
2. ``browse_projects``: it holds *Browse Projects* in every project, through a grant of the project's permission
   scheme (:func:`jira_lab.audits.model.project_permission_holders`); for a project where it does not, the grants
   it could get it through.
3. ``security_levels``: it is a member of every issue security level of every scheme (in each project that uses
   the scheme: role members are per project).
4. ``restrictions``: it holds every group (by id) and every project role (per project) that a loaded comment or
   worklog is restricted to, with the number of items restricted to it.
5. ``server_info``: its own load could read ``/rest/api/3/serverInfo`` (``_jira_lab_access``).
6. ``scopes``: the app was granted every required scope (:data:`jira_lab.auth.scopes.REQUIRED_SCOPES`) and
   ``offline_access``: from the scopes recorded with its load (``_jira_lab_principals.scopes``) or given.

A status is ``pass``, ``fail`` or ``cannot tell``. A negative answer built on data the loads could not read
(``_jira_lab_access``: e.g. group members refused, role actors of a project refused) or never loaded is
``cannot tell``, never ``pass`` or ``fail``. An inactive technical user holds nothing (Jira's rule), so checks 1-4
fail for it.

Counts (checks 2-4) are of the items the loading principals could see: ``issues``, ``comments``, ``worklogs`` are
the loaded items the subject governs (a project's items; the items at a level in a project; the items restricted to
a group or a role in a project); ``hidden_issues``, ``hidden_comments``, ``hidden_worklogs`` the ones the technical
user misses for which this gap is the *first* layer that hides them (Browse Projects, then the security level, then
the restriction). A failing subject with items but none hidden is *masked*: an earlier gap hides the same items,
and it shows once that one is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from jira_lab.audits import model, visibility
from jira_lab.audits.changes import gap_explanations, gaps_from_findings, global_permission_groups, permission_changes
from jira_lab.audits.coverage import coverage, sync_coverage
from jira_lab.audits.model import BROWSE_PROJECTS, SiteTables
from jira_lab.audits.visibility import RestrictionGaps
from jira_lab.auth.scopes import OFFLINE_ACCESS, REQUIRED_SCOPES
from jira_lab.schema import GLOBAL_CONTEXT

__all__ = [
    "CANNOT_TELL",
    "CHECKS",
    "CHECK_COLUMNS",
    "FAIL",
    "FINDING_COLUMNS",
    "PASS",
    "AuditResults",
    "preflight",
    "preflight_findings",
    "run_audit",
    "summarize_checks",
]

PASS, FAIL, CANNOT_TELL = "pass", "fail", "cannot tell"
ADMINISTER = "ADMINISTER"
#: The ``_jira_lab_access`` resource of ``GET /rest/api/3/serverInfo``.
SERVER_INFO = "server_info"
#: Resources only a Jira administrator may read: a load by the technical user that read one proves ADMINISTER.
ADMIN_ONLY_RESOURCES = ("audit_records",)

#: check number -> (name, what it asks)
CHECKS: Mapping[int, tuple[str, str]] = {
    1: ("jira_administrators", "holds Jira Administrators (ADMINISTER) through one of its groups"),
    2: ("browse_projects", "holds Browse Projects in every project"),
    3: ("security_levels", "is a member of every issue security level of every scheme"),
    4: ("restrictions", "holds every project role and group a comment or worklog is restricted to"),
    5: ("server_info", "can read server information"),
    6: ("scopes", "the app was granted every required scope and offline_access"),
}

#: Columns of :func:`preflight_findings`, in order.
FINDING_COLUMNS: Mapping[str, pl.DataType] = {
    "check": pl.Int32(),
    "check_name": pl.String(),
    "subject": pl.String(),
    "status": pl.String(),
    "project_id": pl.Int64(),
    "project_key": pl.String(),
    "scheme_id": pl.Int64(),
    "scheme_name": pl.String(),
    "level_id": pl.Int64(),
    "level_name": pl.String(),
    "role_id": pl.Int64(),
    "role_name": pl.String(),
    "group_id": pl.String(),
    "group_name": pl.String(),
    "permission": pl.String(),
    "scope": pl.String(),
    "via": pl.String(),
    "evidence": pl.String(),
    "fix": pl.String(),
    "issues": pl.Int64(),
    "comments": pl.Int64(),
    "worklogs": pl.Int64(),
    "hidden_issues": pl.Int64(),
    "hidden_comments": pl.Int64(),
    "hidden_worklogs": pl.Int64(),
}

#: Columns of :func:`preflight` (one row per check), in order.
CHECK_COLUMNS: Mapping[str, pl.DataType] = {
    "check": pl.Int32(),
    "check_name": pl.String(),
    "title": pl.String(),
    "status": pl.String(),
    "subjects": pl.Int64(),
    "failed": pl.Int64(),
    "unknown": pl.Int64(),
    "evidence": pl.String(),
    "fix": pl.String(),
}

#: Tables a negative answer depends on; an empty one was not loaded, which is no answer.
_ESSENTIAL_TABLES = (
    "users",
    "group_members",
    "application_role_groups",
    "role_actors",
    "permission_grants",
    "project_permission_schemes",
    "security_level_members",
)
_SHOWN_SUBJECTS = 8
_COUNT_COLUMNS = ["issues", "comments", "worklogs", "hidden_issues", "hidden_comments", "hidden_worklogs"]


@dataclass(frozen=True, slots=True)
class _Context:
    tables: SiteTables
    account_id: str
    name: str
    #: "active", "inactive" or "unknown" (not among the loaded users)
    state: str
    #: resource, table, scope, why: what could not be read (or was never loaded)
    unreadable: pl.DataFrame
    #: group ids and names of the technical user's (loaded) memberships
    its_groups: pl.DataFrame
    #: ``issue_id`` of the issues it may browse (Browse Projects for the issue; levels not considered)
    browsable: pl.DataFrame
    #: ``issue_id`` of the issues it may see (Browse Projects and the issue's level)
    viewable: pl.DataFrame


# -- small helpers -----------------------------------------------------------------------------------------------
def _str(value: str | None) -> pl.Expr:
    return pl.lit(value, dtype=pl.String)


def _finding_frame(frame: pl.DataFrame | pl.LazyFrame, check: int) -> pl.DataFrame:
    """``frame`` with exactly :data:`FINDING_COLUMNS` (missing ones null) for ``check``."""
    lazy = frame.lazy().with_columns(
        pl.lit(check, dtype=pl.Int32).alias("check"), pl.lit(CHECKS[check][0]).alias("check_name")
    )
    present = set(lazy.collect_schema().names())
    return lazy.select(
        (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in FINDING_COLUMNS.items()
    ).collect()


def _count_text(noun: str, column: str) -> pl.Expr:
    count = pl.col(column).fill_null(0)
    return pl.format("{} {}", count, pl.when(count == 1).then(pl.lit(noun)).otherwise(pl.lit(noun + "s")))


def _affected_text() -> pl.Expr:
    """The hidden (first-layer) items in words (``hides 84 issues, 840 comments``), or that the gap is masked."""
    hidden = pl.col("hidden_issues").fill_null(0) + pl.col("hidden_comments").fill_null(0)
    hidden = hidden + pl.col("hidden_worklogs").fill_null(0)
    affected = pl.col("issues").fill_null(0) + pl.col("comments").fill_null(0) + pl.col("worklogs").fill_null(0)
    parts = pl.concat_str(
        [
            pl.when(pl.col("hidden_issues").fill_null(0) > 0).then(_count_text("issue", "hidden_issues")),
            pl.when(pl.col("hidden_comments").fill_null(0) > 0).then(_count_text("comment", "hidden_comments")),
            pl.when(pl.col("hidden_worklogs").fill_null(0) > 0).then(_count_text("worklog", "hidden_worklogs")),
        ],
        separator=", ",
        ignore_nulls=True,
    )
    return (
        pl.when(hidden > 0)
        .then(pl.format("hides {}", parts))
        .when(affected > 0)
        .then(pl.lit("masked: an earlier gap hides the same items; it shows once that one is fixed"))
        .otherwise(pl.lit("no loaded item is affected"))
    )


def _names(tables: SiteTables) -> dict[str, pl.LazyFrame]:
    return {
        "projects": tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("project_key")),
        "groups": tables.groups.select("group_id", pl.col("name").alias("group_name")).unique("group_id"),
        "roles": tables.project_roles.select(pl.col("id").alias("role_id"), pl.col("name").alias("role_name")),
        "permission_schemes": tables.permission_schemes.select(
            pl.col("id").alias("scheme_id"), pl.col("name").alias("scheme_name")
        ),
        "security_schemes": tables.security_schemes.select(
            pl.col("id").alias("scheme_id"), pl.col("name").alias("scheme_name")
        ),
        "levels": tables.security_levels.select(
            pl.col("id").alias("level_id"), "scheme_id", pl.col("name").alias("level_name")
        ),
    }


def _read_by_another_load(tables: SiteTables, refused: pl.LazyFrame) -> pl.LazyFrame:
    """The scoped refusals (``group_members:<id>``) some other latest load read: it read the whole table (``ok``)
    and was not refused that part. Columns ``resource``."""
    latest = model.latest_loads(tables).select("principal_id", "load_id")
    access = tables.jira_lab_access.join(latest, on=["principal_id", "load_id"], how="semi")
    whole = access.filter((pl.col("outcome") == "ok") & ~pl.col("resource").str.contains(":", literal=True))
    refused_parts = access.filter(pl.col("outcome") != "ok").select("load_id", "resource")
    return (
        refused.filter(pl.col("scope").is_not_null())
        .select("resource", "table")
        .join(whole.select("load_id", pl.col("resource").alias("table")), on="table")
        .join(refused_parts, on=["load_id", "resource"], how="anti")
        .select("resource")
        .unique()
    )


def _unreadable(tables: SiteTables) -> pl.DataFrame:
    """What no latest load could read, plus essential tables no load filled (never loaded is no answer either)."""
    refused = model.unreadable_resources(tables)
    refused = refused.join(_read_by_another_load(tables, refused), on="resource", how="anti").select(
        "resource",
        "table",
        "scope",
        pl.concat_str(
            [
                pl.col("resource"),
                pl.lit(": "),
                pl.col("outcome"),
                pl.when(pl.col("http_status").is_not_null()).then(pl.format(" {}", pl.col("http_status"))),
            ],
            ignore_nulls=True,
        ).alias("why"),
    )
    empty = [
        name
        for name in _ESSENTIAL_TABLES
        if tables.table(name).select(pl.len()).collect().item() == 0
        and not (name == "security_level_members" and tables.security_levels.select(pl.len()).collect().item() == 0)
    ]
    never_loaded = pl.LazyFrame(
        {
            "resource": empty,
            "table": empty,
            "scope": [None] * len(empty),
            "why": [f"{name}: not loaded" for name in empty],
        },
        schema={"resource": pl.String, "table": pl.String, "scope": pl.String, "why": pl.String},
    )
    return pl.concat([refused, never_loaded]).unique("resource").sort("resource").collect()


def _unknown(ctx: _Context, involved: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Subjects (``keys``) whose answer needs a resource that could not be read, with ``unreadable`` (why).

    Args:
        involved: ``keys`` + ``table`` + ``scope``: a resource the subject's answer reads (``scope`` ``None``: the
            whole table; a project id or group id otherwise).
    """
    refused = ctx.unreadable.lazy().select("table", pl.col("scope").alias("refused_scope"), "why")
    matched = involved.join(refused, on="table").filter(
        pl.col("refused_scope").is_null() | pl.col("scope").is_null() | (pl.col("scope") == pl.col("refused_scope"))
    )
    return matched.group_by(keys).agg(pl.col("why").unique().sort().str.join("; ").alias("unreadable"))


def _involved(keys_frame: pl.LazyFrame, keys: list[str], *tables: str) -> pl.LazyFrame:
    """``keys`` + each whole table in ``tables``: the subject's answer reads all of them."""
    return pl.concat(
        [
            keys_frame.select(*keys, pl.lit(name).alias("table"), pl.lit(None, dtype=pl.String).alias("scope"))
            for name in tables
        ]
    )


def _scoped_to_project(keys_frame: pl.LazyFrame, keys: list[str], table: str) -> pl.LazyFrame:
    """``keys`` + ``table`` scoped to the subject's project (a refusal of another project's part does not count)."""
    return keys_frame.filter(pl.col("project_id").is_not_null()).select(
        *keys, pl.lit(table).alias("table"), pl.col("project_id").cast(pl.String).alias("scope")
    )


def _holder_groups(ctx: _Context, holders: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """``keys`` + ``table`` ``group_members`` + ``scope`` (a group id) for every group a holder's answer reads:
    group holders, group actors of role holders in the project, groups giving product access."""
    tables = ctx.tables
    canonical = model.normalized_holders(holders, tables)
    kind = pl.col("holder_type")
    direct = canonical.filter(kind.is_in(["group", "groupCustomField"])).select(
        *keys, pl.col("holder_value").alias("scope")
    )
    role_groups = (
        canonical.filter(kind == "projectRole")
        .with_columns(pl.col("holder_value").cast(pl.Int64, strict=False).alias("role_id"))
        .join(
            tables.role_actors.filter(pl.col("actor_type") == "group").select(
                "project_id", "role_id", pl.col("actor_id").alias("scope")
            ),
            on=["project_id", "role_id"],
        )
        .select(*keys, "scope")
    )
    application_groups = (
        canonical.filter(kind == "applicationRole")
        .join(tables.application_role_groups.select(pl.col("group_id").alias("scope")).unique(), how="cross")
        .select(*keys, "scope")
    )
    roles_in_project = canonical.filter(kind == "projectRole").select(
        *keys, pl.lit("role_actors").alias("table"), pl.col("project_id").cast(pl.String).alias("scope")
    )
    group_reads = pl.concat([direct, role_groups, application_groups]).with_columns(
        pl.lit("group_members").alias("table")
    )
    return pl.concat([group_reads.select(*keys, "table", "scope"), roles_in_project], how="vertical_relaxed")


def _holder_labels(frame: pl.LazyFrame, tables: SiteTables) -> pl.LazyFrame:
    """Adds ``holder_label`` ("group hr-team", "project role Administrators" ...) to a frame of normalized holders."""
    groups = tables.groups.select(pl.col("group_id").alias("holder_value"), pl.col("name").alias("_group")).unique(
        "holder_value"
    )
    roles = tables.project_roles.select(
        pl.col("id").cast(pl.String).alias("holder_value"), pl.col("name").alias("_role")
    )
    applications = tables.application_roles.select(pl.col("key").alias("holder_value"), pl.col("name").alias("_app"))
    users = tables.users.select(pl.col("account_id").alias("holder_value"), pl.col("display_name").alias("_user"))
    fields = tables.fields.select(pl.col("id").alias("holder_value"), pl.col("name").alias("_field"))
    kind = pl.col("holder_type")
    value = pl.col("holder_value")
    label = (
        pl.when(kind == "group")
        .then(pl.format("group {}", pl.coalesce("_group", "holder_parameter", value)))
        .when(kind == "projectRole")
        .then(pl.format("project role {}", pl.coalesce("_role", value)))
        .when((kind == "applicationRole") & value.is_null())
        .then(pl.lit("any logged in user"))
        .when(kind == "applicationRole")
        .then(pl.format("application access {}", pl.coalesce("_app", value)))
        .when(kind == "user")
        .then(pl.format("user {}", pl.coalesce("_user", value)))
        .when(kind == "userCustomField")
        .then(pl.format("user custom field {}", pl.coalesce("_field", value)))
        .when(kind == "groupCustomField")
        .then(pl.format("group custom field {}", pl.coalesce("_field", value)))
        .when(kind == "projectLead")
        .then(pl.lit("project lead"))
        .otherwise(kind)
    )
    return (
        frame.join(groups, on="holder_value", how="left")
        .join(roles, on="holder_value", how="left")
        .join(applications, on="holder_value", how="left")
        .join(users, on="holder_value", how="left")
        .join(fields, on="holder_value", how="left")
        .with_columns(label.alias("holder_label"))
        .drop("_group", "_role", "_app", "_user", "_field")
    )


def _holder_fix(who: str) -> pl.Expr:
    """What would make the technical user a holder: only for holders that can take it in (groups, roles, access)."""
    kind = pl.col("holder_type")
    return (
        pl.when(kind == "group")
        .then(pl.format("add {} to {}", pl.lit(who), pl.col("holder_label")))
        .when(kind == "projectRole")
        .then(
            pl.format(
                "make {} (or one of its groups) an actor of {} in {}",
                pl.lit(who),
                pl.col("holder_label").str.strip_prefix("project role "),
                pl.col("project_key"),
            )
        )
        .when((kind == "applicationRole") & pl.col("holder_value").is_not_null())
        .then(pl.format("give {} {}", pl.lit(who), pl.col("holder_label")))
        .when(kind == "applicationRole")
        .then(pl.format("give {} access to a Jira product", pl.lit(who)))
    )


def _its_groups_text(ctx: _Context) -> str:
    names = sorted(str(name) for name in ctx.its_groups["group_name"].drop_nulls())
    return ", ".join(names) if names else "none loaded"


def _jira_answer(ctx: _Context, permission: str) -> pl.LazyFrame:
    """Jira's own answer about the technical user, per project (0: global): ``my_permissions`` of its own load,
    else ``permission_checks`` made for its account. Columns ``project_id``, ``jira_says``, ``jira_source``."""
    tables = ctx.tables
    own = tables.my_permissions.filter(
        (pl.col("principal_id") == ctx.account_id) & (pl.col("permission") == permission)
    ).select("project_id", pl.col("have_permission").alias("jira_says"), _str("mypermissions").alias("jira_source"))
    checked = tables.permission_checks.filter(
        (pl.col("account_id") == ctx.account_id)
        & (pl.col("permission") == permission)
        & (pl.col("issue_id") == GLOBAL_CONTEXT)
    ).select("project_id", pl.col("have_permission").alias("jira_says"), _str("permissions/check").alias("jira_source"))
    return pl.concat([own, checked.join(own, on="project_id", how="anti")])


# -- check 1: Jira Administrators --------------------------------------------------------------------------------
def _admin_findings(ctx: _Context) -> pl.DataFrame:
    tables = ctx.tables
    answer = _jira_answer(ctx, ADMINISTER).filter(pl.col("project_id") == GLOBAL_CONTEXT).collect()
    holders = global_permission_groups(tables).filter(pl.col("permission") == ADMINISTER).collect()
    its = ctx.its_groups.join(holders.select("group_id", "granted_at"), on="group_id")
    all_holder_names = (
        holders.join(ctx.tables.groups.select("group_id", "name").collect(), on="group_id", how="left")
        .select(pl.coalesce("name", "group_name_then"))
        .to_series()
        .sort()
        .to_list()
    )
    read_admin_only = (
        tables.jira_lab_access.filter(
            (pl.col("principal_id") == ctx.account_id)
            & pl.col("resource").is_in(ADMIN_ONLY_RESOURCES)
            & (pl.col("outcome") == "ok")
        )
        .select(pl.len())
        .collect()
        .item()
        > 0
    )
    via = ", ".join(sorted(str(name) for name in its["group_name"])) or None
    audit_text = (
        f"the audit log shows ADMINISTER granted to its group(s) {via}"
        if via
        else "the audit log shows no group of it holding ADMINISTER"
    )
    if ctx.state == "inactive":
        status, evidence = FAIL, f"{ctx.name} is inactive: an inactive account holds no permission"
    elif answer.height:
        says, source = bool(answer["jira_says"][0]), str(answer["jira_source"][0])
        status = PASS if says else FAIL
        evidence = f"Jira ({source}) says it {'holds' if says else 'does not hold'} ADMINISTER; {audit_text}"
    elif via:
        status, evidence = PASS, audit_text
    elif read_admin_only:
        status = PASS
        evidence = "its own load read the audit log, which only Jira administrators may read"
    else:
        status = CANNOT_TELL
        evidence = (
            "no answer from Jira (no mypermissions of its own load, no permissions/check for its account) and "
            f"{audit_text}"
        )
    holders_text = ", ".join(all_holder_names) or "jira-administrators"
    fix = (
        None
        if status == PASS
        else f"add {ctx.name} to a group holding Jira Administrators ({holders_text}), or grant Administer Jira to "
        f"one of its groups ({_its_groups_text(ctx)}) under Settings > System > Global permissions"
    )
    return _finding_frame(
        pl.DataFrame(
            {
                "subject": ["ADMINISTER"],
                "status": [status],
                "permission": [ADMINISTER],
                "via": [via],
                "evidence": [evidence],
                "fix": [fix],
            }
        ),
        1,
    )


# -- check 2: Browse Projects ------------------------------------------------------------------------------------
def _item_counts(tables: SiteTables, issues: pl.LazyFrame, keys: list[str], prefix: str = "") -> pl.LazyFrame:
    """``keys`` + issue, comment and worklog counts of ``issues`` (``keys`` + ``issue_id``)."""
    comments = tables.comments.group_by("issue_id").agg(pl.len().alias("_comments"))
    worklogs = tables.worklogs.group_by("issue_id").agg(pl.len().alias("_worklogs"))
    return (
        issues.join(comments, on="issue_id", how="left")
        .join(worklogs, on="issue_id", how="left")
        .group_by(keys)
        .agg(
            pl.col("issue_id").n_unique().cast(pl.Int64).alias(f"{prefix}issues"),
            pl.col("_comments").fill_null(0).sum().cast(pl.Int64).alias(f"{prefix}comments"),
            pl.col("_worklogs").fill_null(0).sum().cast(pl.Int64).alias(f"{prefix}worklogs"),
        )
    )


def _status(held: pl.Expr, unknown: pl.Expr, jira_says: pl.Expr, held_any: pl.Expr, inactive: bool) -> pl.Expr:
    """pass / fail / cannot tell from the model's answer, what could not be read and Jira's own answer.

    ``held_any``: the model's answer counting issue data holders that match some issue, which is what Jira's
    project-level answer means; Jira saying "holds" against a model that says "nobody" means the data is incomplete.
    """
    if inactive:
        return pl.lit(FAIL)
    says_yes = jira_says.fill_null(False)
    says_no = ~jira_says.fill_null(True)
    return (
        pl.when(held & says_no)
        .then(pl.lit(CANNOT_TELL))  # Jira disagrees with the loaded model: something is missing from the data
        .when(held)
        .then(pl.lit(PASS))
        .when(says_no)
        .then(pl.lit(FAIL))
        .when(unknown)
        .then(pl.lit(CANNOT_TELL))
        .when(says_yes & ~held_any)
        .then(pl.lit(CANNOT_TELL))
        .otherwise(pl.lit(FAIL))
    )


def _browse_findings(ctx: _Context) -> pl.DataFrame:
    tables, who = ctx.tables, ctx.name
    names = _names(tables)
    projects = (
        names["projects"]
        .join(tables.project_permission_schemes.select("project_id", "scheme_id"), on="project_id", how="left")
        .join(names["permission_schemes"], on="scheme_id", how="left")
    )
    grants = (
        _holder_labels(model.project_permission_grants(tables), tables)
        .join(names["projects"], on="project_id", how="left")
        .collect()
        .lazy()
    )
    held = (
        model.project_permission_holders(tables, BROWSE_PROJECTS, [ctx.account_id])
        .join(grants.select("grant_id", "project_id", "holder_label"), on=["grant_id", "project_id"], how="left")
        .join(
            names["groups"].rename({"group_id": "via_group_id", "group_name": "_via_group"}),
            on="via_group_id",
            how="left",
        )
        .with_columns(
            pl.concat_str(
                [
                    pl.col("holder_label"),
                    pl.when(pl.col("via_group_id").is_not_null() & (pl.col("holder_type") != "group")).then(
                        pl.format(" (through group {})", pl.coalesce("_via_group", "via_group_id"))
                    ),
                ],
                ignore_nulls=True,
            ).alias("_way")
        )
        .group_by("project_id")
        .agg(pl.col("_way").unique().sort().str.join("; ").alias("via"))
    )
    ways_in = (
        grants.with_columns(_holder_fix(who).alias("_fix"))
        .group_by("project_id")
        .agg(
            pl.col("_fix").drop_nulls().unique().sort().str.join("; or ").alias("_fixes"),
            pl.col("holder_label").unique().sort().str.join(", ").alias("_grants"),
        )
    )
    held_any = (
        model.project_permission_holders(tables, BROWSE_PROJECTS, [ctx.account_id], any_issue=True)
        .select("project_id")
        .unique()
        .with_columns(pl.lit(True).alias("_held_any"))
    )
    issues = tables.issues.select(pl.col("id").alias("issue_id"), "project_id")
    browsable = ctx.browsable.lazy()
    keys = ["project_id"]
    governed = _item_counts(tables, issues, keys)
    hidden = _item_counts(tables, issues.join(browsable, on="issue_id", how="anti"), keys, prefix="hidden_")
    involved = pl.concat(
        [
            _involved(projects, keys, "permission_grants", "users"),
            _scoped_to_project(projects, keys, "project_permission_schemes"),
            _holder_groups(ctx, grants, keys),
        ],
        how="vertical_relaxed",
    )
    unknown = _unknown(ctx, involved, keys)
    answer = _jira_answer(ctx, BROWSE_PROJECTS)
    frame = (
        projects.join(held, on="project_id", how="left")
        .join(ways_in, on="project_id", how="left")
        .join(governed, on="project_id", how="left")
        .join(hidden, on="project_id", how="left")
        .join(unknown, on="project_id", how="left")
        .join(answer, on="project_id", how="left")
        .join(held_any, on="project_id", how="left")
        .with_columns(
            pl.col("scheme_id").is_null().alias("_no_scheme"),
            pl.col(_COUNT_COLUMNS).fill_null(0),
        )
        .with_columns(
            _status(
                pl.col("via").is_not_null(),
                pl.col("unreadable").is_not_null() | pl.col("_no_scheme"),
                pl.col("jira_says"),
                pl.col("_held_any").fill_null(False),
                ctx.state == "inactive",
            ).alias("status"),
        )
    )
    jira_text = pl.when(pl.col("jira_says").is_not_null()).then(
        pl.format(
            "; Jira ({}) says it {}",
            pl.col("jira_source"),
            pl.when(pl.col("jira_says")).then(pl.lit("holds it")).otherwise(pl.lit("does not")),
        )
    )
    evidence = pl.concat_str(
        [
            pl.when(pl.col("via").is_not_null())
            .then(pl.format("Browse Projects through {}", pl.col("via")))
            .when(pl.col("_no_scheme"))
            .then(pl.lit("the project's permission scheme was not loaded"))
            .otherwise(
                pl.format(
                    "no Browse Projects grant of {} admits it (granted to: {}); {}",
                    pl.coalesce("scheme_name", pl.lit("its permission scheme")),
                    pl.coalesce("_grants", pl.lit("nobody")),
                    _affected_text(),
                )
            ),
            pl.when(pl.col("unreadable").is_not_null()).then(pl.format("; could not read {}", pl.col("unreadable"))),
            jira_text,
        ],
        ignore_nulls=True,
    )
    if ctx.state == "inactive":
        evidence = pl.format("{} is inactive and holds nothing; {}", pl.lit(who), evidence)
    fix = pl.when(pl.col("status") != PASS).then(
        pl.concat_str(
            [
                pl.col("_fixes").replace("", None),
                pl.format(
                    "grant Browse Projects to one of its groups ({}) in {}",
                    pl.lit(_its_groups_text(ctx)),
                    pl.coalesce("scheme_name", pl.lit("the project's permission scheme")),
                ),
            ],
            separator="; or ",
            ignore_nulls=True,
        )
    )
    return _finding_frame(
        frame.with_columns(
            pl.col("project_key").alias("subject"),
            _str(BROWSE_PROJECTS).alias("permission"),
            evidence.alias("evidence"),
            fix.alias("fix"),
        ).sort("project_key"),
        2,
    )


# -- check 3: issue security levels ------------------------------------------------------------------------------
def _level_findings(ctx: _Context) -> pl.DataFrame:
    tables, who = ctx.tables, ctx.name
    names = _names(tables)
    levels = names["levels"].join(names["security_schemes"], on="scheme_id", how="left")
    used = tables.project_security_schemes.select("project_id", "scheme_id").join(levels, on="scheme_id")
    at_issue_level = tables.issues.filter(pl.col("security_level_id").is_not_null()).select(
        "project_id", pl.col("security_level_id").alias("level_id")
    )
    pairs = pl.concat(
        [
            used.select("level_id", pl.col("project_id").cast(pl.Int64)),
            at_issue_level.join(levels.select("level_id"), on="level_id").select("level_id", "project_id"),
            levels.join(used.select("scheme_id").unique(), on="scheme_id", how="anti").select(
                "level_id", pl.lit(None, dtype=pl.Int64).alias("project_id")
            ),
        ]
    ).unique()
    pairs = (
        pairs.join(levels, on="level_id", how="left")
        .join(names["projects"], on="project_id", how="left")
        .collect()
        .lazy()
    )
    members = model.normalized_holders(
        tables.security_level_members.select(
            "level_id", pl.col("id").alias("member_id"), "holder_type", "holder_parameter", "holder_value"
        ),
        tables,
    ).join(pairs.select("level_id", "project_id", "project_key"), on="level_id")
    members = members.collect().lazy()  # read by several parts below
    keys = ["level_id", "project_id"]
    member_way = _holder_labels(members, tables).collect().lazy()
    held = (
        model.account_holder_matches(
            tables,
            members.filter(pl.col("holder_type").is_in(model.ACCOUNT_HOLDERS)),
            ["level_id", "member_id"],
            [ctx.account_id],
        )
        .join(
            member_way.select("level_id", "member_id", "project_id", "holder_label"),
            on=[*keys, "member_id"],
            nulls_equal=True,
        )
        .group_by(keys)
        .agg(pl.col("holder_label").unique().sort().str.join("; ").alias("via"))
    )
    ways_in = (
        member_way.with_columns(_holder_fix(who).alias("_fix"))
        .group_by(keys)
        .agg(
            pl.col("_fix").drop_nulls().unique().sort().str.join("; or ").alias("_fixes"),
            pl.col("holder_label").unique().sort().str.join(", ").alias("_members"),
        )
    )
    issues = tables.issues.filter(pl.col("security_level_id").is_not_null()).select(
        pl.col("id").alias("issue_id"), "project_id", pl.col("security_level_id").alias("level_id")
    )
    member_on_issue = model.issue_security_level_holders(tables, [ctx.account_id]).select("issue_id").unique()
    outside = issues.join(held.select(keys), on=keys, how="anti").join(member_on_issue, on="issue_id", how="anti")
    browsable = ctx.browsable.lazy()
    governed = _item_counts(tables, issues, keys)
    hidden = _item_counts(tables, outside.join(browsable, on="issue_id", how="semi"), keys, prefix="hidden_")
    involved = pl.concat(
        [
            _involved(pairs, keys, "security_level_members", "users"),
            _scoped_to_project(pairs, keys, "project_security_schemes"),
            _holder_groups(ctx, members, keys),
        ],
        how="vertical_relaxed",
    )
    unknown = _unknown(ctx, involved, keys)
    frame = (
        pairs.join(held, on=keys, how="left", nulls_equal=True)
        .join(ways_in, on=keys, how="left", nulls_equal=True)
        .join(governed, on=keys, how="left", nulls_equal=True)
        .join(hidden, on=keys, how="left", nulls_equal=True)
        .join(unknown, on=keys, how="left", nulls_equal=True)
        .with_columns(pl.col(_COUNT_COLUMNS).fill_null(0))
        .with_columns(
            _status(
                pl.col("via").is_not_null(),
                pl.col("unreadable").is_not_null(),
                pl.lit(None, pl.Boolean),
                pl.lit(False),
                ctx.state == "inactive",
            ).alias("status")
        )
    )
    where = pl.coalesce(pl.format(" in {}", pl.col("project_key")), pl.lit(" (its scheme is used by no project)"))
    evidence = pl.concat_str(
        [
            pl.when(pl.col("via").is_not_null())
            .then(pl.format("member through {}", pl.col("via")))
            .otherwise(
                pl.format(
                    "no member of the level admits it (members: {}); {}",
                    pl.coalesce("_members", pl.lit("none loaded")),
                    _affected_text(),
                )
            ),
            pl.when(pl.col("unreadable").is_not_null()).then(pl.format("; could not read {}", pl.col("unreadable"))),
        ],
        ignore_nulls=True,
    )
    if ctx.state == "inactive":
        evidence = pl.format("{} is inactive and holds nothing; {}", pl.lit(who), evidence)
    fix = pl.when(pl.col("status") != PASS).then(
        pl.concat_str(
            [
                pl.col("_fixes").replace("", None),
                pl.format(
                    "add one of its groups ({}) to the level {} of {}",
                    pl.lit(_its_groups_text(ctx)),
                    pl.col("level_name"),
                    pl.coalesce("scheme_name", pl.lit("its issue security scheme")),
                ),
            ],
            separator="; or ",
            ignore_nulls=True,
        )
    )
    return _finding_frame(
        frame.with_columns(
            pl.concat_str([pl.col("level_name"), where]).alias("subject"),
            evidence.alias("evidence"),
            fix.alias("fix"),
        ).sort("scheme_name", "level_name", "project_key", nulls_last=True),
        3,
    )


# -- check 4: comment and worklog restrictions -------------------------------------------------------------------
def _restriction_findings(ctx: _Context) -> pl.DataFrame:
    tables, who = ctx.tables, ctx.name
    names = _names(tables)
    items = model.items(tables).filter(pl.col("visibility_type").is_not_null())
    viewable = ctx.viewable.lazy()
    # a group restriction is one membership whatever the project; a role restriction is per project
    items = items.with_columns(
        pl.when(pl.col("visibility_type") == "role").then(pl.col("project_id")).alias("restriction_project_id")
    )
    keys = ["visibility_type", "visibility_key", "restriction_project_id"]
    counted = items.group_by(keys).agg(
        (pl.col("item_kind") == model.COMMENT).sum().cast(pl.Int64).alias("comments"),
        (pl.col("item_kind") == model.WORKLOG).sum().cast(pl.Int64).alias("worklogs"),
        pl.col("visibility_value").drop_nulls().last().alias("_name_then"),
        pl.col("project_id").n_unique().cast(pl.Int64).alias("_projects"),
    )
    hidden = (
        items.join(viewable, on="issue_id", how="semi")
        .group_by(keys)
        .agg(
            (pl.col("item_kind") == model.COMMENT).sum().cast(pl.Int64).alias("hidden_comments"),
            (pl.col("item_kind") == model.WORKLOG).sum().cast(pl.Int64).alias("hidden_worklogs"),
        )
    )
    satisfied = (
        model.visibility_holders(tables, [ctx.account_id])
        .join(names["groups"].rename({"group_id": "via_group_id", "group_name": "_via"}), on="via_group_id", how="left")
        .with_columns(
            pl.when(pl.col("visibility_type") == "role").then(pl.col("project_id")).alias("restriction_project_id"),
            pl.when(pl.col("visibility_type") == "group")
            .then(pl.lit("member"))
            .when(pl.col("via_group_id").is_not_null())
            .then(pl.format("actor through group {}", pl.coalesce("_via", "via_group_id")))
            .otherwise(pl.lit("actor"))
            .alias("_way"),
        )
        .group_by(keys)
        .agg(pl.col("_way").unique().sort().str.join("; ").alias("via"))
    )
    roles = model.role_ids_by_name(tables).rename({"role_name": "visibility_key"})
    restrictions = (
        counted.join(roles, on="visibility_key", how="left")
        .with_columns(pl.when(pl.col("visibility_type") == "role").then(pl.col("role_id")).alias("role_id"))
        .join(
            names["projects"].rename({"project_id": "restriction_project_id"}), on="restriction_project_id", how="left"
        )
        .join(names["groups"].rename({"group_id": "visibility_key"}), on="visibility_key", how="left")
    )
    involved_groups = restrictions.filter(pl.col("visibility_type") == "group").select(
        *keys, pl.lit("group_members").alias("table"), pl.col("visibility_key").alias("scope")
    )
    role_rows = restrictions.filter(pl.col("visibility_type") == "role")
    involved_roles = pl.concat(
        [
            role_rows.select(
                *keys,
                pl.lit("role_actors").alias("table"),
                pl.col("restriction_project_id").cast(pl.String).alias("scope"),
            ),
            role_rows.join(
                tables.role_actors.filter(pl.col("actor_type") == "group").select(
                    pl.col("project_id").alias("restriction_project_id"), "role_id", pl.col("actor_id").alias("scope")
                ),
                on=["restriction_project_id", "role_id"],
            ).select(*keys, pl.lit("group_members").alias("table"), "scope"),
        ]
    )
    involved = pl.concat(
        [involved_groups, involved_roles, _involved(restrictions, keys, "users")], how="vertical_relaxed"
    )
    unknown = _unknown(ctx, involved, keys)
    frame = (
        restrictions.join(satisfied, on=keys, how="left", nulls_equal=True)
        .join(hidden, on=keys, how="left", nulls_equal=True)
        .join(unknown, on=keys, how="left", nulls_equal=True)
        .with_columns(
            pl.when(pl.col("via").is_null()).then(pl.col(c).fill_null(0)).otherwise(0).alias(c)
            for c in ("hidden_comments", "hidden_worklogs")
        )
        .with_columns(
            pl.lit(0, dtype=pl.Int64).alias("issues"),
            pl.lit(0, dtype=pl.Int64).alias("hidden_issues"),
            pl.col("restriction_project_id").alias("project_id"),
            pl.when(pl.col("visibility_type") == "group").then(pl.col("visibility_key")).alias("group_id"),
            pl.when(pl.col("visibility_type") == "group")
            .then(pl.coalesce("group_name", "_name_then"))
            .alias("group_name"),
            pl.when(pl.col("visibility_type") == "role").then(pl.col("visibility_key")).alias("role_name"),
            _status(
                pl.col("via").is_not_null(),
                pl.col("unreadable").is_not_null(),
                pl.lit(None, pl.Boolean),
                pl.lit(False),
                ctx.state == "inactive",
            ).alias("status"),
        )
    )
    subject = (
        pl.when(pl.col("visibility_type") == "group")
        .then(pl.format("group {}", pl.col("group_name")))
        .otherwise(pl.format("role {} in {}", pl.col("role_name"), pl.coalesce("project_key", pl.col("project_id"))))
    )
    evidence = pl.concat_str(
        [
            pl.when(pl.col("via").is_not_null())
            .then(
                pl.format(
                    "{}; {} comments and {} worklogs restricted to it",
                    pl.col("via"),
                    pl.col("comments"),
                    pl.col("worklogs"),
                )
            )
            .when((pl.col("visibility_type") == "role") & pl.col("role_id").is_null())
            .then(
                pl.format(
                    "no project role is named {}: nobody sees these items; {}", pl.col("role_name"), _affected_text()
                )
            )
            .when(pl.col("visibility_type") == "group")
            .then(pl.format("not a member; {}", _affected_text()))
            .otherwise(pl.format("not an actor (directly or through a group); {}", _affected_text())),
            pl.when(pl.col("unreadable").is_not_null()).then(pl.format("; could not read {}", pl.col("unreadable"))),
        ],
        ignore_nulls=True,
    )
    if ctx.state == "inactive":
        evidence = pl.format("{} is inactive and holds nothing; {}", pl.lit(who), evidence)
    fix = (
        pl.when(pl.col("status") == PASS)
        .then(None)
        .when(pl.col("visibility_type") == "group")
        .then(pl.format("add {} to group {}", pl.lit(who), pl.col("group_name")))
        .otherwise(
            pl.format(
                "make {} (or one of its groups: {}) an actor of the role {} in {}",
                pl.lit(who),
                pl.lit(_its_groups_text(ctx)),
                pl.col("role_name"),
                pl.coalesce("project_key", pl.col("project_id").cast(pl.String)),
            )
        )
    )
    return _finding_frame(
        frame.with_columns(subject.alias("subject"), evidence.alias("evidence"), fix.alias("fix")).sort(
            "visibility_type", "subject"
        ),
        4,
    )


# -- check 5: server information ---------------------------------------------------------------------------------
def _server_info_findings(ctx: _Context) -> pl.DataFrame:
    latest = (
        ctx.tables.jira_lab_access.filter(
            (pl.col("principal_id") == ctx.account_id) & (pl.col("resource") == SERVER_INFO)
        )
        .sort("load_id")
        .collect()
        .tail(1)
    )
    if latest.is_empty():
        status = CANNOT_TELL
        evidence = f"no load by {ctx.name} recorded whether it could read serverInfo"
        fix: str | None = f"load the site with {ctx.name}'s credentials (jira-lab load), then audit again"
    else:
        row = latest.row(0, named=True)
        if row["outcome"] == "ok":
            status, fix = PASS, None
            evidence = f"its load {row['load_id']} read /rest/api/3/serverInfo"
        else:
            status = FAIL
            evidence = (
                f"its load {row['load_id']} could not read /rest/api/3/serverInfo: {row['outcome']} "
                f"{row['http_status'] or ''} {row['message'] or ''}".strip()
            )
            fix = (
                "grant the app the scope read:jira-user (or manage:jira-configuration), and check that the account "
                "can log in to the site"
                if row["outcome"] in ("missing_scope", "unauthorized")
                else "check that the account is active and has product access to the site"
            )
    return _finding_frame(
        pl.DataFrame({"subject": ["serverInfo"], "status": [status], "evidence": [evidence], "fix": [fix]}), 5
    )


# -- check 6: OAuth scopes ---------------------------------------------------------------------------------------
def _scope_findings(ctx: _Context, granted_scopes: Iterable[str] | None) -> pl.DataFrame:
    wanted = [*REQUIRED_SCOPES, OFFLINE_ACCESS]
    if granted_scopes is not None:
        granted = {str(scope) for scope in granted_scopes}
        source = "the scopes given"
    else:
        recorded = model.principal_scopes(ctx.tables).filter(pl.col("principal_id") == ctx.account_id).collect()
        principal = (
            ctx.tables.jira_lab_principals.filter(pl.col("principal_id") == ctx.account_id)
            .select("auth_kind")
            .collect()
        )
        if recorded.is_empty():
            how = (
                f"{ctx.name} has not loaded the site"
                if principal.is_empty()
                else f"{ctx.name} loaded the site with {principal['auth_kind'][0]} auth, which records no OAuth scopes"
            )
            return _finding_frame(
                pl.DataFrame(
                    {
                        "subject": ["OAuth scopes"],
                        "status": [CANNOT_TELL],
                        "evidence": [how],
                        "fix": ["load with the app's OAuth token, or pass the token's scopes (--scopes)"],
                    }
                ),
                6,
            )
        granted = set(recorded["scope"].to_list())
        source = "the scopes recorded with its OAuth load"
    rows = [
        {
            "subject": scope,
            "scope": scope,
            "status": PASS if scope in granted else FAIL,
            "evidence": f"{'granted' if scope in granted else 'not granted'} ({source})",
            "fix": None
            if scope in granted
            else (
                "request offline_access on the authorize URL so that a refresh token is issued (jira-lab token)"
                if scope == OFFLINE_ACCESS
                else f"add {scope} to the app in the Atlassian developer console, then consent again (jira-lab token)"
            ),
        }
        for scope in wanted
    ]
    return _finding_frame(pl.DataFrame(rows), 6)


# -- checks with nothing to examine ------------------------------------------------------------------------------
def _read_ok(ctx: _Context, *resources: str) -> bool:
    """Some load read one of ``resources`` whole."""
    read = ctx.tables.jira_lab_access.filter(pl.col("resource").is_in(list(resources)) & (pl.col("outcome") == "ok"))
    return bool(read.select(pl.len()).collect().item() > 0)


def _or_no_subjects(ctx: _Context, check: int, found: pl.DataFrame) -> pl.DataFrame:
    """``found``, or the one row saying why a check had nothing to examine: vacuously passed (the site has no
    security levels, no loaded item is restricted) or not to be told (nothing was loaded)."""
    if found.height or check not in (2, 3, 4):
        return found
    tables = ctx.tables
    if check == 2:
        status, subject, evidence = CANNOT_TELL, "projects", "no project was loaded"
    elif check == 3:
        subject = "issue security levels"
        if _read_ok(ctx, "security_schemes", "security_levels"):
            status, evidence = PASS, "the site has no issue security levels"
        else:
            status, evidence = CANNOT_TELL, "no issue security level was loaded, and no load could read them"
    else:
        subject = "restrictions"
        if tables.issues.select(pl.len()).collect().item() > 0:
            status, evidence = PASS, "no loaded comment or worklog is restricted"
        else:
            status, evidence = CANNOT_TELL, "no issues, comments or worklogs were loaded"
    return _finding_frame(pl.DataFrame({"subject": [subject], "status": [status], "evidence": [evidence]}), check)


# -- the whole checklist -----------------------------------------------------------------------------------------
def _context(tables: SiteTables, technical_user: str) -> _Context:
    account_id = model.resolve_account(tables, technical_user)
    user = tables.users.filter(pl.col("account_id") == account_id).select("display_name", "active").collect()
    principal = tables.jira_lab_principals.filter(pl.col("principal_id") == account_id).select("display_name").collect()
    if user.height:
        name = user["display_name"][0] or account_id
        state = "active" if user["active"][0] else "inactive"
    else:
        name = (principal["display_name"][0] if principal.height else None) or account_id
        state = "unknown"
    its_groups = (
        tables.group_members.filter(pl.col("account_id") == account_id)
        .select("group_id")
        .unique()
        .join(tables.groups.select("group_id", pl.col("name").alias("group_name")), on="group_id", how="left")
        .collect()
    )
    unreadable = _unreadable(tables)
    if state == "unknown":
        unreadable = pl.concat(
            [
                unreadable,
                pl.DataFrame(
                    {
                        "resource": ["users"],
                        "table": ["users"],
                        "scope": [None],
                        "why": [f"users: {account_id} is not among the loaded users"],
                    },
                    schema=unreadable.schema,
                ),
            ]
        ).unique("resource")
    # computed once: every check reads them, and each is a plan of many joins
    browsable = model.issue_browsers(tables, [account_id]).select("issue_id").unique().collect()
    viewable = model.issue_viewers(tables, [account_id]).select("issue_id").unique().collect()
    return _Context(tables, account_id, name, state, unreadable, its_groups, browsable, viewable)


def preflight_findings(
    tables: SiteTables,
    technical_user: str,
    *,
    granted_scopes: Iterable[str] | None = None,
    checks: Iterable[int] = tuple(CHECKS),
) -> pl.DataFrame:
    """Every subject of the preconfiguration checklist for ``technical_user``: one row per project, level,
    restriction, scope ...

    Args:
        tables: the loaded site (:func:`jira_lab.audits.model.from_db`).
        technical_user: its account id or email address.
        granted_scopes: the scopes granted to the app's token; by default those recorded with the technical
            user's OAuth load.
        checks: the checks to run (numbers of :data:`CHECKS`); all by default.

    Returns:
        :data:`FINDING_COLUMNS`, ordered by check:

        - ``check`` (1-6), ``check_name`` (see :data:`CHECKS`), ``subject`` (what the row is about, readable),
          ``status`` (pass, fail, cannot tell);
        - what it is about, where it applies: ``project_id``, ``project_key``, ``scheme_id``, ``scheme_name``
          (permission scheme for check 2, issue security scheme for check 3), ``level_id``, ``level_name``,
          ``role_id``, ``role_name``, ``group_id``, ``group_name``, ``permission``, ``scope``;
        - ``via``: how it holds it (the grants, level members, groups), when it does;
        - ``evidence``: why the status, including what could not be read and Jira's own answer;
        - ``fix``: what to change (NULL on a pass);
        - ``issues``, ``comments``, ``worklogs``: loaded items the subject governs (checks 2-4; NULL otherwise);
          ``hidden_issues``, ``hidden_comments``, ``hidden_worklogs``: of those, the ones the technical user misses
          because of this subject, it being the first layer that hides them (0 on a pass, and when masked by an
          earlier gap).

    Raises:
        ValueError: ``technical_user`` is no loaded account id or email, or ``checks`` names no check.
    """
    ctx = _context(tables, technical_user)
    runs: dict[int, Callable[[], pl.DataFrame]] = {
        1: lambda: _admin_findings(ctx),
        2: lambda: _browse_findings(ctx),
        3: lambda: _level_findings(ctx),
        4: lambda: _restriction_findings(ctx),
        5: lambda: _server_info_findings(ctx),
        6: lambda: _scope_findings(ctx, granted_scopes),
    }
    unknown = sorted(set(checks) - set(runs))
    if unknown:
        raise ValueError(f"no check {unknown}: the checks are {sorted(runs)}")
    parts = [_or_no_subjects(ctx, check, runs[check]()) for check in sorted(set(checks))]
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=dict(FINDING_COLUMNS))


def summarize_checks(findings: pl.DataFrame) -> pl.DataFrame:
    """One row per check from :func:`preflight_findings`: fail if any subject fails, else cannot tell if any
    subject cannot be told, else pass.

    Returns:
        :data:`CHECK_COLUMNS`: ``check``, ``check_name``, ``title`` (what the check asks), ``status``,
        ``subjects`` (rows examined), ``failed``, ``unknown`` (cannot tell), ``evidence`` (the failing or unknown
        subjects with what they hide, or how it passes), ``fix`` (the failing subjects' fixes, joined).
    """
    checks = pl.DataFrame(
        {
            "check": list(CHECKS),
            "check_name": [name for name, _ in CHECKS.values()],
            "title": [title for _, title in CHECKS.values()],
        },
        schema={"check": pl.Int32, "check_name": pl.String, "title": pl.String},
    )
    noted = findings.with_columns(
        pl.when(pl.col("status") == PASS)
        .then(None)
        .when(pl.col("check").is_in([2, 3, 4]) & (pl.col("status") == FAIL))
        .then(pl.format("{} ({})", pl.col("subject"), _affected_text()))
        .otherwise(pl.format("{}: {}", pl.col("subject"), pl.col("evidence")))
        .alias("_note")
    )
    by_check = noted.group_by("check").agg(
        pl.len().cast(pl.Int64).alias("subjects"),
        (pl.col("status") == FAIL).sum().cast(pl.Int64).alias("failed"),
        (pl.col("status") == CANNOT_TELL).sum().cast(pl.Int64).alias("unknown"),
        pl.col("_note").filter(pl.col("status") == FAIL).alias("_failed_notes"),
        pl.col("_note").filter(pl.col("status") == CANNOT_TELL).alias("_unknown_notes"),
        pl.col("fix").filter(pl.col("status") != PASS).drop_nulls().unique(maintain_order=True).alias("_fixes"),
        pl.col("evidence").first().alias("_first_evidence"),
    )

    def shown(column: str, prefix: str) -> pl.Expr:
        notes = pl.col(column)
        more = notes.list.len().cast(pl.Int64) - _SHOWN_SUBJECTS
        return pl.when(notes.list.len() > 0).then(
            pl.concat_str(
                [
                    pl.lit(prefix),
                    notes.list.head(_SHOWN_SUBJECTS).list.join("; "),
                    pl.when(more > 0).then(pl.format("; and {} more", more)),
                ],
                ignore_nulls=True,
            )
        )

    status = (
        pl.when(pl.col("failed") > 0)
        .then(pl.lit(FAIL))
        .when((pl.col("unknown") > 0) | (pl.col("subjects") == 0))
        .then(pl.lit(CANNOT_TELL))
        .otherwise(pl.lit(PASS))
    )
    evidence = (
        pl.when(pl.col("subjects") == 0)
        .then(pl.lit("nothing loaded to check"))
        .when((pl.col("failed") + pl.col("unknown")) == 0)
        .then(
            pl.when(pl.col("subjects") == 1)
            .then(pl.col("_first_evidence"))
            .otherwise(pl.format("all {} pass", pl.col("subjects")))
        )
        .otherwise(
            pl.concat_str(
                [shown("_failed_notes", "fails: "), shown("_unknown_notes", "cannot tell: ")],
                separator=" | ",
                ignore_nulls=True,
            )
        )
    )
    return (
        checks.join(by_check, on="check", how="left")
        .with_columns(pl.col("subjects", "failed", "unknown").fill_null(0))
        .with_columns(
            status.alias("status"),
            evidence.alias("evidence"),
            pl.when(pl.col("_fixes").list.len() > 0).then(pl.col("_fixes").list.join("; ")).alias("fix"),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in CHECK_COLUMNS.items()])
        .sort("check")
    )


def preflight(tables: SiteTables, technical_user: str, *, granted_scopes: Iterable[str] | None = None) -> pl.DataFrame:
    """Atlassian's preconfiguration checklist for ``technical_user``, one row per check.

    ``preflight(tables, who)`` is ``summarize_checks(preflight_findings(tables, who))``; keep the findings when
    you need the subjects too.

    Returns:
        :data:`CHECK_COLUMNS` (see :func:`summarize_checks`).
    """
    return summarize_checks(preflight_findings(tables, technical_user, granted_scopes=granted_scopes))


# -- the whole audit in one call ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditResults:
    """Everything ``jira-lab audit`` prints and writes, for one technical user of one site.

    Attributes:
        site_id, account_id, account_name: who was audited where.
        analyst_id, analyst_name: the principal whose load the technical user's was compared with (``None``: no
            comparison).
        checks: :func:`preflight` (one row per check).
        findings: :func:`preflight_findings`.
        gaps: :func:`jira_lab.audits.visibility.restriction_gaps` (hidden items, the fix summary, out of reach).
        disagreements: :func:`jira_lab.audits.visibility.compare_prediction` when both principals loaded the site
            (empty on a complete model); ``None`` without a comparison.
        coverage: :func:`jira_lab.audits.coverage.coverage`.
        sync: :func:`jira_lab.audits.coverage.sync_coverage`.
        changes: :func:`jira_lab.audits.changes.permission_changes`.
        explanations: :func:`jira_lab.audits.changes.gap_explanations`.
        site_name: the site's title or URL as its load recorded them (``None``: not recorded).
    """

    site_id: str
    account_id: str
    account_name: str
    analyst_id: str | None
    analyst_name: str | None
    checks: pl.DataFrame
    findings: pl.DataFrame
    gaps: RestrictionGaps
    disagreements: pl.DataFrame | None
    coverage: pl.DataFrame
    sync: pl.DataFrame
    changes: pl.DataFrame
    explanations: pl.DataFrame
    site_name: str | None = None

    @property
    def site(self) -> str:
        """The site as headings name it: its title or URL, with the id that keys it in the file."""
        return (
            f"{self.site_name} ({self.site_id})" if self.site_name and self.site_name != self.site_id else self.site_id
        )

    @property
    def failed(self) -> bool:
        """Some check fails."""
        return bool((self.checks["status"] == FAIL).any())

    @property
    def undecided(self) -> bool:
        """Some check cannot be told from the data."""
        return bool((self.checks["status"] == CANNOT_TELL).any())

    def report_lines(self) -> list[str]:
        """The audit as text: the preflight table, the gap summary, the comparison and the changes explaining gaps."""
        lines = [f"Audit of {self.account_name} ({self.account_id}) on site {self.site}", "", "Preflight checklist"]
        for check in self.checks.iter_rows(named=True):
            status = check["status"] if check["status"] == PASS else check["status"].upper()
            lines.append(f"  {check['check']}  {status:<12} {check['title']}")
            lines.append(f"     {'':<12} {check['evidence']}")
            to_fix = self.findings.filter(
                (pl.col("check") == check["check"]) & (pl.col("status") != PASS) & pl.col("fix").is_not_null()
            )
            for finding in to_fix.head(_SHOWN_SUBJECTS).iter_rows(named=True):
                lines.append(f"     {'':<12} fix {finding['subject']}: {finding['fix']}")
        lines += ["", "Restriction gaps (predicted from the permission model)"]
        lines.append("  hidden: " + self._hidden_totals())
        by_layer = self.gaps.summary()
        for layer in visibility.LAYERS:
            of_layer = by_layer.filter(pl.col("layer") == layer)
            if of_layer.height:
                counts = ", ".join(f"{row['items']} {row['item_kind']}s" for row in of_layer.iter_rows(named=True))
                lines.append(f"  by {layer}: {counts}")
        steps = self.gaps.fixes.filter(pl.col("step").is_not_null())
        if steps.height:
            lines.append("  smallest set of changes that closes every gap:")
            for fix in steps.iter_rows(named=True):
                lines.append(f"    {fix['step']}. {fix['target']} (unlocks {fix['items_unlocked']} items)")
        for note in self.gaps.notes:
            lines.append(f"  note: {note}")
        if self.disagreements is not None:
            if self.disagreements.is_empty():
                lines.append(
                    f"  observed: the loads of {self.analyst_name} and of the technical user agree item for item"
                )
            else:
                lines.append(
                    f"  observed: {self.disagreements.height} items disagree with the loads of {self.analyst_name} and "
                    "of the technical user (see prediction_disagreements): the model or the data is incomplete"
                )
        explained = self.explanations.filter(pl.col("record_id").is_not_null())
        if explained.height:
            lines += ["", "Changes that explain the gaps (audit log)"]
            for row in explained.sort("created").iter_rows(named=True):
                when = row["created"].strftime("%Y-%m-%d")
                who = row["author_name"] or row["author_account_id"]
                lines.append(f"  {when}  {row['gap']}: {row['description']} (by {who})")
        return lines

    def _hidden_totals(self) -> str:
        site = self.coverage.filter(pl.col("dimension") == "site")
        parts = [f"{row['hidden']} of {row['items']} {row['item_kind']}s" for row in site.iter_rows(named=True)]
        return ", ".join(parts) if parts else "nothing loaded"

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every result as a named frame (the file names :meth:`write` uses)."""
        named = {
            "preflight_checks": self.checks,
            "preflight_findings": self.findings,
            "restriction_gaps": self.gaps.gaps,
            "gap_fixes": self.gaps.fixes,
            "out_of_reach": self.gaps.out_of_reach,
            "coverage": self.coverage,
            "sync_coverage": self.sync,
            "permission_changes": self.changes,
            "gap_explanations": self.explanations,
        }
        if self.disagreements is not None:
            named["prediction_disagreements"] = self.disagreements
        return named

    def write(self, directory: str | os.PathLike[str], file_format: str = "csv") -> list[Path]:
        """Write every frame to ``directory`` (created if needed) as ``<name>.csv`` or ``<name>.parquet``.

        Raises:
            ValueError: ``file_format`` is neither ``csv`` nor ``parquet``.
        """
        if file_format not in ("csv", "parquet"):
            raise ValueError(f"file_format must be csv or parquet, not {file_format!r}")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in self.frames().items():
            path = folder / f"{name}.{file_format}"
            if file_format == "csv":
                frame.write_csv(path)
            else:
                frame.write_parquet(path)
            written.append(path)
        return written


def _display_name(tables: SiteTables, account_id: str) -> str:
    found = tables.users.filter(pl.col("account_id") == account_id).select("display_name").collect()
    return str(found.item()) if found.height and found.item() else account_id


def _comparison_principal(tables: SiteTables, account_id: str, analyst: str | None) -> str | None:
    """The principal to compare with: the one given, else the only other principal with a succeeded load."""
    if analyst is not None:
        return model.resolve_account(tables, analyst)
    loaded = model.latest_loads(tables).select("principal_id").collect()["principal_id"].to_list()
    others = [principal for principal in loaded if principal != account_id]
    return others[0] if len(others) == 1 and account_id in loaded else None


def _site_name(tables: SiteTables) -> str | None:
    sites = tables.jira_lab_sites.select("title", "url").collect()
    if sites.is_empty():
        return None
    title, url = sites.row(0)
    return str(title or url) if (title or url) else None


def run_audit(
    tables: SiteTables,
    technical_user: str,
    *,
    analyst: str | None = None,
    granted_scopes: Iterable[str] | None = None,
) -> AuditResults:
    """Preflight, restriction gaps, the two-load comparison, coverage and permission changes of one technical user.

    Args:
        tables: the loaded site.
        technical_user: its account id or email.
        analyst: the principal to compare its load with (account id or email); by default the only other principal
            that loaded the site, if both loaded it.
        granted_scopes: the app token's scopes, when its load did not record them.
    """
    ctx = _context(tables, technical_user)
    findings = preflight_findings(tables, ctx.account_id, granted_scopes=granted_scopes)
    gaps = visibility.restriction_gaps(tables, ctx.account_id)
    analyst_id = _comparison_principal(tables, ctx.account_id, analyst)
    disagreements = (
        None
        if analyst_id is None
        else visibility.compare_prediction(tables, analyst_id, ctx.account_id, prediction=gaps)
    )
    gap_frame = gaps_from_findings(findings)
    changes = permission_changes(tables, ctx.account_id, gaps=gap_frame)
    return AuditResults(
        site_id=tables.site_id,
        account_id=ctx.account_id,
        account_name=ctx.name,
        analyst_id=analyst_id,
        analyst_name=None if analyst_id is None else _display_name(tables, analyst_id),
        checks=summarize_checks(findings),
        findings=findings,
        gaps=gaps,
        disagreements=disagreements,
        coverage=coverage(tables, ctx.account_id, hidden=gaps.gaps),
        sync=sync_coverage(tables),
        changes=changes,
        explanations=gap_explanations(changes, gap_frame),
        site_name=_site_name(tables),
    )
