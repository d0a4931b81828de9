"""The whole product in one call: ``run_demo()`` is what ``jira-lab demo`` does, on the simulated ``demo`` site.

::

    from jira_lab.demo import run_demo
    result = run_demo("jira-lab-demo")          # serves the simulated site, consents, loads, audits, reports
    print("\\n".join(result.summary_lines()))
    result.audit.checks                         # every audit frame (jira_lab.audits.preflight.AuditResults)

It runs the same code a real site would: the simulated Jira Cloud is served over loopback HTTP with Atlassian's rate
limits, the OAuth 2.0 (3LO) consent runs for the analyst and for the technical user (the simulated consent page
answers at once: auto-consent), both principals are loaded into one DuckDB file, every audit runs on that file and
the HTML report is written next to it. Nothing is configured and no account is needed.

The folder (``./jira-lab-demo`` by default) keeps what makes a second run cheap and incremental:

* ``demo.duckdb``: the loaded site; a second run reads only what changed (a dozen requests per principal);
* ``tokens.json``: the two principals' tokens (mode 0600, never printed); a second run reuses them;
* ``simulated-atlassian.json``: what the simulated authorization server issued (mode 0600). Atlassian remembers its
  grants across any restart; a simulated cloud started again needs this file to honour the stored tokens. Without it
  (or when a token was refused) the demo simply consents again;
* ``report.html``: the report, rewritten on every run.

:func:`serve_demo_site` starts the simulated site alone (``jira-lab demo --serve`` keeps it up for the notebooks;
:meth:`DemoSite.environment` is what they read to find it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from jira_lab import store as duckdb_store
from jira_lab.audits import model
from jira_lab.audits.preflight import FAIL, PASS, AuditResults, run_audit
from jira_lab.auth.connect import Connection, complete_authorization, connect_from_store, start_authorization
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, TokenStore
from jira_lab.client import SyncJiraClient
from jira_lab.errors import AuthError, JiraApiError
from jira_lab.load import LoadSummary, load
from jira_lab.progress import ProgressOption
from jira_lab.sim.authserver import OAuthApp, register_demo_app
from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.generator import generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Site
from jira_lab.sim.server import SimURLs, serve

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_DIRECTORY",
    "PRINCIPALS",
    "REPORT_NAME",
    "SIM_STATE_NAME",
    "TOKENS_NAME",
    "DemoResult",
    "DemoSite",
    "PrincipalRun",
    "connect",
    "run_demo",
    "serve_demo_site",
]

DEFAULT_DIRECTORY = Path("jira-lab-demo")
DATABASE_NAME = "demo.duckdb"
REPORT_NAME = "report.html"
TOKENS_NAME = "tokens.json"
SIM_STATE_NAME = "simulated-atlassian.json"
#: The demo site's roles that load it, in the order they load.
PRINCIPALS = ("analyst", "technical_user")
_ROLE_WORDS = {"analyst": "analyst", "technical_user": "technical user"}
_KINDS = ("issue", "comment", "worklog")
#: Seconds one HTTP request of the consent may take.
_HTTP_TIMEOUT = 30.0
_STATE_FILE_MODE = 0o600


# -- the simulated site ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DemoSite:
    """The simulated demo site while it is served.

    Attributes:
        site: the simulated site (its data, accounts and story).
        cloud: the simulated cloud serving it (rate limits on, as Jira).
        urls: where it answers on loopback.
        app: the demo connector's OAuth app (its secret is simulated and opens nothing else).
        directory: the demo's folder.
    """

    site: Site
    cloud: SimCloud
    urls: SimURLs
    app: OAuthApp
    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / DATABASE_NAME

    @property
    def token_file(self) -> Path:
        return self.directory / TOKENS_NAME

    def account(self, role: str) -> str:
        """The account id of one of the site's well-known roles (``analyst``, ``technical_user`` ...)."""
        return self.site.accounts[role]

    def email(self, role: str) -> str:
        user = self.site.users[self.account(role)]
        if user.email is None:
            raise ValueError(f"the demo's {role} has no email")
        return user.email

    def environment(self) -> dict[str, str]:
        """The variables a notebook reads to find the served site, its OAuth app and the demo's files.

        ``JIRA_LAB_SIM_URL`` is the one origin answering for all three Atlassian hosts; the client secret is the
        demo app's simulated one, which opens nothing outside this simulated cloud.
        """
        return {
            "JIRA_LAB_SITE_URL": self.urls.site_url(self.site),
            "JIRA_LAB_API_URL": self.urls.api_url,
            "JIRA_LAB_AUTH_URL": self.urls.auth_url,
            "JIRA_LAB_CLIENT_ID": self.app.client_id,
            "JIRA_LAB_CLIENT_SECRET": self.app.client_secret,
            "JIRA_LAB_DB": str(self.database.resolve()),
            "JIRA_LAB_TOKEN_STORE": str(self.token_file.resolve()),
            "JIRA_LAB_SIM_URL": self.urls.base,
        }

    def save_state(self) -> Path:
        """Keep what the simulated authorization server issued, so the next run honours the stored tokens."""
        return _write_private_json(self.directory / SIM_STATE_NAME, self.cloud.auth.export_state())


