"""The notebook connect widget, driven like a user drives it: fields typed, buttons clicked, a redirected URL pasted.

The simulated cloud stands in for Atlassian (in-process transport for the token and gateway calls); the loopback path
runs a real callback server on a free port, and a scripted "browser" follows the consent URL (auto-consent) and
delivers the redirect to it over real HTTP. Waiting is on futures and events, never on sleeps.
"""

from __future__ import annotations

import html
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import comm
import httpx
import ipywidgets as widgets  # type: ignore[import-untyped]
import pytest

from jira_lab.auth.connect import Connection
from jira_lab.auth.oauth import redirect_uri_for
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import MemoryTokenStore
from jira_lab.errors import CallbackError, InvalidClientError
from jira_lab.notebook import ConnectWidget, Phase, kernel_is_local
from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.authserver import AutoConsent, OAuthApp
from jira_lab.sim.model import Site

WAIT = 10.0  # seconds; a generous bound for things that take milliseconds
ANN = "Ann Analyst"
ANN_EMAIL = "ann@example.com"
OTTO = "Otto Only-Alpha"


# -- the simulated world ---------------------------------------------------------------------------------------------
@dataclass
class World:
    cloud: SimCloud
    alpha: Site
    beta: Site
    app: OAuthApp
    port: int
    ann: str
    otto: str
    store: MemoryTokenStore = field(default_factory=MemoryTokenStore)
    opened: list[ConnectWidget] = field(default_factory=list)

    def widget(self, **options: Any) -> ConnectWidget:
        """A widget aimed at the simulator; the browser is never opened unless a test asks."""
        settings: dict[str, Any] = {
            "client_id": self.app.client_id,
            "client_secret": None,
            "auth_url": "https://auth.atlassian.com",
            "api_url": "https://api.atlassian.com",
            "store": self.store,
            "port": self.port,
            "transport": self.cloud.transport(),
            "open_browser": False,
        }
        settings.update(options)
        widget = ConnectWidget(**settings)
        self.opened.append(widget)
        return widget


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_world(app_scopes: tuple[str, ...] = REQUIRED_SCOPES) -> World:
    a = SiteBuilder("alpha", title="Alpha Jira")
    ann = a.user(ANN, email=ANN_EMAIL)
    otto = a.user(OTTO, email="otto@example.com")
    b = SiteBuilder("beta", title="Beta Jira")
    b.user(ANN, email=ANN_EMAIL, account_id=ann)  # one Atlassian account, two sites
    cloud = SimCloud(a.site, b.site)
    port = free_port()
    app = cloud.auth.register_app("Lab Auditor", callback_url=redirect_uri_for(port), scopes=app_scopes)
    return World(cloud, a.site, b.site, app, port, ann, otto)


@pytest.fixture
def world() -> Iterator[World]:
    built = make_world()
    yield built
    for widget in built.opened:
        widget.close()


class Browser:
    """The user's browser: follows the consent link on the simulated auth server, and goes where it redirects."""

    def __init__(self, cloud: SimCloud) -> None:
        self.auth = httpx.Client(transport=cloud.transport())
        # the loopback redirect is real HTTP to this machine; proxies from the environment must not intercept it
        self.local = httpx.Client(trust_env=False, timeout=WAIT)
        self.visited: list[str] = []

    def consent(self, url: str) -> str:
        """Open the consent URL (auto-consent answers at once) and return where the page redirects."""
        self.visited.append(url)
        response = self.auth.get(url)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def deliver(self, redirect: str) -> httpx.Response:
        """Follow the redirect to the loopback callback, as the browser does after the consent."""
        return self.local.get(redirect)

    def open(self, url: str) -> bool:
        """``webbrowser.open``: the page is consented to, and the browser lands on the callback."""
        self.deliver(self.consent(url))
        return True


@pytest.fixture
def browser(world: World) -> Browser:
    return Browser(world.cloud)


@dataclass
class Frontend:
    """Every message the kernel sends to the widget frontend (comm open and updates), as JSON text."""

    messages: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.messages)

    def states_sent_to(self, widget: Any) -> list[dict[str, Any]]:
        """The states (open, then updates) the kernel sent to ``widget``'s frontend model, in order."""
        sent = [json.loads(m) for m in self.messages]
        return [m["data"]["state"] for m in sent if m["comm_id"] == widget.model_id and "state" in (m["data"] or {})]


