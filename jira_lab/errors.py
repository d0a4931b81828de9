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
    ├── JiraApiError                Jira answered with an error; Jira's own messages and the request, secrets masked
    │   └── RateLimitedError        a 429 that retries did not get past; ``reason`` is its ``RateLimit-Reason``
    │       └── QuotaExhaustedError   the quota resets too far ahead to wait (``reset_at``): resume after it
    ├── JiraConnectionError         the request or its answer kept getting lost (resets, timeouts, cut bodies)
    ├── PaginationError             Jira's pages stopped advancing (a server bug): stopped instead of looping
    └── StoreError                  the DuckDB file cannot be used as asked
        ├── DatabaseLockedError     another process holds the file; ``pid`` says which
        └── SchemaError             the file's schema is newer than this jira_lab, or differs from the declared one

Misuse of arguments raises :class:`ValueError`, as in the standard library. Messages say what to do next; they never
contain a token, a client secret or an API token.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime


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


class RateLimitedError(JiraApiError):
    """Jira kept answering 429 (or answered it to a request that may not be repeated).

    Attributes:
        reason: the ``RateLimit-Reason`` header (``jira-burst-based``, ``jira-quota-global-based`` ...), or
            ``"unknown"`` when Jira sent none.
    """

    def __init__(
        self,
        reason: str,
        messages: Iterable[str] = (),
        errors: dict[str, str] | None = None,
        request: str = "",
    ) -> None:
        self.reason = reason
        super().__init__(429, [*messages, f"rate limited ({reason})"], errors, request)


class QuotaExhaustedError(RateLimitedError):
    """Jira's points quota is used up until a reset farther away than the client may wait: stop, resume later.

    Attributes:
        reset_at: when the quota resets (UTC); a load re-run after it resumes where it stopped.
    """

    def __init__(self, reason: str, reset_at: datetime, *, request: str = "") -> None:
        self.reset_at = reset_at
        when = reset_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        super().__init__(
            reason,
            [f"the rate-limit quota is used up until {when}; run the load again after that to resume"],
            None,
            request,
        )


class JiraConnectionError(JiraLabError):
    """A request kept failing before Jira's answer arrived whole: connection resets, timeouts, cut bodies.

    Attributes:
        request: ``"METHOD URL"`` of the request, with credentials masked.
        attempts: how many times it was sent.
    """

    def __init__(self, request: str, attempts: int, cause: BaseException) -> None:
        self.request = request
        self.attempts = attempts
        what = type(cause).__name__ if not str(cause) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"{request} failed {attempts} time(s) before Jira's answer arrived ({what}); check the network and "
            "run again, a load resumes where it stopped"
        )


class PaginationError(JiraLabError):
    """Jira's pages stopped advancing (the same page or token again): a server bug; stopped rather than loop."""


class StoreError(JiraLabError):
    """The DuckDB file cannot be used as asked."""


class DatabaseLockedError(StoreError):
    """Another process holds the DuckDB file open, and DuckDB lets only one process use a file for writing.

    Attributes:
        path: the database file.
        pid: the id of the process holding it, when DuckDB said so.
    """

    def __init__(self, path: str, pid: int | None, message: str) -> None:
        self.path = path
        self.pid = pid
        super().__init__(message)


class SchemaError(StoreError):
    """The DuckDB file was written by a newer jira_lab, or its tables differ from the declared schema."""
