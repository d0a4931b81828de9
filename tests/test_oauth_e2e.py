"""OAuth 2.0 (3LO) end to end over real loopback HTTP: ``jira-lab token`` as a subprocess, a scripted browser.

The simulated cloud (demo site, a registered app) is served on loopback; the command runs as its own process with
``--no-browser``, and the test reads the consent URL from its output line by line, then acts as the browser: through
the consent page (auto-consent, or the form submitted like a person) to the command's callback server. Afterwards the
stored token is used through the gateway, refreshed (rotation persisted), and a second process that reuses the old
refresh token after the reuse window is told to consent again. Synchronisation is by the output lines and the
servers' readiness, never by sleeping.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO

import httpx
import pytest

from jira_lab.auth.httpauth import OAuth2Auth
from jira_lab.auth.oauth import refresh
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, Token, TokenKey
from jira_lab.errors import ConsentRequiredError
from jira_lab.sim import SimCloud
from jira_lab.sim.authserver import OAuthApp
from jira_lab.sim.clock import FakeClock
from jira_lab.sim.generator import generate_site
from jira_lab.sim.server import SimURLs, serve

MYSELF = "/rest/api/3/myself"
#: seconds any one step may take before the test fails (a bound, not a wait: nothing sleeps)
STEP = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Lab:
    """The served demo cloud, its app, and where the command's token file goes."""

    cloud: SimCloud
    clock: FakeClock
    urls: SimURLs
    app: OAuthApp
    port: int
    store: Path

    @property
    def technical_user(self) -> str:
        return self.cloud.default_site.accounts["technical_user"]

    @property
    def technical_email(self) -> str:
        email = self.cloud.default_site.users[self.technical_user].email
        assert email is not None
        return email

    @property
    def key(self) -> TokenKey:
        return TokenKey(self.app.client_id, self.technical_user)

    def register(self, name: str, *, path: str = "/", scopes: tuple[str, ...] = REQUIRED_SCOPES) -> OAuthApp:
        """Another app of the developer console, with its callback on the lab's port."""
        return self.cloud.auth.register_app(name, callback_url=f"http://localhost:{self.port}{path}", scopes=scopes)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    clock = FakeClock()
    cloud = SimCloud(generate_site("demo", seed=0), clock=clock)
    port = free_port()
    app = cloud.auth.register_app("jira-lab", callback_url=f"http://localhost:{port}/", scopes=REQUIRED_SCOPES)
    with serve(cloud) as urls:
        yield Lab(cloud, clock, urls, app, port, tmp_path / "config" / "tokens.json")


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def shows(self, secret: str | None) -> bool:
        assert secret, "a secret to look for must be known"
        return secret in self.stdout or secret in self.stderr


