"""``jira-lab demo``: the whole product on the simulated demo site, run twice in a fresh folder.

What the command prints and the report it writes are checked against the audits recomputed here from the DuckDB file
it leaves behind (never against text copied from the code), and against the simulated site's own permission engine.
The second run must reuse the tokens and the file and make few requests, with the same results. No token may leak.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import polars as pl
import pytest
from click.testing import CliRunner

from jira_lab import store
from jira_lab.audits import model
from jira_lab.audits.preflight import PASS, AuditResults, run_audit
from jira_lab.auth.connect import start_authorization
from jira_lab.auth.tokens import FileTokenStore, MemoryTokenStore
from jira_lab.cli import main
from jira_lab.demo import (
    DATABASE_NAME,
    REPORT_NAME,
    SIM_STATE_NAME,
    TOKENS_NAME,
    connect,
    run_demo,
    serve_demo_site,
)
from jira_lab.sim.authserver import DEMO_CLIENT_SECRET
from jira_lab.sim.generator import generate_site
from jira_lab.sim.permissions import PermissionEngine

KINDS = ("issue", "comment", "worklog")
NUMBER = r"[\d,]+"


@dataclass
class Run:
    output: str
    report: str
    #: every access and refresh token in the token store after the run
    secrets: set[str]


@dataclass
class Demo:
    folder: Path
    first: Run
    second: Run
    #: the audits recomputed from the file after the first run
    audit: AuditResults

    @property
    def database(self) -> Path:
        return self.folder / DATABASE_NAME


def stored_secrets(folder: Path) -> set[str]:
    tokens = FileTokenStore(folder / TOKENS_NAME)
    found = set()
    stored = tokens.keys()  # a TokenStore is no mapping: keys() is its API
    for key in stored:
        token = tokens.load(key)
        assert token is not None
        found.add(token.access_token)
        if token.refresh_token:
            found.add(token.refresh_token)
    return found


def technical_user_email() -> str:
    site = generate_site("demo")
    email = site.users[site.accounts["technical_user"]].email
    assert email is not None
    return email


def recompute_audit(database: Path) -> AuditResults:
    conn = store.connect(database, read_only=True)
    try:
        return run_audit(model.from_db(conn), technical_user_email())
    finally:
        conn.close()


def run_command(folder: Path) -> Run:
    result = CliRunner().invoke(main, ["demo", "--dir", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    return Run(result.output, (folder / REPORT_NAME).read_text(encoding="utf-8"), stored_secrets(folder))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("demo") / "fresh"  # does not exist yet: the command creates it
    first = run_command(folder)
    audit = recompute_audit(folder / DATABASE_NAME)
    return Demo(folder, first, run_command(folder), audit)


# -- reading the summary -------------------------------------------------------------------------------------------
def number(text: str) -> int:
    return int(text.replace(",", ""))


def section(output: str, heading: str) -> list[str]:
    """The lines of the block that starts with ``heading``, up to the next blank line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line)
    return block


def printed_checks(output: str) -> dict[int, str]:
    found = re.findall(r"^  (FAIL|CANNOT TELL)\s+(\d)  ", output, re.M)
    return {int(check): status.lower() for status, check in found}


def printed_hidden(output: str) -> dict[str, tuple[int, int]]:
    line = section(output, "Hidden from")[0]
    return {
        kind: (number(hidden), number(items))
        for hidden, items, kind in re.findall(rf"({NUMBER}) of ({NUMBER}) (\w+)s", line)
    }


def printed_fixes(output: str) -> list[tuple[int, str, int]]:
    found = re.findall(rf"^  (\d+)\. (.+) \(unlocks ({NUMBER}) items\)$", output, re.M)
    return [(int(step), target, number(unlocked)) for step, target, unlocked in found]


def printed_coverage(output: str) -> dict[str, dict[str, tuple[int, int]]]:
    """project key -> item kind -> (visible, items), from the coverage table."""
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for line in section(output, "Coverage per project")[2:]:
        key, rest = line.split(maxsplit=1)
        cells = re.findall(rf"({NUMBER}) of ({NUMBER})|–", rest)
        assert len(cells) == len(KINDS), line
        table[key] = {kind: (number(v), number(n)) for kind, (v, n) in zip(KINDS, cells, strict=True) if v}
    return table


