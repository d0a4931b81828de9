"""The simulated Atlassian authorization server (``https://auth.atlassian.com``): consent page and token endpoint.

Every :class:`~jira_lab.sim.cloud.SimCloud` has one, as ``cloud.auth``; the cloud routes ``/authorize`` and
``/oauth/token`` to it, and its access tokens are minted through :meth:`SimCloud.mint_access_token`, so the gateway
enforces exactly the scopes and sites of the grant. Times come from the cloud's clock. Typical use::

    app = cloud.auth.register_app("jira-lab", callback_url="http://localhost:13131/", scopes=["read:jira-work"])
    cloud.auth.set_auto_consent("ann@tiny.example")      # headless: /authorize redirects at once with a code
    ...                                                  # the client runs the flow against cloud.transport()
    assert cloud.auth.request_count("refresh_token") == 1

Public API:

* :meth:`AuthServer.register_app` — an app of the developer console (:class:`OAuthApp`: name, client id and secret,
  its one callback URL, the scopes configured in the console). Account-level grant type.
* The auto-consent switch, for tests without a browser: ``cloud.auth.auto_consent = "<email or account id>"`` (or an
  :class:`AutoConsent` naming sites, or ``decision="deny"``; :meth:`AuthServer.set_auto_consent` does the same and
  checks the user exists). While set, a valid ``GET /authorize`` redirects at once, as that user, for the named sites
  (default: every site the user is an active user of). ``None`` (the default) shows the consent page.
* Counters: :attr:`AuthServer.requests` lists every ``POST /oauth/token`` (:class:`TokenRequest`: grant type, client
  id, status, error, time; never a secret) and :meth:`AuthServer.request_count` counts them by grant type;
  :attr:`AuthServer.consents` lists the decisions taken on the consent page or by auto-consent.
* :meth:`AuthServer.grant` (the account-level grant of an app and account), :meth:`AuthServer.revoke_grant` (the user
  removes the app from their profile, or their password changes: every token of the grant dies).
* :attr:`AuthServer.settings` (:class:`AuthSettings`): lifetimes and windows, replaceable at any time.

Behaviour, with Atlassian's sources in ``shared/reference/jira-semantics.md`` §1:

* ``GET /authorize`` needs ``audience=api.atlassian.com``, ``client_id``, ``scope``, ``redirect_uri`` (exactly the
  app's one callback URL), ``state``, ``response_type=code`` and ``prompt=consent``, all documented as required. Any
  problem is an HTML error page (400), never a redirect to an unverified ``redirect_uri``. An unregistered
  ``redirect_uri`` shows ``unauthorized_client`` / "redirect_uri is not registered for client: ...", as Atlassian's
  own error page does. Scopes not configured on the app (``offline_access`` aside, which is never a console scope) are
  refused with an error page (``invalid_scope``): Atlassian only accepts scopes added to the app in the console.
* The consent page (no real login exists here) lets the person pick who they are (the active Atlassian accounts of
  the hosted sites) and one site (every hosted site is listed; accepting a site the chosen account is no active user
  of shows the page again with a ``#problem`` message), shows the app name and the requested scopes, and offers
  Accept / Deny. Form: ``<select id="user" name="account_id">``, ``<select id="site" name="cloud_id">``, buttons
  ``#accept`` / ``#deny`` (``name="decision"``), hidden ``nonce`` and ``state``. Each page carries a single-use,
  unguessable nonce that the decision must send back (a forged or replayed decision gets an error page); a page lives
  an hour. Deny redirects to ``redirect_uri?error=access_denied&error_description=...&state=...``; Accept to
  ``redirect_uri?code=...&state=...`` (302).
* Account-level grants: one per app and Atlassian account. Consenting again adds the site(s) to the grant, and the new
  consent's scopes replace the grant's; existing access tokens follow the grant (Atlassian: they "give you access to
  all sites and scopes that a user has granted").
* ``POST /oauth/token`` takes JSON or ``application/x-www-form-urlencoded`` bodies. Client authentication comes first:
  an unknown client id or a wrong or missing secret is ``401 {"error":"access_denied","error_description":
  "Unauthorized"}`` (HYPOTHESIS: Atlassian documents none; it is what Auth0-style servers answer, and the code error
  Atlassian users report has that family's wording). A missing parameter is ``400 invalid_request``; an unknown grant
  type ``400 unsupported_grant_type``. The Deny redirect's ``error_description`` wording is a hypothesis too.
* ``authorization_code``: ``code`` and ``redirect_uri`` required; codes are single-use and expire after
  :attr:`AuthSettings.code_lifetime` (10 minutes: a HYPOTHESIS, Atlassian documents no lifetime); a used, expired or
  unknown code is ``403 {"error":"invalid_grant","error_description":"Invalid authorization code"}`` (the answer an
  Atlassian community thread shows). A ``redirect_uri`` differing from the one sent to ``/authorize`` is a 403
  ``invalid_grant`` too (HYPOTHESIS: description undocumented) and does not use up the code. The answer is
  ``{access_token, expires_in, scope, token_type: "Bearer"}`` plus ``refresh_token`` only when ``offline_access`` was
  granted. A refused client secret does not use up the code either. ``scope`` lists the grant's scopes (with
  ``offline_access`` when granted); the access token carries them to the gateway without ``offline_access``, so
  ``accessible-resources`` lists a site's API scopes only.
* ``refresh_token``: rotation. Every use answers a new access token and a NEW refresh token. A used refresh token stays
  usable for :attr:`AuthSettings.reuse_interval` (10 minutes) after its first use, answering a fresh pair; a use after
  that window is taken as a breach and revokes the whole token family (every refresh token and access token descended
  from the same code exchange). The access token minted with a used refresh token (its "companion") stays valid for
  the same window after that first use, then is revoked. Refresh tokens expire after 90 days without use (each new one
  gets 90 days) and 365 days after the consent that started the family (per family: a new consent starts a new year;
  HYPOTHESIS, Atlassian says "from the first consent"). Every refusal is ``403 {"error":"invalid_grant",
  "error_description":"Unknown or invalid refresh token."}``.
* Not simulated: resource-level grants, PKCE (Atlassian documents none), revoking tokens issued from a replayed code
  (RFC 6749 says SHOULD; Atlassian is silent).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

import httpx

from jira_lab.sim.model import Site, User

if TYPE_CHECKING:
    from jira_lab.sim.cloud import SimCloud

AUDIENCE = "api.atlassian.com"
OFFLINE_ACCESS = "offline_access"
DAY = 86400.0
#: how long a consent page's nonce may be answered
CONSENT_PAGE_LIFETIME = 3600.0
INVALID_CODE = "Invalid authorization code"
INVALID_REFRESH_TOKEN = "Unknown or invalid refresh token."
DENIED = "User did not authorize the request"
HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
GRANT_TYPES = ("authorization_code", "refresh_token")

Decision = Literal["accept", "deny"]
#: a token endpoint answer: HTTP status and JSON body
_Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Lifetimes and windows of the authorization server, in seconds."""

    #: ``expires_in`` of access tokens (Atlassian: one hour)
    access_token_lifetime: float = 3600.0
    #: authorization codes (HYPOTHESIS: Atlassian documents no lifetime)
    code_lifetime: float = 600.0
    #: how long a used refresh token, and its companion access token, stay usable (Atlassian: 10 minutes)
    reuse_interval: float = 600.0
    #: a refresh token unused this long expires (Atlassian: 90 days)
    refresh_inactivity: float = 90 * DAY
    #: a token family ends this long after the consent that started it (Atlassian: 365 days)
    refresh_lifetime: float = 365 * DAY


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """An OAuth 2.0 (3LO) app as registered in the developer console."""

    name: str
    client_id: str
    client_secret: str = field(repr=False)
    #: the one callback URL; ``redirect_uri`` must equal it exactly
    callback_url: str
    #: the scopes configured in the console (``offline_access`` is requested on the authorize URL, never configured)
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return (
            f"OAuthApp(name={self.name!r}, client_id={self.client_id!r}, callback_url={self.callback_url!r}, "
            f"scopes={sorted(self.scopes)})"
        )


