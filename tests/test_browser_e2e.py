"""The connect notebook in a real browser: JupyterLab on loopback, headless Debian Chromium driven by Playwright.

The simulated demo cloud (the demo app registered, its callback ``http://localhost:13131/``) is served on loopback by
the test; JupyterLab runs the connect notebook in this Python environment, and the notebook finds the served cloud
through ``$JIRA_LAB_SIM_URL``. The test does what a person does: runs the cells down to the form, types the app's id
and secret, clicks Authorize, follows the consent link to the simulated consent page, picks the technical user and
the site, presses Accept, and reads what the form reports; then runs the rest of the notebook. Expected values come
from the served site (its name, URL, cloud id, the technical user) and from the authorization server's own record of
the consent, never from the widget.

Waiting is on page states (Playwright's ``expect``), bounded by generous timeouts; nothing sleeps. Screenshots of a
failing test, its console and JupyterLab's log are kept in ``test-artifacts/`` (see ``tests/browser.py``).

Then the HTML report of the demo site's technical user (written from the DuckDB file both demo principals loaded) is
opened in the same Chromium: its sections render and link, its checklist carries the audit's statuses, its charts are
drawn, it asks for nothing but itself, and it fits a phone's width. (The notebook's unattended run, without a browser,
is in ``tests/test_notebooks.py``.)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, ViewportSize, expect
from report_world import demo_world

from jira_lab.audits.preflight import AuditResults
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.report import write_report
from jira_lab.sim import SimCloud
from jira_lab.sim.authserver import DEMO_CALLBACK_URL, OAuthApp, register_demo_app
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site, User
from jira_lab.sim.server import SimURLs, serve

if TYPE_CHECKING:
    from browser import JupyterLab

pytest_plugins = ["browser"]  # the browser, JupyterLab and the artifacts of a failing test (tests/browser.py)
pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01-connect.ipynb"
FORM_TAG = "connect-form"
REPORT_SECTIONS = ("#preflight", "#gaps", "#coverage", "#changes")
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Demo:
    """The served demo cloud and the facts the test checks against."""

    cloud: SimCloud
    urls: SimURLs
    app: OAuthApp
    site: Site
    technical_user: User


@pytest.fixture
def demo() -> Iterator[Demo]:
    """The demo site served on loopback with the demo app registered; the app's callback port must be free."""
    callback_port = httpx.URL(DEMO_CALLBACK_URL).port
    assert callback_port is not None
    if not port_is_free(callback_port):
        pytest.fail(
            f"port {callback_port} (the demo app's callback {DEMO_CALLBACK_URL}) is taken: the notebook's form must "
            "listen there; stop whatever holds it (a `jira-lab token` waiting for a consent?)",
            pytrace=False,
        )
    site = generate_site("demo", seed=0)
    cloud = SimCloud(site)
    app = register_demo_app(cloud, REQUIRED_SCOPES)
    with serve(cloud) as urls:
        yield Demo(cloud, urls, app, site, site.users[site.accounts["technical_user"]])


