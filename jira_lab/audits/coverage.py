"""Coverage: what share of the site the technical user reaches, and how completely the loads fetched what Jira counts.

:func:`coverage` counts the loaded issues, comments and worklogs and, among them, those visible to the technical
user, along five dimensions: the whole site, each project, each security level (issues at the level and the
comments and worklogs on them; ``none`` for issues without a level), each restriction (comments and worklogs
restricted to a group, by id, or to a role in a project; ``none`` for unrestricted ones) and each month items were
created in. "Visible" is the static prediction (:func:`jira_lab.audits.visibility.hidden_items`); when the technical
user loaded the site itself, what it actually saw (:func:`jira_lab.audits.visibility.seen_items`) stands beside it.

:func:`sync_coverage` compares, for each loading principal, what its loads fetched with what Jira reported to it:
the comment and worklog totals of each issue (``issue_totals``: ``fields.comment.total`` and ``fields.worklog.total``
count what that principal may see) against the items it sighted on those issues, and the issue count Jira estimated
(``POST /search/approximate-count``, when the load recorded it in ``_jira_lab_loads.options``) against the issues it
sighted.

Only what some principal loaded can be counted: items hidden from every loading principal are not in the tables
(``jira_lab.audits.visibility.out_of_reach`` counts the ones Jira's totals reveal).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from jira_lab.audits import model, visibility
from jira_lab.audits.model import COMMENT, ISSUE, WORKLOG, SiteTables

__all__ = ["COVERAGE_COLUMNS", "DIMENSIONS", "SYNC_COLUMNS", "coverage", "sync_coverage"]

#: The dimensions of :func:`coverage`, in the order rows come.
DIMENSIONS = ("site", "project", "security_level", "restriction", "created_month")
#: The key of the rows of items without a security level or without a restriction.
NONE_KEY = "none"
#: Option keys a load may record Jira's approximate issue count under (``_jira_lab_loads.options``).
APPROXIMATE_COUNT_OPTIONS = ("approximate_count", "approximate_issue_count")

#: Columns of :func:`coverage`, in order.
COVERAGE_COLUMNS: Mapping[str, pl.DataType] = {
    "dimension": pl.String(),
    "key": pl.String(),
    "label": pl.String(),
    "project_id": pl.Int64(),
    "project_key": pl.String(),
    "item_kind": pl.String(),
    "items": pl.Int64(),
    "visible": pl.Int64(),
    "hidden": pl.Int64(),
    "visible_pct": pl.Float64(),
    "seen": pl.Int64(),
    "seen_pct": pl.Float64(),
}

#: Columns of :func:`sync_coverage`, in order.
SYNC_COLUMNS: Mapping[str, pl.DataType] = {
    "principal_id": pl.String(),
    "principal_name": pl.String(),
    "project_id": pl.Int64(),
    "project_key": pl.String(),
    "item_kind": pl.String(),
    "source": pl.String(),
    "issues": pl.Int64(),
    "reported": pl.Int64(),
    "fetched": pl.Int64(),
    "missing": pl.Int64(),
    "extra": pl.Int64(),
    "issues_incomplete": pl.Int64(),
    "fetched_pct": pl.Float64(),
}

_KIND_ORDER = {ISSUE: 0, COMMENT: 1, WORKLOG: 2}


def _pct(part: str, whole: str) -> pl.Expr:
    return pl.when(pl.col(whole) > 0).then((100.0 * pl.col(part) / pl.col(whole)).round(1)).otherwise(None)


def _universe(tables: SiteTables) -> pl.LazyFrame:
    """Every live loaded item with what the dimensions group by: ``item_kind``, ``item_id``, ``issue_id``,
    ``project_id``, ``level_id``, ``restriction`` (type), ``restriction_key``, ``restriction_project_id`` (a role
    is per project, a group is not), ``created``."""
    issues = tables.issues.select(
        pl.col("id").alias("issue_id"), "project_id", pl.col("security_level_id").alias("level_id"), "created"
    )
    issue_rows = issues.select(
        pl.lit(ISSUE).alias("item_kind"),
        pl.col("issue_id").alias("item_id"),
        "issue_id",
        "project_id",
        "level_id",
        pl.lit(None, dtype=pl.String).alias("restriction"),
        pl.lit(None, dtype=pl.String).alias("restriction_key"),
        "created",
    )
    created = pl.concat(
        [
            tables.comments.select(pl.lit(COMMENT).alias("item_kind"), pl.col("id").alias("item_id"), "created"),
            tables.worklogs.select(pl.lit(WORKLOG).alias("item_kind"), pl.col("id").alias("item_id"), "created"),
        ]
    )
    item_rows = (
        model.items(tables)
        .join(created, on=["item_kind", "item_id"], how="left")
        .join(issues.select("issue_id", "level_id"), on="issue_id", how="left")
        .select(
            "item_kind",
            "item_id",
            "issue_id",
            "project_id",
            "level_id",
            pl.col("visibility_type").alias("restriction"),
            pl.col("visibility_key").alias("restriction_key"),
            "created",
        )
    )
    return pl.concat([issue_rows, item_rows]).with_columns(
        pl.when(pl.col("restriction") == "role").then(pl.col("project_id")).alias("restriction_project_id")
    )


def _dimension(
    marked: pl.LazyFrame, name: str, key: pl.Expr, label: pl.Expr, project: pl.Expr | None = None
) -> pl.LazyFrame:
    """Counts per ``key`` and item kind; ``project`` is the project a row belongs to, when it belongs to one."""
    project_id = pl.lit(None, dtype=pl.Int64) if project is None else project
    return (
        marked.with_columns(key.alias("key"), label.alias("label"), project_id.alias("_row_project"))
        .group_by("key", "item_kind")
        .agg(
            pl.col("label").drop_nulls().first(),
            pl.col("_row_project").drop_nulls().first().alias("project_id"),
            pl.len().cast(pl.Int64).alias("items"),
            pl.col("hidden").sum().cast(pl.Int64).alias("hidden"),
            pl.col("seen").sum().cast(pl.Int64).alias("seen"),
        )
        .with_columns(pl.lit(name).alias("dimension"))
    )


def coverage(tables: SiteTables, technical_user: str, *, hidden: pl.DataFrame | None = None) -> pl.DataFrame:
    """The share of the loaded issues, comments and worklogs visible to ``technical_user``, by dimension.

    Args:
        tables: the loaded site.
        technical_user: account id or email.
        hidden: :func:`jira_lab.audits.visibility.hidden_items` for it, when already computed (``item_kind``,
            ``item_id`` are read).

    Returns:
        :data:`COVERAGE_COLUMNS`, one row per dimension, key and item kind (issue, comment, worklog):

        - ``dimension``: site, project, security_level, restriction or created_month (:data:`DIMENSIONS`);
        - ``key``: ``all`` (site), the project id, the level id, ``group:<group id>`` / ``role:<project id>:<role
          name>`` (restriction), ``YYYY-MM`` (month); ``none`` for items without a level or restriction;
        - ``label``: readable: project key, level name, ``group finance``, ``role Administrators in SEC``, the month;
        - ``project_id``, ``project_key``: the project the row belongs to (project rows, role restrictions);
        - ``items``: loaded live items; ``visible`` and ``hidden``: of those, predicted visible and hidden to the
          technical user; ``visible_pct``: ``100 * visible / items`` (1 decimal);
        - ``seen``: of the items, those its own latest load saw; ``seen_pct``; both NULL when it never loaded the
          site.
    """
    account_id = model.resolve_account(tables, technical_user)
    if hidden is None:
        hidden = visibility.hidden_items(tables, account_id).select("item_kind", "item_id").collect()
    try:
        seen: pl.LazyFrame | None = visibility.seen_items(tables, account_id)
    except ValueError:  # it has no succeeded load: nothing was observed
        seen = None
    marked = _universe(tables).join(
        hidden.lazy().select("item_kind", "item_id").unique().with_columns(pl.lit(True).alias("hidden")),
        on=["item_kind", "item_id"],
        how="left",
    )
    if seen is None:
        marked = marked.with_columns(pl.lit(None, dtype=pl.Boolean).alias("seen"))
    else:
        marked = marked.join(
            seen.unique().with_columns(pl.lit(True).alias("seen")), on=["item_kind", "item_id"], how="left"
        ).with_columns(pl.col("seen").fill_null(False))
    marked = marked.with_columns(pl.col("hidden").fill_null(False))
    projects = tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("project_key"))
    levels = tables.security_levels.select(pl.col("id").alias("level_id"), pl.col("name").alias("_level_name"))
    groups = tables.groups.select(pl.col("group_id").alias("restriction_key"), pl.col("name").alias("_group_name"))
    marked = (
        marked.join(projects, on="project_id", how="left")
        .join(levels, on="level_id", how="left")
        .join(groups.unique("restriction_key"), on="restriction_key", how="left")
        .join(
            projects.rename({"project_id": "restriction_project_id", "project_key": "_role_project_key"}),
            on="restriction_project_id",
            how="left",
        )
    )
    restricted = pl.col("restriction").is_not_null()
    month = pl.col("created").dt.strftime("%Y-%m")
    parts = [
        _dimension(marked, "site", pl.lit("all"), pl.lit("whole site")),
        _dimension(
            marked,
            "project",
            pl.col("project_id").cast(pl.String),
            pl.col("project_key"),
            pl.col("project_id"),
        ),
        _dimension(
            marked,
            "security_level",
            pl.coalesce(pl.col("level_id").cast(pl.String), pl.lit(NONE_KEY)),
            pl.when(pl.col("level_id").is_null())
            .then(pl.lit("no security level"))
            .otherwise(pl.coalesce("_level_name", pl.format("level {}", pl.col("level_id")))),
        ),
        _dimension(
            marked.filter(pl.col("item_kind") != ISSUE),
            "restriction",
            pl.when(~restricted)
            .then(pl.lit(NONE_KEY))
            .when(pl.col("restriction") == "group")
            .then(pl.format("group:{}", pl.col("restriction_key")))
            .otherwise(pl.format("role:{}:{}", pl.col("restriction_project_id"), pl.col("restriction_key"))),
            pl.when(~restricted)
            .then(pl.lit("unrestricted"))
            .when(pl.col("restriction") == "group")
            .then(pl.format("group {}", pl.coalesce("_group_name", "restriction_key")))
            .otherwise(
                pl.format(
                    "role {} in {}",
                    pl.col("restriction_key"),
                    pl.coalesce("_role_project_key", pl.col("restriction_project_id").cast(pl.String)),
                )
            ),
            pl.col("restriction_project_id"),
        ),
        _dimension(
            marked,
            "created_month",
            pl.coalesce(month, pl.lit("unknown")),
            pl.coalesce(month, pl.lit("unknown")),
        ),
    ]
    order = {name: index for index, name in enumerate(DIMENSIONS)}
    return (
        pl.concat(parts, how="diagonal_relaxed")
        .join(projects, on="project_id", how="left")
        .with_columns(
            (pl.col("items") - pl.col("hidden")).alias("visible"),
            pl.when(pl.lit(seen is None)).then(None).otherwise(pl.col("seen")).alias("seen"),
        )
        .with_columns(_pct("visible", "items").alias("visible_pct"), _pct("seen", "items").alias("seen_pct"))
        .sort(
            pl.col("dimension").replace_strict(order, return_dtype=pl.Int32),
            pl.col("key") == NONE_KEY,
            "label",
            "key",
            pl.col("item_kind").replace_strict(_KIND_ORDER, return_dtype=pl.Int32),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in COVERAGE_COLUMNS.items()])
        .collect()
    )


# -- sync coverage -----------------------------------------------------------------------------------------------
def _principals(tables: SiteTables) -> pl.DataFrame:
    return (
        model.latest_loads(tables)
        .join(
            tables.jira_lab_principals.select("principal_id", pl.col("display_name").alias("principal_name")),
            on="principal_id",
            how="left",
        )
        .select("principal_id", "principal_name")
        .sort("principal_id")
        .collect()
    )


def _inline_totals(tables: SiteTables, principal_id: str, seen: pl.LazyFrame) -> pl.LazyFrame:
    """Per project and kind: Jira's per-issue totals for the principal against the items it sighted there."""
    sighted = (
        model.items(tables)
        .join(seen, on=["item_kind", "item_id"], how="semi")
        .group_by("issue_id", "item_kind")
        .agg(pl.len().cast(pl.Int64).alias("fetched"))
    )
    totals = tables.issue_totals.filter(pl.col("principal_id") == principal_id)
    reported = pl.concat(
        [
            totals.filter(pl.col(column).is_not_null()).select(
                "issue_id", pl.lit(kind).alias("item_kind"), pl.col(column).cast(pl.Int64).alias("reported")
            )
            for kind, column in ((COMMENT, "comment_total"), (WORKLOG, "worklog_total"))
        ]
    )
    per_issue = (
        reported.join(sighted, on=["issue_id", "item_kind"], how="left")
        .with_columns(pl.col("fetched").fill_null(0))
        .join(tables.issues.select(pl.col("id").alias("issue_id"), "project_id"), on="issue_id", how="left")
    )
    return per_issue.group_by("project_id", "item_kind").agg(
        pl.lit("inline totals").alias("source"),
        pl.len().cast(pl.Int64).alias("issues"),
        pl.col("reported").sum().cast(pl.Int64),
        pl.col("fetched").sum().cast(pl.Int64),
        (pl.col("reported") - pl.col("fetched")).clip(lower_bound=0).sum().cast(pl.Int64).alias("missing"),
        (pl.col("fetched") - pl.col("reported")).clip(lower_bound=0).sum().cast(pl.Int64).alias("extra"),
        (pl.col("fetched") < pl.col("reported")).sum().cast(pl.Int64).alias("issues_incomplete"),
    )