@dataclass(frozen=True, slots=True)
class AutoConsent:
    """Answer ``GET /authorize`` at once, as ``user``, for headless tests.

    Attributes:
        user: the Atlassian account, by email or account id.
        sites: site names or cloud ids to grant; ``None`` grants every site the user is an active user of.
        decision: ``"deny"`` answers as if the person pressed Deny.
    """

    user: str
    sites: tuple[str, ...] | None = None
    decision: Decision = "accept"


@dataclass(frozen=True, slots=True)
class Grant:
    """The account-level grant of an app for one Atlassian account (a snapshot)."""

    client_id: str
    account_id: str
    scopes: frozenset[str]
    cloud_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One ``POST /oauth/token`` as the server saw it (no secret is kept)."""

    grant_type: str | None
    client_id: str | None
    status: int
    #: the OAuth ``error`` answered, ``None`` on success
    error: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Consent:
    """One decision taken on the consent page or by auto-consent."""

    client_id: str
    account_id: str | None
    cloud_ids: tuple[str, ...]
    decision: Decision
    automatic: bool
    at: float


@dataclass(slots=True)
class _Pending:
    """A validated authorization request waiting for the person's decision."""

    app: OAuthApp
    redirect_uri: str
    state: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(slots=True)
class _Code:
    client_id: str
    account_id: str
    redirect_uri: str
    offline: bool
    expires_at: float
    used: bool = False


