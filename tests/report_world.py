"""The demo site loaded through the real OAuth 2.0 (3LO) flow, shared by the report, export and pseudonymization tests.

The simulated demo cloud registers an app with a random client secret; the analyst and then the technical user each
consent (auto-consent), the code is exchanged for tokens stored in a token file, and each loads the site through the
API gateway with its Bearer token into one DuckDB file. The world keeps every secret that existed in the process
(client secret, access and refresh tokens, the consent ``state`` and code, the accounts' API tokens) so tests can
search the outputs for them. Built once per test process: loading takes a few seconds.
"""

from __future__ import annotations

import atexit
import functools
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from jira_lab import store
from jira_lab.audits import model
from jira_lab.audits.preflight import AuditResults, run_audit
from jira_lab.auth.connect import complete_authorization, start_authorization
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore
from jira_lab.client import JiraClient
from jira_lab.load import load
from jira_lab.sim import SimCloud
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

CALLBACK = "http://localhost:13131/"


@dataclass(frozen=True)
class ReportWorld:
    """The loaded demo site: its file, the site itself, its two principals and every secret seen on the way."""

    folder: Path
    db: Path
    site: Site
    analyst: str
    technical_user: str
    secrets: tuple[str, ...]

    @property
    def technical_email(self) -> str:
        email = self.site.users[self.technical_user].email
        assert email is not None
        return email

    def tables(self) -> model.SiteTables:
        conn = store.connect(self.db, read_only=True)
        try:
            return model.from_db(conn)
        finally:
            conn.close()

    def results(self) -> AuditResults:
        """The audit of the technical user, computed here (the report is compared with it)."""
        return _results(self.db, self.technical_user)


@functools.cache
def _results(db: Path, technical_user: str) -> AuditResults:
    conn = store.connect(db, read_only=True)
    try:
        return run_audit(model.from_db(conn), technical_user)
    finally:
        conn.close()


def _consent_and_load(
    cloud: SimCloud, http: httpx.Client, conn: store.Connection, account_id: str, token_file: Path, app: object
) -> list[str]:
    """One principal's consent (auto), code exchange and load; the secrets it handled."""
    client_id, client_secret = app.client_id, app.client_secret  # type: ignore[attr-defined]
    cloud.auth.set_auto_consent(account_id)
    pending = start_authorization(client_id, redirect_uri=CALLBACK)
    consent = http.get(pending.url)
    assert consent.status_code == 302, consent.text
    redirect = consent.headers["location"]
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    authorization = complete_authorization(
        pending, client_secret, redirect, store=FileTokenStore(token_file), http=http
    )
    connection = authorization.connect()
    client = JiraClient(
        connection.api_base, auth=connection.auth, transport=cloud.transport(), scopes=connection.token.scopes
    )
    summary = load(conn, client, progress=False)
    assert summary.status == "succeeded", summary
    token = connection.token
    return [pending.state, code, token.access_token, *([token.refresh_token] if token.refresh_token else [])]


@functools.cache
def demo_world() -> ReportWorld:
    """The demo site, loaded by its analyst and its technical user through 3LO (built once per process)."""
    folder = Path(tempfile.mkdtemp(prefix="jira-lab-report-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    site = generate_site("demo")
    cloud = SimCloud(site)
    app = cloud.auth.register_app(
        "jira-lab report tests", callback_url=CALLBACK, scopes=REQUIRED_SCOPES, client_secret=secrets.token_urlsafe(40)
    )
    analyst, technical_user = site.accounts["analyst"], site.accounts["technical_user"]
    found = [app.client_secret]
    db = folder / "demo.duckdb"
    conn = store.connect(db)
    try:
        with httpx.Client(transport=cloud.transport()) as http:
            for account_id in (analyst, technical_user):
                found += _consent_and_load(cloud, http, conn, account_id, folder / "tokens.json", app)
    finally:
        conn.close()
    found += [user.api_token for user in site.users.values() if user.api_token]
    return ReportWorld(folder, db, site, analyst, technical_user, tuple(found))


def engine_hidden_count(site: Site, account_id: str) -> dict[str, int]:
    """Issues, comments and worklogs the simulator's own permission engine hides from the account, per kind."""
    engine = PermissionEngine(site).snapshot()
    counts = {"issue": 0, "comment": 0, "worklog": 0}
    for issue in site.issues.values():
        counts["issue"] += not engine.can_browse_issue(account_id, issue)
        for kind, entries in (("comment", issue.comments), ("worklog", issue.worklogs)):
            counts[kind] += sum(not engine.can_see_item(account_id, issue, entry.visibility) for entry in entries)
    return counts


# -- reading a report back ---------------------------------------------------------------------------------------
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


@dataclass
class Element:
    tag: str
    attributes: dict[str, str | None]
    parent: Element | None
    text: str = ""

    def data(self, name: str) -> str | None:
        return self.attributes.get(f"data-{name}")


class Page(HTMLParser):
    """A parsed page: every element with its attributes and text, and any markup that did not nest properly."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.errors: list[str] = []
        self.doctype: str | None = None
        self._open: list[Element] = []
        self.feed(text)
        self.close()
        if self._open:
            self.errors.append(f"unclosed: {[element.tag for element in self._open]}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self._open[-1] if self._open else None)
        self.elements.append(element)
        if tag not in VOID_ELEMENTS:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs), self._open[-1] if self._open else None))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1].tag != tag:
            self.errors.append(f"</{tag}> closes {self._open[-1].tag if self._open else 'nothing'}")
            return
        self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def by_id(self, element_id: str) -> Element:
        found = [element for element in self.elements if element.attributes.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def with_data(self, name: str) -> list[Element]:
        return [element for element in self.elements if f"data-{name}" in element.attributes]

    def inside(self, ancestor: Element, tag: str | None = None) -> list[Element]:
        def descends(element: Element) -> bool:
            parent = element.parent
            while parent is not None:
                if parent is ancestor:
                    return True
                parent = parent.parent
            return False

        return [element for element in self.elements if (tag is None or element.tag == tag) and descends(element)]

    @property
    def text(self) -> str:
        html_element = [element for element in self.elements if element.tag == "html"]
        return html_element[0].text if html_element else ""