def printed_loads(output: str) -> list[tuple[int, str, int]]:
    """(load id, kind, requests) of each load, in order."""
    found = re.findall(r"load (\d+) \(([^)]+)\): (\d+) requests", output)
    return [(int(load_id), kind, int(requests)) for load_id, kind, requests in found]


def printed_path(output: str, label: str) -> Path:
    match = re.search(rf"^{label}:\s+(\S+)", output, re.M)
    assert match is not None, output
    return Path(match.group(1))


# -- the audits' own numbers ---------------------------------------------------------------------------------------
def site_coverage(audit: AuditResults) -> dict[str, tuple[int, int]]:
    rows = audit.coverage.filter(pl.col("dimension") == "site")
    return {row["item_kind"]: (row["hidden"], row["items"]) for row in rows.iter_rows(named=True)}


def project_coverage(audit: AuditResults) -> dict[str, dict[str, tuple[int, int]]]:
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for row in audit.coverage.filter(pl.col("dimension") == "project").iter_rows(named=True):
        table.setdefault(row["project_key"], {})[row["item_kind"]] = (row["visible"], row["items"])
    return table


def ordered_fixes(audit: AuditResults) -> list[tuple[int, str, int]]:
    steps = audit.gaps.fixes.filter(pl.col("step").is_not_null()).sort("step")
    return [(row["step"], row["target"], row["items_unlocked"]) for row in steps.iter_rows(named=True)]


def engine_coverage() -> dict[str, dict[str, tuple[int, int]]]:
    """project key -> item kind -> (visible to the technical user, items), from the simulator's permission engine."""
    site = generate_site("demo")
    engine = PermissionEngine(site).snapshot()
    account = site.accounts["technical_user"]
    counts: dict[str, dict[str, list[int]]] = {}
    for issue in site.issues.values():
        cells = counts.setdefault(site.projects[issue.project_id].key, {kind: [0, 0] for kind in KINDS})
        browsable = engine.can_browse_issue(account, issue)
        cells["issue"][0] += browsable
        cells["issue"][1] += 1
        for kind, entries in (("comment", issue.comments), ("worklog", issue.worklogs)):
            cells[kind][0] += sum(engine.can_see_item(account, issue, e.visibility) for e in entries)
            cells[kind][1] += len(entries)
    return {key: {kind: (v, n) for kind, (v, n) in cells.items() if n} for key, cells in counts.items()}


# -- the summary ---------------------------------------------------------------------------------------------------
def test_the_summary_states_the_audits_numbers(demo: Demo) -> None:
    audit = demo.audit
    output = demo.first.output
    not_passing = {row["check"]: row["status"] for row in audit.checks.iter_rows(named=True) if row["status"] != PASS}
    assert not_passing  # the demo site's technical user is misconfigured on purpose
    assert printed_checks(output) == not_passing
    assert printed_hidden(output) == site_coverage(audit)
    assert printed_fixes(output) == ordered_fixes(audit)
    assert printed_coverage(output) == project_coverage(audit)


def test_the_summary_matches_what_the_simulated_site_hides(demo: Demo) -> None:
    truth = engine_coverage()
    assert printed_coverage(demo.first.output) == truth
    hidden = printed_hidden(demo.first.output)
    for kind in KINDS:
        visible = sum(cells[kind][0] for cells in truth.values() if kind in cells)
        items = sum(cells[kind][1] for cells in truth.values() if kind in cells)
        assert hidden[kind] == (items - visible, items)


def test_the_summary_names_the_files_and_the_next_commands(demo: Demo) -> None:
    output = demo.first.output
    assert printed_path(output, "Database").resolve() == demo.database.resolve()
    assert printed_path(output, "Report").resolve() == (demo.folder / REPORT_NAME).resolve()
    assert printed_path(output, "Tokens").resolve() == (demo.folder / TOKENS_NAME).resolve()
    email = technical_user_email()
    assert re.search(rf"jira-lab audit --db \S*{DATABASE_NAME} --user {re.escape(email)}", output)
    assert re.search(rf"jira-lab report --db \S*{DATABASE_NAME} --user {re.escape(email)}", output)
    assert "jira-lab demo --serve" in output and "notebooks/" in output


