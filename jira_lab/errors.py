"""jira_lab's exceptions: one small tree, so callers can catch as broadly or narrowly as they need.

::

    JiraLabError                    anything jira_lab raises on purpose
    ├── AuthError                   getting or using credentials failed
    │   ├── ConsentRequiredError    the grant is gone (revoked, expired, refresh token reused): consent again
    │   ├── InvalidClientError      the client id or client secret is wrong
    │   ├── MissingScopeError       the app lacks OAuth scopes; ``missing`` names them
    │   ├── CallbackError           the consent redirect was refused, malformed, or its ``state`` did not match
    │   │   └── CallbackTimeoutError  no redirect arrived in time
    │   ├── PortInUseError          the loopback callback port is taken
    │   └── SiteSelectionError      no granted site matches, or several do and none was chosen
    └── JiraApiError                Jira answered with an error; Jira's own messages and the request, secrets masked

Misuse of arguments raises :class:`ValueError`, as in the standard library. Messages say what to do next; they never
contain a token, a client secret or an API token.
"""

from __future__ import annotations

from collections.abc import Iterable


class JiraLabError(Exception):
    """Base of every error jira_lab raises on purpose."""


class AuthError(JiraLabError):
    """Getting or using credentials failed."""


class ConsentRequiredError(AuthError):
    """The OAuth grant can no longer be used; the user must run the consent flow again."""


class InvalidClientError(AuthError):
    """Atlassian refused the client id or the client secret."""


class MissingScopeError(AuthError):
    """The app was not granted scopes that jira_lab needs."""

    def __init__(self, missing: Iterable[str], message: str | None = None) -> None:
        self.missing = tuple(sorted(set(missing)))
        super().__init__(message or f"the app was not granted these OAuth scopes: {', '.join(self.missing)}")


class CallbackError(AuthError):
    """The redirect from the consent page was an error, malformed, or failed the ``state`` check."""


class CallbackTimeoutError(CallbackError):
    """No redirect from the consent page arrived in time."""


class PortInUseError(AuthError):
    """The loopback callback port is already taken by another program."""


class SiteSelectionError(AuthError):
    """The granted sites do not include the one asked for, or several were granted and none was chosen."""


class JiraApiError(JiraLabError):
    """Jira answered a request with an error.

    Attributes:
        status: the HTTP status.
        messages: Jira's ``errorMessages`` (or the gateway's ``message``).
        errors: Jira's per-field ``errors``.
        request: ``"METHOD URL"`` of the request, with credentials masked.
    """

    def __init__(
        self,
        status: int,
        messages: Iterable[str] = (),
        errors: dict[str, str] | None = None,
        request: str = "",
    ) -> None:
        self.status = status
        self.messages = list(messages)
        self.errors = dict(errors or {})
        self.request = request
        detail = "; ".join([*self.messages, *(f"{k}: {v}" for k, v in self.errors.items())]) or "no details"
        super().__init__(
            f"Jira answered {status} to {request}: {detail}" if request else f"Jira answered {status}: {detail}"
        )
