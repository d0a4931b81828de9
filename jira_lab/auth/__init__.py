"""jira_lab's client side of Atlassian OAuth 2.0 (3LO): scopes, tokens and their stores, the authorization code
flow, and httpx authentication that refreshes itself."""

from __future__ import annotations

from jira_lab.auth.httpauth import ApiTokenAuth, OAuth2Auth, basic_auth, is_scope_mismatch
from jira_lab.auth.oauth import (
    API_URL,
    AUTH_URL,
    DEFAULT_PORT,
    DEFAULT_REDIRECT_URI,
    AuthorizationRequest,
    aaccessible_resources,
    accessible_resources,
    aexchange_code,
    api_base,
    arefresh,
    authorization_request,
    exchange_code,
    parse_callback,
    pick_site,
    redirect_uri_for,
    refresh,
)
from jira_lab.auth.scopes import (
    OFFLINE_ACCESS,
    REQUIRED_SCOPES,
    ScopeCheck,
    check_scopes,
    require_scopes,
    scope_error,
)
from jira_lab.auth.tokens import (
    FileTokenStore,
    MemoryTokenStore,
    Site,
    Token,
    TokenGrant,
    TokenKey,
    TokenStore,
    default_token_path,
)

__all__ = [
    "API_URL",
    "AUTH_URL",
    "DEFAULT_PORT",
    "DEFAULT_REDIRECT_URI",
    "OFFLINE_ACCESS",
    "REQUIRED_SCOPES",
    "ApiTokenAuth",
    "AuthorizationRequest",
    "FileTokenStore",
    "MemoryTokenStore",
    "OAuth2Auth",
    "ScopeCheck",
    "Site",
    "Token",
    "TokenGrant",
    "TokenKey",
    "TokenStore",
    "aaccessible_resources",
    "accessible_resources",
    "aexchange_code",
    "api_base",
    "arefresh",
    "authorization_request",
    "basic_auth",
    "check_scopes",
    "default_token_path",
    "exchange_code",
    "is_scope_mismatch",
    "parse_callback",
    "pick_site",
    "redirect_uri_for",
    "refresh",
    "require_scopes",
    "scope_error",
]