def test_the_first_run_consents_as_both_principals_and_loads_everything(demo: Demo) -> None:
    connected = section(demo.first.output, "Connected with OAuth 2.0")[1:]
    assert len(connected) == 2 and all("consented" in line for line in connected)
    loads = printed_loads(demo.first.output)
    conn = store.connect(demo.database, read_only=True)
    try:
        logged = dict(
            conn.execute("SELECT load_id, requests FROM _jira_lab_loads WHERE status = 'succeeded'").fetchall()
        )
        principals = {row[0] for row in conn.execute("SELECT principal_id FROM _jira_lab_loads").fetchall()}
    finally:
        conn.close()
    assert [kind for _, kind, _ in loads[:2]] == ["everything read", "everything read"]
    for load_id, _, requests in loads:
        assert logged[load_id] == requests
    site = generate_site("demo")
    assert principals == {site.accounts["analyst"], site.accounts["technical_user"]}


# -- the report ----------------------------------------------------------------------------------------------------
class Elements(HTMLParser):
    """Every start tag's attributes, in document order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append({name: value or "" for name, value in attrs})

    def by_id(self, element_id: str) -> dict[str, str]:
        return next(attrs for attrs in self.found if attrs.get("id") == element_id)


def test_the_report_carries_the_audits_numbers(demo: Demo) -> None:
    audit = demo.audit
    page = Elements(demo.first.report)
    for check in audit.checks.iter_rows(named=True):
        row = page.by_id(f"check-{check['check']}")
        assert (row["data-status"], int(row["data-failed"])) == (check["status"], check["failed"])
    for kind, (hidden, items) in site_coverage(audit).items():
        card = page.by_id(f"total-{kind}")
        assert (int(card["data-hidden"]), int(card["data-items"])) == (hidden, items)
    cells = {
        (attrs["data-key"], attrs["data-kind"]): (int(attrs["data-visible"]), int(attrs["data-items"]))
        for attrs in page.found
        if attrs.get("data-dimension") == "project" and "data-kind" in attrs
    }
    project_rows = audit.coverage.filter(pl.col("dimension") == "project")
    assert cells == {
        (row["key"], row["item_kind"]): (row["visible"], row["items"]) for row in project_rows.iter_rows(named=True)
    }
    steps = [(int(a["data-step"]), int(a["data-items-unlocked"])) for a in page.found if a.get("data-step")]
    assert steps == [(step, unlocked) for step, _, unlocked in ordered_fixes(audit)]
    assert int(page.by_id("hidden-items")["data-total"]) == audit.gaps.gaps.height


# -- the second run ------------------------------------------------------------------------------------------------
def test_a_second_run_reuses_the_tokens_and_the_file_and_asks_for_little(demo: Demo) -> None:
    connected = section(demo.second.output, "Connected with OAuth 2.0")[1:]
    assert len(connected) == 2 and all("stored token reused" in line for line in connected)
    first, second = printed_loads(demo.first.output), printed_loads(demo.second.output)
    assert [load_id for load_id, _, _ in second] == [3, 4]  # the same file, two more loads
    assert [kind for _, kind, _ in second] == ["incremental", "incremental"]
    for (_, _, before), (_, _, after) in zip(first, second, strict=True):
        assert after * 5 < before


def data_attributes(page: str) -> list[dict[str, str]]:
    """The ``data-*`` attributes of every element that has some, in document order."""
    found = ({k: v for k, v in attrs.items() if k.startswith("data-")} for attrs in Elements(page).found)
    return [attrs for attrs in found if attrs]


def test_a_second_run_finds_the_same(demo: Demo) -> None:
    for heading in ("Checklist", "Hidden from", "Coverage per project"):
        assert section(demo.second.output, heading) == section(demo.first.output, heading)
    first_page, second_page = data_attributes(demo.first.report), data_attributes(demo.second.report)
    assert len(first_page) > 100
    assert second_page == first_page


# -- secrets -------------------------------------------------------------------------------------------------------
def database_texts_containing(database: Path, secrets: set[str]) -> list[str]:
    """``table.column`` of every VARCHAR or JSON column holding one of ``secrets``."""
    conn = store.connect(database, read_only=True)
    try:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') ORDER BY ALL"
        ).fetchall()
        assert len(columns) > 50  # the scan covers the whole file
        found = []
        for table, column in columns:
            condition = " OR ".join(f'contains(CAST("{column}" AS VARCHAR), ?)' for _ in secrets)
            (hits,) = conn.execute(f'SELECT count(*) FROM "{table}" WHERE {condition}', list(secrets)).fetchone() or (
                0,
            )
            if hits:
                found.append(f"{table}.{column}")
        return found
    finally:
        conn.close()


def test_no_token_or_client_secret_leaks(demo: Demo) -> None:
    tokens = demo.first.secrets | demo.second.secrets
    assert len(tokens) >= 4  # an access and a refresh token for each principal
    secrets = tokens | {DEMO_CLIENT_SECRET}
    store_file = FileTokenStore(demo.folder / TOKENS_NAME)
    shown = [demo.first.output, demo.second.output, demo.first.report, demo.second.report, repr(store_file)]
    stored = store_file.keys()  # a TokenStore is no mapping: keys() is its API
    shown += [repr(store_file.load(key)) for key in stored]
    for text in shown:
        assert not any(secret in text for secret in secrets)
    assert database_texts_containing(demo.database, secrets) == []
    # the scan finds what is there: the technical user's email is in the loaded users
    assert database_texts_containing(demo.database, {technical_user_email()})
    for name in (TOKENS_NAME, SIM_STATE_NAME):
        assert stat.S_IMODE(os.stat(demo.folder / name).st_mode) == 0o600


# -- the simulated site across runs ---------------------------------------------------------------------------------
def test_a_token_the_restarted_site_no_longer_honours_leads_to_a_new_consent(tmp_path: Path) -> None:
    tokens = FileTokenStore(tmp_path / TOKENS_NAME)
    with serve_demo_site(tmp_path) as site:
        _, consented = connect(site, "technical_user", tokens)
        assert consented
    with serve_demo_site(tmp_path) as site:  # remembers what it issued: the stored token is honoured
        _, consented = connect(site, "technical_user", tokens)
        assert not consented
    (tmp_path / SIM_STATE_NAME).write_text("{not json", encoding="utf-8")
    with serve_demo_site(tmp_path) as site:  # a damaged memory is no memory
        _, consented = connect(site, "technical_user", tokens)
        assert consented
    (tmp_path / SIM_STATE_NAME).unlink()
    with serve_demo_site(tmp_path) as site:  # forgot everything, as a new Atlassian would not
        connection, consented = connect(site, "technical_user", tokens)
        assert consented
        with connection.client() as jira:
            me = jira.get("/rest/api/3/myself")
        assert me.status_code == 200
        assert me.json()["accountId"] == site.account("technical_user")


def test_each_principal_gets_its_own_token_and_the_served_site_is_left_alone(tmp_path: Path) -> None:
    tokens = MemoryTokenStore()
    with serve_demo_site(tmp_path) as site:
        site.cloud.auth.auto_consent = None  # as `jira-lab demo --serve` leaves it: the consent page for people
        for role in ("analyst", "technical_user"):
            connection, consented = connect(site, role, tokens)
            assert consented and connection.account_id == site.account(role)
        stored = tokens.keys()  # a TokenStore is no mapping: keys() is its API
        assert {key.account_id for key in stored} == {site.account("analyst"), site.account("technical_user")}
        assert site.cloud.auth.auto_consent is None
        pending = start_authorization(
            site.app.client_id, redirect_uri=site.app.callback_url, auth_url=site.urls.auth_url
        )
        consent_page = httpx.get(pending.url)
        assert consent_page.status_code == 200  # no auto-consent left behind: people get the consent page
        assert 'id="accept"' in consent_page.text


def test_run_demo_refuses_a_folder_other_than_the_served_sites(tmp_path: Path) -> None:
    with serve_demo_site(tmp_path / "served") as site, pytest.raises(ValueError, match="was served for"):
        run_demo(tmp_path / "elsewhere", site=site)
    assert not (tmp_path / "elsewhere").exists()