def _approximate_counts(tables: SiteTables, principal_id: str, seen: pl.LazyFrame) -> pl.LazyFrame:
    """The issue count Jira estimated for the principal's latest load that recorded one, against its issues."""
    loads = (
        tables.jira_lab_loads.filter((pl.col("principal_id") == principal_id) & (pl.col("status") == "succeeded"))
        .sort("load_id")
        .select(
            "load_id",
            pl.coalesce(
                [
                    pl.col("options").str.json_path_match(f"$.{option}").cast(pl.Int64, strict=False)
                    for option in APPROXIMATE_COUNT_OPTIONS
                ]
            ).alias("reported"),
        )
        .filter(pl.col("reported").is_not_null())
        .tail(1)
    )
    fetched = seen.filter(pl.col("item_kind") == ISSUE).select(pl.len().cast(pl.Int64).alias("fetched"))
    return loads.join(fetched, how="cross").select(
        pl.lit(None, dtype=pl.Int64).alias("project_id"),
        pl.lit(ISSUE).alias("item_kind"),
        pl.lit("approximate count").alias("source"),
        pl.lit(None, dtype=pl.Int64).alias("issues"),
        "reported",
        "fetched",
        (pl.col("reported") - pl.col("fetched")).clip(lower_bound=0).alias("missing"),
        (pl.col("fetched") - pl.col("reported")).clip(lower_bound=0).alias("extra"),
        pl.lit(None, dtype=pl.Int64).alias("issues_incomplete"),
    )