@contextlib.contextmanager
def serve_demo_site(
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY, *, port: int = 0, seed: int = 0
) -> Iterator[DemoSite]:
    """Serve the simulated demo site on loopback until the block ends, with Jira's rate limits and the demo app.

    The authorization server starts with what an earlier run in ``directory`` issued (when its state file is there)
    and saves it again at the end.

    Args:
        directory: the demo's folder (created if missing).
        port: the loopback port; 0 picks a free one.
        seed: the seed of the site's content (its permission model and story never change).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    site = generate_site("demo", seed=seed)
    cloud = _cloud_remembering(site, folder / SIM_STATE_NAME)
    app = register_demo_app(cloud, REQUIRED_SCOPES)
    with serve(cloud, port=port) as urls:
        demo_site = DemoSite(site, cloud, urls, app, folder)
        try:
            yield demo_site
        finally:
            demo_site.save_state()


def _cloud_remembering(site: Site, state_file: Path) -> SimCloud:
    """A cloud for ``site`` whose authorization server honours what it issued before, when that was saved."""
    cloud = SimCloud(site, limits=RateLimits())  # Atlassian's rate limits, as a real site enforces them
    try:
        saved = json.loads(state_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # none, or damaged: forgetting it only means consenting again
        return cloud
    try:
        cloud.auth.restore_state(saved)
    except ValueError:
        return SimCloud(site, limits=RateLimits())  # nothing half-restored
    return cloud


def _write_private_json(path: Path, data: Any) -> Path:
    """Write JSON readable by the owner only, atomically: it holds live (simulated) tokens."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _STATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return path


# -- connecting ----------------------------------------------------------------------------------------------------
def _consent(demo: DemoSite, role: str, store: TokenStore) -> Connection:
    """The 3LO consent as ``role``, over HTTP: authorize URL, the consent (auto), the redirect, the code exchange.

    The simulated consent page answers at once as the role's account (auto-consent) and redirects to the app's
    loopback callback URL. The redirect's address is all the client needs (as when a user pastes it), so it is read
    from the answer instead of being fetched: nothing has to listen on the callback port.
    """
    urls = demo.urls
    pending = start_authorization(
        demo.app.client_id, redirect_uri=demo.app.callback_url, auth_url=urls.auth_url, api_url=urls.api_url
    )
    previous = demo.cloud.auth.auto_consent
    demo.cloud.auth.set_auto_consent(demo.email(role), sites=[demo.site.name])
    try:
        with httpx.Client(timeout=_HTTP_TIMEOUT) as http:
            answer = http.get(pending.url)
            location = answer.headers.get("location")
            if not answer.is_redirect or location is None:
                raise AuthError(f"the simulated consent did not redirect (HTTP {answer.status_code})")
            authorization = complete_authorization(pending, demo.app.client_secret, location, store=store, http=http)
    finally:
        demo.cloud.auth.auto_consent = previous
    return authorization.connect(demo.site.cloud_id)


def connect(demo: DemoSite, role: str, store: TokenStore) -> tuple[Connection, bool]:
    """A 3LO connection to the demo site as one of its roles: the stored token when it still works, else a consent.

    Args:
        demo: the served demo site.
        role: ``analyst`` or ``technical_user`` (any role of ``demo.site.accounts`` with an Atlassian account).
        store: where the token is looked for, and where a new one goes.

    Returns:
        The connection, and whether a consent was needed.
    """
    urls = demo.urls
    try:
        connection = connect_from_store(
            demo.app.client_id,
            demo.app.client_secret,
            store=store,
            site_url=demo.site.cloud_id,
            account_id=demo.account(role),
            auth_url=urls.auth_url,
            api_url=urls.api_url,
        )
    except (AuthError, JiraApiError):  # nothing stored, or a grant this simulated cloud no longer knows
        return _consent(demo, role, store), True
    return connection, False


