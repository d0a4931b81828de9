"""Charts of the audits: Vega-Altair specifications, rendered to inline SVG for the HTML report.

**Why Vega-Altair + vl-convert.** One chart definition serves both places the charts are read: in a notebook an
``alt.Chart`` displays itself (JupyterLab renders Vega-Lite natively, with tooltips), and for the HTML report
``vl-convert-python`` renders the same specification to SVG in process, with no browser, no network and no
JavaScript in the page. The SVG is vector (sharp on a phone and when printed), small for aggregated data, and its
labels are escaped text. Altair is a mature, actively maintained library with a declarative grammar that reads well
in a notebook cell; vl-convert ships the Vega renderer inside its wheel, so nothing is fetched at run time.
matplotlib was the alternative: it writes SVG too, but its charts do not display interactively in a notebook and
styling a faceted, stacked chart takes far more code.

Every function takes an audit frame with its documented columns (:func:`jira_lab.audits.coverage.coverage`,
:func:`jira_lab.audits.changes.permission_changes`) and returns an ``alt.Chart`` (or ``None`` when there is nothing
to draw); :func:`to_svg` turns one into markup safe to inline in an HTML page.
"""

from __future__ import annotations

import functools
import json
import re
from html.parser import HTMLParser
from typing import Any

import altair as alt
import polars as pl
import vl_convert

from jira_lab.audits.coverage import NONE_KEY

__all__ = [
    "CHART_WIDTH",
    "HIDDEN_COLOR",
    "KIND_ORDER",
    "VISIBLE_COLOR",
    "changes_chart",
    "coverage_chart",
    "coverage_over_time_chart",
    "to_svg",
]

#: Item kinds in the order every chart shows them.
KIND_ORDER = ("issue", "comment", "worklog")
#: A blue and an orange that stay distinct for the common forms of colour blindness.
VISIBLE_COLOR = "#4c78a8"
HIDDEN_COLOR = "#f58518"
#: Width of a chart's plotting area in pixels; the report scales the SVG down to a phone's width.
CHART_WIDTH = 460
#: Bars a chart shows per kind before the rest are summed into one "N more" bar.
MAX_BARS = 20

_EFFECT_COLORS = {"gained": "#54a24b", "lost": "#e45756", "excluded": "#b279a2", "renamed": "#9d9d9d"}
_STATUS_DOMAIN = ["visible", "hidden"]


def _status_color() -> alt.Color:
    return alt.Color(
        "status:N",
        title=None,
        scale=alt.Scale(domain=_STATUS_DOMAIN, range=[VISIBLE_COLOR, HIDDEN_COLOR]),
        legend=alt.Legend(orient="top"),
    )


def _kind_row() -> alt.Row:
    return alt.Row("item_kind:N", title=None, sort=list(KIND_ORDER), header=alt.Header(labelFontWeight="bold"))


def _capped(rows: pl.DataFrame, limit: int) -> pl.DataFrame:
    """At most ``limit`` labels per kind, the largest by items; the rest summed into one ``N more`` row."""
    ranked = rows.with_columns(pl.col("items").rank("ordinal", descending=True).over("item_kind").alias("_rank"))
    kept = ranked.filter(pl.col("_rank") <= limit).drop("_rank")
    rest = ranked.filter(pl.col("_rank") > limit)
    if rest.is_empty():
        return kept
    summed = rest.group_by("item_kind").agg(
        pl.format("{} more", pl.len()).alias("label"),
        pl.col("items").sum(),
        pl.col("visible").sum(),
        pl.col("hidden").sum(),
    )
    return pl.concat([kept.select("item_kind", "label", "items", "visible", "hidden"), summed], how="vertical_relaxed")