@dataclass(slots=True, eq=False)
class _GrantState:
    client_id: str
    account_id: str
    scopes: frozenset[str]
    cloud_ids: list[str]
    families: list[_Family] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Family:
    """The tokens descended from one code exchange; a breach revokes them all."""

    id: str
    grant: _GrantState
    created_at: float
    offline: bool
    revoked: bool = False


@dataclass(slots=True, eq=False)
class _RefreshToken:
    family: _Family
    issued_at: float
    #: the access token minted together with this refresh token
    companion: str = field(repr=False)
    used_at: float | None = None


class _PageError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class AuthServer:
    """Atlassian's authorization server for the sites of one :class:`~jira_lab.sim.cloud.SimCloud`.

    Args:
        cloud: the cloud whose sites, users, clock and token registry the server uses.
        settings: lifetimes and windows; :class:`AuthSettings` defaults are Atlassian's.
    """

    def __init__(self, cloud: SimCloud, settings: AuthSettings | None = None) -> None:
        self.cloud = cloud
        self.settings = settings or AuthSettings()
        self.apps: dict[str, OAuthApp] = {}
        #: ``None``: show the consent page; an email/account id or :class:`AutoConsent`: answer at once
        self.auto_consent: AutoConsent | str | None = None
        #: every ``POST /oauth/token`` received, in order
        self.requests: list[TokenRequest] = []
        #: every consent decision, in order
        self.consents: list[Consent] = []
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Code] = {}
        self._grants: dict[tuple[str, str], _GrantState] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"AuthServer(apps={sorted(self.apps)}, grants={len(self._grants)})"

    # -- configuration -----------------------------------------------------------------------------------------
    def register_app(
        self,
        name: str,
        *,
        callback_url: str,
        scopes: Iterable[str],
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> OAuthApp:
        """Register an app as the developer console does; id and secret are generated unless given.

        Args:
            name: the app's name, shown on the consent page.
            callback_url: the one callback URL; ``redirect_uri`` must equal it exactly.
            scopes: the scopes configured in the console (``offline_access`` needs no configuring).
            client_id: a fixed client id (default: a random one).
            client_secret: a fixed secret (default: a random one).

        Returns:
            The registered app; its ``client_secret`` is the only way to read the secret.
        """
        app = OAuthApp(
            name=name,
            client_id=client_id or secrets.token_urlsafe(24),
            client_secret=client_secret or secrets.token_urlsafe(48),
            callback_url=callback_url,
            scopes=frozenset(scopes) - {OFFLINE_ACCESS},
        )
        with self._lock:
            if app.client_id in self.apps:
                raise ValueError(f"an app with client id {app.client_id!r} is already registered")
            self.apps[app.client_id] = app
        return app

    def set_auto_consent(
        self, user: str, *, sites: Iterable[str] | None = None, decision: Decision = "accept"
    ) -> AutoConsent:
        """Switch auto-consent on, as ``user`` (email or account id) for ``sites`` (names or cloud ids; default all).

        Raises:
            ValueError: the user is no active Atlassian account of any site, or is no user of a named site.
        """
        auto = AutoConsent(user, tuple(sites) if sites is not None else None, decision)
        self._resolve_auto_consent(auto)
        self.auto_consent = auto
        return auto

    # -- inspection --------------------------------------------------------------------------------------------
    def request_count(self, grant_type: str | None = None) -> int:
        """How many ``POST /oauth/token`` requests arrived (of ``grant_type``, or of any), successful or not."""
        return sum(1 for r in self.requests if grant_type is None or r.grant_type == grant_type)

    def grant(self, client_id: str, account_id: str) -> Grant | None:
        """The grant of app ``client_id`` for ``account_id``, or ``None``."""
        with self._lock:
            state = self._grants.get((client_id, account_id))
            if state is None:
                return None
            return Grant(state.client_id, state.account_id, state.scopes, tuple(state.cloud_ids))

    def revoke_grant(self, client_id: str, account_id: str) -> bool:
        """Remove the grant, as the user revoking the app in their profile: every token of it stops working.

        Returns:
            Whether there was a grant to revoke.
        """
        with self._lock:
            state = self._grants.pop((client_id, account_id), None)
            if state is None:
                return False
            for family in state.families:
                self._revoke_family(family)
            return True

    # -- state across restarts ---------------------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """The grants and live tokens this server issued, as JSON-ready data, for :meth:`restore_state`.

        Atlassian remembers what it issued across any restart; a simulated cloud started again (``jira-lab demo``
        run twice) does too when given this. It holds live tokens: keep it as private as a token file. Apps,
        pending consent pages, codes and the request log are not included.
        """
        with self._lock:
            families = {f.id: f for state in self._grants.values() for f in state.families if not f.revoked}
            return {
                "grants": [
                    {
                        "client_id": state.client_id,
                        "account_id": state.account_id,
                        "scopes": sorted(state.scopes),
                        "cloud_ids": list(state.cloud_ids),
                        "families": [
                            {"id": f.id, "created_at": f.created_at, "offline": f.offline}
                            for f in state.families
                            if f.id in families
                        ],
                    }
                    for state in self._grants.values()
                ],
                "refresh_tokens": [
                    {
                        "token": token,
                        "family": record.family.id,
                        "issued_at": record.issued_at,
                        "companion": record.companion,
                        "used_at": record.used_at,
                    }
                    for token, record in self._refresh_tokens.items()
                    if record.family.id in families
                ],
                "access_tokens": [
                    {
                        "token": token,
                        "account_id": grant.account_id,
                        "scopes": sorted(grant.scopes),
                        "cloud_ids": list(grant.cloud_ids),
                        "expires_at": grant.expires_at,
                        "family": grant.family,
                    }
                    for token, grant in self.cloud.access_tokens().items()
                    if grant.family in families
                ],
            }

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Honour the grants and tokens of :meth:`export_state`, as if this server had issued them.

        Sites this cloud does not host are dropped from the grants (their tokens are not restored).

        Raises:
            ValueError: ``data`` is not what :meth:`export_state` writes.
        """
        from jira_lab.sim.cloud import AccessGrant  # the cloud module imports this one

        try:
            with self._lock:
                families: dict[str, _Family] = {}
                for entry in data["grants"]:
                    cloud_ids = [c for c in entry["cloud_ids"] if c in self.cloud.sites]
                    key = (str(entry["client_id"]), str(entry["account_id"]))
                    state = _GrantState(key[0], key[1], frozenset(entry["scopes"]), cloud_ids)
                    self._grants[key] = state
                    for family in entry["families"]:
                        restored = _Family(str(family["id"]), state, float(family["created_at"]), family["offline"])
                        state.families.append(restored)
                        families[restored.id] = restored
                for entry in data["refresh_tokens"]:
                    used_at = entry["used_at"]
                    self._refresh_tokens[str(entry["token"])] = _RefreshToken(
                        families[entry["family"]],
                        float(entry["issued_at"]),
                        str(entry["companion"]),
                        None if used_at is None else float(used_at),
                    )
                for entry in data["access_tokens"]:
                    hosted = tuple(str(c) for c in entry["cloud_ids"] if c in self.cloud.sites)
                    if entry["family"] not in families or not hosted:
                        continue
                    grant = AccessGrant(
                        str(entry["account_id"]),
                        frozenset(entry["scopes"]),
                        hosted,
                        float(entry["expires_at"]),
                        str(entry["family"]),
                    )
                    self.cloud.restore_access_token(str(entry["token"]), grant)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a saved authorization server state ({type(error).__name__}: {error})") from None

    # -- dispatch ----------------------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer a request to ``/authorize`` or ``/oauth/token``."""
        with self._lock:
            path, method = request.url.path, request.method
            if path == "/authorize" and method == "GET":
                return self._authorize(request)
            if path == "/authorize" and method == "POST":
                return self._decide(request)
            if path == "/oauth/token" and method == "POST":
                return self._token(request)
            return _json(405, {"error": "invalid_request", "error_description": f"{method} is not allowed on {path}"})

    # -- /authorize --------------------------------------------------------------------------------------------
    def _authorize(self, request: httpx.Request) -> httpx.Response:
        now = self.cloud.clock()
        try:
            pending = self._authorization_request(request.url.params, now)
        except _PageError as error:
            return _error_page(error.error, error.description)
        if self.auto_consent is not None:
            return self._auto_decide(pending)
        return self._consent_page(pending, now)

    def _authorization_request(self, params: httpx.QueryParams, now: float) -> _Pending:
        client_id = _required(params, "client_id")
        app = self.apps.get(client_id)
        if app is None:
            raise _PageError("unauthorized_client", f"Unknown client: {client_id}")
        redirect_uri = _required(params, "redirect_uri")
        if redirect_uri != app.callback_url:
            raise _PageError("unauthorized_client", f"redirect_uri is not registered for client: {redirect_uri}")
        response_type = _required(params, "response_type")
        if response_type != "code":
            raise _PageError("unsupported_response_type", f"Unsupported response type: {response_type}")
        if _required(params, "audience") != AUDIENCE:
            raise _PageError("invalid_request", f"The audience must be {AUDIENCE}")
        if _required(params, "prompt") != "consent":
            raise _PageError("invalid_request", "The prompt must be consent")
        state = _required(params, "state")
        scopes = tuple(dict.fromkeys(_required(params, "scope").split()))
        unknown = [s for s in scopes if s != OFFLINE_ACCESS and s not in app.scopes]
        if unknown:
            raise _PageError(
                "invalid_scope", f"The app {app.name} is not configured with these scopes: {' '.join(unknown)}"
            )
        return _Pending(app, redirect_uri, state, scopes, now + CONSENT_PAGE_LIFETIME)

    def _consent_page(self, pending: _Pending, now: float, problem: str | None = None) -> httpx.Response:
        self._pending = {n: p for n, p in self._pending.items() if p.expires_at > now}
        nonce = secrets.token_urlsafe(24)
        self._pending[nonce] = pending
        body = _render_consent(pending, nonce, self._accounts(), self.cloud.site_url, problem)
        return _html(400 if problem else 200, body)

    def _decide(self, request: httpx.Request) -> httpx.Response:
        now = self.cloud.clock()
        form = _form(request)
        pending = self._pending.pop(form.get("nonce", ""), None)
        if pending is None or pending.expires_at <= now or form.get("state") != pending.state:
            return _error_page(
                "invalid_request", "This consent page has expired or was not issued here; start the authorization again"
            )
        decision = form.get("decision")
        if decision == "deny":
            return self._deny(pending, automatic=False)
        if decision != "accept":
            return _error_page("invalid_request", "Choose Accept or Deny")
        accounts = self._accounts()
        chosen = accounts.get(form.get("account_id", ""))
        if chosen is None:
            return self._consent_page(pending, now, "Choose the account you log in as.")
        user, sites = chosen
        site = next((s for s in sites if s.cloud_id == form.get("cloud_id")), None)
        if site is None:
            return self._consent_page(pending, now, f"{user.display_name} has no access to that site; choose another.")
        return self._accept(pending, user.account_id, [site], automatic=False)

    def _auto_decide(self, pending: _Pending) -> httpx.Response:
        auto = self.auto_consent
        assert auto is not None
        auto = AutoConsent(auto) if isinstance(auto, str) else auto
        try:
            account_id, sites = self._resolve_auto_consent(auto)
        except ValueError as error:
            return _error_page("server_error", f"auto-consent cannot proceed: {error}")
        if auto.decision == "deny":
            return self._deny(pending, automatic=True)
        return self._accept(pending, account_id, sites, automatic=True)

    def _resolve_auto_consent(self, auto: AutoConsent) -> tuple[str, list[Site]]:
        wanted = auto.user.strip().lower()
        found = next(
            (
                (user, sites)
                for user, sites in self._accounts().values()
                if user.account_id.lower() == wanted or (user.email or "").lower() == wanted
            ),
            None,
        )
        if found is None:
            raise ValueError(f"{auto.user!r} is no active Atlassian account of any simulated site")
        user, sites = found
        if auto.sites is None:
            return user.account_id, sites
        chosen = []
        for name in auto.sites:
            site = next((s for s in sites if name in (s.name, s.cloud_id)), None)
            if site is None:
                raise ValueError(f"{auto.user!r} is no active user of a site {name!r}")
            chosen.append(site)
        return user.account_id, chosen

    def _deny(self, pending: _Pending, *, automatic: bool) -> httpx.Response:
        self.consents.append(Consent(pending.app.client_id, None, (), "deny", automatic, self.cloud.clock()))
        return _redirect(
            pending.redirect_uri, {"error": "access_denied", "error_description": DENIED, "state": pending.state}
        )

    def _accept(self, pending: _Pending, account_id: str, sites: list[Site], *, automatic: bool) -> httpx.Response:
        now = self.cloud.clock()
        self._consent(pending.app.client_id, account_id, pending.scopes, sites)
        code = secrets.token_urlsafe(32)
        self._codes = {c: r for c, r in self._codes.items() if r.expires_at > now}
        self._codes[code] = _Code(
            pending.app.client_id,
            account_id,
            pending.redirect_uri,
            OFFLINE_ACCESS in pending.scopes,
            now + self.settings.code_lifetime,
        )
        cloud_ids = tuple(s.cloud_id for s in sites)
        self.consents.append(Consent(pending.app.client_id, account_id, cloud_ids, "accept", automatic, now))
        return _redirect(pending.redirect_uri, {"code": code, "state": pending.state})

    def _consent(self, client_id: str, account_id: str, scopes: Iterable[str], sites: list[Site]) -> None:
        """Create or widen the account-level grant; the new consent's scopes replace the old ones."""
        state = self._grants.get((client_id, account_id))
        if state is None:
            state = _GrantState(client_id, account_id, frozenset(scopes), [])
            self._grants[(client_id, account_id)] = state
        state.scopes = frozenset(scopes)
        state.cloud_ids.extend(s.cloud_id for s in sites if s.cloud_id not in state.cloud_ids)
        for family in state.families:
            if not family.revoked:
                self.cloud.reshape_token_family(family.id, _api_scopes(state), self._sites_of(state))

    def _accounts(self) -> dict[str, tuple[User, list[Site]]]:
        """Active Atlassian accounts (no app or customer accounts) with the sites each is an active user of."""
        found: dict[str, tuple[User, list[Site]]] = {}
        for site in self.cloud.sites.values():
            for user in site.users.values():
                if user.active and user.account_type == "atlassian":
                    found.setdefault(user.account_id, (user, []))[1].append(site)
        return found

    def _sites_of(self, state: _GrantState) -> list[Site]:
        sites = (self.cloud.sites.get(cloud_id) for cloud_id in state.cloud_ids)
        return [s for s in sites if s is not None and state.account_id in s.users]

    # -- /oauth/token ------------------------------------------------------------------------------------------
    def _token(self, request: httpx.Request) -> httpx.Response:
        now = self.cloud.clock()
        params = _token_params(request)
        if params is None:
            status, body = _oauth_error(400, "invalid_request", "The body must be JSON or form-encoded")
            params = {}
        else:
            status, body = self._token_answer(params, now)
        error = body.get("error") if status != 200 else None
        self.requests.append(TokenRequest(params.get("grant_type"), params.get("client_id"), status, error, now))
        return _json(status, body, {"cache-control": "no-store", "pragma": "no-cache"})

    def _token_answer(self, params: Mapping[str, str], now: float) -> _Answer:
        grant_type = params.get("grant_type")
        if not grant_type:
            return _missing("grant_type")
        if grant_type not in GRANT_TYPES:
            return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        app = self.apps.get(params.get("client_id", ""))
        secret = params.get("client_secret", "")
        if app is None or not secret or not secrets.compare_digest(app.client_secret.encode(), secret.encode()):
            return _oauth_error(401, "access_denied", "Unauthorized")
        if grant_type == "authorization_code":
            return self._exchange_code(app, params, now)
        return self._refresh(app, params, now)

    def _exchange_code(self, app: OAuthApp, params: Mapping[str, str], now: float) -> _Answer:
        for name in ("code", "redirect_uri"):
            if not params.get(name):
                return _missing(name)
        record = self._codes.get(params["code"])
        if record is None or record.used or record.client_id != app.client_id or record.expires_at <= now:
            return _oauth_error(403, "invalid_grant", INVALID_CODE)
        if params["redirect_uri"] != record.redirect_uri:
            return _oauth_error(403, "invalid_grant", "redirect_uri does not match the authorization request")
        record.used = True
        state = self._grants.get((app.client_id, record.account_id))
        if state is None:  # revoked between consent and exchange
            return _oauth_error(403, "invalid_grant", INVALID_CODE)
        family = _Family(secrets.token_urlsafe(12), state, now, record.offline)
        state.families.append(family)
        return 200, self._issue(family, now)

    def _refresh(self, app: OAuthApp, params: Mapping[str, str], now: float) -> _Answer:
        token = params.get("refresh_token")
        if not token:
            return _missing("refresh_token")
        record = self._refresh_tokens.get(token)
        if record is None or record.family.revoked or record.family.grant.client_id != app.client_id:
            return _oauth_error(403, "invalid_grant", INVALID_REFRESH_TOKEN)
        family, settings = record.family, self.settings
        expired = (
            now >= family.created_at + settings.refresh_lifetime
            or now >= record.issued_at + settings.refresh_inactivity
        )
        reused_too_late = record.used_at is not None and now - record.used_at > settings.reuse_interval
        if expired or reused_too_late:
            self._revoke_family(family)
            return _oauth_error(403, "invalid_grant", INVALID_REFRESH_TOKEN)
        if record.used_at is None:
            record.used_at = now
        self.cloud.cap_access_token(record.companion, record.used_at + settings.reuse_interval)
        return 200, self._issue(family, now)

    def _issue(self, family: _Family, now: float) -> dict[str, Any]:
        """A token answer for ``family``: an access token, and a refresh token when offline access was granted."""
        state = family.grant
        lifetime = self.settings.access_token_lifetime
        access_token = self.cloud.mint_access_token(
            state.account_id, _api_scopes(state), sites=self._sites_of(state), expires_in=lifetime, family=family.id
        )
        answer: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "scope": " ".join(sorted(state.scopes)),
            "token_type": "Bearer",
        }
        if family.offline:
            refresh_token = secrets.token_urlsafe(48)
            self._refresh_tokens[refresh_token] = _RefreshToken(family, now, access_token)
            answer["refresh_token"] = refresh_token
        return answer

    def _revoke_family(self, family: _Family) -> None:
        family.revoked = True
        self.cloud.revoke_token_family(family.id)
        for token in [t for t, r in self._refresh_tokens.items() if r.family is family]:
            del self._refresh_tokens[token]


