"""Connecting to Jira Cloud with OAuth 2.0 (3LO): the flow the ``jira-lab token`` command and the notebook widget share.

The consent is a few steps, each a function so that a command line (which blocks) and a widget (which reacts to
clicks) can drive it alike::

    pending = start_authorization(client_id)              # pending.url: the consent page to open
    ...                                                   # the browser comes back to pending.redirect_uri
    authorization = complete_authorization(pending, client_secret, redirect_url, store=FileTokenStore())
    authorization.sites                                   # every Jira site of the grant; the token is stored already
    connection = authorization.connect("https://acme.atlassian.net")   # or connect() when only one site
    with connection.client() as jira:                     # Bearer token, refreshed and persisted as it rotates
        jira.get("/rest/api/3/myself")

``redirect_url`` is what the loopback server caught (:class:`~jira_lab.auth.callback.LoopbackCallback`) or what the
user pasted from the browser's address bar; :func:`authorize_in_browser` runs the whole loopback flow in one call. Later
sessions skip the consent: :func:`connect_from_store`.

The token is stored as soon as the code is exchanged, before a site is chosen: the authorization code is single-use,
so losing the token to an undecided site picker would mean consenting again. Endpoints (``auth_url``, ``api_url``)
are parameters everywhere, so tests and the demo point them at the simulated cloud.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from jira_lab.auth.callback import DEFAULT_TIMEOUT, LoopbackCallback, redirect_url_from_paste
from jira_lab.auth.httpauth import OAuth2Auth, is_scope_mismatch
from jira_lab.auth.oauth import (
    API_URL,
    AUTH_URL,
    DEFAULT_REDIRECT_URI,
    AuthorizationRequest,
    accessible_resources,
    api_base,
    authorization_request,
    consent_hint,
    exchange_code,
    parse_callback,
    pick_site,
)
from jira_lab.auth.scopes import REQUIRED_SCOPES, ScopeCheck, check_scopes
from jira_lab.auth.tokens import Site, Token, TokenKey, TokenStore
from jira_lab.errors import AuthError, ConsentRequiredError, JiraApiError, SiteSelectionError

Clock = Callable[[], float]
MYSELF = "/rest/api/3/myself"
#: how long one HTTP request of the flow may take, in seconds
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class User:
    """The Atlassian account the token acts as (from ``/rest/api/3/myself``)."""

    account_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """An authorization in progress: send the user to :attr:`url`, then complete it with the redirect URL.

    Attributes:
        client_id: the app's client id.
        request: the authorize URL, its ``state`` and the redirect URI (the state is a CSRF secret: not in repr).
        required: the scopes jira-lab needs, to compare the granted ones with.
        auth_url: the authorization server.
        api_url: the API gateway.
    """

    client_id: str
    request: AuthorizationRequest = field(repr=False)
    required: tuple[str, ...] = field(repr=False)
    auth_url: str = AUTH_URL
    api_url: str = API_URL

    @property
    def url(self) -> str:
        """The consent page to open in a browser."""
        return self.request.url

    @property
    def state(self) -> str:
        """The value the redirect must carry back."""
        return self.request.state

    @property
    def redirect_uri(self) -> str:
        """Where the consent page sends the browser: the app's registered callback URL."""
        return self.request.redirect_uri

    def listen(self, on_callback: Callable[[str], None] | None = None) -> LoopbackCallback:
        """A loopback server on :attr:`redirect_uri` waiting for this authorization's redirect.

        ``on_callback`` gets the redirect URL from the server's thread (a widget reacts to it without blocking);
        otherwise call :meth:`LoopbackCallback.wait`. Close the server when done (it is a context manager).

        Raises:
            PortInUseError: the callback port is taken.
        """
        return LoopbackCallback.for_redirect_uri(self.redirect_uri, expected_state=self.state, on_callback=on_callback)


def start_authorization(
    client_id: str,
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scopes: Iterable[str] = REQUIRED_SCOPES,
    required: Iterable[str] = REQUIRED_SCOPES,
    auth_url: str = AUTH_URL,
    api_url: str = API_URL,
) -> PendingAuthorization:
    """Begin a consent: a fresh authorize URL (new ``state``, ``offline_access`` added) for the app.

    Args:
        client_id: the app's client id.
        redirect_uri: the app's registered callback URL.
        scopes: the scopes to ask for. Atlassian refuses scopes not configured on the app, so an app configured
            with fewer scopes than jira-lab needs must ask for those it has; the summary then names what is missing.
        required: what the granted scopes are checked against.
        auth_url: the authorization server.
        api_url: the API gateway (for the steps after the consent).
    """
    request = authorization_request(client_id, redirect_uri=redirect_uri, scopes=scopes, auth_url=auth_url)
    return PendingAuthorization(client_id, request, tuple(dict.fromkeys(required)), auth_url, api_url)


