"""The HTML report: every section rendered, its numbers equal to the audits' frames, self-contained and escaped.

The demo site is loaded by the analyst and the technical user through the real 3LO flow (``report_world``); the
audits are computed here from the database and compared, number for number, with the ``data-*`` attributes the
report puts beside each figure. The hidden totals are also checked against the simulator's own permission engine,
so a report that faithfully showed a wrong audit would fail too.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import altair as alt
import polars as pl
import pytest
from click.testing import CliRunner
from report_world import Page, ReportWorld, demo_world, engine_hidden_count

from jira_lab import store
from jira_lab.audits.preflight import AuditResults
from jira_lab.auth.httpauth import basic_auth
from jira_lab.cli import main
from jira_lab.client import JiraClient
from jira_lab.load import load
from jira_lab.report import charts, render_report, render_results, write_report
from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility

MOMENT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
SECTIONS = ("preflight", "gaps", "coverage", "changes")


@pytest.fixture(scope="module")
def world() -> ReportWorld:
    return demo_world()


@pytest.fixture(scope="module")
def results(world: ReportWorld) -> AuditResults:
    return world.results()


@pytest.fixture(scope="module")
def page_text(world: ReportWorld) -> str:
    """The report as ``jira-lab report`` makes it: from the file, by the technical user's email."""
    return render_report(world.db, user=world.technical_email, generated_at=MOMENT)


@pytest.fixture(scope="module")
def page(page_text: str) -> Page:
    return Page(page_text)


def as_int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(value)


# -- structure ---------------------------------------------------------------------------------------------------
def test_the_page_parses_with_every_section_a_viewport_and_no_script(page: Page) -> None:
    assert page.errors == []
    assert page.doctype is not None and page.doctype.lower() == "doctype html"
    viewport = [e for e in page.elements if e.tag == "meta" and e.attributes.get("name") == "viewport"]
    assert viewport and "width=device-width" in (viewport[0].attributes["content"] or "")
    for section in SECTIONS:
        element = page.by_id(section)
        assert element.tag == "section"
        assert page.inside(element, "h2"), f"#{section} has no heading"
    assert not [e for e in page.elements if e.tag in ("script", "link", "iframe", "object", "embed", "img")]
    # the navigation reaches each section without script
    assert [e.attributes["href"] for e in page.elements if e.tag == "a"] == [f"#{s}" for s in SECTIONS]


def test_the_page_loads_nothing_from_anywhere(page: Page, page_text: str) -> None:
    for element in page.elements:
        for name, value in element.attributes.items():
            assert not name.startswith("on"), f"event handler {name} on <{element.tag}>"
            if name in ("src", "href", "xlink:href", "action", "poster", "srcset", "data"):
                assert value is not None and value.startswith("#"), f"<{element.tag} {name}={value!r}>"
            assert not re.search(r"(?i)\b(https?:)?//", value or "") or name == "aria-label", (element.tag, name)
    styles = "".join(e.text for e in page.elements if e.tag == "style")
    assert "@import" not in styles and "@font-face" not in styles
    assert re.findall(r"url\(\s*([^)#\s][^)]*)\)", page_text) == []


def test_same_page_from_the_file_and_from_the_results(
    world: ReportWorld, results: AuditResults, page_text: str
) -> None:
    assert render_results(results, generated_at=MOMENT) == page_text


def test_headings_name_the_site_by_its_title_and_id(world: ReportWorld, results: AuditResults, page_text: str) -> None:
    site = f"{world.site.title} ({world.site.cloud_id})"
    assert results.report_lines()[0] == f"Audit of {results.account_name} ({results.account_id}) on site {site}"
    assert f"<h1>What {results.account_name} can see on {site}</h1>" in page_text
    untitled = dataclasses.replace(results, site_name=None)
    assert untitled.report_lines()[0].endswith(f"on site {world.site.cloud_id}")


def test_a_user_is_needed_and_must_be_known(world: ReportWorld) -> None:
    with pytest.raises(ValueError, match="technical user"):
        render_report(world.db)
    with pytest.raises(ValueError, match=r"nobody@example\.com"):
        render_report(world.db, user="nobody@example.com")


