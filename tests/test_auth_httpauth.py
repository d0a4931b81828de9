"""OAuth2Auth against the simulated authorization server and gateway: refresh on expiry and on 401, single-flight
across threads and asyncio tasks, rotation persisted before use, errors that say what to do, no secret anywhere."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from jira_lab.auth.httpauth import OAuth2Auth, basic_auth
from jira_lab.auth.oauth import (
    DEFAULT_REDIRECT_URI,
    accessible_resources,
    api_base,
    authorization_request,
    exchange_code,
    parse_callback,
    pick_site,
)
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, MemoryTokenStore, Token, TokenKey, TokenStore
from jira_lab.errors import ConsentRequiredError, InvalidClientError, MissingScopeError
from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.authserver import OAuthApp

T0 = 1_780_000_000.0
ANN_ID = "5b10ac8d82e05b22cc7d0a11"
ANN_API_TOKEN = "ann-api-token-SECRET-42"
MYSELF = "/rest/api/3/myself"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    cloud: SimCloud
    clock: Clock
    app: OAuthApp
    token: Token
    tiny_base: str
    other_base: str

    @property
    def key(self) -> TokenKey:
        return TokenKey(self.app.client_id, ANN_ID)

    def refreshes(self) -> int:
        """Refresh requests that reached the authorization server."""
        return self.cloud.auth.request_count("refresh_token")

    def expire(self) -> None:
        self.clock.now = self.token.expires_at + 1

    def auth(self, store: TokenStore, *, leeway: float = 60.0, preloaded: bool = True) -> OAuth2Auth:
        """The auth under test; ``preloaded=False`` makes it read the token from the store on first use."""
        token = self.token if preloaded else None
        return OAuth2Auth(store, self.key, self.app.client_secret, clock=self.clock, leeway=leeway, token=token)


def build_world(scopes: tuple[str, ...] = REQUIRED_SCOPES) -> World:
    """Ann on two sites; the app consented through the simulated authorization server as in real life."""
    tiny, other = SiteBuilder("tiny"), SiteBuilder("other")
    tiny.user("Ann Analyst", email="ann@example.com", account_id=ANN_ID, api_token=ANN_API_TOKEN)
    other.user("Ann Analyst", email="ann@example.com", account_id=ANN_ID)
    clock = Clock()
    cloud = SimCloud(tiny.site, other.site, clock=clock)
    app = cloud.auth.register_app("jira-lab", callback_url=DEFAULT_REDIRECT_URI, scopes=REQUIRED_SCOPES)
    cloud.auth.auto_consent = "ann@example.com"
    request = authorization_request(app.client_id, scopes=scopes)
    with httpx.Client(transport=cloud.transport()) as http:
        code = parse_callback(http.get(request.url).headers["location"], request.state)
        grant = exchange_code(http, app.client_id, app.client_secret, code, request.redirect_uri, clock=clock)
        sites = tuple(accessible_resources(http, grant.access_token))
    token = Token.from_grant(grant, app.client_id, ANN_ID, sites)
    tiny_base = api_base(pick_site(sites, cloud.site_url(tiny.site)))
    other_base = api_base(pick_site(sites, cloud.site_url(other.site)))
    return World(cloud, clock, app, token, tiny_base, other_base)


@pytest.fixture
def world() -> World:
    return build_world()


def bearer(request: httpx.Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value if scheme == "Bearer" else None


@dataclass
class Recorder:
    """One timeline of what the store and the transport saw."""

    events: list[tuple[str, str | None]] = field(default_factory=list)

    def index(self, event: tuple[str, str | None]) -> int:
        return self.events.index(event)


class RecordingStore(MemoryTokenStore):
    def __init__(self, recorder: Recorder, on_load: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.recorder = recorder
        self.loads = 0
        self.on_load = on_load
        self._count_lock = threading.Lock()

    def load(self, key: TokenKey) -> Token | None:
        with self._count_lock:
            self.loads += 1
            loads = self.loads
        if self.on_load is not None:
            self.on_load(loads)
        return super().load(key)

    def save(self, key: TokenKey, token: Token) -> None:
        super().save(key, token)
        self.recorder.events.append(("save", token.access_token))


class RecordingTransport(httpx.BaseTransport):
    """The cloud's transport, noting each request; the refresh request can be held at a gate."""

    def __init__(self, cloud: SimCloud, recorder: Recorder, gate: threading.Event | None = None) -> None:
        self.inner = cloud.transport()
        self.recorder = recorder
        self.gate = gate
        self.token_requests = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            with self._lock:
                self.token_requests += 1
            self.recorder.events.append(("refresh", None))
            if self.gate is not None:
                assert self.gate.wait(timeout=10), "not every request reached the auth flow"
        else:
            self.recorder.events.append(("request", bearer(request)))
        return self.inner.handle_request(request)


class GatedAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, cloud: SimCloud, gate: asyncio.Event) -> None:
        self.inner = cloud.transport()
        self.gate = gate
        self.token_requests = 0
        self.bearers: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.token_requests += 1
            await asyncio.wait_for(self.gate.wait(), timeout=10)
        else:
            self.bearers.append(bearer(request))
        return await self.inner.handle_async_request(request)


def stored(world: World, token: Token | None = None) -> MemoryTokenStore:
    store = MemoryTokenStore()
    store.save(world.key, token or world.token)
    return store


def client(world: World, auth: httpx.Auth, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(transport=transport or world.cloud.transport(), base_url=world.tiny_base, auth=auth)


# -- the happy path ------------------------------------------------------------------------------------------------
def test_a_fresh_token_is_sent_as_bearer_without_refreshing(world: World) -> None:
    with client(world, world.auth(stored(world))) as http:
        me = http.get(MYSELF)

    assert me.status_code == 200
    assert me.json()["accountId"] == ANN_ID
    assert bearer(me.request) == world.token.access_token
    assert world.refreshes() == 0


def test_refreshes_within_the_leeway_before_expiry_and_not_earlier(world: World) -> None:
    store = stored(world)
    auth = world.auth(store, leeway=60)
    with client(world, auth) as http:
        world.clock.now = world.token.expires_at - 61
        assert http.get(MYSELF).status_code == 200
        assert world.refreshes() == 0

        world.clock.now = world.token.expires_at - 30
        me = http.get(MYSELF)

    assert me.status_code == 200
    assert world.refreshes() == 1
    fresh = store.load(world.key)
    assert fresh is not None
    assert fresh.access_token == bearer(me.request) != world.token.access_token
    assert fresh.refresh_token not in (None, world.token.refresh_token)
    assert fresh.expires_at == world.clock.now + 3600
    assert (fresh.account_id, fresh.sites) == (ANN_ID, world.token.sites)


def test_an_expired_token_401_refreshes_once_and_retries(world: World) -> None:
    # the gateway stopped honouring the access token although the local clock thinks it valid
    world.cloud.revoke_access_token(world.token.access_token)
    recorder = Recorder()
    with client(world, world.auth(stored(world)), RecordingTransport(world.cloud, recorder)) as http:
        me = http.get(MYSELF)

    assert me.status_code == 200
    assert world.refreshes() == 1
    new_access = bearer(me.request)
    assert recorder.events == [("request", world.token.access_token), ("refresh", None), ("request", new_access)]


def test_a_401_that_persists_after_the_refresh_is_returned_not_retried_forever(world: World) -> None:
    for site in world.cloud.sites.values():
        site.users[ANN_ID].active = False  # the gateway answers 401 Unauthorized for any token of Ann now

    with client(world, world.auth(stored(world))) as http:
        answer = http.get(MYSELF)

    assert answer.status_code == 401
    assert answer.json()["message"] == "Unauthorized"
    assert world.refreshes() == 1


# -- persisted before use ------------------------------------------------------------------------------------------
def test_the_rotated_token_is_saved_before_any_request_uses_it(world: World) -> None:
    recorder = Recorder()
    store = RecordingStore(recorder)
    store.save(world.key, world.token)
    recorder.events.clear()
    world.expire()

    with client(world, world.auth(store), RecordingTransport(world.cloud, recorder)) as http:
        me = http.get(MYSELF)

    new_access = bearer(me.request)
    assert me.status_code == 200
    assert new_access != world.token.access_token
    assert recorder.events == [("refresh", None), ("save", new_access), ("request", new_access)]
    assert recorder.index(("save", new_access)) < recorder.index(("request", new_access))


def test_when_saving_fails_the_new_access_token_is_never_used(world: World) -> None:
    class BrokenStore(MemoryTokenStore):
        def save(self, key: TokenKey, token: Token) -> None:
            raise OSError("disk full")

    recorder = Recorder()
    world.expire()
    broken = client(world, world.auth(BrokenStore()), RecordingTransport(world.cloud, recorder))
    with broken as http, pytest.raises(OSError, match="disk full"):
        http.get(MYSELF)

    assert recorder.events == [("refresh", None)]


# -- single flight -------------------------------------------------------------------------------------------------
def test_many_threads_finding_the_token_expired_send_exactly_one_refresh(world: World) -> None:
    threads_count = 12
    all_checked = threading.Event()
    recorder = Recorder()
    # the refresh is held until every thread has looked at the store: all of them found the token stale at once
    store = RecordingStore(recorder, on_load=lambda n: all_checked.set() if n >= threads_count else None)
    store.save(world.key, world.token)
    transport = RecordingTransport(world.cloud, recorder, gate=all_checked)
    world.expire()
    start = threading.Barrier(threads_count)
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []

    with client(world, world.auth(store), transport) as http:

        def call() -> None:
            start.wait()
            try:
                answers.append(http.get(MYSELF))
            except BaseException as error:  # surfaced below, with the thread's own error
                errors.append(error)

        threads = [threading.Thread(target=call) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)

    assert errors == []
    assert [a.status_code for a in answers] == [200] * threads_count
    assert transport.token_requests == 1
    assert world.refreshes() == 1
    saved = store.load(world.key)
    assert saved is not None
    assert {bearer(a.request) for a in answers} == {saved.access_token}


@pytest.mark.anyio
async def test_many_tasks_finding_the_token_expired_send_exactly_one_refresh(world: World) -> None:
    tasks_count = 12
    all_checked = asyncio.Event()
    store = RecordingStore(Recorder(), on_load=lambda n: all_checked.set() if n >= tasks_count else None)
    store.save(world.key, world.token)
    transport = GatedAsyncTransport(world.cloud, all_checked)
    world.expire()

    async with httpx.AsyncClient(transport=transport, base_url=world.tiny_base, auth=world.auth(store)) as http:
        answers = await asyncio.gather(*(http.get(MYSELF) for _ in range(tasks_count)))

    assert [a.status_code for a in answers] == [200] * tasks_count
    assert transport.token_requests == 1
    assert world.refreshes() == 1
    saved = store.load(world.key)
    assert saved is not None
    assert set(transport.bearers) == {saved.access_token}


@pytest.mark.anyio
async def test_works_inside_a_running_event_loop_like_jupyter(world: World) -> None:
    asyncio.get_running_loop()  # a notebook cell runs inside this loop
    store = stored(world)
    auth = world.auth(store)
    world.expire()

    with client(world, auth) as http:
        sync_answer = http.get(MYSELF)
    async with httpx.AsyncClient(transport=world.cloud.transport(), base_url=world.tiny_base, auth=auth) as http:
        async_answer = await http.get(MYSELF)

    assert (sync_answer.status_code, async_answer.status_code) == (200, 200)
    assert bearer(sync_answer.request) == bearer(async_answer.request)
    assert world.refreshes() == 1


@pytest.mark.anyio
async def test_a_sync_call_while_a_task_refreshes_on_the_same_thread_does_not_deadlock(world: World) -> None:
    leader_waiting = asyncio.Event()
    release = asyncio.Event()

    class HeldTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/oauth/token":
                leader_waiting.set()
                await asyncio.wait_for(release.wait(), timeout=10)
            return await world.cloud.transport().handle_async_request(request)

    auth = world.auth(stored(world))
    world.expire()
    async with httpx.AsyncClient(transport=HeldTransport(), base_url=world.tiny_base, auth=auth) as http:
        task = asyncio.ensure_future(http.get(MYSELF))
        await asyncio.wait_for(leader_waiting.wait(), timeout=10)
        # a notebook cell making a sync call on the loop's thread while the task's refresh is in flight
        with client(world, auth) as sync_http:
            sync_answer = sync_http.get(MYSELF)
        release.set()
        async_answer = await task

    assert (sync_answer.status_code, async_answer.status_code) == (200, 200)
    # two uses of the same refresh token, well within Atlassian's reuse interval
    assert world.refreshes() == 2


def test_a_refresh_by_another_process_is_picked_up_from_the_store(tmp_path: Path, world: World) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(world.key, world.token)
    # two components (think: two processes) working on two sites of the same grant, each with its own store object
    on_tiny = world.auth(FileTokenStore(path))
    on_other = world.auth(FileTokenStore(path))
    world.expire()

    with client(world, on_tiny) as http:
        assert http.get(MYSELF).status_code == 200
    assert world.refreshes() == 1
    # long after the old refresh token's reuse interval: using it now would revoke the whole grant
    world.clock.now += world.cloud.auth.settings.reuse_interval + 60
    with httpx.Client(transport=world.cloud.transport(), base_url=world.other_base, auth=on_other) as http:
        me = http.get(MYSELF)

    assert me.status_code == 200
    assert world.refreshes() == 1
    saved = FileTokenStore(path).load(world.key)
    assert saved is not None
    assert bearer(me.request) == saved.access_token


def test_a_refresh_that_never_reached_the_server_is_retried_by_the_next_request(world: World) -> None:
    class FlakyTransport(httpx.BaseTransport):
        def __init__(self) -> None:
            self.failed = False

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/oauth/token" and not self.failed:
                self.failed = True
                raise httpx.ConnectError("connection refused", request=request)
            return world.cloud.transport().handle_request(request)

    world.expire()
    with client(world, world.auth(stored(world)), FlakyTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            http.get(MYSELF)
        me = http.get(MYSELF)

    assert me.status_code == 200
    assert world.refreshes() == 1


# -- errors that say what to do ------------------------------------------------------------------------------------
def test_a_scope_mismatch_names_the_missing_scopes_without_refreshing() -> None:
    world = build_world(scopes=("read:jira-work",))
    with client(world, world.auth(stored(world))) as http, pytest.raises(MissingScopeError) as raised:
        http.get(MYSELF)

    # spec: getCurrentUser needs classic read:jira-user (or four granular scopes)
    assert raised.value.missing == ("read:jira-user",)
    assert "GET /rest/api/3/myself" in str(raised.value)
    assert world.refreshes() == 0


def test_a_revoked_grant_asks_to_consent_again(world: World) -> None:
    assert world.cloud.auth.revoke_grant(world.app.client_id, ANN_ID)

    with client(world, world.auth(stored(world))) as http, pytest.raises(ConsentRequiredError) as raised:
        http.get(MYSELF)

    assert f"jira-lab token --api jiracloud -i {world.app.client_id}" in str(raised.value)
    assert world.refreshes() == 1


def test_a_wrong_client_secret_names_the_client_id(world: World) -> None:
    wrong = "wrong-secret-SECRET-777"
    auth = OAuth2Auth(stored(world), world.key, wrong, clock=world.clock)
    world.expire()

    with client(world, auth) as http, pytest.raises(InvalidClientError) as raised:
        http.get(MYSELF)

    assert world.app.client_id in str(raised.value)
    assert wrong not in str(raised.value)


def test_an_expired_token_without_refresh_token_asks_to_consent_again(world: World) -> None:
    token = Token(
        world.token.access_token, None, world.token.expires_at, world.token.scopes, world.app.client_id, ANN_ID
    )
    world.expire()

    with (
        client(world, world.auth(stored(world, token), preloaded=False)) as http,
        pytest.raises(ConsentRequiredError) as raised,
    ):
        http.get(MYSELF)

    assert "offline_access" in str(raised.value)
    assert world.refreshes() == 0


def test_no_stored_token_asks_to_consent(world: World) -> None:
    auth = OAuth2Auth(MemoryTokenStore(), world.key, world.app.client_secret, clock=world.clock)

    with client(world, auth) as http, pytest.raises(ConsentRequiredError, match="no token is stored"):
        http.get(MYSELF)


# -- no secret anywhere --------------------------------------------------------------------------------------------
def test_secrets_never_reach_reprs_logs_or_exception_messages(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = stored(world)
    auth = world.auth(store)
    messages: list[str] = []
    world.expire()
    with client(world, auth) as http:
        http.get(MYSELF)  # a refresh, with debug logging on
        first = store.load(world.key)
        assert first is not None
        world.cloud.revoke_access_token(first.access_token)
        http.get(MYSELF)  # a 401 and a second refresh
        rotated = store.load(world.key)
        assert world.cloud.auth.revoke_grant(world.app.client_id, ANN_ID)
        with pytest.raises(ConsentRequiredError) as consent:
            http.get(MYSELF)
        messages.append(str(consent.value))
    with client(world, OAuth2Auth(store, world.key, "bad-secret-SECRET-1", clock=world.clock)) as http:
        world.clock.now += 10_000
        with pytest.raises(InvalidClientError) as invalid:
            http.get(MYSELF)
        messages.append(str(invalid.value))

    assert rotated is not None
    secrets = [
        world.app.client_secret,
        "bad-secret-SECRET-1",
        world.token.access_token,
        world.token.refresh_token,
        first.access_token,
        first.refresh_token,
        rotated.access_token,
        rotated.refresh_token,
    ]
    texts = [caplog.text, repr(auth), str(auth), repr(rotated), str(rotated), repr(store), *messages]
    assert "refreshing the access token" in caplog.text  # the debug log did run
    for secret in secrets:
        assert secret
        for text in texts:
            assert secret not in text


# -- basic auth ----------------------------------------------------------------------------------------------------
def test_basic_auth_reaches_the_site_url_and_masks_the_api_token(world: World) -> None:
    auth = basic_auth("ann@example.com", ANN_API_TOKEN)
    site_url = "https://tiny.atlassian.net"
    with httpx.Client(transport=world.cloud.transport(), base_url=site_url, auth=auth) as http:
        me = http.get(MYSELF)
    with httpx.Client(
        transport=world.cloud.transport(), base_url=site_url, auth=basic_auth("ann@example.com", "wrong")
    ) as http:
        refused = http.get(MYSELF)

    assert me.status_code == 200
    assert me.json()["accountId"] == ANN_ID
    assert refused.status_code == 401
    assert ANN_API_TOKEN not in repr(auth)
    assert ANN_API_TOKEN not in str(auth)
    assert "ann@example.com" in repr(auth)


def test_basic_auth_needs_both_parts() -> None:
    with pytest.raises(ValueError, match="email and an API token"):
        basic_auth("ann@example.com", "")