def _long(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per label, kind and status (visible/hidden) with its count: what a stacked bar is drawn from."""
    return rows.select("item_kind", "label", "items", "visible", "hidden").unpivot(
        index=["item_kind", "label", "items"], on=["visible", "hidden"], variable_name="status", value_name="count"
    )


def coverage_chart(
    coverage: pl.DataFrame, dimension: str = "project", *, max_bars: int = MAX_BARS, include_none: bool = False
) -> alt.Chart | None:
    """Visible and hidden items per project, security level or restriction: one stacked bar per label and kind.

    Args:
        coverage: :func:`jira_lab.audits.coverage.coverage` (``dimension``, ``key``, ``label``, ``item_kind``,
            ``items``, ``visible``, ``hidden`` are read).
        dimension: ``project``, ``security_level`` or ``restriction`` (``site`` works too: one bar per kind).
        max_bars: labels per kind before the smaller ones are summed into one bar.
        include_none: also draw the items without a level or restriction (their bar dwarfs the others).

    Returns:
        The chart, or ``None`` when the dimension has no rows to draw.
    """
    rows = coverage.filter(pl.col("dimension") == dimension)
    if not include_none:
        rows = rows.filter(pl.col("key") != NONE_KEY)
    if rows.is_empty():
        return None
    data = _long(_capped(rows, max_bars))
    labels = rows.get_column("label").unique(maintain_order=True).to_list()
    chart: alt.Chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None, sort=labels, axis=alt.Axis(labelLimit=200)),
            x=alt.X("count:Q", title="items", stack="zero"),
            color=_status_color(),
            order=alt.Order("status:N", sort="descending"),
            row=_kind_row(),
            tooltip=["label:N", "item_kind:N", "status:N", "count:Q", "items:Q"],
        )
        .properties(width=CHART_WIDTH)
        .resolve_scale(x="independent", y="independent")
    )
    return chart


def coverage_over_time_chart(coverage: pl.DataFrame) -> alt.Chart | None:
    """Visible and hidden items by the month they were created in, one panel per kind.

    Args:
        coverage: :func:`jira_lab.audits.coverage.coverage` (its ``created_month`` rows are read).

    Returns:
        The chart, or ``None`` when no item has a creation month.
    """
    rows = coverage.filter(pl.col("dimension") == "created_month")
    if rows.is_empty():
        return None
    data = _long(rows)
    months = sorted(rows.get_column("label").unique().to_list())
    chart: alt.Chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("label:O", title="created", sort=months, axis=alt.Axis(labelAngle=-60, labelOverlap="greedy")),
            y=alt.Y("count:Q", title="items", stack="zero"),
            color=_status_color(),
            order=alt.Order("status:N", sort="descending"),
            row=_kind_row(),
            tooltip=["label:N", "item_kind:N", "status:N", "count:Q", "items:Q"],
        )
        .properties(width=CHART_WIDTH, height=110)
        .resolve_scale(y="independent")
    )
    return chart


def changes_chart(changes: pl.DataFrame) -> alt.Chart | None:
    """The permission-change timeline: one point per change, by kind of change, coloured by what it did.

    Args:
        changes: :func:`jira_lab.audits.changes.permission_changes` (``created``, ``change_kind``, ``effect``,
            ``description`` are read).

    Returns:
        The chart, or ``None`` when there is no dated change.
    """
    rows = changes.filter(pl.col("created").is_not_null()).select(
        pl.col("created").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("created"),
        pl.col("change_kind").fill_null("other"),
        pl.col("effect").fill_null("other"),
        pl.col("description").fill_null(""),
    )
    if rows.is_empty():
        return None
    effects = [effect for effect in _EFFECT_COLORS if effect in set(rows.get_column("effect").to_list())]
    others = sorted(set(rows.get_column("effect").to_list()) - set(effects))
    domain = effects + others
    palette = [_EFFECT_COLORS.get(effect, "#72b7b2") for effect in domain]
    chart: alt.Chart = (
        alt.Chart(rows)
        .mark_point(filled=True, size=70, opacity=0.85)
        .encode(
            x=alt.X("created:T", title=None, scale=alt.Scale(type="utc", padding=12), axis=alt.Axis(format="%Y-%m")),
            y=alt.Y("change_kind:N", title=None),
            color=alt.Color(
                "effect:N", title=None, scale=alt.Scale(domain=domain, range=palette), legend=alt.Legend(orient="top")
            ),
            shape=alt.Shape("effect:N", legend=None, scale=alt.Scale(domain=domain)),
            tooltip=["created:N", "change_kind:N", "effect:N", "description:N"],
        )
        .properties(width=CHART_WIDTH)
    )
    return chart


# -- SVG for the report ------------------------------------------------------------------------------------------
#: The SVG elements Vega's renderer writes: anything else (script, foreignObject, a, image ...) is refused.
_SVG_ELEMENTS = frozenset(
    {
        "svg",
        "g",
        "path",
        "rect",
        "text",
        "tspan",
        "line",
        "circle",
        "ellipse",
        "polygon",
        "polyline",
        "title",
        "desc",
        "defs",
        "clippath",
        "lineargradient",
        "radialgradient",
        "stop",
        "pattern",
        "mask",
        "symbol",
    }
)
_ROOT_TAG = re.compile(r"<svg\b[^>]*>")
_DROPPED_ROOT_ATTRIBUTES = re.compile(r'\s(?:width|height|xmlns(?::xlink)?|class)="[^"]*"')
_IDS = re.compile(r'\bid="([^"]+)"')
_EXTERNAL_URL = re.compile(r"url\(\s*['\"]?(?!#)", re.I)


class _InertCheck(HTMLParser):
    """Collects what would make an SVG active or make it load something: unknown elements, event handlers, links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SVG_ELEMENTS:
            self.problems.append(f"element <{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name.endswith("href") or name == "src":
                self.problems.append(f"attribute {name} on <{tag}>")
            if value and name == "style" and (_EXTERNAL_URL.search(value) or "@import" in value):
                self.problems.append(f"external url in the style of <{tag}>")

    handle_startendtag = handle_starttag


def _check_inert(svg: str) -> None:
    check = _InertCheck()
    check.feed(svg)
    check.close()
    if check.problems:
        raise ValueError(f"the rendered chart holds active content ({'; '.join(check.problems[:3])}): not inlined")


def _prefixed_ids(svg: str, prefix: str) -> str:
    """Every ``id`` of the SVG and every ``url(#id)`` pointing at it, prefixed: several charts share one page."""
    for found in sorted(set(_IDS.findall(svg)), key=len, reverse=True):
        svg = svg.replace(f'id="{found}"', f'id="{prefix}-{found}"').replace(
            f"url(#{found})", f"url(#{prefix}-{found})"
        )
    return svg


@functools.lru_cache(maxsize=64)
def _rendered(spec: str) -> str:
    """The checked SVG of a specification (as JSON): re-rendering a report redraws nothing that did not change."""
    svg = vl_convert.vegalite_to_svg(json.loads(spec))
    _check_inert(svg)
    return svg


def to_svg(chart: alt.TopLevelMixin | dict[str, Any], *, label: str, chart_id: str) -> str:
    """The chart as an ``<svg>`` element to inline in an HTML page: scalable, self-contained and inert.

    The root element keeps its ``viewBox`` and loses its fixed size (CSS scales it to the page's width) and its
    namespace declarations (HTML needs none); element ids get ``chart_id`` as a prefix.

    Args:
        chart: an Altair chart or a Vega-Lite specification.
        label: what the chart shows, for screen readers (``aria-label``); escaped here.
        chart_id: a prefix unique within the page.

    Raises:
        ValueError: the rendered SVG holds a script, a link or an event handler (it never should: labels are text).
    """
    spec = chart if isinstance(chart, dict) else chart.to_dict()
    svg = _rendered(json.dumps(spec, sort_keys=True, default=str))
    root = _ROOT_TAG.search(svg)
    if root is None:
        raise ValueError("vl-convert returned no <svg> element")
    escaped = (
        label.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&#x27;")
    )
    attributes = _DROPPED_ROOT_ATTRIBUTES.sub("", root.group(0)[len("<svg") : -1])
    new_root = f'<svg{attributes} class="chart" role="img" aria-label="{escaped}" preserveAspectRatio="xMinYMin meet">'
    svg = svg[: root.start()] + new_root + svg[root.end() :]
    return _prefixed_ids(svg, chart_id)
