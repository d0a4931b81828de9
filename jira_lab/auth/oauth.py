"""Pure helpers for Atlassian's OAuth 2.0 authorization code grant (3LO), built on Authlib's RFC 6749 plumbing.

The authorize URL and the callback parsing use :mod:`authlib.oauth2.rfc6749.parameters`; ``state`` comes from
:func:`authlib.common.security.generate_token`. The token requests are Atlassian's documented JSON bodies (client
secret in the body, always), sent with whatever :class:`httpx.Client` the caller passes, so tests aim them at the
simulated authorization server. Refreshing is not automatic here: :class:`jira_lab.auth.httpauth.OAuth2Auth` does it,
single-flight, persisting each rotated refresh token before use.

Endpoints are parameters everywhere (``auth_url``, ``api_url``) so that the simulator can stand in for Atlassian.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped]
    MismatchingStateException,
    MissingCodeException,
)
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    parse_authorization_code_response,
    prepare_grant_uri,
)

from jira_lab.auth.scopes import OFFLINE_ACCESS, REQUIRED_SCOPES, scope_set
from jira_lab.auth.tokens import Site, TokenGrant
from jira_lab.errors import (
    AuthError,
    CallbackError,
    ConsentRequiredError,
    InvalidClientError,
    SiteSelectionError,
)

logger = logging.getLogger(__name__)

AUTH_URL = "https://auth.atlassian.com"
API_URL = "https://api.atlassian.com"
AUDIENCE = "api.atlassian.com"
DEFAULT_PORT = 13131
DEFAULT_REDIRECT_URI = f"http://localhost:{DEFAULT_PORT}/"
#: assumed when a token answer has no ``expires_in`` (Atlassian's access tokens live one hour)
DEFAULT_EXPIRES_IN = 3600.0
STATE_LENGTH = 43  # about 256 bits from 62 symbols

#: token endpoint errors on a refresh that mean the grant is gone (jira-semantics §1.3)
_GRANT_GONE = frozenset({"invalid_grant", "unauthorized_client", "access_denied"})

Clock = Callable[[], float]


def redirect_uri_for(port: int = DEFAULT_PORT) -> str:
    """The loopback callback URL for ``port``; the app's registered callback URL must be exactly this."""
    return f"http://localhost:{port}/"


def consent_hint(client_id: str) -> str:
    """What to run to consent again (the secret stays a placeholder)."""
    return f"run `jira-lab token --api jiracloud -i {client_id} -s <client secret>` again to consent"


