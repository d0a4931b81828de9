"""httpx authentication for Jira Cloud: OAuth 2.0 Bearer tokens that refresh themselves, or Basic with an API token.

:class:`OAuth2Auth` adds ``Authorization: Bearer`` and refreshes the access token ``leeway`` seconds before it expires
and once after a 401 that is not the gateway's scope mismatch. Atlassian rotates refresh tokens, and reusing one after
its 10-minute reuse interval revokes the whole grant, so a refresh is:

* **single-flight**: the first request to find the token stale becomes the *leader* and sends the one refresh
  request; every other thread or asyncio task waiting meanwhile follows it (a :class:`concurrent.futures.Future`
  that threads block on and tasks await without blocking their loop). Before refreshing, the leader re-reads the
  store, because another process may have refreshed already.
* **persisted first**: the rotated token is saved to the store before any request carries the new access token.
* **sent through the same transport**: the refresh request is yielded from the auth flow, as httpx auth flows make
  extra requests, so the client's transport (the simulator's, in tests) answers it.

The flows never start or patch an event loop, so they run inside Jupyter's. A gateway 401 ``scope does not match``
raises :class:`MissingScopeError` naming the operation's missing scopes; a grant that is gone raises
:class:`ConsentRequiredError` telling the user to consent again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass

import httpx

from jira_lab.auth.oauth import AUTH_URL, consent_hint, parse_token_response, refresh_request
from jira_lab.auth.scopes import scope_error
from jira_lab.auth.tokens import MASK, Token, TokenKey, TokenStore
from jira_lab.errors import AuthError, ConsentRequiredError

logger = logging.getLogger(__name__)

DEFAULT_LEEWAY = 60.0
SCOPE_MISMATCH_MESSAGE = "scope does not match"
SCOPE_FAILURE_CATEGORY = "FAILURE_CLIENT_SCOPE_CHECK"


def is_scope_mismatch(response: httpx.Response) -> bool:
    """True for the gateway's 401 ``Unauthorized; scope does not match`` (its body read)."""
    if response.status_code != 401:
        return False
    if response.headers.get("x-failure-category") == SCOPE_FAILURE_CATEGORY:
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and SCOPE_MISMATCH_MESSAGE in str(body.get("message", ""))


class _RefreshAbandoned(Exception):
    """The leader stopped before finishing (transport error, cancellation): a follower should try itself."""


@dataclass(frozen=True, slots=True)
class _Send:
    request: httpx.Request
    needs_body: bool


@dataclass(frozen=True, slots=True)
class _Wait:
    refresh: Future[Token]


_Step = _Send | _Wait
_Flow = Generator[_Step, httpx.Response | None, None]