# -- the run -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PrincipalRun:
    """How one principal connected and what its load did.

    Attributes:
        role: ``analyst`` or ``technical_user``.
        account_id, display_name, email: the account.
        consented: ``True`` when this run went through the consent; ``False`` when the stored token was reused.
        load: the load's summary (requests, rows, time ...).
    """

    role: str
    account_id: str
    display_name: str
    email: str
    consented: bool
    load: LoadSummary


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What :func:`run_demo` did and found.

    Attributes:
        directory: the demo's folder.
        database: the DuckDB file.
        report: the HTML report.
        token_store: where the tokens are kept (its repr shows no secret).
        site_url: where the simulated site answered during the run.
        site_id: the site's id in the database (its cloud id).
        principals: the analyst's and the technical user's connection and load.
        audit: every audit of the technical user (:class:`~jira_lab.audits.preflight.AuditResults`).
        seconds: wall time of the whole run.
    """

    directory: Path
    database: Path
    report: Path
    token_store: TokenStore = field(repr=False)
    site_url: str
    site_id: str
    principals: tuple[PrincipalRun, ...]
    audit: AuditResults = field(repr=False)
    seconds: float

    @property
    def technical_user(self) -> PrincipalRun:
        return next(p for p in self.principals if p.role == "technical_user")

    @property
    def analyst(self) -> PrincipalRun:
        return next(p for p in self.principals if p.role == "analyst")

    @property
    def requests(self) -> int:
        """HTTP requests the loads sent (the consents and token checks aside)."""
        return sum(p.load.requests for p in self.principals)

    def summary_lines(self) -> list[str]:
        """The short summary ``jira-lab demo`` prints; never a secret."""
        return [
            *self._connection_lines(),
            "",
            *self._checklist_lines(),
            "",
            *self._hidden_lines(),
            "",
            *self._coverage_lines(),
            "",
            *self._file_lines(),
            "",
            *self.next_commands(),
        ]

    def _connection_lines(self) -> list[str]:
        lines = [f"Simulated Jira Cloud site 'demo' at {self.site_url} (Jira's rate limits on)", ""]
        lines.append("Connected with OAuth 2.0 (3LO), as the demo connector's app:")
        width = max(len(p.display_name) for p in self.principals)
        for run in self.principals:
            how = "consented (simulated consent page, auto-accepted)" if run.consented else "stored token reused"
            lines.append(f"  {_ROLE_WORDS[run.role]:<15} {run.display_name:<{width}}  {how}")
        lines += ["", f"Loaded into {self.database}:"]
        for run in self.principals:
            summary = run.load
            kind = "full" if summary.full_load else "everything read" if summary.covering else "incremental"
            throttled = f", {summary.rate_limited} answered 429" if summary.rate_limited else ""
            lines.append(
                f"  {run.display_name:<{width}}  load {summary.load_id} ({kind}): {summary.requests} requests"
                f"{throttled}, {summary.rows:,} rows written, {summary.seconds:.1f} s"
            )
        return lines

    def _checklist_lines(self) -> list[str]:
        checks = self.audit.checks
        failing = checks.filter(pl.col("status") != PASS)
        who = self.technical_user.display_name
        if failing.is_empty():
            return [f"Checklist for {who}: all {checks.height} checks pass."]
        failed = int((checks["status"] == FAIL).sum())
        lines = [f"Checklist for {who} (Atlassian's preconfiguration checklist): {failed} of {checks.height} fail"]
        for check in failing.iter_rows(named=True):
            lines.append(f"  {check['status'].upper():<11} {check['check']}  {check['title']}")
            lines += textwrap.wrap(
                check["evidence"] or "", width=116, initial_indent=" " * 17, subsequent_indent=" " * 19
            )
        return lines

    def _hidden_lines(self) -> list[str]:
        site = {row["item_kind"]: row for row in self.audit.coverage.filter(pl.col("dimension") == "site").to_dicts()}
        counts = ", ".join(
            f"{site[kind]['hidden']:,} of {site[kind]['items']:,} {kind}s" for kind in _KINDS if kind in site
        )
        lines = [f"Hidden from {self.technical_user.display_name}: {counts or 'nothing loaded'}"]
        steps = self.audit.gaps.fixes.filter(pl.col("step").is_not_null()).sort("step")
        if steps.height:
            lines.append("The changes that close every gap, in order:")
            for fix in steps.iter_rows(named=True):
                lines.append(f"  {fix['step']}. {fix['target']} (unlocks {fix['items_unlocked']:,} items)")
        unmet = self.audit.gaps.fixes.filter(pl.col("step").is_null())
        for row in unmet.iter_rows(named=True):
            lines.append(f"  no change can meet: {row['target']}")
        return lines

    def _coverage_lines(self) -> list[str]:
        projects = self.audit.coverage.filter(pl.col("dimension") == "project")
        by_project: dict[str, dict[str, Mapping[str, Any]]] = {}
        for row in projects.sort("label").iter_rows(named=True):
            by_project.setdefault(row["label"], {})[row["item_kind"]] = row
        lines = [f"Coverage per project (visible to {self.technical_user.display_name} of loaded):"]
        lines.append(f"  {'project':<10}" + "".join(f"{kind + 's':>22}" for kind in _KINDS))
        for label, cells in by_project.items():
            lines.append(f"  {label:<10}" + "".join(f"{_coverage_cell(cells.get(kind)):>22}" for kind in _KINDS))
        return lines

    def _file_lines(self) -> list[str]:
        path = getattr(self.token_store, "path", None)
        kept = f"{path} (readable by you only)" if path is not None else "in memory only (the next run consents again)"
        return [f"Database: {self.database}", f"Report:   {self.report}", f"Tokens:   {kept}; never printed"]

    def next_commands(self) -> list[str]:
        """The commands to try next, on this run's files."""
        user = self.technical_user.email
        database = _shell_path(self.database)
        return [
            "Next:",
            f"  uv run jira-lab audit --db {database} --user {user}",
            f"  uv run jira-lab report --db {database} --user {user} -o report.html",
            "  uv run jira-lab demo --serve      # keeps the simulated site up for the notebooks",
            "  uv run jupyter lab notebooks/     # the same story, step by step",
        ]