@dataclass(frozen=True, slots=True)
class Authorization:
    """A completed consent. The token is in :attr:`store` already; pick one of :attr:`sites` to connect.

    Attributes:
        token: the credentials (secrets masked in its repr); :attr:`Token.refresh_token` for a connector.
        user: the consenting account, ``None`` when the token may not read it (``read:jira-user`` missing).
        scope_check: the granted scopes compared with the required ones.
        store: where the token is kept and each rotation is persisted.
        auth_url: the authorization server (for refreshing).
        api_url: the API gateway.
        clock: seconds since the epoch.
    """

    token: Token
    user: User | None
    scope_check: ScopeCheck
    store: TokenStore
    auth_url: str
    api_url: str
    clock: Clock = field(repr=False)
    client_secret: str = field(repr=False)

    @property
    def key(self) -> TokenKey:
        """The grant's key in the store."""
        return self.token.key

    @property
    def sites(self) -> tuple[Site, ...]:
        """Every Jira site of the grant (the gateway's order, which means nothing)."""
        return self.token.sites

    def pick(self, site_url: str | None = None) -> Site:
        """The site named by URL or cloud id, or the only one.

        Raises:
            SiteSelectionError: no granted site matches, or several were granted and none was named (the message
                lists them).
        """
        return pick_site(self.sites, site_url)

    def connect(self, site: Site | str | None = None) -> Connection:
        """A :class:`Connection` to ``site`` (a granted :class:`Site`, its URL or cloud id; ``None``: the only one).

        Raises:
            SiteSelectionError: as :meth:`pick`.
        """
        chosen = site if isinstance(site, Site) else self.pick(site)
        if chosen not in self.sites:
            chosen = self.pick(chosen.cloud_id)
        auth = OAuth2Auth(
            self.store, self.key, self.client_secret, auth_url=self.auth_url, clock=self.clock, token=self.token
        )
        return Connection(
            self.key, chosen, api_base(chosen, self.api_url), auth, self.scope_check, self.user, self.clock
        )

    def summary(self, site: Site | str | None = None) -> list[str]:
        """Lines describing the grant: site(s), user, scope check, expiry; never a secret.

        Args:
            site: the site to describe (a :class:`Site`, its URL or cloud id); ``None`` describes the only site,
                or lists them all when there are several.

        Raises:
            SiteSelectionError: ``site`` names no granted site.
        """
        chosen = self.pick(site) if isinstance(site, str) else site
        return _summary(self.token, chosen, self.user, self.scope_check, self.clock())


@dataclass(frozen=True, slots=True)
class Connection:
    """A site reached with a stored 3LO token: what the loaders use.

    Attributes:
        key: the grant's key in the token store.
        site: the chosen site.
        api_base: the gateway base URL for the site (``{api_url}/ex/jira/{cloud_id}``).
        auth: the Bearer authentication; it refreshes the token and persists every rotation to the store.
        scope_check: the granted scopes compared with the required ones.
        user: the account the token acts as, when known.
    """

    key: TokenKey
    site: Site
    api_base: str
    auth: OAuth2Auth
    scope_check: ScopeCheck
    user: User | None
    clock: Clock = field(repr=False)

    @property
    def account_id(self) -> str | None:
        return self.user.account_id if self.user else self.key.account_id

    @property
    def token(self) -> Token:
        """The current token (after any refresh)."""
        return self.auth.token

    def client(self, **options: Any) -> httpx.Client:
        """An :class:`httpx.Client` on :attr:`api_base` with :attr:`auth`; ``options`` go to the client."""
        options.setdefault("timeout", HTTP_TIMEOUT)
        return httpx.Client(base_url=self.api_base, auth=self.auth, **options)

    def async_client(self, **options: Any) -> httpx.AsyncClient:
        """The async twin of :meth:`client`."""
        options.setdefault("timeout", HTTP_TIMEOUT)
        return httpx.AsyncClient(base_url=self.api_base, auth=self.auth, **options)

    def summary(self) -> list[str]:
        """Lines describing the connection: site, user, scope check, expiry; never a secret."""
        return _summary(self.token, self.site, self.user, self.scope_check, self.clock())