# -- the numbers -------------------------------------------------------------------------------------------------
def test_the_summary_cards_equal_the_site_coverage_and_the_engine(
    world: ReportWorld, results: AuditResults, page: Page
) -> None:
    engine = engine_hidden_count(world.site, world.technical_user)
    site = {
        row["item_kind"]: row for row in results.coverage.filter(pl.col("dimension") == "site").iter_rows(named=True)
    }
    for kind in ("issue", "comment", "worklog"):
        card = page.by_id(f"total-{kind}")
        assert as_int(card.data("hidden")) == site[kind]["hidden"] == engine[kind]
        assert as_int(card.data("items")) == site[kind]["items"]
        assert as_int(card.data("visible")) == site[kind]["visible"]
    checks = page.by_id("total-checks")
    assert as_int(checks.data("failed")) == int((results.checks["status"] == "fail").sum())
    assert as_int(checks.data("unknown")) == int((results.checks["status"] == "cannot tell").sum())


def test_preflight_rows_equal_the_checklist(results: AuditResults, page: Page) -> None:
    assert results.checks.height == 6
    for check in results.checks.iter_rows(named=True):
        row = page.by_id(f"check-{check['check']}")
        assert row.data("status") == check["status"]
        assert row.data("name") == check["check_name"]
        assert as_int(row.data("subjects")) == check["subjects"]
        assert as_int(row.data("failed")) == check["failed"]
        assert as_int(row.data("unknown")) == check["unknown"]
        assert check["evidence"] in row.text
    # the technical user loaded with the app's token: the scope check is decided, not "cannot tell"
    assert page.by_id("check-6").data("status") == "pass"
    listed = page.inside(page.by_id("preflight-findings"), "tr")
    failing = results.findings.filter(pl.col("status") != "pass")
    assert Counter((e.data("check"), e.data("status")) for e in listed if "data-finding" in e.attributes) == Counter(
        (str(row["check"]), row["status"]) for row in failing.iter_rows(named=True)
    )


def test_gap_totals_layers_and_fixes_equal_the_restriction_gaps(results: AuditResults, page: Page) -> None:
    gaps = results.gaps
    assert gaps.gaps.height > 0
    by_kind = page.by_id("hidden-by-kind")
    assert as_int(by_kind.data("total")) == gaps.gaps.height
    for item in page.inside(by_kind, "li"):
        assert as_int(item.data("hidden")) == int((gaps.gaps["item_kind"] == item.data("kind")).sum())
    layer_cells = {
        (e.data("kind"), e.data("layer")): as_int(e.data("items"))
        for e in page.inside(page.by_id("gaps-by-layer"), "td")
    }
    expected = {(row["item_kind"], row["layer"]): row["items"] for row in gaps.summary().iter_rows(named=True)}
    assert {key: value for key, value in layer_cells.items() if value} == expected
    fix_rows = [e for e in page.inside(page.by_id("gap-fixes"), "tr") if e.data("fix-kind") is not None]
    assert [
        (
            as_int(e.data("step")),
            e.data("fix-kind"),
            as_int(e.data("items-unlocked")),
            as_int(e.data("items-unblocked")),
        )
        for e in fix_rows
    ] == [
        (row["step"], row["fix_kind"], row["items_unlocked"], row["items_unblocked"])
        for row in gaps.fixes.iter_rows(named=True)
    ]
    assert all(row["target"] in e.text for e, row in zip(fix_rows, gaps.fixes.iter_rows(named=True), strict=True))
    # the demo's model is complete: the steps unlock every hidden item, which the page's own numbers say too
    assert sum(as_int(e.data("items-unlocked")) or 0 for e in fix_rows) == gaps.gaps.height
    assert page.by_id("fix-method").data("method") == gaps.method
    assert results.disagreements is not None
    assert as_int(page.by_id("prediction-check").data("disagreements")) == results.disagreements.height == 0