class OAuth2Auth(httpx.Auth):
    """Bearer authentication with a stored 3LO token that refreshes itself, single-flight, persisting rotations.

    Args:
        store: where the token lives; every rotated token is saved here before it is used.
        key: the grant's key in the store.
        client_secret: the app's secret, needed for refreshing (never shown).
        auth_url: the authorization server that issued the token.
        clock: seconds since the epoch; inject a fake one to expire tokens in tests.
        leeway: refresh this many seconds before the access token expires.
        token: the current token, when the caller has it at hand; otherwise loaded from the store on first use.
    """

    def __init__(
        self,
        store: TokenStore,
        key: TokenKey,
        client_secret: str,
        *,
        auth_url: str = AUTH_URL,
        clock: Callable[[], float] = time.time,
        leeway: float = DEFAULT_LEEWAY,
        token: Token | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self._client_secret = client_secret
        self.auth_url = auth_url
        self.clock = clock
        self.leeway = leeway
        self._token = token
        self._lock = threading.Lock()
        self._refreshing: Future[Token] | None = None
        self._refreshing_thread: int | None = None

    def __repr__(self) -> str:
        return f"OAuth2Auth(key={self.key!r}, store={self.store!r}, auth_url={self.auth_url!r}, client_secret={MASK})"

    __str__ = __repr__

    @property
    def client_id(self) -> str:
        return self.key.client_id

    @property
    def token(self) -> Token:
        """The current token (from the store on first use)."""
        with self._lock:
            return self._current()

    # -- httpx entry points ------------------------------------------------------------------------------------
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # a retry after a 401 sends the body again
        flow = self._flow(request, blocking=True)
        try:
            step = next(flow)
            while True:
                if isinstance(step, _Wait):
                    wait_for_futures([step.refresh])
                    step = flow.send(None)
                    continue
                response = yield step.request
                if step.needs_body or response.status_code == 401:
                    response.read()
                step = flow.send(response)
        except StopIteration:
            return
        finally:
            flow.close()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        flow = self._flow(request, blocking=False)
        try:
            step = next(flow)
            while True:
                if isinstance(step, _Wait):
                    await _await_without_blocking(step.refresh)
                    step = flow.send(None)
                    continue
                response = yield step.request
                if step.needs_body or response.status_code == 401:
                    await response.aread()
                step = flow.send(response)
        except StopIteration:
            return
        finally:
            flow.close()

    # -- the flow, shared by both ------------------------------------------------------------------------------
    def _flow(self, request: httpx.Request, *, blocking: bool) -> _Flow:
        token = yield from self._usable_token(None, blocking=blocking)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield _Send(request, needs_body=False)
        assert response is not None
        if response.status_code != 401:
            return
        if is_scope_mismatch(response):
            raise scope_error(request.method, str(request.url), token.scopes)
        logger.debug("%s %s answered 401 with the current access token; refreshing once", request.method, request.url)
        token = yield from self._usable_token(token.access_token, blocking=blocking)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield _Send(request, needs_body=False)
        assert response is not None
        if is_scope_mismatch(response):
            raise scope_error(request.method, str(request.url), token.scopes)

    def _usable_token(
        self, stale_access_token: str | None, *, blocking: bool
    ) -> Generator[_Step, httpx.Response | None, Token]:
        """A token fit to send: the current one, one another refresher produced, or one this flow refreshes.

        ``blocking`` flows (sync) wait for another leader by blocking their thread; that would stall an async leader
        running on the same thread (a sync call inside a notebook cell while a task refreshes), so such a flow
        refreshes on its own instead, which Atlassian's reuse interval for refresh tokens allows.
        """
        while True:
            with self._lock:
                token = self._current()
                if self._fit(token, stale_access_token):
                    return token
                # another thread or process may have refreshed since this process last looked
                stored = self.store.load(self.key)
                if stored is not None and stored.access_token != token.access_token:
                    self._token = token = stored
                    if self._fit(token, stale_access_token):
                        return token
                refreshing = self._refreshing
                must_lead = blocking and self._refreshing_thread == threading.get_ident()
                if refreshing is None:
                    refreshing = self._refreshing = Future()
                    refreshing.set_running_or_notify_cancel()  # so that nobody can cancel it under the others
                    self._refreshing_thread = threading.get_ident()
                    leading = refreshing
                elif must_lead:
                    leading = Future()
                    leading.set_running_or_notify_cancel()
                else:
                    leading = None
            if leading is not None:
                return (yield from self._lead_refresh(token, leading))
            yield _Wait(refreshing)
            try:
                return refreshing.result()
            except _RefreshAbandoned:
                continue

    def _lead_refresh(self, token: Token, refreshing: Future[Token]) -> Generator[_Step, httpx.Response | None, Token]:
        try:
            if token.refresh_token is None:
                raise ConsentRequiredError(
                    f"the access token of {self.key} expired and there is no refresh token (the grant lacks "
                    f"offline_access); {consent_hint(self.client_id)}"
                )
            logger.debug("refreshing the access token of %s at %s", self.key, self.auth_url)
            issued_at = self.clock()
            response = yield _Send(
                refresh_request(self.client_id, self._client_secret, token.refresh_token, auth_url=self.auth_url),
                needs_body=True,
            )
            assert response is not None
            grant = parse_token_response(
                response,
                client_id=self.client_id,
                grant_type="refresh_token",
                issued_at=issued_at,
                secrets=(self._client_secret, token.refresh_token, token.access_token),
            )
            fresh = token.with_grant(grant)
            # the old refresh token is spent: the new one must be durable before anything relies on it
            self.store.save(self.key, fresh)
            with self._lock:
                self._token = fresh
            logger.debug("refreshed the access token of %s; it expires at %s", self.key, fresh.expires_at)
            refreshing.set_result(fresh)
            return fresh
        except BaseException as error:
            if not refreshing.done():
                refreshing.set_exception(error if isinstance(error, AuthError) else _RefreshAbandoned())
            raise
        finally:
            with self._lock:
                if self._refreshing is refreshing:
                    self._refreshing = None
                    self._refreshing_thread = None

    def _current(self) -> Token:
        if self._token is None:
            self._token = self.store.load(self.key)
            if self._token is None:
                raise ConsentRequiredError(f"no token is stored for {self.key}; {consent_hint(self.client_id)}")
        return self._token

    def _fit(self, token: Token, stale_access_token: str | None) -> bool:
        return token.access_token != stale_access_token and not token.is_expired(self.clock(), self.leeway)


async def _await_without_blocking(refreshing: Future[Token]) -> None:
    """Wait for another flow's refresh; cancelling this task must not cancel the shared refresh."""
    waiter = asyncio.wrap_future(refreshing)
    # the leader's outcome is read from ``refreshing`` itself; mark the wrapper's as seen so asyncio does not log it
    waiter.add_done_callback(lambda done: None if done.cancelled() else done.exception())
    await asyncio.wait([waiter])


class ApiTokenAuth(httpx.BasicAuth):
    """Basic authentication with an Atlassian account's email and API token, for sites without an OAuth app."""

    def __init__(self, email: str, api_token: str) -> None:
        super().__init__(email, api_token)
        self.email = email

    def __repr__(self) -> str:
        return f"ApiTokenAuth(email={self.email!r}, api_token={MASK})"

    __str__ = __repr__


def basic_auth(email: str, api_token: str) -> httpx.Auth:
    """Basic auth for a site URL (``https://<site>.atlassian.net``); its repr masks the API token."""
    if not email or not api_token:
        raise ValueError("basic auth needs both an email and an API token")
    return ApiTokenAuth(email, api_token)
