"""The ``jira-lab token`` command in process (click's runner), against the simulated cloud served on loopback.

The browser is scripted by replacing :func:`webbrowser.open`: it follows the consent URL through the simulator's
auto-consent to the command's real callback server. The subprocess end-to-end story is in test_oauth_e2e.py.
"""

from __future__ import annotations

import socket
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from jira_lab import cli
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, TokenKey
from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.authserver import OAuthApp
from jira_lab.sim.server import SimURLs, serve

ANN = "5b10ac8d82e05b22cc7d0a11"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Lab:
    cloud: SimCloud
    urls: SimURLs
    app: OAuthApp
    port: int
    store: Path
    opened: list[str]

    def args(self, *extra: str, secret: bool = True) -> list[str]:
        base = ["token", "-i", self.app.client_id, "--port", str(self.port), "--timeout", "10"]
        base += ["--auth-url", self.urls.auth_url, "--api-url", self.urls.api_url, "--store", str(self.store)]
        return base + (["-s", self.app.client_secret] if secret else []) + list(extra)

    def invoke(self, *extra: str, secret: bool = True, **options: object) -> Result:
        runner = CliRunner()
        return runner.invoke(cli.main, self.args(*extra, secret=secret), **options)  # type: ignore[arg-type]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    tiny, other = SiteBuilder("tiny"), SiteBuilder("other")
    tiny.user("Ann Analyst", email="ann@example.com", account_id=ANN)
    other.user("Ann Analyst", email="ann@example.com", account_id=ANN)
    cloud = SimCloud(tiny.site, other.site)
    port = free_port()
    app = cloud.auth.register_app("jira-lab", callback_url=f"http://localhost:{port}/", scopes=REQUIRED_SCOPES)
    cloud.auth.set_auto_consent("ann@example.com", sites=["tiny"])
    opened: list[str] = []

    def browser(url: str) -> bool:
        """A browser that opens at once and follows the consent through to the callback."""
        opened.append(url)
        httpx.get(url, follow_redirects=True, timeout=10)
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    for name in ("JIRA_LAB_CLIENT_ID", "JIRA_LAB_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with serve(cloud) as urls:
        yield Lab(cloud, urls, app, port, tmp_path / "tokens.json", opened)


def test_opens_the_browser_waits_and_stores(lab: Lab) -> None:
    result = lab.invoke()

    assert result.exit_code == 0, result.output
    assert len(lab.opened) == 1
    assert "The consent page is open in your browser; if it did not appear, open this URL:" in result.output
    assert f"Authorized app {lab.app.client_id}; the token is stored in {lab.store}." in result.output
    token = FileTokenStore(lab.store).load(TokenKey(lab.app.client_id, ANN))
    assert token is not None
    assert token.access_token not in result.output
    assert lab.app.client_secret not in result.output


def test_check_uses_the_stored_token_without_a_consent(lab: Lab) -> None:
    assert lab.invoke().exit_code == 0
    consents = len(lab.cloud.auth.consents)

    result = lab.invoke("--check")

    assert result.exit_code == 0, result.output
    assert f"The stored token of app {lab.app.client_id} works." in result.output
    assert f"user:    Ann Analyst (account id {ANN})" in result.output
    assert len(lab.cloud.auth.consents) == consents
    assert len(lab.opened) == 1  # only the first run opened the browser
    assert lab.cloud.auth.request_count("refresh_token") == 0  # the access token was still good


def test_check_without_a_stored_token_says_to_consent(lab: Lab) -> None:
    result = lab.invoke("--check")

    assert result.exit_code == 1
    assert f"Error: no token of app {lab.app.client_id!r} is stored in FileTokenStore('{lab.store}')" in result.output
    assert "again to consent" in result.output


def test_no_browser_prints_the_url_instead(lab: Lab) -> None:
    # the browser is the test's: it is called only if the command opens one
    lab.cloud.auth.auto_consent = None
    result = lab.invoke("--no-browser", "--timeout", "0.2")

    assert lab.opened == []
    assert "Open this URL in a browser and accept the consent:" in result.output
    assert f"{lab.urls.auth_url}/authorize?" in result.output
    assert result.exit_code == 1  # nobody consented: the wait timed out


def test_client_id_and_secret_from_the_environment(lab: Lab) -> None:
    args = [a for a in lab.args() if a not in ("-i", "-s", lab.app.client_id, lab.app.client_secret)]
    env = {"JIRA_LAB_CLIENT_ID": lab.app.client_id, "JIRA_LAB_CLIENT_SECRET": lab.app.client_secret}

    result = CliRunner().invoke(cli.main, args, env=env)

    assert result.exit_code == 0, result.output
    assert FileTokenStore(lab.store).keys() == [TokenKey(lab.app.client_id, ANN)]
    assert lab.app.client_secret not in result.output


def test_the_secret_is_asked_for_hidden_in_a_terminal(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)

    result = lab.invoke(secret=False, input=lab.app.client_secret + "\n")

    assert result.exit_code == 0, result.output
    assert "Client secret: " in result.output
    assert lab.app.client_secret not in result.output  # typed, not echoed


def test_without_a_secret_and_no_terminal_the_usage_says_where_to_put_it(lab: Lab) -> None:
    result = lab.invoke(secret=False)

    assert result.exit_code == 2
    assert "the client secret is missing: pass -s, set JIRA_LAB_CLIENT_SECRET" in result.output
    assert lab.opened == []


def test_a_registered_callback_url_with_a_path(lab: Lab) -> None:
    app = lab.cloud.auth.register_app(
        "with-path", callback_url=f"http://localhost:{lab.port}/oauth/callback", scopes=REQUIRED_SCOPES
    )
    args = lab.args("--redirect-uri", f"http://localhost:{lab.port}/oauth/callback", secret=False)
    args[args.index(lab.app.client_id)] = app.client_id

    result = CliRunner().invoke(cli.main, [*args, "-s", app.client_secret])

    assert result.exit_code == 0, result.output
    assert httpx.URL(lab.opened[0]).params["redirect_uri"] == f"http://localhost:{lab.port}/oauth/callback"


def test_a_port_that_contradicts_the_redirect_uri_is_a_usage_error(lab: Lab) -> None:
    result = lab.invoke("--redirect-uri", f"http://localhost:{lab.port + 1}/")

    assert result.exit_code == 2
    assert "differs from the port of --redirect-uri" in result.output


def test_check_and_print_refresh_token_exclude_each_other(lab: Lab) -> None:
    result = lab.invoke("--check", "--print-refresh-token")

    assert result.exit_code == 2
    assert "--check uses the stored token" in result.output


def test_several_granted_sites_are_listed_and_site_picks_one(lab: Lab) -> None:
    lab.cloud.auth.set_auto_consent("ann@example.com")  # both sites
    listed = lab.invoke()
    picked = lab.invoke("--site", lab.urls.site_url(lab.cloud.site_named("other")))

    assert listed.exit_code == 0, listed.output
    assert "sites:   2 granted, choose one: " in listed.output
    other = lab.cloud.site_named("other")
    assert other is not None
    assert picked.exit_code == 0, picked.output
    assert f"site:    other — {lab.urls.site_url(other)} (cloud id {other.cloud_id})" in picked.output


def test_a_site_outside_the_grant_fails_after_saying_the_token_is_stored(lab: Lab) -> None:
    result = lab.invoke("--site", "https://elsewhere.atlassian.net")

    assert result.exit_code == 1
    assert "the token is stored in" in result.output
    assert "Error: 'https://elsewhere.atlassian.net' is not among the granted sites" in result.output
    assert FileTokenStore(lab.store).keys() == [TokenKey(lab.app.client_id, ANN)]


def test_an_unreachable_authorization_server_is_one_line(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    def browser(url: str) -> bool:
        # the authorization server is down, so this browser comes straight back with the URL's own state
        state = httpx.URL(url).params["state"]
        httpx.get(f"http://127.0.0.1:{lab.port}/?code=c0de&state={state}", timeout=10)
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    args = lab.args()
    args[args.index(lab.urls.auth_url)] = closed

    result = CliRunner().invoke(cli.main, args)

    assert result.exit_code == 1
    assert f"Error: cannot reach {closed}/oauth/token: ConnectError" in result.output
    assert lab.app.client_secret not in result.output