def test_the_hidden_items_table_is_capped_with_a_count_of_the_rest(results: AuditResults) -> None:
    hidden = results.gaps.gaps
    page = Page(render_results(results, hidden_rows=25, generated_at=MOMENT))
    table = page.by_id("hidden-items")
    assert (as_int(table.data("total")), as_int(table.data("shown"))) == (hidden.height, 25)
    rows = [e for e in page.inside(table, "tr") if e.data("item-id") is not None]
    assert [(e.data("item-kind"), as_int(e.data("item-id"))) for e in rows] == list(
        hidden.head(25).select("item_kind", "item_id").iter_rows()
    )
    assert f"{hidden.height - 25:,} more" in table.text
    everything = Page(render_results(results, hidden_rows=hidden.height, generated_at=MOMENT)).by_id("hidden-items")
    assert as_int(everything.data("shown")) == hidden.height
    assert "more" not in everything.text


def test_coverage_cells_equal_the_coverage_frame(results: AuditResults, page: Page) -> None:
    cells = {
        (e.data("dimension"), e.data("key"), e.data("kind")): (
            as_int(e.data("items")),
            as_int(e.data("visible")),
            as_int(e.data("hidden")),
            as_int(e.data("seen")),
        )
        for e in page.with_data("dimension")
        if e.tag == "td"
    }
    rows = results.coverage.filter(pl.col("dimension") != "site")
    expected = {
        (row["dimension"], row["key"], row["item_kind"]): (row["items"], row["visible"], row["hidden"], row["seen"])
        for row in rows.iter_rows(named=True)
    }
    assert cells == expected
    assert {dimension for dimension, _, _ in cells} == {"project", "security_level", "restriction", "created_month"}


def test_the_charts_are_inline_scalable_svg(page: Page) -> None:
    for chart_id in ("chart-project", "chart-restriction", "chart-created-month", "chart-changes"):
        figure = page.by_id(chart_id)
        svgs = page.inside(figure, "svg")
        assert len(svgs) == 1
        svg = svgs[0].attributes
        assert svg.get("viewbox") and "width" not in svg and "height" not in svg
        assert svg.get("role") == "img" and svg.get("aria-label")
        # the bars carry the project keys of the demo site as text
    project_chart = page.by_id("chart-project")
    labels = {e.text for e in page.inside(project_chart, "text")}
    assert {"ENG", "HR", "SEC"} <= labels
    ids = [e.attributes["id"] for e in page.elements if "id" in e.attributes]
    assert len(ids) == len(set(ids)), "element ids must be unique across the page"


def test_the_change_timeline_equals_the_permission_changes(results: AuditResults, page: Page) -> None:
    changes = results.changes
    assert changes.height > 0
    table = page.by_id("change-timeline")
    assert (as_int(table.data("total")), as_int(table.data("shown"))) == (changes.height, changes.height)
    rows = [e for e in page.inside(table, "tr") if e.data("record-id") is not None]
    assert Counter(
        (as_int(e.data("record-id")), e.data("effect"), e.data("explains") or None) for e in rows
    ) == Counter(changes.select("record_id", "effect", "explains").iter_rows())
    assert all(row["description"] in e.text for e, row in zip(rows, changes.iter_rows(named=True), strict=True))
    explained = [e for e in page.inside(page.by_id("gap-explanations"), "tr") if e.data("gap") is not None]
    assert {(e.data("gap"), as_int(e.data("record-id"))) for e in explained} == set(
        results.explanations.select("gap", "record_id").iter_rows()
    )


def test_the_latest_changes_are_listed_when_capped(results: AuditResults) -> None:
    page = Page(render_results(results, change_rows=5, generated_at=MOMENT))
    rows = [e for e in page.inside(page.by_id("change-timeline"), "tr") if e.data("record-id") is not None]
    assert [as_int(e.data("record-id")) for e in rows] == results.changes.tail(5)["record_id"].to_list()
    assert f"of {results.changes.height} changes" in page.by_id("change-timeline").text