def complete_authorization(
    pending: PendingAuthorization,
    client_secret: str,
    redirect_url: str,
    *,
    store: TokenStore,
    http: httpx.Client | None = None,
    clock: Clock = time.time,
) -> Authorization:
    """Finish a consent from the URL the browser was redirected to (caught on loopback, or pasted).

    Checks the state, exchanges the code, lists the granted sites, asks ``/myself`` who the account is, compares
    the scopes and stores the token under (client id, account id).

    Args:
        pending: from :func:`start_authorization`.
        client_secret: the app's secret (never shown).
        redirect_url: the full redirect URL (``...?code=...&state=...``), or the text the user pasted from the
            browser's address bar (quotes and blanks around it are ignored).
        store: where the token goes.
        http: the client for the token and gateway requests (tests pass one on the simulator's transport).
        clock: seconds since the epoch.

    Raises:
        CallbackError: the redirect is an error (consent denied ...), has no code, or another state.
        InvalidClientError: wrong client id or secret.
        ConsentRequiredError: the code expired or was used already.
        SiteSelectionError: the grant covers no Jira site.
        AuthError: anything else the servers refused.
    """
    code = parse_callback(redirect_url_from_paste(redirect_url), pending.state)
    with _http(http) as client:
        grant = exchange_code(
            client,
            pending.client_id,
            client_secret,
            code,
            pending.redirect_uri,
            auth_url=pending.auth_url,
            clock=clock,
        )
        sites = tuple(accessible_resources(client, grant.access_token, api_url=pending.api_url))
        user = _whoami(client, grant.access_token, sites, pending.api_url)
    token = Token.from_grant(grant, pending.client_id, user.account_id if user else None, sites)
    store.save(token.key, token)
    if not sites:  # said after storing: the grant is real, and a new consent that picks a Jira site widens it
        raise SiteSelectionError(
            "the grant covers no Jira site; authorize again and choose a Jira site on Atlassian's consent page"
        )
    return Authorization(
        token,
        user,
        check_scopes(token.scopes, pending.required),
        store,
        pending.auth_url,
        pending.api_url,
        clock,
        client_secret,
    )


def authorize_in_browser(
    client_id: str,
    client_secret: str,
    *,
    store: TokenStore,
    open_url: Callable[[str], object],
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scopes: Iterable[str] = REQUIRED_SCOPES,
    required: Iterable[str] = REQUIRED_SCOPES,
    timeout: float = DEFAULT_TIMEOUT,
    auth_url: str = AUTH_URL,
    api_url: str = API_URL,
    http: httpx.Client | None = None,
    clock: Clock = time.time,
) -> Authorization:
    """The whole loopback flow: listen on the callback URL, send the user to the consent page, complete.

    The callback port is taken before ``open_url`` is called, so a busy port is reported before the user consents.

    Args:
        open_url: shows the consent page URL to the user (opens a browser, prints it ...).
        timeout: seconds to wait for the redirect.
        Others: as :func:`start_authorization` and :func:`complete_authorization`.

    Raises:
        PortInUseError: the callback port is taken.
        CallbackTimeoutError: the redirect did not come in time.
        Others: as :func:`complete_authorization`.
    """
    pending = start_authorization(
        client_id, redirect_uri=redirect_uri, scopes=scopes, required=required, auth_url=auth_url, api_url=api_url
    )
    with pending.listen() as callback:
        open_url(pending.url)
        redirect_url = callback.wait(timeout)
    return complete_authorization(pending, client_secret, redirect_url, store=store, http=http, clock=clock)