# -- helpers -----------------------------------------------------------------------------------------------------
def _required(params: httpx.QueryParams, name: str) -> str:
    value = params.get(name)
    if not value:
        raise _PageError("invalid_request", f"Missing required parameter: {name}")
    return str(value)


def _api_scopes(state: _GrantState) -> frozenset[str]:
    """The scopes an access token carries to the gateway: ``offline_access`` is about refresh, not about a site."""
    return state.scopes - {OFFLINE_ACCESS}


def _oauth_error(status: int, error: str, description: str) -> _Answer:
    return status, {"error": error, "error_description": description}


def _missing(name: str) -> _Answer:
    return _oauth_error(400, "invalid_request", f"Missing required parameter: {name}")


def _token_params(request: httpx.Request) -> dict[str, str] | None:
    """The token request's parameters from a JSON or form body, or ``None`` when the body is neither."""
    content_type = request.headers.get("content-type", "").lower()
    content = request.content
    looks_like_json = content.lstrip().startswith(b"{")
    if "json" in content_type or (not content_type and looks_like_json):
        try:
            parsed = json.loads(content)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items() if v is not None}
    if "x-www-form-urlencoded" in content_type or not content_type:
        return dict(parse_qsl(content.decode("utf-8", "replace"), keep_blank_values=True))
    return None


