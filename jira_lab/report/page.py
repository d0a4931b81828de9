"""The HTML report: one self-contained page with the checklist, the gaps, coverage charts and the change timeline.

The page is built from :class:`~jira_lab.audits.preflight.AuditResults` (``run_audit``): every number in it is read
from an audit frame's documented columns, never recomputed here. It holds everything inline (CSS, charts as SVG),
needs no JavaScript, loads nothing from anywhere, and escapes every value (names come from Jira's users). Its
layout is responsive: tables scroll sideways on a phone and charts scale to the screen's width.

Stable hooks for tests and for readers' own tooling:

* sections ``#preflight``, ``#gaps``, ``#coverage``, ``#changes`` (and ``#summary`` cards at the top);
* ``data-*`` attributes carrying the raw numbers next to each formatted one: preflight rows ``#check-<n>``
  (``data-status``, ``data-subjects``, ``data-failed``, ``data-unknown``); fix steps (``data-step``,
  ``data-items-unlocked`` ...); hidden items (``#hidden-items`` with ``data-total`` and ``data-shown``, rows with
  ``data-item-kind`` and ``data-item-id``); coverage cells (``data-dimension``, ``data-key``, ``data-kind``,
  ``data-items``, ``data-visible``, ``data-hidden``, ``data-seen``); changes (``#change-timeline`` rows with
  ``data-record-id`` and ``data-effect``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import polars as pl

from jira_lab import store
from jira_lab.audits import model
from jira_lab.audits.model import SiteTables
from jira_lab.audits.preflight import CANNOT_TELL, FAIL, PASS, AuditResults, run_audit
from jira_lab.audits.visibility import LAYERS
from jira_lab.report import charts

__all__ = [
    "CHANGE_ROWS",
    "FINDING_ROWS",
    "HIDDEN_ROWS",
    "ReportSource",
    "Source",
    "audit_results",
    "load_tables",
    "render_report",
    "render_results",
    "write_report",
]

#: Hidden items listed in the report; the rest are counted (the export bundle holds them all).
HIDDEN_ROWS = 200
#: Permission changes listed (the latest ones); the rest are counted.
CHANGE_ROWS = 300
#: Failing or undecided checklist subjects listed per check.
FINDING_ROWS = 100

#: Where the loaded tables come from: a DuckDB connection, a file path, or tables already read.
Source = store.Connection | str | os.PathLike[str] | SiteTables
#: What a report is made from: a :data:`Source` (the audit runs) or the audit's results.
ReportSource = Source | AuditResults

_KINDS = ("issue", "comment", "worklog")
_KIND_PLURALS = {"issue": "issues", "comment": "comments", "worklog": "worklogs"}
_LAYER_WORDS = {
    "inactive_account": "the account is inactive",
    "browse": "no Browse Projects",
    "security_level": "issue security level",
    "visibility": "comment/worklog restriction",
}
_DIMENSION_TITLES = {
    "project": "By project",
    "security_level": "By issue security level",
    "restriction": "By restriction (comments and worklogs)",
    "created_month": "By month created",
}


# -- where the data comes from -----------------------------------------------------------------------------------
def load_tables(source: Source, site_id: str | None = None) -> SiteTables:
    """The loaded tables of one site from a connection, a DuckDB file (opened read-only) or tables already read.

    Raises:
        ValueError: the file holds several sites and ``site_id`` names none of them (or no site).
    """
    if isinstance(source, SiteTables):
        return source
    if isinstance(source, str | os.PathLike):
        conn = store.connect(source, read_only=True)
        try:
            return model.from_db(conn, site_id)
        finally:
            conn.close()
    return model.from_db(source, site_id)


def audit_results(
    source: ReportSource,
    *,
    user: str | None = None,
    site_id: str | None = None,
    analyst: str | None = None,
    granted_scopes: Iterable[str] | None = None,
) -> AuditResults:
    """The audit a report shows: ``source`` itself when it is one, else :func:`run_audit` of the technical user.

    Raises:
        ValueError: ``user`` is missing (it is needed unless ``source`` is an audit already) or unknown.
    """
    if isinstance(source, AuditResults):
        return source
    if not user:
        raise ValueError("name the technical user (user=<account id or email>) to audit")
    return run_audit(load_tables(source, site_id), user, analyst=analyst, granted_scopes=granted_scopes)


# -- markup ------------------------------------------------------------------------------------------------------
class Html(str):
    """Markup that is already safe to put in the page (built by :func:`_el` or escaped by :func:`_esc`)."""

    __slots__ = ()


def _esc(value: object) -> Html:
    return value if isinstance(value, Html) else Html(html.escape("" if value is None else str(value), quote=True))


def _attribute_name(name: str) -> str:
    return name.rstrip("_").replace("_", "-")


def _el(tag: str, *children: object, **attributes: object) -> Html:
    """``<tag attributes>children</tag>``: attribute values and text children are escaped, :class:`Html` is not.

    ``class_`` is ``class``, ``data_items`` is ``data-items``; ``None`` and ``False`` leave an attribute out.
    """
    rendered = "".join(
        f" {_attribute_name(name)}" if value is True else f' {_attribute_name(name)}="{_esc(value)}"'
        for name, value in attributes.items()
        if value is not None and value is not False
    )
    return Html(f"<{tag}{rendered}>{_join(children)}</{tag}>")


def _join(children: Iterable[object]) -> Html:
    parts: list[str] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, list | tuple):
            parts.append(_join(child))
        else:
            parts.append(_esc(child))
    return Html("".join(parts))


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _status_badge(status: str) -> Html:
    return _el("span", status, class_=f"badge status-{status.replace(' ', '-')}")


def _table(
    headers: Sequence[str | tuple[str, str]], rows: Iterable[Html], *, caption: str | None = None, **attributes: object
) -> Html:
    """A table in a sideways-scrolling wrapper; a header ``(title, "num")`` is right-aligned."""
    head = _el(
        "tr",
        [
            _el("th", h[0], class_=h[1], scope="col") if isinstance(h, tuple) else _el("th", h, scope="col")
            for h in headers
        ],
    )
    body = list(rows)
    return _el(
        "div",
        _el(
            "table",
            _el("caption", caption) if caption else None,
            _el("thead", head),
            _el("tbody", body),
            **attributes,
        ),
        class_="table-wrap",
    )


def _figure(chart: Any, *, chart_id: str, caption: str) -> Html | None:
    if chart is None:
        return None
    return _el(
        "figure", Html(charts.to_svg(chart, label=caption, chart_id=chart_id)), _el("figcaption", caption), id=chart_id
    )


def _empty(text: str, **attributes: object) -> Html:
    return _el("p", text, class_="empty", **attributes)


# -- the page ----------------------------------------------------------------------------------------------------
def _site_counts(results: AuditResults) -> dict[str, dict[str, Any]]:
    site = results.coverage.filter(pl.col("dimension") == "site")
    return {row["item_kind"]: row for row in site.iter_rows(named=True)}


def _header(results: AuditResults, generated_at: datetime, title: str | None, pseudonymized: bool) -> Html:
    heading = title or f"What {results.account_name} can see on {results.site}"
    compared = f" · compared with the load of {results.analyst_name}" if results.analyst_name is not None else ""
    meta = (
        f"Technical user {results.account_name} ({results.account_id}) · site {results.site}{compared} · "
        f"generated {_when(generated_at)} by jira_lab {_version()}"
    )
    lines = [_el("h1", heading), _el("p", meta, class_="meta")]
    if pseudonymized:
        lines.append(
            _el(
                "p",
                "People are pseudonymized in this report: account ids, names and emails are replaced by salted "
                "pseudonyms (person-…, Person …).",
                class_="meta",
                id="pseudonymized",
            )
        )
    return _el("header", lines)


def _nav() -> Html:
    links = [("#preflight", "Checklist"), ("#gaps", "Gaps"), ("#coverage", "Coverage"), ("#changes", "Changes")]
    return _el(
        "nav", _el("ul", [_el("li", _el("a", text, href=target)) for target, text in links]), aria_label="Sections"
    )


def _summary_cards(results: AuditResults) -> Html:
    checks = results.checks
    failing = int((checks["status"] == FAIL).sum())
    unknown = int((checks["status"] == CANNOT_TELL).sum())
    cards = [
        _el(
            "div",
            _el("span", "Checklist"),
            _el("span", f"{failing} failing", class_="big"),
            _el("span", f"of {checks.height} checks; {unknown} cannot be told", class_="of"),
            class_="card",
            id="total-checks",
            data_failed=failing,
            data_unknown=unknown,
            data_checks=checks.height,
        )
    ]
    for kind, row in _site_counts(results).items():
        cards.append(
            _el(
                "div",
                _el("span", f"Hidden {_KIND_PLURALS.get(kind, kind)}"),
                _el("span", _count(row["hidden"]), class_="big"),
                _el(
                    "span",
                    f"of {_count(row['items'])} loaded ({_pct(_share(row['hidden'], row['items']))})",
                    class_="of",
                ),
                class_="card",
                id=f"total-{kind}",
                data_kind=kind,
                data_items=row["items"],
                data_visible=row["visible"],
                data_hidden=row["hidden"],
            )
        )
    return _el("div", cards, class_="cards", id="summary")


def _share(part: int | None, whole: int | None) -> float | None:
    return None if not whole or part is None else 100.0 * part / whole


def _preflight(results: AuditResults) -> Html:
    rows = [
        _el(
            "tr",
            _el("td", check["check"], class_="num"),
            _el("td", check["title"]),
            _el("td", _status_badge(check["status"])),
            _el("td", check["evidence"], class_="long"),
            _el("td", check["fix"] or "–", class_="long"),
            id=f"check-{check['check']}",
            data_check=check["check"],
            data_name=check["check_name"],
            data_status=check["status"],
            data_subjects=check["subjects"],
            data_failed=check["failed"],
            data_unknown=check["unknown"],
        )
        for check in results.checks.iter_rows(named=True)
    ]
    parts: list[Html | None] = [
        _el("h2", "Preflight checklist"),
        _el(
            "p",
            "Atlassian's preconfiguration checklist for a connector's technical user, measured on the loaded data. "
            "“cannot tell” means the data cannot answer the check (it is never counted as a pass).",
        ),
        _table(["#", "Check", "Status", "Evidence", "Fix"], rows, id="preflight-checks"),
        _findings(results.findings),
    ]
    return _el("section", parts, id="preflight")


def _findings(findings: pl.DataFrame) -> Html | None:
    open_findings = findings.filter(pl.col("status") != PASS)
    if open_findings.is_empty():
        return None
    shown = open_findings.head(FINDING_ROWS)
    rows = [
        _el(
            "tr",
            _el("td", finding["check"], class_="num"),
            _el("td", finding["subject"]),
            _el("td", _status_badge(finding["status"])),
            _el("td", _affected(finding), class_="num"),
            _el("td", finding["evidence"], class_="long"),
            _el("td", finding["fix"] or "–", class_="long"),
            data_finding=True,
            data_check=finding["check"],
            data_status=finding["status"],
            data_hidden_issues=finding["hidden_issues"],
            data_hidden_comments=finding["hidden_comments"],
            data_hidden_worklogs=finding["hidden_worklogs"],
        )
        for finding in shown.iter_rows(named=True)
    ]
    more = open_findings.height - shown.height
    caption = f"{shown.height} of {open_findings.height} subjects shown" if more else None
    return _el(
        "details",
        _el("summary", f"Every failing or undecided subject ({open_findings.height})"),
        _table(["#", "Subject", "Status", "Hides", "Evidence", "Fix"], rows, caption=caption, id="preflight-findings"),
    )


def _affected(finding: Mapping[str, Any]) -> str:
    counts = [(finding.get(f"hidden_{_KIND_PLURALS[kind]}"), _KIND_PLURALS[kind]) for kind in _KINDS]
    parts = [f"{value:,} {noun}" for value, noun in counts if value]
    return ", ".join(parts) if parts else "–"


# -- gaps --------------------------------------------------------------------------------------------------------
def _gaps(results: AuditResults, hidden_rows: int) -> Html:
    gaps = results.gaps
    hidden = gaps.gaps
    by_kind = {kind: int((hidden["item_kind"] == kind).sum()) for kind in _KINDS}
    totals = _el(
        "ul",
        [
            _el("li", f"{_count(count)} {_KIND_PLURALS[kind]}", data_kind=kind, data_hidden=count)
            for kind, count in by_kind.items()
        ],
        id="hidden-by-kind",
        data_total=hidden.height,
    )
    parts: list[Html | None] = [
        _el("h2", "Restriction gaps"),
        _el(
            "p",
            f"Predicted from the permission model: {_count(hidden.height)} loaded items are hidden from "
            f"{results.account_name}. Jira never reports them to it, so a connector's index silently misses them.",
        ),
        totals,
        _fixes(results),
        _by_layer(results),
        _prediction_check(results),
        _notes(gaps.notes),
        _unreadable(gaps.cannot_tell),
        _out_of_reach(gaps.out_of_reach),
        _hidden_items(hidden, hidden_rows),
    ]
    return _el("section", parts, id="gaps")


def _fixes(results: AuditResults) -> Html:
    fixes = results.gaps.fixes
    heading = _el("h3", "What to change: the smallest set of memberships that closes every gap")
    if fixes.is_empty():
        return _el("div", heading, _empty("Nothing is hidden: there is nothing to change.", id="fixes-none"))
    rows = [
        _el(
            "tr",
            _el("td", fix["step"] if fix["step"] is not None else "–", class_="num"),
            _el("td", fix["target"], class_="long"),
            _el("td", _count(fix["items_unlocked"]), class_="num"),
            _el("td", _count(fix["items_unlocked_alone"]), class_="num"),
            _el("td", _count(fix["items_unblocked"]), class_="num"),
            _el("td", _count(fix["requirements_met"]), class_="num"),
            data_step="" if fix["step"] is None else fix["step"],
            data_fix_kind=fix["fix_kind"],
            data_items_unlocked=fix["items_unlocked"],
            data_items_unlocked_alone=fix["items_unlocked_alone"],
            data_items_unblocked=fix["items_unblocked"],
            data_requirements_met=fix["requirements_met"],
        )
        for fix in fixes.iter_rows(named=True)
    ]
    method = results.gaps.method
    method_words = {
        "exact": "the smallest set, found by exhaustive search",
        "greedy": "chosen greedily (close to the smallest; the search space was too large for an exact answer)",
        "none": "nothing to choose",
    }.get(method, method)
    return _el(
        "div",
        heading,
        _table(
            [
                ("Step", "num"),
                "Change",
                ("Unlocks", "num"),
                ("Alone would unlock", "num"),
                ("Helps", "num"),
                ("Requirements met", "num"),
            ],
            rows,
            id="gap-fixes",
            caption="Unlocks: items that become visible at this step, after the earlier ones. "
            "Helps: hidden items it removes at least one obstacle from.",
        ),
        _el("p", f"Method: {method_words}.", class_="muted", id="fix-method", data_method=method),
    )


def _by_layer(results: AuditResults) -> Html:
    summary = results.gaps.summary()
    counts = {(row["item_kind"], row["layer"]): row["items"] for row in summary.iter_rows(named=True)}
    layers = [layer for layer in LAYERS if any(key[1] == layer for key in counts)]
    if not layers:
        return _el("div", _el("h3", "Hidden items by obstacle"), _empty("No loaded item is hidden."))
    rows = [
        _el(
            "tr",
            _el("td", _LAYER_WORDS.get(layer, layer)),
            [
                _el(
                    "td",
                    _count(counts.get((kind, layer), 0)),
                    class_="num",
                    data_kind=kind,
                    data_layer=layer,
                    data_items=counts.get((kind, layer), 0),
                )
                for kind in _KINDS
            ],
        )
        for layer in layers
    ]
    return _el(
        "div",
        _el("h3", "Hidden items by obstacle"),
        _el("p", "Each item is counted under the outermost obstacle that hides it.", class_="muted"),
        _table(["Hidden by", ("Issues", "num"), ("Comments", "num"), ("Worklogs", "num")], rows, id="gaps-by-layer"),
    )


def _prediction_check(results: AuditResults) -> Html:
    disagreements = results.disagreements
    if disagreements is None:
        return _el(
            "p",
            "No second load to compare with: load the site as the technical user too to check the prediction "
            "against what it actually saw.",
            class_="muted",
            id="prediction-check",
            data_disagreements="",
        )
    if disagreements.is_empty():
        text = (
            f"Checked against the loads: everything {results.analyst_name} saw and {results.account_name} did not is "
            "exactly what the model predicts, item for item."
        )
        return _el("p", text, id="prediction-check", data_disagreements=0)
    rows = [
        _el(
            "tr",
            _el("td", row["item_kind"]),
            _el("td", row["item_id"], class_="num"),
            _el("td", row["issue_key"] or "–"),
            _el("td", row["disagreement"], class_="long"),
            data_item_kind=row["item_kind"],
            data_item_id=row["item_id"],
        )
        for row in disagreements.head(HIDDEN_ROWS).iter_rows(named=True)
    ]
    return _el(
        "div",
        _el(
            "p",
            f"{_count(disagreements.height)} items disagree with what the loads saw: the permission model or the "
            "data is incomplete.",
            id="prediction-check",
            data_disagreements=disagreements.height,
        ),
        _table(["Kind", ("Item", "num"), "Issue", "Disagreement"], rows, id="prediction-disagreements"),
    )


def _notes(notes: Sequence[str]) -> Html | None:
    if not notes:
        return None
    return _el(
        "div", _el("h3", "What the data cannot tell"), _el("ul", [_el("li", note) for note in notes], class_="notes")
    )


def _unreadable(unreadable: pl.DataFrame) -> Html | None:
    if unreadable.is_empty():
        return None
    rows = [
        _el(
            "tr",
            _el("td", _el("code", row["resource"])),
            _el("td", row["outcome"]),
            _el("td", row["http_status"] if row["http_status"] is not None else "–", class_="num"),
            _el("td", row["message"] or "–", class_="long"),
            data_resource=row["resource"],
        )
        for row in unreadable.iter_rows(named=True)
    ]
    return _el(
        "details",
        _el("summary", f"Resources no load could read ({unreadable.height})"),
        _table(["Resource", "Outcome", ("HTTP", "num"), "Message"], rows, id="unreadable-resources"),
    )


def _out_of_reach(reach: pl.DataFrame) -> Html | None:
    if reach.is_empty():
        return None
    rows = [
        _el(
            "tr",
            _el("td", row["issue_key"] or row["issue_id"]),
            _el("td", row["item_kind"]),
            _el("td", _count(row["loaded"]), class_="num"),
            _el("td", _count(row["reported_max"]), class_="num"),
            _el("td", _count(row["unloaded"]), class_="num"),
            data_issue_id=row["issue_id"],
            data_kind=row["item_kind"],
            data_unloaded=row["unloaded"],
        )
        for row in reach.head(HIDDEN_ROWS).iter_rows(named=True)
    ]
    return _el(
        "details",
        _el("summary", f"Counted by Jira but loaded by nobody ({_count(int(reach['unloaded'].sum()))} items)"),
        _table(
            ["Issue", "Kind", ("Loaded", "num"), ("Jira counted", "num"), ("Out of reach", "num")],
            rows,
            id="out-of-reach",
        ),
    )


def _hidden_items(hidden: pl.DataFrame, limit: int) -> Html:
    heading = _el("h3", "Hidden items")
    if hidden.is_empty():
        return _el("div", heading, _empty("No loaded item is hidden.", id="hidden-items", data_total=0, data_shown=0))
    shown = hidden.head(limit)
    rows = [
        _el(
            "tr",
            _el("td", item["item_kind"]),
            _el("td", item["item_id"], class_="num"),
            _el("td", item["issue_key"] or item["issue_id"], class_="nowrap"),
            _el("td", item["project_key"] or item["project_id"]),
            _el("td", _LAYER_WORDS.get(item["layer"], item["layer"])),
            _el("td", item["missing"], class_="long"),
            _el("td", item["cannot_tell"] or "–"),
            data_item_kind=item["item_kind"],
            data_item_id=item["item_id"],
            data_layer=item["layer"],
        )
        for item in shown.iter_rows(named=True)
    ]
    more = hidden.height - shown.height
    caption = (
        f"Showing {shown.height:,} of {hidden.height:,} hidden items; {more:,} more are in the export bundle "
        "(restriction_gaps.parquet) and in `jira-lab audit --output`."
        if more
        else f"All {hidden.height:,} hidden items."
    )
    return _el(
        "div",
        heading,
        _table(
            ["Kind", ("Id", "num"), "Issue", "Project", "Hidden by", "What is missing", "Cannot tell"],
            rows,
            caption=caption,
            id="hidden-items",
            data_total=hidden.height,
            data_shown=shown.height,
        ),
    )


# -- coverage ----------------------------------------------------------------------------------------------------
def _coverage(results: AuditResults) -> Html:
    frame = results.coverage
    observed = frame["seen"].is_not_null().any()
    intro = (
        "The share of the loaded issues, comments and worklogs the technical user can see, predicted from the "
        "permission model"
        + ("; where its own load saw a different number, that number is shown beside it (“seen”)." if observed else ".")
        + " The thin bar under each figure is the visible share."
    )
    parts: list[Html | None] = [_el("h2", "Coverage"), _el("p", intro)]
    figures = {
        "project": _figure(
            charts.coverage_chart(frame, "project"),
            chart_id="chart-project",
            caption="Visible and hidden items per project",
        ),
        "restriction": _figure(
            charts.coverage_chart(frame, "restriction"),
            chart_id="chart-restriction",
            caption="Visible and hidden comments and worklogs per restriction (group or project role); the "
            "unrestricted ones are in the table",
        ),
        "created_month": _figure(
            charts.coverage_over_time_chart(frame),
            chart_id="chart-created-month",
            caption="Visible and hidden items by the month they were created in",
        ),
    }
    for dimension, title in _DIMENSION_TITLES.items():
        rows = frame.filter(pl.col("dimension") == dimension)
        parts.append(_el("h3", title))
        parts.append(figures.get(dimension))
        if rows.is_empty():
            parts.append(_empty("Nothing loaded."))
            continue
        table = _coverage_table(rows, dimension, observed=bool(observed))
        if dimension == "created_month":
            parts.append(
                _el("details", _el("summary", f"The numbers, month by month ({rows['key'].n_unique()})"), table)
            )
        else:
            parts.append(table)
    parts.append(_sync(results.sync))
    return _el("section", parts, id="coverage")


def _coverage_cell(row: Mapping[str, Any] | None, dimension: str, key: str, kind: str, observed: bool) -> Html:
    if row is None:
        return _el("td", "–", class_="num")
    share = row["visible_pct"] if row["visible_pct"] is not None else 0.0
    seen = (
        _el("span", f" · seen {_count(row['seen'])}", class_="pct")
        if observed and row["seen"] is not None and row["seen"] != row["visible"]
        else None
    )
    return _el(
        "td",
        f"{_count(row['visible'])} of {_count(row['items'])} ",
        _el("span", _pct(row["visible_pct"]), class_="pct"),
        seen,
        class_="cov",
        style=f"--share: {share:.1f}%",
        data_dimension=dimension,
        data_key=key,
        data_kind=kind,
        data_items=row["items"],
        data_visible=row["visible"],
        data_hidden=row["hidden"],
        data_seen="" if row["seen"] is None else row["seen"],
    )


def _coverage_table(rows: pl.DataFrame, dimension: str, *, observed: bool) -> Html:
    kinds = [kind for kind in _KINDS if kind in set(rows["item_kind"].to_list())]
    by_key: dict[str, dict[str, Mapping[str, Any]]] = {}
    labels: dict[str, str] = {}
    for row in rows.iter_rows(named=True):
        by_key.setdefault(row["key"], {})[row["item_kind"]] = row
        labels.setdefault(row["key"], row["label"] or row["key"])
    body = [
        _el(
            "tr",
            _el("th", labels[key], scope="row"),
            [_coverage_cell(cells.get(kind), dimension, key, kind, observed) for kind in kinds],
            data_key=key,
        )
        for key, cells in by_key.items()
    ]
    headers: list[str | tuple[str, str]] = ["", *[f"Visible {_KIND_PLURALS[kind]}" for kind in kinds]]
    return _table(headers, body, id=f"coverage-{dimension.replace('_', '-')}", data_dimension=dimension)


def _sync(sync: pl.DataFrame) -> Html:
    heading = _el("h3", "What the loads fetched")
    if sync.is_empty():
        return _el("div", heading, _empty("No load recorded what Jira counted."))
    rows = [
        _el(
            "tr",
            _el("td", row["principal_name"] or row["principal_id"]),
            _el("td", row["project_key"] or "all"),
            _el("td", row["item_kind"]),
            _el("td", row["source"]),
            _el("td", _count(row["reported"]), class_="num"),
            _el("td", _count(row["fetched"]), class_="num"),
            _el("td", _count(row["missing"]), class_="num"),
            _el("td", _pct(row["fetched_pct"]), class_="num"),
            data_principal=row["principal_id"],
            data_project=row["project_key"] or "",
            data_kind=row["item_kind"],
            data_source=row["source"],
            data_reported=row["reported"],
            data_fetched=row["fetched"],
            data_missing=row["missing"],
        )
        for row in sync.iter_rows(named=True)
    ]
    return _el(
        "details",
        _el("summary", "What the loads fetched, against what Jira counted"),
        _table(
            [
                "Loaded by",
                "Project",
                "Kind",
                "Jira's count",
                ("Counted", "num"),
                ("Fetched", "num"),
                ("Missing", "num"),
                ("Fetched", "num"),
            ],
            rows,
            id="sync-coverage",
        ),
    )


# -- changes -----------------------------------------------------------------------------------------------------
def _changes(results: AuditResults, change_rows: int) -> Html:
    changes = results.changes
    parts: list[Html | None] = [
        _el("h2", "Permission changes"),
        _el(
            "p",
            f"From the audit log: the changes that affected what {results.account_name} can see (its groups, role "
            "actors, permission grants, security level members, global permissions), and which current gaps each "
            "explains.",
        ),
        _explanations(results.explanations),
    ]
    if changes.is_empty():
        parts.append(
            _empty(
                "The audit log holds no change that affects the technical user (or the log could not be read: reading "
                "it needs Jira Administrators).",
                id="change-timeline",
                data_total=0,
                data_shown=0,
            )
        )
        return _el("section", parts, id="changes")
    parts.append(_figure(charts.changes_chart(changes), chart_id="chart-changes", caption="Changes over time"))
    shown = changes.tail(change_rows)
    rows = [
        _el(
            "tr",
            _el("td", _when(change["created"]), class_="nowrap"),
            _el("td", change["author_name"] or change["author_account_id"] or "–", class_="nowrap"),
            _el("td", change["description"], class_="long"),
            _el("td", _el("span", change["effect"], class_=f"badge effect-{change['effect']}")),
            _el("td", change["explains"] or "–"),
            data_record_id=change["record_id"],
            data_effect=change["effect"],
            data_change_kind=change["change_kind"],
            data_explains=change["explains"] or "",
        )
        for change in shown.iter_rows(named=True)
    ]
    more = changes.height - shown.height
    caption = f"The latest {shown.height:,} of {changes.height:,} changes." if more else None
    parts.append(_el("h3", "Timeline"))
    parts.append(
        _table(
            ["When", "Who", "What changed", "Effect", "Explains the gap"],
            rows,
            caption=caption,
            id="change-timeline",
            data_total=changes.height,
            data_shown=shown.height,
        )
    )
    return _el("section", parts, id="changes")


def _explanations(explanations: pl.DataFrame) -> Html | None:
    if explanations.is_empty():
        return None
    rows = [
        _el(
            "tr",
            _el("td", row["gap"]),
            _el("td", _when(row["created"]) if row["record_id"] is not None else "–", class_="nowrap"),
            _el("td", row["author_name"] or row["author_account_id"] or "–"),
            _el(
                "td",
                row["description"] or "no change in the audit log explains it (it may never have had the access)",
                class_="long",
            ),
            data_gap=row["gap"],
            data_record_id="" if row["record_id"] is None else row["record_id"],
        )
        for row in explanations.iter_rows(named=True)
    ]
    return _el(
        "div",
        _el("h3", "Why each gap exists"),
        _table(["Gap", "Since", "Who", "The change that explains it"], rows, id="gap-explanations"),
    )


# -- assembling --------------------------------------------------------------------------------------------------
def _version() -> str:
    try:
        return metadata.version("jira-lab")
    except metadata.PackageNotFoundError:
        return "(development)"


def _stylesheet() -> str:
    return resources.files("jira_lab.report").joinpath("report.css").read_text(encoding="utf-8")


def render_results(
    results: AuditResults,
    *,
    hidden_rows: int = HIDDEN_ROWS,
    change_rows: int = CHANGE_ROWS,
    generated_at: datetime | None = None,
    title: str | None = None,
    pseudonymized: bool = False,
) -> str:
    """The report of an audit already run, as one HTML document.

    Args:
        results: :func:`jira_lab.audits.preflight.run_audit` (pseudonymized or not).
        hidden_rows: hidden items listed; the rest are counted.
        change_rows: permission changes listed (the latest); the rest are counted.
        generated_at: the time printed in the header (default: now).
        title: the page's heading (default: "What <technical user> can see on <site>").
        pseudonymized: say in the header that people are pseudonymized.

    Raises:
        ValueError: ``hidden_rows`` or ``change_rows`` is negative.
    """
    if hidden_rows < 0 or change_rows < 0:
        raise ValueError("hidden_rows and change_rows must be 0 or more")
    moment = generated_at or datetime.now(UTC)
    heading = title or f"What {results.account_name} can see on {results.site}"
    body = _join(
        [
            _header(results, moment, title, pseudonymized),
            _nav(),
            _el(
                "main",
                _summary_cards(results),
                _preflight(results),
                _gaps(results, hidden_rows),
                _coverage(results),
                _changes(results, change_rows),
            ),
            _el(
                "footer",
                _el(
                    "p",
                    "Made by jira_lab from the audits' frames (their columns are documented in docs/audits.md). "
                    "This page is self-contained: it loads nothing and runs no script.",
                ),
            ),
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="generator" content="jira_lab">\n'
        f"<title>{_esc(heading)}</title>\n<style>\n{_stylesheet()}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def render_report(
    source: ReportSource,
    *,
    user: str | None = None,
    site_id: str | None = None,
    analyst: str | None = None,
    granted_scopes: Iterable[str] | None = None,
    hidden_rows: int = HIDDEN_ROWS,
    change_rows: int = CHANGE_ROWS,
    generated_at: datetime | None = None,
    title: str | None = None,
) -> str:
    """The HTML report of a technical user: checklist, gaps, coverage charts and the permission-change timeline.

    Args:
        source: a DuckDB connection or file (opened read-only), loaded tables, or :class:`AuditResults`.
        user: the technical user (account id or email); not needed when ``source`` is an audit.
        site_id: the site, when the file holds several.
        analyst: the principal whose load the prediction is checked against (default: the only other one).
        granted_scopes: the app token's scopes, when the technical user's load recorded none.
        hidden_rows, change_rows, generated_at, title: see :func:`render_results`.

    Returns:
        One self-contained HTML document (no scripts, no external resources).

    Raises:
        ValueError: no ``user`` for a database, an unknown user, or several sites and no ``site_id``.
    """
    results = audit_results(source, user=user, site_id=site_id, analyst=analyst, granted_scopes=granted_scopes)
    return render_results(
        results, hidden_rows=hidden_rows, change_rows=change_rows, generated_at=generated_at, title=title
    )


def write_report(
    source: ReportSource,
    *,
    path: str | os.PathLike[str],
    user: str | None = None,
    site_id: str | None = None,
    analyst: str | None = None,
    granted_scopes: Iterable[str] | None = None,
    hidden_rows: int = HIDDEN_ROWS,
    change_rows: int = CHANGE_ROWS,
    generated_at: datetime | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8, replaced atomically) and return the path.

    Takes the arguments of :func:`render_report`.
    """
    page = render_report(
        source,
        user=user,
        site_id=site_id,
        analyst=analyst,
        granted_scopes=granted_scopes,
        hidden_rows=hidden_rows,
        change_rows=change_rows,
        generated_at=generated_at,
        title=title,
    )
    return write_text_atomically(Path(path), page)


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to a sibling temporary file and move it over ``path``: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