# -- authorize ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """An authorize URL and what the callback must be checked against.

    Attributes:
        url: the consent page URL to open in a browser.
        state: the unguessable value the callback must carry back.
        redirect_uri: where Atlassian sends the browser; the token exchange repeats it.
    """

    url: str
    state: str
    redirect_uri: str


def authorization_request(
    client_id: str,
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scopes: Iterable[str] = REQUIRED_SCOPES,
    auth_url: str = AUTH_URL,
    state: str | None = None,
) -> AuthorizationRequest:
    """Build Atlassian's authorize URL.

    Args:
        client_id: the app's client id.
        redirect_uri: the app's registered callback URL.
        scopes: the scopes to ask for; ``offline_access`` is always added so that a refresh token is issued.
        auth_url: the authorization server (the simulator's in tests).
        state: the CSRF value; a fresh unguessable one by default.

    Returns:
        The URL with ``audience``, ``client_id``, ``scope``, ``redirect_uri``, ``state``, ``response_type=code`` and
        ``prompt=consent``, and the state to check the callback against.
    """
    if not client_id:
        raise ValueError("client_id is empty")
    requested = list(dict.fromkeys([*scopes, OFFLINE_ACCESS]))
    chosen_state = state if state is not None else generate_token(STATE_LENGTH)
    url = prepare_grant_uri(
        f"{auth_url.rstrip('/')}/authorize",
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=requested,
        state=chosen_state,
        audience=AUDIENCE,
        prompt="consent",
    )
    # Atlassian documents space-separated scopes as %20; urlencode writes '+' (a literal '+' in a value is %2B)
    parts = urlsplit(str(url))
    return AuthorizationRequest(
        parts._replace(query=parts.query.replace("+", "%20")).geturl(), chosen_state, redirect_uri
    )


def parse_callback(url: str, expected_state: str) -> str:
    """The authorization code carried by the consent redirect.

    Args:
        url: the full URL the browser was sent to (``redirect_uri?code=...&state=...``).
        expected_state: the ``state`` of the authorization request.

    Raises:
        CallbackError: the redirect carries ``error=`` (e.g. ``access_denied`` when consent was denied), has no
            code, or its ``state`` differs from ``expected_state``.
    """
    if not expected_state:
        raise ValueError("expected_state is empty")
    params = dict(httpx.URL(url.strip()).params.multi_items())
    if "error" in params:
        error = params["error"]
        description = params.get("error_description", "")
        detail = f"{error}: {description}" if description else error
        if error == "access_denied":
            raise CallbackError(
                f"consent was denied on Atlassian's page ({detail}); run `jira-lab token` again and choose Accept"
            )
        raise CallbackError(f"the authorization server refused the request ({detail}); fix it and authorize again")
    try:
        result: dict[str, str] = parse_authorization_code_response(url.strip(), state=expected_state)
    except MissingCodeException:
        raise CallbackError("the redirect carries no authorization code; copy the whole URL and try again") from None
    except MismatchingStateException:
        raise CallbackError(
            "the redirect's state does not match this authorization request (a stale or forged redirect); "
            "authorize again from the link just shown"
        ) from None
    return result["code"]


# -- token endpoint ----------------------------------------------------------------------------------------------
def token_url(auth_url: str = AUTH_URL) -> str:
    """The token endpoint of an authorization server."""
    return f"{auth_url.rstrip('/')}/oauth/token"


def code_request(
    client_id: str, client_secret: str, code: str, redirect_uri: str, *, auth_url: str = AUTH_URL
) -> httpx.Request:
    """The documented JSON body of the authorization code exchange, as a request ready to send."""
    body = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    return httpx.Request("POST", token_url(auth_url), json=body, headers={"Accept": "application/json"})


def refresh_request(
    client_id: str, client_secret: str, refresh_token: str, *, auth_url: str = AUTH_URL
) -> httpx.Request:
    """The documented JSON body of the refresh token grant, as a request ready to send."""
    body = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    return httpx.Request("POST", token_url(auth_url), json=body, headers={"Accept": "application/json"})


def parse_token_response(
    response: httpx.Response,
    *,
    client_id: str,
    grant_type: str,
    issued_at: float,
    secrets: Iterable[str | None] = (),
) -> TokenGrant:
    """Turn the token endpoint's answer into a :class:`TokenGrant`, or into the error that says what to do.

    Args:
        response: the answer (its body read).
        client_id: the app's client id, for messages.
        grant_type: ``authorization_code`` or ``refresh_token``; decides what an ``invalid_grant`` means.
        issued_at: the clock reading taken just before the request; ``expires_in`` counts from it.
        secrets: values that must never appear in an error message (masked if the server echoes them).

    Raises:
        InvalidClientError: the client id or secret was refused.
        ConsentRequiredError: the grant (refresh) or the code (exchange) is no longer valid.
        AuthError: any other failure.
    """
    body = _json_body(response)
    if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
        refresh_token = body.get("refresh_token")
        return TokenGrant(
            access_token=str(body["access_token"]),
            refresh_token=str(refresh_token) if refresh_token else None,
            expires_at=issued_at + expires_in,
            scopes=scope_set(body.get("scope")),
            token_type=str(body.get("token_type") or "bearer"),
        )
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    description = str(body.get("error_description") or "") if isinstance(body, dict) else ""
    detail = _scrub(f"{error}: {description}" if description else error or "no error code", secrets)
    status = response.status_code
    logger.debug("token endpoint answered %s to a %s grant for %s: %s", status, grant_type, client_id, detail)
    if status == 200:
        raise AuthError(f"the token endpoint answered 200 without an access token for app {client_id!r}")
    # Atlassian's server (Auth0) answers a wrong client id or secret with 401 access_denied "Unauthorized"; a gone
    # grant is a 403 invalid_grant
    if error == "invalid_client" or (status == 401 and error != "invalid_grant"):
        raise InvalidClientError(
            f"the authorization server refused the client credentials of app {client_id!r} ({status} {detail}); "
            "check the client id and the client secret in the Atlassian developer console (Settings)"
        )
    if grant_type == "refresh_token" and error in _GRANT_GONE:
        raise ConsentRequiredError(
            f"the authorization server refused the refresh token of app {client_id!r} ({status} {detail}): the grant "
            f"was revoked, expired or its refresh token was reused; {consent_hint(client_id)}"
        )
    if grant_type == "authorization_code" and error == "invalid_grant":
        raise ConsentRequiredError(
            f"the authorization code was refused ({status} {detail}): it expired, was already used, or the redirect "
            f"URI differs from the authorize request's; {consent_hint(client_id)}"
        )
    raise AuthError(f"the token endpoint answered {status} to a {grant_type} grant for app {client_id!r}: {detail}")


def exchange_code(
    http: httpx.Client,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    *,
    auth_url: str = AUTH_URL,
    clock: Clock = time.time,
) -> TokenGrant:
    """Exchange an authorization code for tokens (``POST {auth_url}/oauth/token``).

    Args:
        http: the client to send with (its own auth, if any, is not used).
        client_id: the app's client id.
        client_secret: the app's secret (never in messages).
        code: from :func:`parse_callback`.
        redirect_uri: exactly the authorize request's.
        auth_url: the authorization server.
        clock: seconds since the epoch.

    Raises:
        InvalidClientError, ConsentRequiredError, AuthError: see :func:`parse_token_response`.
    """
    request = code_request(client_id, client_secret, code, redirect_uri, auth_url=auth_url)
    issued_at = clock()
    response = _send(http, request)
    return parse_token_response(
        response,
        client_id=client_id,
        grant_type="authorization_code",
        issued_at=issued_at,
        secrets=(client_secret, code),
    )


async def aexchange_code(
    http: httpx.AsyncClient,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    *,
    auth_url: str = AUTH_URL,
    clock: Clock = time.time,
) -> TokenGrant:
    """The async twin of :func:`exchange_code`."""
    request = code_request(client_id, client_secret, code, redirect_uri, auth_url=auth_url)
    issued_at = clock()
    response = await _asend(http, request)
    return parse_token_response(
        response,
        client_id=client_id,
        grant_type="authorization_code",
        issued_at=issued_at,
        secrets=(client_secret, code),
    )


def refresh(
    http: httpx.Client,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    auth_url: str = AUTH_URL,
    clock: Clock = time.time,
) -> TokenGrant:
    """Use a refresh token once (it rotates: persist the returned one before anything else).

    Raises:
        ConsentRequiredError: the grant was revoked or expired, or the refresh token was reused too late.
        InvalidClientError, AuthError: see :func:`parse_token_response`.
    """
    request = refresh_request(client_id, client_secret, refresh_token, auth_url=auth_url)
    issued_at = clock()
    response = _send(http, request)
    return parse_token_response(
        response,
        client_id=client_id,
        grant_type="refresh_token",
        issued_at=issued_at,
        secrets=(client_secret, refresh_token),
    )


async def arefresh(
    http: httpx.AsyncClient,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    auth_url: str = AUTH_URL,
    clock: Clock = time.time,
) -> TokenGrant:
    """The async twin of :func:`refresh`."""
    request = refresh_request(client_id, client_secret, refresh_token, auth_url=auth_url)
    issued_at = clock()
    response = await _asend(http, request)
    return parse_token_response(
        response,
        client_id=client_id,
        grant_type="refresh_token",
        issued_at=issued_at,
        secrets=(client_secret, refresh_token),
    )


# -- sites -------------------------------------------------------------------------------------------------------
def resources_request(access_token: str, *, api_url: str = API_URL) -> httpx.Request:
    """``GET {api_url}/oauth/token/accessible-resources`` with the Bearer token."""
    return httpx.Request(
        "GET",
        f"{api_url.rstrip('/')}/oauth/token/accessible-resources",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )


def parse_resources(response: httpx.Response) -> list[Site]:
    """The Jira sites of an ``accessible-resources`` answer.

    A Jira and a Confluence entry may share one cloud id; only entries with a Jira scope are kept, once each.
    """
    if response.status_code == 401:
        raise AuthError("the gateway refused the access token while listing the granted sites; authorize again")
    body = _json_body(response)
    if response.status_code != 200 or not isinstance(body, list):
        raise AuthError(f"listing the granted sites failed: the gateway answered {response.status_code}")
    sites: dict[str, Site] = {}
    for entry in body:
        scopes = frozenset(entry.get("scopes") or ())
        if not any("jira" in scope for scope in scopes) or entry["id"] in sites:
            continue
        sites[entry["id"]] = Site(str(entry["id"]), str(entry.get("name", "")), str(entry.get("url", "")), scopes)
    return list(sites.values())


def accessible_resources(http: httpx.Client, access_token: str, *, api_url: str = API_URL) -> list[Site]:
    """Every Jira site the grant covers (in the gateway's order, which means nothing)."""
    return parse_resources(_send(http, resources_request(access_token, api_url=api_url)))


async def aaccessible_resources(http: httpx.AsyncClient, access_token: str, *, api_url: str = API_URL) -> list[Site]:
    """The async twin of :func:`accessible_resources`."""
    return parse_resources(await _asend(http, resources_request(access_token, api_url=api_url)))


def _site_address(url: str) -> str:
    text = url.strip().lower()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    return f"{parts.netloc}{parts.path}".rstrip("/")


def pick_site(sites: Iterable[Site], site_url: str | None = None) -> Site:
    """Choose the site to work on.

    Args:
        sites: the granted sites.
        site_url: the wanted site's URL (scheme, case and trailing slash do not matter) or its cloud id; ``None``
            takes the only site.

    Raises:
        SiteSelectionError: no site matches, or several were granted and none was named; the message lists them.
    """
    candidates = list(sites)
    choices = ", ".join(site.url for site in candidates) or "none"
    if not candidates:
        raise SiteSelectionError("the grant covers no Jira site; consent again and pick a site on Atlassian's page")
    if site_url is None:
        if len(candidates) == 1:
            return candidates[0]
        raise SiteSelectionError(f"the grant covers several sites; choose one by URL (--site): {choices}")
    wanted = _site_address(site_url)
    for site in candidates:
        if _site_address(site.url) == wanted or site.cloud_id == site_url.strip():
            return site
    raise SiteSelectionError(f"{site_url!r} is not among the granted sites: {choices}")


def api_base(site: Site, api_url: str = API_URL) -> str:
    """The gateway base URL for 3LO calls to ``site``: ``{api_url}/ex/jira/{cloud_id}``."""
    return f"{api_url.rstrip('/')}/ex/jira/{site.cloud_id}"


# -- plumbing ----------------------------------------------------------------------------------------------------
def _send(http: httpx.Client, request: httpx.Request) -> httpx.Response:
    # auth=None: the caller's client may carry an OAuth2Auth, which must not wrap the token requests themselves
    response = http.send(request, auth=None)
    response.read()
    return response


async def _asend(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    response = await http.send(request, auth=None)
    await response.aread()
    return response


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
