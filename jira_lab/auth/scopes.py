"""The OAuth scopes jira_lab needs, and how to name the ones a token lacks.

The required set is the reader app's preconfiguration checklist (``shared/scopes.md``): 3 classic scopes and 31
granular ones. ``offline_access`` is not a console scope; it is added on the authorize request so that Atlassian
issues a refresh token. When the gateway answers 401 ``Unauthorized; scope does not match``, :func:`scope_error`
looks the operation up in :mod:`jira_lab.operations` and names what the token is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from jira_lab.errors import MissingScopeError
from jira_lab.operations import find_operation

CLASSIC_SCOPES: tuple[str, ...] = ("read:jira-work", "read:jira-user", "manage:jira-configuration")

GRANULAR_SCOPES: tuple[str, ...] = (
    "read:application-role:jira",
    "read:attachment:jira",
    "read:audit-log:jira",
    "read:avatar:jira",
    "read:comment.property:jira",
    "read:comment:jira",
    "read:field-configuration:jira",
    "read:field:jira",
    "read:group:jira",
    "read:issue-details:jira",
    "read:issue-meta:jira",
    "read:issue-security-level:jira",
    "read:issue-security-scheme:jira",
    "read:issue-type-hierarchy:jira",
    "read:issue-type:jira",
    "read:issue.changelog:jira",
    "read:issue.vote:jira",
    "read:issue:jira",
    "read:permission-scheme:jira",
    "read:permission:jira",
    "read:project-category:jira",
    "read:project-role:jira",
    "read:project-type:jira",
    "read:project-version:jira",
    "read:project.component:jira",
    "read:project.feature:jira",
    "read:project.property:jira",
    "read:project:jira",
    "read:status:jira",
    "read:user.property:jira",
    "read:user:jira",
)

#: Every scope the reader app is configured with, in the order of ``shared/scopes.md``.
REQUIRED_SCOPES: tuple[str, ...] = CLASSIC_SCOPES + GRANULAR_SCOPES

#: Requested on every authorize request so that a refresh token is issued; never a console scope.
OFFLINE_ACCESS = "offline_access"

_GATEWAY_PREFIX = re.compile(r"^/ex/jira/[^/]+(?=/)")


def scope_set(scopes: Iterable[str] | str | None) -> frozenset[str]:
    """Scopes as a set; a string is split on whitespace, as in the token endpoint's ``scope`` field."""
    if scopes is None:
        return frozenset()
    if isinstance(scopes, str):
        return frozenset(scopes.split())
    return frozenset(scopes)


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """The granted scopes compared with the required ones.

    Attributes:
        granted: the scopes the token holds.
        required: the scopes jira_lab asked for, in their documented order.
        missing: the required scopes not granted, in the order of ``required``.
    """

    granted: frozenset[str]
    required: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every required scope was granted."""
        return not self.missing

    def describe(self) -> str:
        """One line for a summary: all granted, or which are missing."""
        if self.ok:
            return f"all {len(self.required)} required scopes granted"
        return f"{len(self.missing)} of {len(self.required)} required scopes missing: {', '.join(self.missing)}"


def check_scopes(granted: Iterable[str] | str, required: Iterable[str] = REQUIRED_SCOPES) -> ScopeCheck:
    """Compare ``granted`` with ``required``.

    Args:
        granted: the token's scopes (a set, or the space-separated ``scope`` string of a token response).
        required: what is needed; the reader app's scopes by default.

    Returns:
        A :class:`ScopeCheck`; ``missing`` keeps the order of ``required``.
    """
    held = scope_set(granted)
    needed = tuple(dict.fromkeys(required))
    return ScopeCheck(held, needed, tuple(s for s in needed if s not in held))


def require_scopes(granted: Iterable[str] | str, required: Iterable[str] = REQUIRED_SCOPES) -> ScopeCheck:
    """Like :func:`check_scopes`, but raise :class:`MissingScopeError` naming the missing scopes.

    Raises:
        MissingScopeError: some required scope was not granted; ``missing`` names exactly those.
    """
    check = check_scopes(granted, required)
    if not check.ok:
        raise MissingScopeError(
            check.missing,
            f"the app was not granted these OAuth scopes: {', '.join(check.missing)}. Add them to the app in the "
            "Atlassian developer console (Permissions → Jira API), then run `jira-lab token` again to consent.",
        )
    return check


def api_path(path_or_url: str) -> str:
    """The ``/rest/api/3/...`` path of a request, whatever gateway or site prefix it was sent with."""
    path = urlsplit(path_or_url).path if "://" in path_or_url else path_or_url.split("?", 1)[0]
    path = _GATEWAY_PREFIX.sub("", path)
    # a loopback simulator serves sites under /site/<name>
    if path.startswith("/site/"):
        path = "/" + path[len("/site/") :].partition("/")[2]
    return path


def scope_error(method: str, path: str, granted: Iterable[str] | str) -> MissingScopeError:
    """The error for a gateway 401 ``scope does not match``, naming the scopes the operation needs that are missing.

    An operation accepts either all of its classic scopes or all of its granular ones; ``missing`` names the
    smaller set of absent scopes (the classic one on a tie), and the message mentions the other way in.

    Args:
        method: the request's HTTP method.
        path: the request path or URL; any ``/ex/jira/{cloudId}`` gateway prefix is ignored.
        granted: the scopes the token holds.
    """
    held = scope_set(granted)
    api = api_path(path)
    request = f"{method.upper()} {api}"
    op = find_operation(method, api)
    if op is None:
        return MissingScopeError(
            (),
            f"the gateway refused {request}: scope does not match. jira_lab does not know which scopes this operation "
            "needs; compare the app's scopes with the operation's in the Jira REST API documentation.",
        )
    ways: list[tuple[str, tuple[str, ...]]] = []
    if op.classic_scopes or not op.granular_scopes:
        ways.append(("classic", tuple(sorted(op.classic_scopes - held))))
    if op.granular_scopes:
        ways.append(("granular", tuple(sorted(op.granular_scopes - held))))
    kind, missing = min(ways, key=lambda way: len(way[1]))
    if not missing:
        return MissingScopeError(
            (),
            f"the gateway refused {request} ({op.operation_id}): scope does not match, although the token's recorded "
            "scopes allow it; the grant may have changed. Run `jira-lab token` again to consent.",
        )
    others = [f"the {k} scopes {', '.join(m)}" for k, m in ways if k != kind and m]
    alternative = f" (or {others[0]})" if others else ""
    return MissingScopeError(
        missing,
        f"the gateway refused {request} ({op.operation_id}): the token lacks the {kind} scopes "
        f"{', '.join(missing)}{alternative}. Add them to the app in the Atlassian developer console, then run "
        "`jira-lab token` again to consent.",
    )
