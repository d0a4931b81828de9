"""The connect flow (jira_lab.auth.connect) against the simulated authorization server and gateway.

The browser is scripted: it follows the authorize URL through the simulator (auto-consent) and either hands the
redirect URL over as a person would paste it, or delivers it to the real loopback callback server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from jira_lab.auth.connect import (
    Authorization,
    PendingAuthorization,
    User,
    authorize_in_browser,
    complete_authorization,
    connect_from_store,
    start_authorization,
)
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import MemoryTokenStore, TokenKey
from jira_lab.errors import (
    CallbackError,
    ConsentRequiredError,
    InvalidClientError,
    PortInUseError,
    SiteSelectionError,
)
from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.authserver import OAuthApp
from jira_lab.sim.clock import FakeClock

T0 = 1_780_000_000.0
ANN = "5b10ac8d82e05b22cc7d0a11"
CALLBACK = "http://localhost:13131/"
# without read:jira-user and read:user:jira the token may not ask /myself who it is
LACKING = ("read:jira-user", "read:user:jira", "manage:jira-configuration")


@dataclass
class World:
    cloud: SimCloud
    clock: FakeClock
    app: OAuthApp
    http: httpx.Client

    def start(self, **options: object) -> PendingAuthorization:
        return start_authorization(self.app.client_id, redirect_uri=self.app.callback_url, **options)  # type: ignore[arg-type]

    def browse(self, url: str) -> str:
        """Follow the authorize URL through the (auto-)consent; the URL the browser is sent back to."""
        response = self.http.get(url)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def complete(self, pending: PendingAuthorization, redirect_url: str, store: MemoryTokenStore) -> Authorization:
        return complete_authorization(
            pending, self.app.client_secret, redirect_url, store=store, http=self.http, clock=self.clock
        )

    def site_url(self, name: str) -> str:
        site = self.cloud.site_named(name)
        assert site is not None
        return self.cloud.site_url(site)

    def cloud_id(self, name: str) -> str:
        site = self.cloud.site_named(name)
        assert site is not None
        return site.cloud_id


@contextlib.contextmanager
def make_world(*, callback_url: str = CALLBACK, scopes: tuple[str, ...] = REQUIRED_SCOPES) -> Iterator[World]:
    tiny, other = SiteBuilder("tiny"), SiteBuilder("other")
    tiny.user("Ann Analyst", email="ann@example.com", account_id=ANN)
    other.user("Ann Analyst", email="ann@example.com", account_id=ANN)
    clock = FakeClock(T0)
    cloud = SimCloud(tiny.site, other.site, clock=clock)
    app = cloud.auth.register_app("jira-lab", callback_url=callback_url, scopes=scopes)
    cloud.auth.set_auto_consent("ann@example.com", sites=["tiny"])
    with httpx.Client(transport=cloud.transport()) as http:
        yield World(cloud, clock, app, http)


@pytest.fixture
def world() -> Iterator[World]:
    with make_world() as built:
        yield built


# -- completing from a redirect URL (the pasted path) -------------------------------------------------------------
def test_a_completed_consent_stores_the_token_under_the_account_and_connects(world: World) -> None:
    store = MemoryTokenStore()
    pending = world.start()

    authorization = world.complete(pending, world.browse(pending.url), store)

    assert authorization.user == User(ANN, "Ann Analyst")
    assert authorization.key == TokenKey(world.app.client_id, ANN)
    assert store.keys() == [TokenKey(world.app.client_id, ANN)]
    assert store.load(authorization.key) == authorization.token
    assert [site.url for site in authorization.sites] == [world.site_url("tiny")]
    assert authorization.scope_check.ok
    connection = authorization.connect()
    assert connection.api_base == f"https://api.atlassian.com/ex/jira/{world.cloud_id('tiny')}"
    with connection.client(transport=world.cloud.transport()) as jira:
        me = jira.get("/rest/api/3/myself")
    assert me.status_code == 200
    assert me.json()["accountId"] == ANN


def test_a_url_pasted_with_quotes_and_blanks_completes_too(world: World) -> None:
    pending = world.start()
    pasted = f"  '{world.browse(pending.url)}'\n"

    authorization = world.complete(pending, pasted, MemoryTokenStore())

    assert authorization.user == User(ANN, "Ann Analyst")


def test_a_pasted_bare_code_is_refused(world: World) -> None:
    pending = world.start()
    code = httpx.URL(world.browse(pending.url)).params["code"]

    with pytest.raises(CallbackError, match="whole address"):
        world.complete(pending, code, MemoryTokenStore())
    assert world.cloud.auth.request_count() == 0


def test_the_summary_names_site_user_scopes_and_expiry_without_secrets(world: World) -> None:
    pending = world.start()
    authorization = world.complete(pending, world.browse(pending.url), MemoryTokenStore())

    lines = authorization.connect().summary()

    expires = datetime.fromtimestamp(T0 + 3600, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert lines == [
        f"site:    tiny — {world.site_url('tiny')} (cloud id {world.cloud_id('tiny')})",
        f"user:    Ann Analyst (account id {ANN})",
        f"scopes:  all {len(REQUIRED_SCOPES)} required scopes granted",
        f"expiry:  access token expires {expires} (in 60 min); renewed with the refresh token when due",
    ]
    token = authorization.token
    assert token.refresh_token is not None
    for text in (*lines, repr(authorization), repr(authorization.connect()), repr(pending)):
        assert token.access_token not in text
        assert token.refresh_token not in text
        assert world.app.client_secret not in text
        assert pending.state not in text


def test_several_sites_are_listed_and_the_caller_picks_one(world: World) -> None:
    world.cloud.auth.set_auto_consent("ann@example.com")  # every site Ann uses
    store = MemoryTokenStore()
    pending = world.start()
    authorization = world.complete(pending, world.browse(pending.url), store)

    assert sorted(site.name for site in authorization.sites) == ["other", "tiny"]
    with pytest.raises(SiteSelectionError) as ambiguous:
        authorization.connect()
    assert world.site_url("tiny") in str(ambiguous.value)
    assert world.site_url("other") in str(ambiguous.value)
    assert store.load(authorization.key) == authorization.token  # stored before any site is picked
    assert authorization.summary()[0].startswith("sites:   2 granted, choose one: ")

    picked = authorization.connect(world.site_url("other").upper() + "/")
    assert picked.site.cloud_id == world.cloud_id("other")
    assert picked.api_base.endswith(f"/ex/jira/{world.cloud_id('other')}")
    with pytest.raises(SiteSelectionError, match="not among the granted sites"):
        authorization.connect("https://elsewhere.atlassian.net")


def test_a_redirect_with_another_state_is_refused_before_any_exchange(world: World) -> None:
    pending = world.start()
    redirect = httpx.URL(world.browse(pending.url))
    forged = str(redirect.copy_set_param("state", "someone-elses-state"))
    store = MemoryTokenStore()

    with pytest.raises(CallbackError, match="state"):
        world.complete(pending, forged, store)

    assert world.cloud.auth.request_count() == 0
    assert store.keys() == []


def test_denied_consent_is_a_clear_error_and_stores_nothing(world: World) -> None:
    world.cloud.auth.set_auto_consent("ann@example.com", decision="deny")
    store = MemoryTokenStore()
    pending = world.start()

    with pytest.raises(CallbackError, match=r"consent was denied.*Accept"):
        world.complete(pending, world.browse(pending.url), store)
    assert store.keys() == []


def test_a_wrong_client_secret_names_the_client_never_the_secret(world: World) -> None:
    pending = world.start()
    redirect = world.browse(pending.url)
    wrong = "not-the-secret-" + "x" * 20

    with pytest.raises(InvalidClientError) as caught:
        complete_authorization(pending, wrong, redirect, store=MemoryTokenStore(), http=world.http, clock=world.clock)
    assert world.app.client_id in str(caught.value)
    assert wrong not in str(caught.value)


def test_an_expired_code_asks_to_authorize_again(world: World) -> None:
    pending = world.start()
    redirect = world.browse(pending.url)
    world.clock.advance(world.cloud.auth.settings.code_lifetime + 1)

    with pytest.raises(ConsentRequiredError, match=r"expired.*jira-lab token"):
        world.complete(pending, redirect, MemoryTokenStore())


def test_missing_scopes_are_named_and_the_unknown_user_said_so() -> None:
    configured = tuple(s for s in REQUIRED_SCOPES if s not in LACKING)
    with make_world(scopes=configured) as world:
        pending = world.start(scopes=configured)
        authorization = world.complete(pending, world.browse(pending.url), MemoryTokenStore())

        missing = tuple(s for s in REQUIRED_SCOPES if s in LACKING)  # named in the documented order
        assert authorization.scope_check.missing == missing
        assert authorization.user is None
        assert authorization.key == TokenKey(world.app.client_id, None)
        lines = authorization.summary()
        assert f"scopes:  WARNING: 3 of {len(REQUIRED_SCOPES)} required scopes missing: {', '.join(missing)}" in lines
        assert "user:    unknown: the token may not read it (read:jira-user is needed)" in lines


# -- later sessions: the stored token -----------------------------------------------------------------------------
def test_connect_from_store_uses_the_stored_token_and_persists_its_rotation(world: World) -> None:
    store = MemoryTokenStore()
    pending = world.start()
    first = world.complete(pending, world.browse(pending.url), store).token

    world.clock.advance(3600 + 1)  # the access token has expired: the check call refreshes it
    connection = connect_from_store(
        world.app.client_id, world.app.client_secret, store=store, http=world.http, clock=world.clock
    )

    assert connection.user == User(ANN, "Ann Analyst")
    assert world.cloud.auth.request_count("refresh_token") == 1
    rotated = store.load(TokenKey(world.app.client_id, ANN))
    assert rotated is not None
    assert rotated.refresh_token not in (None, first.refresh_token)
    assert rotated.access_token != first.access_token


def test_connect_from_store_without_a_token_says_to_consent(world: World) -> None:
    with pytest.raises(ConsentRequiredError, match=r"no token of app .* `jira-lab token"):
        connect_from_store(world.app.client_id, "s", store=MemoryTokenStore(), http=world.http, clock=world.clock)


def test_connect_from_store_after_the_grant_was_revoked_says_to_consent(world: World) -> None:
    store = MemoryTokenStore()
    pending = world.start()
    world.complete(pending, world.browse(pending.url), store)
    assert world.cloud.auth.revoke_grant(world.app.client_id, ANN)

    with pytest.raises(ConsentRequiredError, match="consent"):
        connect_from_store(
            world.app.client_id, world.app.client_secret, store=store, http=world.http, clock=world.clock
        )


# -- the loopback flow in one call ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_authorize_in_browser_catches_the_redirect_on_loopback() -> None:
    port = free_port()
    with make_world(callback_url=f"http://localhost:{port}/") as world:
        shown: list[str] = []

        def browser(url: str) -> None:
            shown.append(url)
            httpx.get(world.browse(url), timeout=5)  # the redirect reaches the real loopback server

        authorization = authorize_in_browser(
            world.app.client_id,
            world.app.client_secret,
            store=MemoryTokenStore(),
            open_url=browser,
            redirect_uri=world.app.callback_url,
            timeout=10,
            http=world.http,
            clock=world.clock,
        )

        assert len(shown) == 1
        assert shown[0].startswith("https://auth.atlassian.com/authorize?")
        assert authorization.user == User(ANN, "Ann Analyst")


def test_listen_hands_the_redirect_to_a_hook_without_blocking() -> None:
    """How a widget uses the loopback: a hook called from the server's thread, no wait()."""
    port = free_port()
    with make_world(callback_url=f"http://localhost:{port}/") as world:
        pending = world.start()
        arrived: list[str] = []
        done = threading.Event()

        def hook(url: str) -> None:
            arrived.append(url)
            done.set()

        with pending.listen(on_callback=hook) as callback:
            assert callback.redirect_uri == f"http://localhost:{port}/"
            httpx.get(world.browse(pending.url), timeout=5)
            assert done.wait(5)

        authorization = world.complete(pending, arrived[0], MemoryTokenStore())
        assert authorization.user == User(ANN, "Ann Analyst")


def test_a_busy_port_is_reported_before_the_user_is_sent_anywhere() -> None:
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen(1)
        port = occupier.getsockname()[1]
        shown: list[str] = []
        with pytest.raises(PortInUseError, match=f"port {port}"):
            authorize_in_browser(
                "client",
                "secret",
                store=MemoryTokenStore(),
                open_url=shown.append,
                redirect_uri=f"http://localhost:{port}/",
            )
        assert shown == []
