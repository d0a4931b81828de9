"""The simulated Atlassian cloud: one object answering for the site URLs, the API gateway and the auth server.

:class:`SimCloud` turns an :class:`httpx.Request` into an :class:`httpx.Response`. It is served two ways: in process,
as an httpx transport (:meth:`SimCloud.transport`, for sync and async clients alike), and over real HTTP on loopback
(:mod:`jira_lab.sim.server`). Requests are dispatched on their path, so a client keeps Atlassian's URLs and only swaps
its transport, or points its base URLs at the loopback server:

* ``/ex/jira/{cloudId}/rest/api/3/...`` — the API gateway (``https://api.atlassian.com``), Bearer tokens, scopes
  enforced per operation as the OpenAPI spec lists them;
* ``/oauth/token/accessible-resources`` — the gateway's list of sites a token may reach;
* ``/authorize`` and ``/oauth/token`` — the authorization server (``https://auth.atlassian.com``), ``cloud.auth``
  (:mod:`jira_lab.sim.authserver`): consent page, code exchange, rotating refresh tokens;
* ``/rest/api/3/...`` — a site URL (``https://<name>.atlassian.net``), Basic auth with email and API token; the site
  is chosen by a ``/site/<name>`` path prefix, else by the ``<name>.atlassian.net`` host, else the first site.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from jira_lab.operations import operation
from jira_lab.sim import app
from jira_lab.sim.authserver import AuthServer
from jira_lab.sim.faults import FaultInjector, Faults
from jira_lab.sim.limits import RateLimiter, RateLimits
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine
from jira_lab.sim.routing import Call, JiraError, Reply, match

JSON_TYPE = "application/json;charset=UTF-8"
SCOPE_MISMATCH = {"code": 401, "message": "Unauthorized; scope does not match"}
UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """What a Bearer access token stands for."""

    account_id: str
    scopes: frozenset[str]
    cloud_ids: tuple[str, ...]
    expires_at: float
    #: the authorization server's token family (``None``: minted directly by a test)
    family: str | None = None

    def __repr__(self) -> str:  # the token is the dict key; nothing secret is held here
        return f"AccessGrant(account_id={self.account_id!r}, scopes={len(self.scopes)}, cloud_ids={self.cloud_ids})"


class SimCloud:
    """Simulated Jira Cloud sites behind one request handler.

    Args:
        sites: the sites to host; the first is the default for site-URL requests without a prefix.
        clock: seconds since the epoch; inject a fake one to expire tokens in tests.
        public_base: the origin the cloud is served at (set by the loopback server) so that ``self`` links and
            site URLs point at it; ``None`` keeps Atlassian's ``https://<name>.atlassian.net``.
        limits: Jira's rate limits (:mod:`jira_lab.sim.limits`); ``None``, the default, switches them off so that
            tests about something else never trip them. The demo passes ``RateLimits()``: Atlassian's defaults.
        faults: a plan of transient faults (:mod:`jira_lab.sim.faults`); ``None`` answers every request cleanly.
    """

    def __init__(
        self,
        *sites: Site,
        clock: Callable[[], float] = time.time,
        public_base: str | None = None,
        limits: RateLimits | None = None,
        faults: Faults | None = None,
    ) -> None:
        if not sites:
            raise ValueError("SimCloud needs at least one site")
        self.sites: dict[str, Site] = {}
        for site in sites:
            if site.cloud_id in self.sites or any(s.name == site.name for s in self.sites.values()):
                raise ValueError(f"site {site.name!r} ({site.cloud_id}) is given twice")
            self.sites[site.cloud_id] = site
        self.engines = {cid: PermissionEngine(site) for cid, site in self.sites.items()}
        self.clock = clock
        self.public_base = public_base
        self._tokens: dict[str, AccessGrant] = {}
        self._lock = threading.RLock()
        #: the authorization server: ``cloud.auth.register_app(...)``, ``cloud.auth.auto_consent = "<email>"``
        self.auth = AuthServer(self)
        self.rate_limiter = RateLimiter(limits, clock) if limits is not None else None
        self.fault_injector = FaultInjector(faults) if faults is not None else None

    # -- sites -------------------------------------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """Held while a request is answered: hold it to change a site while the cloud is served (see mutations)."""
        return self._lock

    @property
    def default_site(self) -> Site:
        return next(iter(self.sites.values()))

    def site_named(self, name: str) -> Site | None:
        return next((s for s in self.sites.values() if s.name == name), None)

    def site_url(self, site: Site) -> str:
        """The site's URL as the outside world sees it."""
        if self.public_base is None:
            return f"https://{site.name}.atlassian.net"
        return f"{self.public_base}/site/{site.name}"

    def gateway_url(self, site: Site) -> str:
        """The API base for 3LO calls to the site (``.../ex/jira/{cloudId}``)."""
        base = self.public_base or "https://api.atlassian.com"
        return f"{base}/ex/jira/{site.cloud_id}"

    # -- tokens ------------------------------------------------------------------------------------------------
    def mint_access_token(
        self,
        account_id: str,
        scopes: Iterable[str],
        *,
        sites: Iterable[Site] | None = None,
        expires_in: float = 3600,
        family: str | None = None,
    ) -> str:
        """A Bearer token for ``account_id`` with exactly ``scopes`` on ``sites`` (default: every site).

        This is the test-side shortcut past the consent flow; the authorization server mints through it too.
        """
        chosen = list(sites) if sites is not None else list(self.sites.values())
        for site in chosen:
            if account_id not in site.users:
                raise ValueError(f"{account_id!r} is not a user of site {site.name!r}")
        token = "sim-at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = AccessGrant(
                account_id, frozenset(scopes), tuple(s.cloud_id for s in chosen), self.clock() + expires_in, family
            )
        return token

    def revoke_access_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def revoke_token_family(self, family: str) -> None:
        """Revoke every access token minted for ``family`` (a refresh-token breach, a revoked grant)."""
        with self._lock:
            for token in [t for t, g in self._tokens.items() if g.family == family]:
                del self._tokens[token]

    def reshape_token_family(self, family: str, scopes: Iterable[str], sites: Iterable[Site]) -> None:
        """Give every access token of ``family`` these scopes and sites (a new consent reshapes the whole grant)."""
        new_scopes, cloud_ids = frozenset(scopes), tuple(s.cloud_id for s in sites)
        with self._lock:
            for token, grant in list(self._tokens.items()):
                if grant.family == family:
                    self._tokens[token] = dataclasses.replace(grant, scopes=new_scopes, cloud_ids=cloud_ids)

    def cap_access_token(self, token: str, expires_at: float) -> None:
        """Let ``token`` live until ``expires_at`` at the latest (an old access token's grace after a refresh)."""
        with self._lock:
            grant = self._tokens.get(token)
            if grant is not None and grant.expires_at > expires_at:
                self._tokens[token] = dataclasses.replace(grant, expires_at=expires_at)

    def access_tokens(self) -> dict[str, AccessGrant]:
        """Every live access token and what it stands for (a copy: for saving the cloud's state between runs)."""
        with self._lock:
            now = self.clock()
            return {token: grant for token, grant in self._tokens.items() if grant.expires_at > now}

    def restore_access_token(self, token: str, grant: AccessGrant) -> None:
        """Honour an access token issued before a restart (see :meth:`AuthServer.restore_state`)."""
        unknown = [cloud_id for cloud_id in grant.cloud_ids if cloud_id not in self.sites]
        if unknown:
            raise ValueError(f"the token's sites {unknown} are not hosted here")
        with self._lock:
            self._tokens[token] = grant

    def _grant(self, request: httpx.Request) -> AccessGrant | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        grant = self._tokens.get(token.strip())
        if grant is None or grant.expires_at <= self.clock():
            return None
        return grant

    # -- transports --------------------------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers in process; works for ``httpx.Client`` and ``httpx.AsyncClient``."""
        return httpx.MockTransport(self.handle)

    # -- dispatch ----------------------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (or fail it, as the fault plan says)."""
        with self._lock:
            if self.fault_injector is not None:
                return self.fault_injector.intercept(request, self._answer)
            return self._answer(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._dispatch(request)
        except JiraError as error:
            return _json_response(error.status, error.body(), error.headers)

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in ("/authorize", "/oauth/token"):
            return self.auth.handle(request)
        if path == "/oauth/token/accessible-resources":
            return self._accessible_resources(request)
        if path.startswith("/ex/jira/"):
            cloud_id, _, rest = path[len("/ex/jira/") :].partition("/")
            site = self.sites.get(cloud_id)
            if site is None:
                return _json_response(404, {"code": 404, "message": "Not Found"})
            grant = self._grant(request)
            if (
                grant is None
                or site.cloud_id not in grant.cloud_ids
                or not self.engines[cloud_id].is_active(grant.account_id)
            ):
                return _json_response(401, UNAUTHORIZED)
            api_base = f"{self._origin(request)}/ex/jira/{cloud_id}"
            return self._call(request, site, "/" + rest, grant.account_id, grant, api_base)
        site, rest, prefix = self._site_for(request, path)
        caller = self._basic_caller(request, site)
        return self._call(request, site, rest, caller, None, self._origin(request) + prefix)

    def _origin(self, request: httpx.Request) -> str:
        url = request.url
        default_port = {"http": 80, "https": 443}.get(url.scheme)
        port = "" if url.port in (None, default_port) else f":{url.port}"
        return f"{url.scheme}://{url.host}{port}"

    def _site_for(self, request: httpx.Request, path: str) -> tuple[Site, str, str]:
        if path.startswith("/site/"):
            name, _, rest = path[len("/site/") :].partition("/")
            site = self.site_named(name)
            if site is None:
                raise JiraError(404, f"There is no site called {name!r} on this simulated cloud.")
            return site, "/" + rest, f"/site/{name}"
        host = request.url.host
        if host.endswith(".atlassian.net"):
            site = self.site_named(host.removesuffix(".atlassian.net"))
            if site is not None:
                return site, path, ""
        return self.default_site, path, ""

    def _basic_caller(self, request: httpx.Request, site: Site) -> str | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                email, _, api_token = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                email, api_token = "", ""
            for user in site.users.values():
                if (
                    user.email == email
                    and user.api_token is not None
                    and user.active
                    and secrets.compare_digest(user.api_token, api_token)
                ):
                    return user.account_id
        # a 3LO token sent to the site URL, a wrong API token, an inactive account: all the same to Jira
        raise JiraError(401, "Client must be authenticated to access this resource.")

    def _call(
        self,
        request: httpx.Request,
        site: Site,
        path: str,
        caller: str | None,
        grant: AccessGrant | None,
        api_base: str,
    ) -> httpx.Response:
        found = match(request.method, path)
        if found is None:
            raise JiraError(404, f"No REST resource at {path}.")
        route, path_params = found
        op = operation(route.method, route.template)
        if grant is not None and not op.allows(grant.scopes):
            return _json_response(401, SCOPE_MISMATCH, {"X-Failure-Category": "FAILURE_CLIENT_SCOPE_CHECK"})
        if caller is None and not op.anonymous:
            raise JiraError(401, "You are not authenticated. Authentication required to perform this operation.")
        admission = (
            None
            if self.rate_limiter is None
            else self.rate_limiter.admit(site, route.method, route.template, path_params, three_lo=grant is not None)
        )
        call = Call(
            cloud=self,
            site=site,
            # one memoizing snapshot per request: cheap per-item checks, and nothing stale across requests
            engine=self.engines[site.cloud_id].snapshot(),
            caller=caller,
            request=request,
            path_params=path_params,
            site_url=self.site_url(site) if grant is not None else api_base,
            api_base=api_base,
        )
        result = route.handler(call)
        reply = result if isinstance(result, Reply) else Reply(200, result)
        headers = dict(reply.headers)
        if admission is not None:
            # the points a read costs depend on what it returned
            headers.update(admission.settle(reply.status, reply.body))
        return _json_response(reply.status, reply.body, headers)

    def _accessible_resources(self, request: httpx.Request) -> httpx.Response:
        grant = self._grant(request)
        if grant is None:
            return _json_response(401, UNAUTHORIZED)
        resources = []
        for cloud_id in grant.cloud_ids:
            site = self.sites[cloud_id]
            resources.append(
                {
                    "id": site.cloud_id,
                    "name": site.name,
                    "url": self.site_url(site),
                    "scopes": sorted(grant.scopes),
                    "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png",
                }
            )
        return _json_response(200, resources)


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = b"" if body is None else orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    all_headers = {"content-type": JSON_TYPE, **(headers or {})}
    return httpx.Response(status, content=content, headers=all_headers)


# importing the API modules registers their routes
app.load_routes()