def test_an_account_that_sees_everything_gets_a_report_without_gaps(world: ReportWorld) -> None:
    page = Page(render_report(world.db, user=world.analyst, generated_at=MOMENT))
    assert page.errors == [] and all(page.by_id(section) for section in SECTIONS)
    assert engine_hidden_count(world.site, world.analyst) == {"issue": 0, "comment": 0, "worklog": 0}
    assert page.by_id("hidden-items").data("total") == "0"
    assert page.by_id("hidden-by-kind").data("total") == "0"
    assert page.by_id("fixes-none")
    for kind in ("issue", "comment", "worklog"):
        card = page.by_id(f"total-{kind}")
        assert card.data("hidden") == "0" and card.data("items") == card.data("visible")


def test_parts_shown_only_when_the_data_calls_for_them(results: AuditResults) -> None:
    """Disagreements, unreadable resources, items out of reach and an empty audit log each get their own words."""
    gaps = results.gaps.gaps
    disagreement = gaps.head(1).select(
        "item_kind",
        "item_id",
        "issue_id",
        "issue_key",
        "project_id",
        "project_key",
        pl.lit(True).alias("predicted_hidden"),
        pl.col("layer").alias("predicted_layer"),
        pl.lit(True).alias("seen_by_account"),
        pl.lit("predicted hidden, but the account saw it").alias("disagreement"),
    )
    unreadable = pl.DataFrame(
        {
            "resource": ["role_actors:10002"],
            "table": ["role_actors"],
            "scope": ["10002"],
            "principals": [1],
            "outcome": ["forbidden"],
            "http_status": [403],
            "message": ["You cannot view role actors"],
        }
    )
    reach = pl.DataFrame(
        {
            "issue_id": [10003],
            "issue_key": ["HR-1"],
            "project_key": ["HR"],
            "item_kind": ["comment"],
            "loaded": [2],
            "reported_max": [5],
            "unloaded": [3],
            "account_reported": [None],
            "account_hidden_reported": [None],
        }
    )
    altered = dataclasses.replace(
        results,
        disagreements=disagreement,
        gaps=dataclasses.replace(results.gaps, cannot_tell=unreadable, out_of_reach=reach),
        changes=results.changes.clear(),
        explanations=results.explanations.clear(),
    )
    page = Page(render_results(altered, generated_at=MOMENT))
    assert page.errors == []
    assert page.by_id("prediction-check").data("disagreements") == "1"
    row = next(e for e in page.inside(page.by_id("prediction-disagreements"), "tr") if e.data("item-id"))
    assert (row.data("item-kind"), row.data("item-id")) == (gaps["item_kind"][0], str(gaps["item_id"][0]))
    assert page.by_id("unreadable-resources").text.count("role_actors:10002") == 1
    out = next(e for e in page.inside(page.by_id("out-of-reach"), "tr") if e.data("unloaded"))
    assert (out.data("issue-id"), out.data("unloaded")) == ("10003", "3")
    timeline = page.by_id("change-timeline")
    assert timeline.data("total") == "0" and "no change" in timeline.text
    assert not [e for e in page.elements if e.attributes.get("id") == "chart-changes"]


# -- escaping ----------------------------------------------------------------------------------------------------
HOSTILE_USER = '<script>alert("user")</script>'
HOSTILE_GROUP = "<img src=x onerror=alert(1)>"
HOSTILE_ROLE = 'Admins" onmouseover="alert(2)'