def sync_coverage(tables: SiteTables) -> pl.DataFrame:
    """For each loading principal: what its loads fetched against what Jira reported to it.

    Jira's counts are the principal's own (it reports what that principal may see), so a shortfall is a sync
    problem (a load that missed items, a truncated inline page never completed), not a permission gap.

    Returns:
        :data:`SYNC_COLUMNS`, one row per principal, project and kind (and one per principal for the approximate
        issue count, with NULL project):

        - ``principal_id``, ``principal_name``; ``project_id``, ``project_key``; ``item_kind`` (issue, comment,
          worklog);
        - ``source``: ``inline totals`` (``issue_totals``) or ``approximate count`` (the load's recorded
          ``approximate_count``);
        - ``issues``: issues with a reported total; ``reported``: Jira's count; ``fetched``: items the principal's
          latest loads sighted (on those issues); ``missing``: reported but not fetched (summed per issue);
          ``extra``: fetched beyond the count; ``issues_incomplete``: issues with items missing;
          ``fetched_pct``: ``100 * min(fetched, reported) / reported`` (1 decimal).
    """
    parts = []
    principals = _principals(tables)
    for principal_id, principal_name in principals.iter_rows():
        seen = visibility.seen_items(tables, principal_id)
        for part in (_inline_totals(tables, principal_id, seen), _approximate_counts(tables, principal_id, seen)):
            parts.append(
                part.with_columns(
                    pl.lit(principal_id).alias("principal_id"),
                    pl.lit(principal_name, dtype=pl.String).alias("principal_name"),
                )
            )
    if not parts:
        return pl.DataFrame(schema=dict(SYNC_COLUMNS))
    projects = tables.projects.select(pl.col("id").alias("project_id"), pl.col("key").alias("project_key"))
    return (
        pl.concat(parts, how="diagonal_relaxed")
        .join(projects, on="project_id", how="left")
        .with_columns(
            pl.when(pl.col("reported") > 0)
            .then((100.0 * pl.min_horizontal("fetched", "reported") / pl.col("reported")).round(1))
            .alias("fetched_pct")
        )
        .sort(
            "principal_id",
            pl.col("source"),
            "project_key",
            pl.col("item_kind").replace_strict(_KIND_ORDER, return_dtype=pl.Int32),
            nulls_last=True,
        )
        .select([pl.col(name).cast(dtype) for name, dtype in SYNC_COLUMNS.items()])
        .collect()
    )