@dataclass
class TokenCommand:
    """``jira-lab token`` in a subprocess; its output is read line by line as it comes."""

    process: subprocess.Popen[str]
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _stdout: list[str] = field(default_factory=list)
    _stderr: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, lab: Lab, *args: str, app: OAuthApp | None = None, secret: str | None = None) -> TokenCommand:
        app = app or lab.app
        command = [
            sys.executable,
            "-m",
            "jira_lab.cli",
            "token",
            "--api",
            "jiracloud",
            "-i",
            app.client_id,
            "-s",
            secret or app.client_secret,
            "--no-browser",
            "--auth-url",
            lab.urls.auth_url,
            "--api-url",
            lab.urls.api_url,
            "--port",
            str(lab.port),
            "--timeout",
            str(STEP),
            "--store",
            str(lab.store),
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_LAB_")}
        env["PYTHONUNBUFFERED"] = "1"
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        started = cls(process)
        started._read(process.stdout, started._stdout, started._lines)
        started._read(process.stderr, started._stderr, None)
        return started

    def _read(self, stream: IO[str] | None, into: list[str], lines: queue.Queue[str | None] | None) -> None:
        assert stream is not None

        def pump() -> None:
            for line in stream:
                into.append(line)
                if lines is not None:
                    lines.put(line)
            if lines is not None:
                lines.put(None)  # the process closed its output

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        self._readers.append(reader)

    def consent_url(self) -> str:
        """The authorize URL the command printed (it is listening on the callback port by then)."""
        while True:
            line = self._lines.get(timeout=STEP)
            if line is None:
                raise AssertionError(f"the command ended without a consent URL: {self.finish()}")
            if line.startswith("http"):
                return line.strip()

    def finish(self) -> Finished:
        returncode = self.process.wait(timeout=STEP)
        for reader in self._readers:
            reader.join(timeout=STEP)
        return Finished(returncode, "".join(self._stdout), "".join(self._stderr))


@pytest.fixture
def commands() -> Iterator[list[TokenCommand]]:
    """Commands started by a test; any still running when it ends (a failed assertion) are stopped."""
    started: list[TokenCommand] = []
    yield started
    for command in started:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait()


def run(commands: list[TokenCommand], lab: Lab, *args: str, **options: OAuthApp | str | None) -> TokenCommand:
    command = TokenCommand.start(lab, *args, **options)  # type: ignore[arg-type]
    commands.append(command)
    return command


# -- the browser ---------------------------------------------------------------------------------------------------
def browse(url: str) -> httpx.Response:
    """Follow a URL with its redirects, as a browser does; the last page."""
    with httpx.Client(follow_redirects=True, timeout=STEP) as browser:
        return browser.get(url)


def redirect_of(url: str) -> str:
    """Where the (auto-)consent sends the browser, without going there yet."""
    response = httpx.get(url, timeout=STEP)
    assert response.status_code == 302, response.text
    return response.headers["location"]


class ConsentForm(HTMLParser):
    """The consent page's form: hidden fields and the options of each select, by the select's id."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self.action = ""
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == "consent":
            self.action = a["action"]
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a["value"]
        elif tag == "select":
            self._select = a["id"]
            self.options[a["id"]] = []
        elif tag == "option" and self._select is not None:
            self.options[self._select].append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def consent_like_a_person(lab: Lab, url: str, *, decision: str) -> httpx.Response:
    """Open the consent page, choose the technical user and the demo site, press Accept or Deny, follow on."""
    with httpx.Client(timeout=STEP) as browser:
        page = browser.get(url)
        assert page.status_code == 200
        form = ConsentForm()
        form.feed(page.text)
        site = lab.cloud.default_site
        assert lab.technical_user in form.options["user"]
        assert site.cloud_id in form.options["site"]
        choice = {"account_id": lab.technical_user, "cloud_id": site.cloud_id, "decision": decision}
        sent = browser.post(httpx.URL(url).join(form.action), data={**form.hidden, **choice})
        assert sent.status_code == 302
        return browser.get(sent.headers["location"])


def code_in(redirect: str) -> str:
    code = httpx.URL(redirect).params.get("code")
    assert isinstance(code, str) and code
    return code


def stored_token(lab: Lab, path: Path | None = None) -> Token:
    token = FileTokenStore(path or lab.store).load(lab.key)
    assert token is not None and token.refresh_token is not None
    return token


def one_line_error(finished: Finished) -> str:
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


# -- the whole story -------------------------------------------------------------------------------------------------
def test_token_command_then_api_call_then_rotation_then_stale_reuse_in_a_second_process(
    lab: Lab, commands: list[TokenCommand], tmp_path: Path
) -> None:
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    command = run(commands, lab)
    url = command.consent_url()
    assert url.startswith(f"{lab.urls.auth_url}/authorize?")
    assert httpx.URL(url).params["redirect_uri"] == f"http://localhost:{lab.port}/"

    redirect = redirect_of(url)
    page = browse(redirect)
    assert page.status_code == 200
    assert "Authorization received" in page.text
    finished = command.finish()

    assert finished.returncode == 0, finished.stderr
    site = lab.cloud.default_site
    user = site.users[lab.technical_user]
    assert f"site:    {site.name} — {lab.urls.site_url()} (cloud id {site.cloud_id})" in finished.stdout
    assert f"user:    {user.display_name} (account id {user.account_id})" in finished.stdout
    assert f"scopes:  all {len(REQUIRED_SCOPES)} required scopes granted" in finished.stdout
    assert "expiry:  access token expires " in finished.stdout
    token = stored_token(lab)
    for secret in (token.access_token, token.refresh_token, lab.app.client_secret, code_in(redirect)):
        assert not finished.shows(secret)
    assert stat.S_IMODE(lab.store.stat().st_mode) == 0o600

    # the stored token reaches the site through the gateway
    before_refresh = tmp_path / "tokens-before-refresh.json"
    shutil.copy(lab.store, before_refresh)
    auth = OAuth2Auth(FileTokenStore(lab.store), lab.key, lab.app.client_secret, auth_url=lab.urls.auth_url)
    with httpx.Client(base_url=lab.urls.gateway_url(), auth=auth, timeout=STEP) as jira:
        me = jira.get(MYSELF)
        assert me.status_code == 200
        assert me.json()["accountId"] == lab.technical_user

        # an hour later on the simulator's clock the gateway refuses the access token: one refresh, rotated, saved
        lab.clock.advance(3600 + 1)
        again = jira.get(MYSELF)
    assert again.status_code == 200
    assert lab.cloud.auth.request_count("refresh_token") == 1
    rotated = stored_token(lab)  # read back from the file
    assert rotated.refresh_token != token.refresh_token
    assert rotated.access_token != token.access_token
    assert again.request.headers["authorization"] == f"Bearer {rotated.access_token}"

    # past the 10-minute reuse window, a second process still holding the old refresh token
    lab.clock.advance(lab.cloud.auth.settings.reuse_interval + 1)
    stale = run(commands, lab, "--check", "--store", str(before_refresh)).finish()

    assert stale.returncode != 0
    error = one_line_error(stale)
    assert "the grant was revoked, expired or its refresh token was reused" in error
    assert f"run `jira-lab token --api jiracloud -i {lab.app.client_id} -s <client secret>` again to consent" in error
    assert not stale.shows(token.refresh_token)
    assert not stale.shows(lab.app.client_secret)
    # reuse after the window is a breach: the whole token family is revoked, the rotated token too
    dead = OAuth2Auth(FileTokenStore(lab.store), lab.key, lab.app.client_secret, auth_url=lab.urls.auth_url)
    with (
        httpx.Client(base_url=lab.urls.gateway_url(), auth=dead, timeout=STEP) as jira,
        pytest.raises(ConsentRequiredError),
    ):
        jira.get(MYSELF)


def test_the_consent_form_submitted_like_a_person(lab: Lab, commands: list[TokenCommand]) -> None:
    command = run(commands, lab)

    page = consent_like_a_person(lab, command.consent_url(), decision="accept")
    finished = command.finish()

    assert "Authorization received" in page.text
    assert finished.returncode == 0, finished.stderr
    assert f"user:    Search Connector (account id {lab.technical_user})" in finished.stdout
    assert stored_token(lab).sites[0].cloud_id == lab.cloud.default_site.cloud_id


# -- what goes wrong, and what the user is told ---------------------------------------------------------------------
def test_denied_consent(lab: Lab, commands: list[TokenCommand]) -> None:
    command = run(commands, lab)

    page = consent_like_a_person(lab, command.consent_url(), decision="deny")
    finished = command.finish()

    assert "not granted (access_denied" in page.text
    assert finished.returncode == 1
    assert "consent was denied" in one_line_error(finished)
    assert not lab.store.exists()


def test_a_redirect_with_another_state_is_refused_and_the_real_one_still_counts(
    lab: Lab, commands: list[TokenCommand]
) -> None:
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    command = run(commands, lab)
    redirect = redirect_of(command.consent_url())

    forged = httpx.get(str(httpx.URL(redirect).copy_set_param("state", "from-another-attempt")), timeout=STEP)
    genuine = httpx.get(redirect, timeout=STEP)
    finished = command.finish()

    assert forged.status_code == 400
    assert "another authorization attempt" in forged.text
    assert genuine.status_code == 200
    assert finished.returncode == 0, finished.stderr
    assert lab.cloud.auth.request_count("authorization_code") == 1


def test_a_wrong_client_secret(lab: Lab, commands: list[TokenCommand]) -> None:
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    wrong = "a-wrong-secret-" + "z" * 30
    command = run(commands, lab, secret=wrong)

    browse(command.consent_url())
    finished = command.finish()

    assert finished.returncode == 1
    error = one_line_error(finished)
    assert f"refused the client credentials of app {lab.app.client_id!r}" in error
    assert not finished.shows(wrong)
    assert not lab.store.exists()


def test_a_wrong_redirect_uri_is_refused_on_the_consent_page(lab: Lab, commands: list[TokenCommand]) -> None:
    # the app's registered callback has a path; the command sends the browser back to http://localhost:PORT/
    app = lab.register("elsewhere", path="/callback")
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    command = run(commands, lab, "--timeout", "0.5", app=app)

    page = httpx.get(command.consent_url(), timeout=STEP)
    finished = command.finish()

    assert page.status_code == 400
    assert f"redirect_uri is not registered for client: http://localhost:{lab.port}/" in page.text
    assert finished.returncode == 1
    assert f"no redirect from the consent page reached http://localhost:{lab.port}/ within 0.5 s" in one_line_error(
        finished
    )
    assert lab.cloud.auth.request_count() == 0


def test_port_in_use(lab: Lab, commands: list[TokenCommand]) -> None:
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", lab.port))
        occupier.listen(1)
        finished = run(commands, lab).finish()

    assert finished.returncode == 1
    error = one_line_error(finished)
    assert f"another program uses port {lab.port}" in error
    assert "--port" in error
    assert "/authorize?" not in finished.stdout  # nobody was sent to consent


def test_an_expired_code(lab: Lab, commands: list[TokenCommand]) -> None:
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    command = run(commands, lab)
    redirect = redirect_of(command.consent_url())

    lab.clock.advance(lab.cloud.auth.settings.code_lifetime + 1)
    httpx.get(redirect, timeout=STEP)
    finished = command.finish()

    assert finished.returncode == 1
    assert "the authorization code was refused" in one_line_error(finished)
    assert "it expired, was already used" in finished.stderr
    assert not finished.shows(code_in(redirect))
    assert not lab.store.exists()


def test_missing_scopes_are_named_in_the_summary(lab: Lab, commands: list[TokenCommand]) -> None:
    lacking = ("manage:jira-configuration", "read:audit-log:jira")
    configured = tuple(s for s in REQUIRED_SCOPES if s not in lacking)
    # Atlassian refuses scopes the app is not configured with, so the admin asks for those it has
    app = lab.register("partial", scopes=configured)
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    command = run(commands, lab, "--scopes", ",".join(configured), app=app)

    browse(command.consent_url())
    finished = command.finish()

    assert finished.returncode == 0, finished.stderr
    assert (
        f"scopes:  WARNING: 2 of {len(REQUIRED_SCOPES)} required scopes missing: "
        "manage:jira-configuration, read:audit-log:jira"
    ) in finished.stdout


def test_print_refresh_token_prints_a_working_refresh_token_and_nothing_else_secret(
    lab: Lab, commands: list[TokenCommand]
) -> None:
    lab.cloud.auth.set_auto_consent(lab.technical_email)
    command = run(commands, lab, "--print-refresh-token")

    browse(command.consent_url())
    finished = command.finish()

    assert finished.returncode == 0, finished.stderr
    printed = [
        line.removeprefix("refresh token: ") for line in finished.stdout.splitlines() if "refresh token: " in line
    ]
    assert len(printed) == 1
    with httpx.Client(timeout=STEP) as http:  # the connector's first refresh works with it
        grant = refresh(http, lab.app.client_id, lab.app.client_secret, printed[0], auth_url=lab.urls.auth_url)
    assert grant.refresh_token
    assert "sim-at-" not in finished.stdout + finished.stderr  # the simulator's access tokens start so
    assert not finished.shows(lab.app.client_secret)
    assert not lab.store.exists()  # the connector's refresh token is not also used by jira-lab