def hostile_database(path: str) -> tuple[str, str]:
    """A tiny site whose technical user, group and role have names that are markup; loaded by both principals."""
    b = SiteBuilder("hostile")
    ana = b.user("Ana Analyst", api_token="token-ana")
    tec = b.user(HOSTILE_USER, api_token="token-tec", email="tec@hostile.example")
    users = b.group("jira-software-users", members=[ana, tec])
    admins = b.group("jira-administrators", members=[ana, tec])
    b.application_role("jira-software", "Jira", [users])
    b.global_permission("ADMINISTER", admins)
    secret_group = b.group(HOSTILE_GROUP, members=[ana])
    role = b.role(HOSTILE_ROLE)
    scheme = b.permission_scheme("Open", [("BROWSE_PROJECTS", Holder("applicationRole", "jira-software"))])
    project = b.project("XSS", "<b>bold</b> project", lead=ana, permission_scheme=scheme)
    b.role_actor(project, role, users=[ana])
    issue = b.issue(project, "an issue", reporter=ana)
    b.comment(issue, ana, "for the group", visibility=Visibility("group", secret_group))
    b.worklog(issue, ana, 600, visibility=Visibility("role", HOSTILE_ROLE))
    b.comment(issue, ana, "for everyone")
    cloud = SimCloud(b.site)
    conn = store.connect(path)
    try:
        for account, token in ((ana, "token-ana"), (tec, "token-tec")):
            email = b.site.users[account].email
            assert email is not None
            client = JiraClient(
                "https://hostile.atlassian.net", auth=basic_auth(email, token), transport=cloud.transport()
            )
            assert load(conn, client, progress=False).status == "succeeded"
    finally:
        conn.close()
    return ana, tec


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The hostile site's database and its technical user."""
    db = tmp_path_factory.mktemp("hostile") / "hostile.duckdb"
    _, technical_user = hostile_database(str(db))
    return db, technical_user


def test_names_from_jira_are_escaped_everywhere(hostile: tuple[Path, str]) -> None:
    db, technical_user = hostile
    text = render_report(db, user=technical_user, generated_at=MOMENT)
    page = Page(text)
    assert page.errors == []
    tags = {e.tag for e in page.elements}
    assert not tags & {"script", "img", "b"}, tags
    assert not [name for e in page.elements for name in e.attributes if name.startswith("on")]
    # the names are there, as text: in the heading, the fixes, the hidden items and the chart labels
    assert HOSTILE_USER in next(e for e in page.elements if e.tag == "h1").text
    assert HOSTILE_USER in page.by_id("gaps").text
    assert HOSTILE_GROUP in page.by_id("gap-fixes").text
    assert HOSTILE_ROLE in page.by_id("hidden-items").text
    restriction_labels = " ".join(e.text for e in page.inside(page.by_id("chart-restriction"), "text"))
    assert HOSTILE_GROUP in restriction_labels
    # two items are hidden: the group's comment and the role's worklog
    assert page.by_id("hidden-items").data("total") == "2"


def test_a_chart_that_would_link_out_is_refused() -> None:
    linking = (
        alt.Chart(pl.DataFrame({"x": [1], "url": ["https://example.com/"]})).mark_point().encode(x="x:Q", href="url:N")
    )
    with pytest.raises(ValueError, match="active content"):
        charts.to_svg(linking, label="links", chart_id="c")
    plain = charts.to_svg(alt.Chart(pl.DataFrame({"x": [1]})).mark_point().encode(x="x:Q"), label="a <b>", chart_id="c")
    assert plain.startswith("<svg") and 'aria-label="a &lt;b&gt;"' in plain and "http" not in plain


# -- writing -----------------------------------------------------------------------------------------------------
def test_write_report_writes_the_page(world: ReportWorld, results: AuditResults, tmp_path: Path) -> None:
    path = write_report(results, path=tmp_path / "out" / "report.html", generated_at=MOMENT)
    assert path.read_text(encoding="utf-8") == render_results(results, generated_at=MOMENT)
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no partial file left behind


def test_the_report_command(hostile: tuple[Path, str], tmp_path: Path) -> None:
    db, technical_user = hostile
    target = tmp_path / "report.html"
    outcome = CliRunner().invoke(main, ["report", "--db", str(db), "--user", "tec@hostile.example", "-o", str(target)])
    assert outcome.exit_code == 0, outcome.output
    assert str(target) in outcome.output
    page = Page(target.read_text(encoding="utf-8"))
    assert page.errors == [] and all(page.by_id(section) for section in SECTIONS)
    assert technical_user in page.text  # the account id, in the header
    unknown = CliRunner().invoke(main, ["report", "--db", str(db), "--user", "nobody@example.com"])
    assert unknown.exit_code != 0 and "nobody@example.com" in unknown.output