def _form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode("utf-8", "replace"), keep_blank_values=True))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return httpx.Response(status, content=content, headers={"content-type": JSON_TYPE, **(headers or {})})


def _html(status: int, page: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=page.encode(), headers={"content-type": HTML_TYPE, **(headers or {})})


def _redirect(redirect_uri: str, params: dict[str, str]) -> httpx.Response:
    location = str(httpx.URL(redirect_uri).copy_merge_params(params))
    link = html.escape(location)
    return _html(
        302, _page("Redirecting", f'<p>Redirecting to <a href="{link}">{link}</a></p>'), {"location": location}
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)} – Atlassian (simulated)</title></head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _error_page(error: str, description: str) -> httpx.Response:
    body = (
        "<h1>Something went wrong</h1>\n"
        f'<p id="error">{html.escape(error)}</p>\n'
        f'<p id="error-description">{html.escape(description)}</p>'
    )
    return _html(400, _page("Something went wrong", body))


def _person(user: User) -> str:
    return f"{user.display_name} ({user.email})" if user.email else user.display_name


def _render_consent(
    pending: _Pending,
    nonce: str,
    accounts: dict[str, tuple[User, list[Site]]],
    site_url: Callable[[Site], str],
    problem: str | None,
) -> str:
    e = html.escape
    app_name = e(pending.app.name)
    users = "\n".join(
        f'<option value="{e(user.account_id)}">{e(_person(user))}</option>' for user, _ in accounts.values()
    )
    sites: dict[str, Site] = {}
    for _, user_sites in accounts.values():
        for site in user_sites:
            sites.setdefault(site.cloud_id, site)
    site_options = "\n".join(
        f'<option value="{e(site.cloud_id)}">{e(site.name)} ({e(site_url(site))})</option>' for site in sites.values()
    )
    scopes = "\n".join(f'<li data-scope="{e(s)}">{e(s)}</li>' for s in pending.scopes)
    problem_html = f'<p id="problem" role="alert">{e(problem)}</p>\n' if problem else ""
    heading = f'<span id="app-name">{app_name}</span> is requesting access to your Atlassian account'
    body = f"""<h1 id="heading">{heading}</h1>
{problem_html}<form id="consent" method="post" action="/authorize">
<input type="hidden" name="nonce" value="{e(nonce)}">
<input type="hidden" name="state" value="{e(pending.state)}">
<p><label for="user">Log in as</label>
<select id="user" name="account_id">
{users}
</select></p>
<p><label for="site">Use app on</label>
<select id="site" name="cloud_id">
{site_options}
</select></p>
<h2>{app_name} would like to</h2>
<ul id="scopes">
{scopes}
</ul>
<p><button id="accept" type="submit" name="decision" value="accept">Accept</button>
<button id="deny" type="submit" name="decision" value="deny">Deny</button></p>
</form>"""
    return _page(f"Authorize {pending.app.name}", body)


#: The OAuth app every `jira-lab sim`/`demo` cloud has registered, so `jira-lab token` can be tried against it. Its
#: "secret" is simulated and printed on purpose: it opens nothing outside the simulated cloud.
DEMO_APP_NAME = "jira-lab demo connector"
DEMO_CLIENT_ID = "jira-lab-demo"
DEMO_CLIENT_SECRET = "sim-client-secret-not-a-secret"
DEMO_CALLBACK_URL = "http://localhost:13131/"


def register_demo_app(cloud: SimCloud, scopes: Iterable[str]) -> OAuthApp:
    """Register the demo connector's app on ``cloud`` with the scopes its developer console would list."""
    return cloud.auth.register_app(
        DEMO_APP_NAME,
        callback_url=DEMO_CALLBACK_URL,
        scopes=scopes,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
    )