def _coverage_cell(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "–"
    share = f" ({row['visible_pct']:.0f}%)" if row["visible_pct"] is not None else ""
    return f"{row['visible']:,} of {row['items']:,}{share}"


def _shell_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it: shorter commands to copy."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load_as(demo: DemoSite, connection: Connection, *, progress: ProgressOption, check: list[str]) -> LoadSummary:
    with SyncJiraClient(connection.api_base, auth=connection.auth, scopes=connection.token.scopes) as client:
        return load(
            demo.database,
            client,
            site_id=demo.site.cloud_id,
            principal_id=connection.account_id,
            check_accounts=check,
            progress=progress,
        )


def run_demo(
    directory: str | os.PathLike[str] | None = None,
    *,
    site: DemoSite | None = None,
    store: TokenStore | None = None,
    progress: ProgressOption = False,
    port: int = 0,
) -> DemoResult:
    """Serve the simulated demo site, consent as the analyst and the technical user, load both, audit, report.

    Re-running it in the same folder is incremental: the stored tokens and the DuckDB file are reused.

    Args:
        directory: the demo's folder: the DuckDB file, the report and the tokens go there (created if missing);
            default: the served ``site``'s folder, else :data:`DEFAULT_DIRECTORY`.
        site: a demo site already served (by :func:`serve_demo_site`); by default one is served for the run.
        store: where the tokens go; default ``tokens.json`` in ``directory`` (mode 0600). A
            :class:`~jira_lab.auth.tokens.MemoryTokenStore` keeps them out of files (a second run then consents
            again).
        progress: load progress: ``True`` for bars, ``False`` for quiet, or a callback (see :func:`jira_lab.load.load`).
        port: the loopback port when the site is served for the run (0: a free one).

    Returns:
        The :class:`DemoResult`: the files, each principal's load, and every audit of the technical user.

    Raises:
        ValueError: ``directory`` is not the served ``site``'s folder.
    """
    if site is None:
        with serve_demo_site(directory or DEFAULT_DIRECTORY, port=port) as served:
            return run_demo(site=served, store=store, progress=progress)
    folder = site.directory
    if directory is not None and Path(directory).resolve() != folder.resolve():
        raise ValueError(f"the demo site was served for {folder}, not {directory}")
    started = time.monotonic()
    tokens: TokenStore = store if store is not None else FileTokenStore(folder / TOKENS_NAME)
    technical_user = site.account("technical_user")
    runs = []
    for role in PRINCIPALS:
        connection, consented = connect(site, role, tokens)
        site.save_state()  # a run stopped after this point still finds its tokens honoured next time
        # the analyst (a Jira administrator) also records Jira's own answers about the technical user
        check = [technical_user] if role == "analyst" else []
        summary = _load_as(site, connection, progress=progress, check=check)
        user = site.site.users[site.account(role)]
        runs.append(PrincipalRun(role, user.account_id, user.display_name, site.email(role), consented, summary))
    site.save_state()  # the loads may have refreshed tokens
    audit = _audit(site.database, site.site.cloud_id, technical_user)
    from jira_lab.report import write_report  # its charting library takes seconds to import: only when needed

    report = write_report(audit, path=folder / REPORT_NAME)
    return DemoResult(
        directory=folder,
        database=site.database,
        report=report,
        token_store=tokens,
        site_url=site.urls.site_url(site.site),
        site_id=site.site.cloud_id,
        principals=tuple(runs),
        audit=audit,
        seconds=time.monotonic() - started,
    )


def _audit(database: Path, site_id: str, technical_user: str) -> AuditResults:
    conn = duckdb_store.connect(database, read_only=True)
    try:
        tables = model.from_db(conn, site_id)
        return run_audit(tables, technical_user)
    finally:
        conn.close()