@pytest.fixture
def lab(demo: Demo, tmp_path: Path, jupyter_lab: Callable[..., JupyterLab]) -> JupyterLab:
    """JupyterLab over a folder holding a copy of the connect notebook, pointed at the served demo cloud."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    return jupyter_lab(root, env={"JIRA_LAB_SIM_URL": demo.urls.base})


def port_is_free(port: int) -> bool:
    """Whether the callback server could listen on ``port`` (like it, ignoring connections in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class NotebookPage:
    """The connect notebook open in JupyterLab, driven from the keyboard as a person would."""

    def __init__(self, page: Page, cells: list[dict[str, Any]]) -> None:
        self.page = page
        self.source_cells = cells
        self.cells = page.locator(".jp-Notebook .jp-Cell")

    def wait_until_ready(self) -> None:
        """Every cell shown and the kernel started and idle."""
        expect(self.cells).to_have_count(len(self.source_cells))
        expect(self.page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle"))).to_be_visible()

    def run(self, first: int, last: int) -> None:
        """Run cells ``first`` to ``last`` (inclusive) with Shift+Enter, starting from ``first`` selected."""
        self.select(first)
        for _ in range(first, last + 1):
            self.page.keyboard.press("Shift+Enter")

    def select(self, index: int) -> None:
        """Select a cell in command mode (a click on a rendered text or on a code cell's prompt)."""
        cell = self.cells.nth(index)
        target = ".jp-RenderedMarkdown" if self.source_cells[index]["cell_type"] == "markdown" else ".jp-InputPrompt"
        cell.locator(target).click()

    def output(self, index: int) -> Locator:
        """The output area of a cell."""
        return self.cells.nth(index).locator(".jp-OutputArea")

    def index_of(self, tag: str) -> int:
        """The index of the cell tagged ``tag``."""
        return next(i for i, cell in enumerate(self.source_cells) if tag in cell.get("metadata", {}).get("tags", []))


def test_connect_notebook_in_a_real_browser(browser: BrowserContext, lab: JupyterLab, demo: Demo) -> None:
    page = browser.new_page()
    page.goto(lab.url(f"lab/tree/{NOTEBOOK.name}"))
    notebook = NotebookPage(page, json.loads(NOTEBOOK.read_text())["cells"])
    notebook.wait_until_ready()

    form_cell = notebook.index_of(FORM_TAG)
    notebook.run(0, form_cell)
    form = notebook.output(form_cell)
    authorize = form.get_by_role("button", name="Authorize")
    expect(authorize).to_be_visible()

    # the app's credentials, typed; the secret leaves the page once committed (Enter) and lives in the kernel only
    form.get_by_label("Client ID").fill(demo.app.client_id)
    secret = form.get_by_label("Client secret")
    secret.fill(demo.app.client_secret)
    secret.press("Enter")
    expect(secret).to_have_attribute("placeholder", re.compile(r"entered; held in kernel memory"))
    expect(secret).to_have_value("")

    authorize.click()
    link = form.get_by_role("link", name=re.compile("Open Atlassian's consent page"))
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href is not None and href.startswith(f"{demo.urls.auth_url}/authorize?"), href

    with browser.expect_page() as opened:
        link.click()
    consent = opened.value
    expect(consent.locator("#app-name")).to_have_text(demo.app.name)
    consent.locator("#user").select_option(demo.technical_user.account_id)
    consent.locator("#site").select_option(demo.site.cloud_id)
    consent.locator("#accept").click()
    expect(consent.locator("#outcome")).to_have_text("Authorization received")
    assert consent.url.startswith(DEMO_CALLBACK_URL), consent.url

    # what the form reports, against the served site and the technical user
    expect(form).to_contain_text(f"Connected to {demo.site.name}.")
    summary = form.locator("table")
    site_row = summary.locator("tr", has=page.locator("th", has_text=re.compile("^site$")))
    for fact in (demo.site.name, demo.urls.site_url(demo.site), demo.site.cloud_id):
        expect(site_row).to_contain_text(fact)
    user_row = summary.locator("tr", has=page.locator("th", has_text=re.compile("^user$")))
    expect(user_row).to_contain_text(demo.technical_user.display_name)
    expect(user_row).to_contain_text(demo.technical_user.account_id)
    scopes_row = summary.locator("tr", has=page.locator("th", has_text=re.compile("^scopes$")))
    expect(scopes_row).to_contain_text(f"all {len(REQUIRED_SCOPES)} required scopes granted")

    # the authorization server saw a person's decision: this account, this site, not auto-consent
    decision = demo.cloud.auth.consents[-1]
    assert (decision.client_id, decision.account_id, decision.cloud_ids, decision.decision, decision.automatic) == (
        demo.app.client_id,
        demo.technical_user.account_id,
        (demo.site.cloud_id,),
        "accept",
        False,
    )
    assert demo.cloud.auth.request_count("authorization_code") == 1

    # the rest of the notebook uses the connection; the first API calls answer as the technical user
    notebook.run(form_cell + 1, len(notebook.source_cells) - 1)
    last_code = max(i for i, cell in enumerate(notebook.source_cells) if cell["cell_type"] == "code")
    expect(notebook.output(last_code)).to_contain_text(
        f"{demo.technical_user.display_name}, account id {demo.technical_user.account_id}"
    )
    expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    assert demo.app.client_secret not in page.content()


# -- the HTML report --------------------------------------------------------------------------------------------------
@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, AuditResults]:
    """The report of the demo site's technical user, from the DuckDB file both demo principals loaded (3LO)."""
    results = demo_world().results()
    return write_report(results, path=tmp_path / "report.html"), results


def test_report_renders_in_a_real_browser(browser: BrowserContext, report: tuple[Path, AuditResults]) -> None:
    path, results = report
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(path.as_uri())

    for section in REPORT_SECTIONS:
        expect(page.locator(section)).to_be_visible()
        expect(page.locator(f"{section} h2").first).to_be_visible()
    # the section links work: each brings its section into view
    sections_nav = page.get_by_role("navigation", name="Sections")
    for name, section in (("Changes", "#changes"), ("Coverage", "#coverage"), ("Checklist", "#preflight")):
        sections_nav.get_by_role("link", name=name).click()
        expect(page.locator(section)).to_be_in_viewport()

    # one checklist row per check of the audit, each with the audit's status
    rows = page.locator("#preflight-checks tbody tr")
    expect(rows).to_have_count(results.checks.height)
    assert [row.get_attribute("data-status") for row in rows.all()] == results.checks["status"].to_list()

    # the coverage charts are drawn (inline SVG with a size), not left as empty boxes
    charts = page.locator("#coverage figure svg")
    assert charts.count() >= 1
    for chart in charts.all():
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, box

    # self-contained: the page asked for nothing but itself
    assert requests == [path.as_uri()] and not failed, (requests, failed)

    # on a phone the page does not scroll sideways (wide tables scroll inside their own box)
    page.set_viewport_size(PHONE)
    for section in REPORT_SECTIONS:
        expect(page.locator(section)).to_be_visible()
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= PHONE["width"], f"the page is {page_width}px wide on a {PHONE['width']}px screen"
