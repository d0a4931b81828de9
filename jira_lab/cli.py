"""The ``jira-lab`` command line: thin commands that gather options and call the library."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import webbrowser
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx

from jira_lab.audits import model
from jira_lab.audits.preflight import run_audit
from jira_lab.auth.callback import DEFAULT_TIMEOUT
from jira_lab.auth.connect import authorize_in_browser, connect_from_store
from jira_lab.auth.oauth import API_URL, AUTH_URL, DEFAULT_PORT, redirect_uri_for
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, MemoryTokenStore, TokenStore
from jira_lab.errors import AuthError, JiraLabError
from jira_lab.sim.authserver import register_demo_app
from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.generator import SIZES, generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Site
from jira_lab.sim.server import SimURLs, serve, settle_heap
from jira_lab.store import connect


@click.group()
@click.version_option(package_name="jira-lab")
def main() -> None:
    """Audit what a Jira Cloud technical user can and cannot see."""


def _print_site(site: Site, urls: SimURLs) -> None:
    click.echo(f"Simulated Jira Cloud site {site.name!r} (cloud id {site.cloud_id})")
    click.echo(f"  site URL (Basic auth: email + API token): {urls.site_url(site)}")
    click.echo(f"  API gateway (3LO Bearer tokens):           {urls.gateway_url(site)}")
    click.echo(f"  accessible resources:                      {urls.api_url}/oauth/token/accessible-resources")
    click.echo()
    if site.story:
        click.echo(site.story)
        click.echo()
    click.echo("Accounts (simulated; their API tokens are not secrets):")
    for role, account_id in site.accounts.items():
        user = site.users[account_id]
        token = user.api_token or "(no API token)"
        click.echo(f"  {role:<15} {user.display_name:<22} {user.email or '':<40} {token}")
    example = site.users.get(site.accounts.get("analyst", ""))
    if example is not None and example.api_token:
        click.echo()
        click.echo("Try:")
        click.echo(f"  curl -s -u '{example.email}:{example.api_token}' {urls.site_url(site)}/rest/api/3/myself")


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM.

    Both handlers are installed explicitly: a process started in the background by a non-interactive shell inherits
    SIGINT as *ignored*, and a server that cannot be stopped with Ctrl-C or a plain ``kill`` is a nuisance.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    click.echo("\nServing until Ctrl-C.")
    try:
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Stopped.")


@main.command()
@click.option("--site", "size", type=click.Choice(sorted(SIZES)), default="demo", show_default=True, help="Which site.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated site.")
@click.option("--port", type=int, default=8080, show_default=True, help="Loopback port (0: any free port).")
@click.option("--latency", type=click.FloatRange(0), default=0.0, show_default=True, help="Seconds added per request.")
def sim(size: str, seed: int, port: int, latency: float) -> None:
    """Serve a simulated Jira Cloud site on loopback and print how to reach it."""
    site = generate_site(size, seed=seed)
    cloud = SimCloud(site, limits=RateLimits())  # Atlassian's rate limits, as a real site enforces them
    app = register_demo_app(cloud, REQUIRED_SCOPES)
    settle_heap()
    with serve(cloud, port=port, latency=latency or None) as urls:
        _print_site(site, urls)
        click.echo()
        click.echo(f"OAuth app {app.name!r} (simulated credentials), callback {app.callback_url}:")
        click.echo(
            f"  jira-lab token --api jiracloud -i {app.client_id} -s {app.client_secret} "
            f"--auth-url {urls.auth_url} --api-url {urls.api_url} --no-browser"
        )
        _wait_for_interrupt()


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("jira-lab-demo"),  # jira_lab.demo.DEFAULT_DIRECTORY, not imported here: the demo's imports are slow
    show_default=True,
    help="The demo's folder: the DuckDB file, the report and the tokens.",
)
@click.option("--serve", "keep_serving", is_flag=True, help="Keep the simulated site up afterwards (until Ctrl-C).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Loopback port (0: any free port)."
)
@click.option("--quiet", is_flag=True, help="No progress bars (the summary is still printed).")
def demo(directory: Path, keep_serving: bool, port: int, quiet: bool) -> None:
    """The whole product on the simulated demo site: consent, load, audit, report, in one command.

    Serves the simulated Jira Cloud site `demo` on loopback (with Jira's rate limits), runs the OAuth 2.0 (3LO)
    consent as the analyst and as the technical user, loads both into one DuckDB file, runs every audit, writes the
    HTML report and prints a summary. Run it again: it reuses the tokens and the file and loads only what changed.
    """
    from jira_lab.demo import run_demo, serve_demo_site

    try:
        with serve_demo_site(directory, port=port) as demo_site:
            result = run_demo(site=demo_site, progress=not quiet)
            for line in result.summary_lines():
                click.echo(line)
            if keep_serving:
                click.echo()
                _print_site(demo_site.site, demo_site.urls)
                click.echo()
                click.echo("For the notebooks (the client secret is the demo app's simulated one):")
                for name, value in demo_site.environment().items():
                    click.echo(f"  export {name}={shlex.quote(value)}")
                _wait_for_interrupt()
    except (JiraLabError, OSError) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option(
    "--api", type=click.Choice(["jiracloud"]), default="jiracloud", show_default=True, help="The API (Jira Cloud)."
)
@click.option(
    "-i", "--client-id", envvar="JIRA_LAB_CLIENT_ID", show_envvar=True, required=True, help="The app's client id."
)
@click.option(
    "-s",
    "--client-secret",
    envvar="JIRA_LAB_CLIENT_SECRET",
    show_envvar=True,
    help="The app's secret; asked for (hidden) when absent. Prefer the variable or the prompt: other users of the "
    "machine can read command lines.",
)
@click.option("--port", type=click.IntRange(1, 65535), help=f"Port of the app's callback URL (default {DEFAULT_PORT}).")
@click.option("--redirect-uri", help="The app's callback URL, when it is not http://localhost:PORT/.")
@click.option("--no-browser", is_flag=True, help="Print the consent URL instead of opening a browser.")
@click.option(
    "--print-refresh-token",
    is_flag=True,
    help="Print the refresh token for a connector, and do not store it: two users of one refresh token revoke it.",
)
@click.option("--site", "site_url", help="The site (URL or cloud id) when the grant covers several.")
@click.option("--scopes", help="Scopes to request, space or comma separated (default: all that jira-lab needs).")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the consent.",
)
@click.option("--auth-url", default=AUTH_URL, show_default=True, help="The authorization server.")
@click.option("--api-url", default=API_URL, show_default=True, help="The API gateway.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), help="The token file.")
@click.option("--check", is_flag=True, help="No consent: use the stored token (refreshing it if due) and summarise.")
def token(
    api: str,
    client_id: str,
    client_secret: str | None,
    port: int | None,
    redirect_uri: str | None,
    no_browser: bool,
    print_refresh_token: bool,
    site_url: str | None,
    scopes: str | None,
    timeout: float,
    auth_url: str,
    api_url: str,
    store_path: Path | None,
    check: bool,
) -> None:
    """Get an OAuth 2.0 (3LO) token through Atlassian's consent page, store it and summarise it.

    Opens the consent page (or prints its URL with --no-browser), catches the redirect on the app's callback URL
    http://localhost:PORT/, stores the token (in jira-lab's config directory unless --store) and prints the site, the
    user, the granted and missing scopes and the expiry. No secret is printed, except the refresh token when asked.
    """
    if check and print_refresh_token:
        raise click.UsageError("--check uses the stored token; --print-refresh-token needs a new consent")
    if redirect_uri is not None and port is not None and httpx.URL(redirect_uri).port != port:
        raise click.UsageError(f"--port {port} differs from the port of --redirect-uri {redirect_uri}")
    secret = client_secret or _ask_client_secret()
    try:
        if check:
            connection = connect_from_store(
                client_id,
                secret,
                store=FileTokenStore(store_path),
                site_url=site_url,
                auth_url=auth_url,
                api_url=api_url,
            )
            click.echo(f"The stored token of app {client_id} works.")
            _echo_summary(connection.summary())
            return
        token_file = FileTokenStore(store_path)
        store: TokenStore = MemoryTokenStore() if print_refresh_token else token_file
        redirect = redirect_uri or redirect_uri_for(port or DEFAULT_PORT)

        def show_consent_page(url: str) -> None:
            if no_browser or not webbrowser.open(url):
                click.echo("Open this URL in a browser and accept the consent:")
            else:
                click.echo("The consent page is open in your browser; if it did not appear, open this URL:")
            click.echo(url)
            click.echo(f"Waiting up to {timeout:g} s for the redirect to {redirect} ...")

        authorization = authorize_in_browser(
            client_id,
            secret,
            store=store,
            open_url=show_consent_page,
            redirect_uri=redirect,
            scopes=scopes.replace(",", " ").split() if scopes else REQUIRED_SCOPES,
            timeout=timeout,
            auth_url=auth_url,
            api_url=api_url,
        )
        kept = "not stored: it is the connector's" if print_refresh_token else f"stored in {token_file.path}"
        click.echo(f"Authorized app {client_id}; the token is {kept}.")
        _echo_summary(authorization.summary(site_url))
        if print_refresh_token:
            if authorization.token.refresh_token is None:
                raise AuthError("the consent granted no refresh token (offline_access); authorize again")
            click.echo(f"refresh token: {authorization.token.refresh_token}")
            click.echo("Give it to the connector only: if jira-lab used it too, each rotation would revoke the other.")
    except JiraLabError as error:  # AuthError, and JiraApiError when Jira refuses the stored token
        raise click.ClickException(" ".join(str(error).replace(secret, "***").split())) from None
    except httpx.RequestError as error:
        url = error.request.url.copy_with(query=None)
        raise click.ClickException(
            f"cannot reach {url}: {type(error).__name__}: {error}".replace(secret, "***")
        ) from None


@main.command()
@click.option(
    "--db", "db_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="The file."
)
@click.option("--user", "who", required=True, help="The technical user: its account id or email.")
@click.option("--site", "site_id", help="The site (its cloud id or URL) when the file holds several.")
@click.option("--analyst", help="Compare with this principal's load (default: the only other one that loaded).")
@click.option("--scopes", help="The app token's scopes (space or comma separated), when its load recorded none.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="Write every result here.")
@click.option("--format", "file_format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--strict", is_flag=True, help="Also exit non-zero when a check cannot be told from the data.")
def audit(
    db_path: Path,
    who: str,
    site_id: str | None,
    analyst: str | None,
    scopes: str | None,
    output: Path | None,
    file_format: str,
    strict: bool,
) -> None:
    """Run the preflight checklist and the gap audit of a technical user on a loaded DuckDB file.

    Prints the preflight table and the gap summary; exits with status 1 when a check fails (and, with --strict,
    when one cannot be told), so it can guard a connector's deployment; 2 when the user or site is unknown.
    """
    conn = connect(db_path, read_only=True)
    try:
        tables = model.from_db(conn, site_id)
        results = run_audit(
            tables, who, analyst=analyst, granted_scopes=scopes.replace(",", " ").split() if scopes else None
        )
    except ValueError as error:  # an unknown account or site: a usage error (2), not a failing check (1)
        raise click.UsageError(str(error)) from None
    finally:
        conn.close()
    for line in results.report_lines():
        click.echo(line)
    if output is not None:
        written = results.write(output, file_format)
        click.echo(f"\nWrote {len(written)} {file_format} files to {output}")
    if results.failed or (strict and results.undecided):
        sys.exit(1)


def _scope_list(scopes: str | None) -> list[str] | None:
    return scopes.replace(",", " ").split() if scopes else None


@main.command()
@click.option(
    "--db", "db_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="The file."
)
@click.option("--user", "who", required=True, help="The technical user: its account id or email.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default="report.html", show_default=True
)
@click.option("--site", "site_id", help="The site (its cloud id or URL) when the file holds several.")
@click.option("--analyst", help="Compare with this principal's load (default: the only other one that loaded).")
@click.option("--scopes", help="The app token's scopes (space or comma separated), when its load recorded none.")
def report(db_path: Path, who: str, output: Path, site_id: str | None, analyst: str | None, scopes: str | None) -> None:
    """Write the HTML report of a technical user: one self-contained page that opens offline, on a phone too."""
    from jira_lab.report import write_report

    try:
        written = write_report(
            db_path, path=output, user=who, site_id=site_id, analyst=analyst, granted_scopes=_scope_list(scopes)
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Wrote {written}")


@main.command("export")
@click.option(
    "--db", "db_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="The file."
)
@click.option("--user", "who", required=True, help="The technical user: its account id or email.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="A folder, or a file ending .zip.")
@click.option("--pseudonymize", is_flag=True, help="Replace people by salted pseudonyms; drop bodies and summaries.")
@click.option(
    "--salt",
    envvar="JIRA_LAB_PSEUDONYM_SALT",
    show_envvar=True,
    help="The pseudonyms' key (8+ characters; prefer the variable). Default: a random one, not kept.",
)
@click.option("--site", "site_id", help="The site (its cloud id or URL) when the file holds several.")
@click.option("--analyst", help="Compare with this principal's load (default: the only other one that loaded).")
@click.option("--scopes", help="The app token's scopes (space or comma separated), when its load recorded none.")
def export_command(
    db_path: Path,
    who: str,
    output: Path,
    pseudonymize: bool,
    salt: str | None,
    site_id: str | None,
    analyst: str | None,
    scopes: str | None,
) -> None:
    """Write an export bundle to share: the audit's results and loaded tables as Parquet, plus the report."""
    from jira_lab.report import write_bundle

    if salt and not pseudonymize:
        raise click.UsageError("--salt is only used with --pseudonymize")
    try:
        bundle = write_bundle(
            db_path,
            path=output,
            user=who,
            pseudonymize=pseudonymize,
            salt=salt or None,
            site_id=site_id,
            analyst=analyst,
            granted_scopes=_scope_list(scopes),
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    tables = sum(1 for name in bundle.files if name.endswith(".parquet"))
    click.echo(f"Wrote {bundle.path}: the report, {tables} Parquet tables and a README")
    if pseudonymize:
        click.echo("People are pseudonymized; comment and worklog bodies, issue summaries and raw JSON were dropped.")
        if not salt:
            click.echo("A random salt was used and not kept: these pseudonyms match no other export.")


@main.command("load")
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The DuckDB file."
)
@click.option("--site", "site_url", help="The site URL (Basic auth), or which site of the 3LO grant to load.")
@click.option("--email", envvar="JIRA_LAB_EMAIL", show_envvar=True, help="Basic auth: the account's email.")
@click.option(
    "--api-token",
    envvar="JIRA_LAB_API_TOKEN",
    show_envvar=True,
    help="Basic auth: the API token (prefer the variable).",
)
@click.option("-i", "--client-id", envvar="JIRA_LAB_CLIENT_ID", show_envvar=True, help="3LO: the app's client id.")
@click.option("-s", "--client-secret", envvar="JIRA_LAB_CLIENT_SECRET", show_envvar=True, help="3LO: the app's secret.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), help="3LO: the token file.")
@click.option("--auth-url", default=AUTH_URL, show_default=True, help="3LO: the authorization server.")
@click.option("--api-url", default=API_URL, show_default=True, help="3LO: the API gateway.")
@click.option("--full", is_flag=True, help="Read everything again instead of from the cursors.")
@click.option("--project", "projects", multiple=True, help="A project key to load (repeatable); default: all.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
    help="Only issues updated since this date (UTC).",
)
@click.option("--quiet", is_flag=True, help="No progress bars (the summary is still printed).")
@click.option("--page-size", type=click.IntRange(1, 5000), help="Issues per search page to ask for.")
@click.option("--concurrency", type=click.IntRange(1, 100), default=10, show_default=True, help="Requests in flight.")
@click.option("--site-id", help="The site's id in the file (default: cloud id, or the site URL).")
@click.option(
    "--check-account",
    "check_accounts",
    multiple=True,
    help="Also check this account's permissions (e.g. the technical user; needs Administer Jira). Repeatable.",
)
def load_command(
    db_path: Path,
    site_url: str | None,
    email: str | None,
    api_token: str | None,
    client_id: str | None,
    client_secret: str | None,
    store_path: Path | None,
    auth_url: str,
    api_url: str,
    full: bool,
    projects: tuple[str, ...],
    since: datetime | None,
    quiet: bool,
    page_size: int | None,
    concurrency: int,
    site_id: str | None,
    check_accounts: tuple[str, ...],
) -> None:
    """Load a Jira Cloud site into a DuckDB file: incremental, resumable, then print the load summary.

    Credentials: Basic auth with --site, --email and --api-token (or JIRA_LAB_EMAIL / JIRA_LAB_API_TOKEN), or the
    3LO token stored by `jira-lab token` (--client-id and --client-secret, or their variables). The URLs can point at
    `jira-lab sim`. A load that stops (Ctrl-C, a quota, a crash) is resumed by the next one.
    """
    import asyncio

    from jira_lab.auth.httpauth import basic_auth
    from jira_lab.client import JiraClient
    from jira_lab.errors import DatabaseLockedError
    from jira_lab.load import aload
    from jira_lab.resources.issues import SEARCH_MAX_RESULTS

    secrets_to_mask = [value for value in (api_token, client_secret) if value]
    try:
        if email or api_token:
            if not (email and api_token and site_url):
                raise click.UsageError("Basic auth needs --site, --email and --api-token")
            client = JiraClient.for_site(site_url, auth=basic_auth(email, api_token), max_concurrency=concurrency)
        elif client_id:
            secret = client_secret or _ask_client_secret()
            secrets_to_mask.append(secret)
            connection = connect_from_store(
                client_id,
                secret,
                store=FileTokenStore(store_path),
                site_url=site_url,
                auth_url=auth_url,
                api_url=api_url,
            )
            client = JiraClient(
                connection.api_base,
                auth=connection.auth,
                max_concurrency=concurrency,
                scopes=connection.token.scopes,
            )
        else:
            raise click.UsageError("give Basic credentials (--email, --api-token) or a 3LO app (--client-id)")

        async def run() -> list[str]:
            async with client:
                summary = await aload(
                    db_path,
                    client,
                    site_id=site_id,
                    full=full,
                    projects=list(projects) or None,
                    since=since.replace(tzinfo=UTC) if since is not None else None,
                    progress=not quiet,
                    search_page_size=page_size or SEARCH_MAX_RESULTS,
                    check_accounts=check_accounts,
                )
            return summary.lines()

        for line in asyncio.run(run()):
            click.echo(line)
    except DatabaseLockedError as error:
        raise click.ClickException(str(error)) from None
    except (JiraLabError, ValueError) as error:
        message = str(error)
        for secret_value in secrets_to_mask:
            message = message.replace(secret_value, "***")
        raise click.ClickException(f"{message} (the load is recorded; running it again resumes it)") from None


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _ask_client_secret() -> str:
    if not _stdin_is_terminal():
        raise click.UsageError(
            "the client secret is missing: pass -s, set JIRA_LAB_CLIENT_SECRET, or run in a terminal"
        )
    secret: str = click.prompt("Client secret", hide_input=True)
    return secret


def _echo_summary(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


if __name__ == "__main__":
    main()