def connect_from_store(
    client_id: str,
    client_secret: str,
    *,
    store: TokenStore,
    site_url: str | None = None,
    account_id: str | None = None,
    required: Iterable[str] = REQUIRED_SCOPES,
    auth_url: str = AUTH_URL,
    api_url: str = API_URL,
    http: httpx.Client | None = None,
    clock: Clock = time.time,
) -> Connection:
    """Connect with a token stored by an earlier consent, and check it still works (one ``/myself`` call).

    The call refreshes the token when it is due, persisting the rotated refresh token to ``store``.

    Args:
        site_url: the site (URL or cloud id); ``None`` takes the grant's only site.
        account_id: whose grant, when the store holds several accounts' tokens for the app.
        Others: as :func:`complete_authorization`.

    Raises:
        ConsentRequiredError: nothing stored for the app, or the grant is gone (revoked, expired, refresh token
            reused): consent again.
        SiteSelectionError: as :meth:`Authorization.pick`.
        AuthError: several accounts' tokens and no ``account_id``; or Jira refused the token.
    """
    key = _stored_key(store, client_id, account_id)
    token = store.load(key)
    if token is None:  # deleted since keys() was read
        raise ConsentRequiredError(f"no token of app {client_id!r} is stored in {store!r}; {consent_hint(client_id)}")
    site = pick_site(token.sites, site_url)
    auth = OAuth2Auth(store, key, client_secret, auth_url=auth_url, clock=clock, token=token)
    base = api_base(site, api_url)
    with _http(http) as client:
        response = client.get(base + MYSELF, auth=auth)
        response.read()
    if response.status_code != 200:
        raise JiraApiError(response.status_code, _messages(response), request=f"GET {base}{MYSELF}")
    body = response.json()
    user = User(str(body["accountId"]), str(body.get("displayName") or ""))
    return Connection(key, site, base, auth, check_scopes(auth.token.scopes, required), user, clock)


# -- helpers -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _http(http: httpx.Client | None) -> Iterator[httpx.Client]:
    """The caller's client, or a short-lived one of our own."""
    if http is not None:
        yield http
        return
    with httpx.Client(timeout=HTTP_TIMEOUT) as own:
        yield own


def _whoami(http: httpx.Client, access_token: str, sites: Iterable[Site], api_url: str) -> User | None:
    """The account behind a fresh access token, asked of the first site that answers; ``None`` if none may say.

    The account is the same on every site of the grant, but it may be deactivated on some of them.
    """
    for site in sites:
        # auth=None: a caller's client may carry its own auth, which must not replace this fresh token
        url = api_base(site, api_url) + MYSELF
        response = http.get(url, headers={"Authorization": f"Bearer {access_token}"}, auth=None)
        if response.status_code == 200:
            body = response.json()
            return User(str(body["accountId"]), str(body.get("displayName") or ""))
        if is_scope_mismatch(response):
            return None  # the same scopes hold everywhere: the scope check names what is missing
    return None


def _stored_key(store: TokenStore, client_id: str, account_id: str | None) -> TokenKey:
    stored = store.keys()  # a TokenStore is no mapping: keys() is its API
    keys = [k for k in stored if k.client_id == client_id and account_id in (None, k.account_id)]
    if not keys:
        whose = f" for account {account_id}" if account_id else ""
        raise ConsentRequiredError(
            f"no token of app {client_id!r}{whose} is stored in {store!r}; {consent_hint(client_id)}"
        )
    if len(keys) > 1:
        accounts = ", ".join(str(k.account_id) for k in keys)
        raise AuthError(f"{store!r} holds tokens of several accounts for app {client_id!r} ({accounts}); name one")
    return keys[0]


def _messages(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        return [str(m) for m in body.get("errorMessages", [])] or ([str(body["message"])] if "message" in body else [])
    return []


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(token: Token, site: Site | None, user: User | None, scope_check: ScopeCheck, now: float) -> list[str]:
    if site is not None:
        sites = f"{site.name} — {site.url} (cloud id {site.cloud_id})"
    elif len(token.sites) == 1:
        only = token.sites[0]
        sites = f"{only.name} — {only.url} (cloud id {only.cloud_id})"
    else:
        sites = f"{len(token.sites)} granted, choose one: " + ", ".join(s.url for s in token.sites)
    who = (
        f"{user.display_name} (account id {user.account_id})"
        if user
        else "unknown: the token may not read it (read:jira-user is needed)"
    )
    scopes = scope_check.describe() if scope_check.ok else "WARNING: " + scope_check.describe()
    minutes = (token.expires_at - now) / 60
    left = f"in {minutes:.0f} min" if minutes >= 0 else "expired"
    renewal = (
        "renewed with the refresh token when due"
        if token.refresh_token
        else "NO refresh token (offline_access was not granted): consent again when it expires"
    )
    return [
        f"site:    {sites}" if site is not None or len(token.sites) == 1 else f"sites:   {sites}",
        f"user:    {who}",
        f"scopes:  {scopes}",
        f"expiry:  access token expires {_when(token.expires_at)} ({left}); {renewal}",
    ]