@pytest.fixture
def frontend(monkeypatch: pytest.MonkeyPatch) -> Frontend:
    """Record what the frontend would be told: the state it holds, and saves into the notebook, comes only from here."""
    seen = Frontend()

    class RecordingComm(comm.DummyComm):
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            seen.messages.append(json.dumps({"comm_id": self.comm_id, "type": msg_type, "data": data}, default=str))

    monkeypatch.setattr(comm, "create_comm", lambda *args, **kwargs: RecordingComm(*args, **kwargs))
    return seen


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIRA_LAB_CLIENT_ID", raising=False)
    monkeypatch.delenv("JIRA_LAB_CLIENT_SECRET", raising=False)


@pytest.fixture(autouse=True)
def nothing_escapes(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No exception may escape a button handler (ipywidgets logs those) or the widget's background thread."""
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    caplog.set_level(logging.WARNING)
    yield
    handler_errors = [r.getMessage() for r in caplog.records if r.name == "traitlets"]
    assert handler_errors == []
    assert escaped == []


# -- helpers ---------------------------------------------------------------------------------------------------------
def type_secret(widget: ConnectWidget, secret: str) -> None:
    """The frontend commits the password field (Enter or blur): what ipywidgets' comm handler calls."""
    widget.client_secret_field.set_state({"value": secret})


def consent_link(widget: ConnectWidget) -> str:
    """The consent URL the widget shows as a link (what the user clicks)."""
    found = re.search(r'href="([^"]+)"', widget.link.value)
    assert found is not None, widget.link.value
    return html.unescape(found.group(1))


def phase(widget: ConnectWidget) -> Phase:
    """The widget's phase (a call, so that type narrowing does not outlive a click)."""
    return widget.phase


def status_text(widget: ConnectWidget) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", widget.status.value))


def result_text(widget: ConnectWidget) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", widget.result.value))


def outcome(widget: ConnectWidget) -> Future[Connection]:
    """The future of the latest Authorize click."""
    future = widget.attempt
    assert future is not None
    return future


def authorize(widget: ConnectWidget) -> str:
    """Click Authorize; return the consent link shown."""
    widget.authorize_button.click()
    assert phase(widget) is Phase.WAITING, status_text(widget)
    return consent_link(widget)


def paste(widget: ConnectWidget, text: str) -> None:
    """The user pastes into the box (the frontend commits it) and clicks Connect."""
    widget.paste_field.set_state({"value": text})
    widget.connect_button.click()


def widget_tree(root: Any) -> Iterator[Any]:
    """Every widget reachable from ``root``: children, layouts, styles (all are models the frontend keeps)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        widget = pending.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        yield widget
        for name in widget.keys:
            value = getattr(widget, name)
            values = value if isinstance(value, list | tuple) else [value]
            pending.extend(v for v in values if isinstance(v, widgets.Widget))


def saved_state(widget: ConnectWidget) -> str:
    """What the notebook saves: the state of every widget model the kernel holds, plus the form's tree walked."""
    tree = {w.model_id: w.get_state() for w in widget_tree(widget.ui)}
    return json.dumps(widgets.Widget.get_manager_state(), default=str) + json.dumps(tree, default=str)


def assert_absent(text: str, *secrets: str | None) -> None:
    for secret in secrets:
        assert secret, "a secret to look for must be non-empty"
        assert secret not in text


def stored_secrets(world: World, connection: Connection) -> tuple[str, str | None]:
    token = world.store.load(connection.key)
    assert token is not None
    return token.access_token, token.refresh_token


# -- connecting ------------------------------------------------------------------------------------------------------
def test_connects_through_the_loopback_callback(world: World, browser: Browser, frontend: Frontend) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget()
    type_secret(widget, world.app.client_secret)

    link = authorize(widget)
    page = browser.deliver(browser.consent(link))
    connection = outcome(widget).result(timeout=WAIT)

    assert page.status_code == 200  # the browser's tab says it may be closed
    assert phase(widget) is Phase.CONNECTED
    assert widget.connection is connection
    assert widget.wait(timeout=0) is connection
    assert connection.site.cloud_id == world.alpha.cloud_id
    assert connection.api_base == f"https://api.atlassian.com/ex/jira/{world.alpha.cloud_id}"
    assert connection.account_id == world.ann
    summary = result_text(widget)
    assert "alpha" in summary and "https://alpha.atlassian.net" in summary
    assert ANN in summary and world.ann in summary
    assert f"all {len(REQUIRED_SCOPES)} required scopes granted" in summary
    assert "Connected to alpha" in status_text(widget)
    assert widget.link.value == ""  # the consent link is spent
    # the token is stored, and the connection reaches Jira as Ann
    with connection.client(transport=world.cloud.transport()) as jira:
        me = jira.get("/rest/api/3/myself")
    assert me.status_code == 200 and me.json()["accountId"] == world.ann
    access, refresh = stored_secrets(world, connection)
    assert refresh is not None
    assert_absent(saved_state(widget) + frontend.text(), world.app.client_secret, access, refresh)


def test_a_local_kernel_opens_the_consent_page_in_the_browser(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget(open_browser=True, open_url=browser.open, client_secret=world.app.client_secret)

    widget.authorize_button.click()
    connection = outcome(widget).result(timeout=WAIT)

    assert len(browser.visited) == 1
    query = parse_qs(urlsplit(browser.visited[0]).query)
    assert query["client_id"] == [world.app.client_id]
    assert query["redirect_uri"] == [redirect_uri_for(world.port)]
    assert "offline_access" in query["scope"][0].split()
    assert connection.site.cloud_id == world.alpha.cloud_id


def test_connects_with_the_pasted_url_when_the_kernel_is_remote(
    world: World, browser: Browser, frontend: Frontend
) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget()
    type_secret(widget, world.app.client_secret)
    connected: list[Connection] = []
    widget.on_connect(connected.append)

    link = authorize(widget)
    redirect = browser.consent(link)  # the browser lands on localhost, which (remotely) is not the kernel
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    paste(widget, f"  {redirect}  ")

    assert phase(widget) is Phase.CONNECTED, status_text(widget)
    assert connected == [widget.connection]
    assert outcome(widget).result(timeout=0) is widget.connection
    assert widget.paste_field.value == ""  # the one-time code does not stay in the box
    assert frontend.states_sent_to(widget.paste_field)[-1] == {"value": ""}
    assert ANN in result_text(widget)
    assert world.cloud.auth.request_count("authorization_code") == 1
    assert widget.connection is not None
    access, refresh = stored_secrets(world, widget.connection)
    assert_absent(saved_state(widget) + frontend.text(), world.app.client_secret, access, refresh, code)


def test_the_paste_box_works_when_the_callback_port_is_taken(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    occupier = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    occupier.bind(("127.0.0.1", world.port))
    occupier.listen(1)
    try:
        widget = world.widget(client_secret=world.app.client_secret)
        link = authorize(widget)
        assert f"another program uses port {world.port}" in status_text(widget)
        assert "paste" in status_text(widget)
        paste(widget, browser.consent(link))
    finally:
        occupier.close()
    assert phase(widget) is Phase.CONNECTED, status_text(widget)


def test_after_the_loopback_times_out_the_pasted_url_still_completes(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget(client_secret=world.app.client_secret, callback_timeout=0.05)
    timed_out = threading.Event()
    widget.status.observe(lambda change: timed_out.set() if "No redirect" in change["new"] else None, names="value")

    link = authorize(widget)
    assert timed_out.wait(WAIT)
    assert phase(widget) is Phase.WAITING
    paste(widget, browser.consent(link))

    assert phase(widget) is Phase.CONNECTED, status_text(widget)


def test_the_site_picker_offers_every_granted_site(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL)  # Ann consents for both her sites
    widget = world.widget(client_secret=world.app.client_secret)
    choosing = threading.Event()
    widget.status.observe(lambda change: choosing.set() if "Choose the site" in change["new"] else None, names="value")

    browser.deliver(browser.consent(authorize(widget)))
    assert choosing.wait(WAIT)

    assert phase(widget) is Phase.CHOOSING_SITE
    assert widget.site_box.layout.display != "none"
    assert {value for _label, value in widget.site_picker.options} == {world.alpha.cloud_id, world.beta.cloud_id}
    assert "https://beta.atlassian.net" in " ".join(label for label, _value in widget.site_picker.options)
    assert widget.use_site_button.disabled  # nothing is chosen for the user
    assert widget.connection is None
    assert not outcome(widget).done()

    widget.site_picker.value = world.beta.cloud_id
    widget.use_site_button.click()

    connection = outcome(widget).result(timeout=WAIT)
    assert connection.site.cloud_id == world.beta.cloud_id
    assert connection.api_base.endswith(f"/ex/jira/{world.beta.cloud_id}")
    assert "beta" in result_text(widget)
    with connection.client(transport=world.cloud.transport()) as jira:
        assert jira.get("/rest/api/3/myself").json()["accountId"] == world.ann
    # one consent, one code exchange: the site was chosen afterwards
    assert world.cloud.auth.request_count("authorization_code") == 1


def test_a_site_url_given_up_front_skips_the_picker(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL)
    widget = world.widget(client_secret=world.app.client_secret, site_url="https://BETA.atlassian.net/")

    paste(widget, browser.consent(authorize(widget)))

    assert phase(widget) is Phase.CONNECTED, status_text(widget)
    assert widget.connection is not None and widget.connection.site.cloud_id == world.beta.cloud_id


# -- failures, shown in the status line ------------------------------------------------------------------------------
def test_denied_consent_is_shown_in_the_status_line(world: World, browser: Browser) -> None:
    world.cloud.auth.auto_consent = AutoConsent(ANN_EMAIL, decision="deny")
    widget = world.widget(client_secret=world.app.client_secret)

    page = browser.deliver(browser.consent(authorize(widget)))

    with pytest.raises(CallbackError):
        outcome(widget).result(timeout=WAIT)
    assert page.status_code == 400  # the browser's tab says the authorization was not granted
    assert phase(widget) is Phase.FAILED
    assert "consent was denied" in status_text(widget)
    assert "access_denied" in status_text(widget)
    assert widget.connection is None
    assert not widget.authorize_button.disabled  # the user can try again
    assert world.cloud.auth.request_count() == 0  # nothing was exchanged


def test_a_state_mismatch_is_shown_and_the_right_url_still_connects(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget(client_secret=world.app.client_secret)
    redirect = browser.consent(authorize(widget))
    query = parse_qs(urlsplit(redirect).query)
    forged = f"{redirect_uri_for(world.port)}?{urlencode({'code': query['code'][0], 'state': 'from-another-tab'})}"

    paste(widget, forged)

    assert "state does not match" in status_text(widget)
    assert phase(widget) is Phase.WAITING  # a wrong paste does not cost a new consent
    assert widget.connection is None
    assert world.cloud.auth.request_count() == 0  # a forged redirect is never exchanged
    # the loopback refuses it too, and keeps waiting
    assert browser.deliver(forged).status_code == 400
    assert phase(widget) is Phase.WAITING

    paste(widget, redirect)
    assert phase(widget) is Phase.CONNECTED, status_text(widget)


def test_a_wrong_client_secret_is_named(world: World, browser: Browser, frontend: Frontend) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget()
    wrong = "not-the-secret-" + world.app.client_secret[:8]
    type_secret(widget, wrong)

    paste(widget, browser.consent(authorize(widget)))

    status = status_text(widget)
    assert phase(widget) is Phase.FAILED
    assert isinstance(outcome(widget).exception(timeout=0), InvalidClientError)
    assert world.app.client_id in status
    assert "client secret" in status
    assert_absent(status + saved_state(widget) + frontend.text() + repr(widget), wrong)


def test_missing_scopes_are_named() -> None:
    lacking = ("manage:jira-configuration", "read:audit-log:jira")
    world = make_world(app_scopes=tuple(s for s in REQUIRED_SCOPES if s not in lacking))
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    # Atlassian refuses scopes the app is not configured with, so the widget asks for the app's own
    widget = world.widget(client_secret=world.app.client_secret, scopes=world.app.scopes)
    try:
        paste(widget, Browser(world.cloud).consent(authorize(widget)))

        assert phase(widget) is Phase.CONNECTED, status_text(widget)
        assert widget.connection is not None
        assert widget.connection.scope_check.missing == lacking
        for shown in (status_text(widget), result_text(widget)):
            assert all(scope in shown for scope in lacking)
            assert f"2 of {len(REQUIRED_SCOPES)} required scopes missing" in shown
    finally:
        widget.close()


def test_authorize_without_credentials_says_what_is_missing(world: World) -> None:
    widget = world.widget(client_id="")

    widget.authorize_button.click()
    assert "client id" in status_text(widget)
    widget.client_id_field.value = world.app.client_id
    widget.authorize_button.click()
    assert "client secret" in status_text(widget)
    assert phase(widget) is Phase.IDLE


def test_connect_before_authorize_says_what_to_do(world: World) -> None:
    widget = world.widget(client_secret=world.app.client_secret)

    paste(widget, "http://localhost:13131/?code=c&state=s")

    assert "Click Authorize first" in status_text(widget)
    assert widget.paste_field.value == ""


# -- secrets ---------------------------------------------------------------------------------------------------------
def test_a_typed_secret_leaves_the_synced_field_at_once(world: World, frontend: Frontend) -> None:
    widget = world.widget()
    secret = world.app.client_secret

    type_secret(widget, secret)

    assert widget.client_secret_field.value == ""
    assert "held in kernel memory" in widget.client_secret_field.placeholder
    # the frontend model was told to empty the field (and was never sent the secret back)
    values = [state["value"] for state in frontend.states_sent_to(widget.client_secret_field) if "value" in state]
    assert values[-1] == ""
    assert_absent(frontend.text() + saved_state(widget) + repr(widget) + str(widget._repr_mimebundle_()), secret)


def test_no_secret_reaches_reprs_or_output(
    world: World, browser: Browser, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget()
    type_secret(widget, world.app.client_secret)

    browser.deliver(browser.consent(authorize(widget)))
    connection = widget.wait(timeout=WAIT)

    access, refresh = stored_secrets(world, connection)
    out = capsys.readouterr()
    shown = " ".join(
        [
            repr(widget),
            str(widget._repr_mimebundle_()),
            repr(connection),
            str(connection.summary()),
            out.out,
            out.err,
            caplog.text,
        ]
    )
    assert_absent(shown, world.app.client_secret, access, refresh)


# -- small parts -----------------------------------------------------------------------------------------------------
def test_authorize_again_abandons_the_waiting_attempt(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    widget = world.widget(client_secret=world.app.client_secret)
    first_link = authorize(widget)
    first = widget.attempt

    second_link = authorize(widget)  # rebinding the same port works: the first server was closed

    assert first is not None and first.cancelled()
    stale = browser.consent(first_link)
    paste(widget, stale)
    assert "state does not match" in status_text(widget)
    browser.deliver(browser.consent(second_link))
    assert widget.wait(timeout=WAIT).site.cloud_id == world.alpha.cloud_id


def test_a_newer_form_takes_over_the_callback_port(world: World, browser: Browser) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    old = world.widget(client_secret=world.app.client_secret)  # the cell is run again: a second form appears
    new = world.widget(client_secret=world.app.client_secret)
    authorize(old)
    old_outcome = outcome(old)

    link = authorize(new)

    assert "another program uses port" not in status_text(new)
    assert old_outcome.cancelled()
    assert phase(old) is Phase.IDLE and "newer connect form" in status_text(old)
    browser.deliver(browser.consent(link))
    assert new.wait(timeout=WAIT).site.cloud_id == world.alpha.cloud_id


@pytest.mark.parametrize("marker", ["JUPYTERHUB_USER", "COLAB_RELEASE_TAG", "SSH_CONNECTION", "BINDER_SERVICE_HOST"])
def test_hosted_and_remote_kernels_do_not_open_a_browser(monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv(marker, "1")

    assert kernel_is_local() is False


def test_the_client_id_and_secret_may_come_from_the_environment(
    world: World, browser: Browser, monkeypatch: pytest.MonkeyPatch, frontend: Frontend
) -> None:
    world.cloud.auth.set_auto_consent(ANN_EMAIL, sites=["alpha"])
    monkeypatch.setenv("JIRA_LAB_CLIENT_ID", world.app.client_id)
    monkeypatch.setenv("JIRA_LAB_CLIENT_SECRET", world.app.client_secret)
    widget = world.widget(client_id=None)

    assert widget.client_id_field.value == world.app.client_id
    assert "JIRA_LAB_CLIENT_SECRET" in widget.client_secret_field.placeholder
    paste(widget, browser.consent(authorize(widget)))

    assert phase(widget) is Phase.CONNECTED, status_text(widget)
    assert_absent(saved_state(widget) + frontend.text(), world.app.client_secret)
