"""Routes of the simulated REST API, declared with the OpenAPI spec's own path templates.

Each handler is registered with ``@route(method, template)`` where ``template`` is the spec's path key (for example
``/rest/api/3/issue/{issueIdOrKey}/comment``). The same key finds the operation's scopes in
:mod:`jira_lab.operations` and its response schema in the contract tests, so a route cannot drift from the spec
without a test noticing.

A handler receives a :class:`Call` and returns the JSON body of a 200 answer, or a :class:`Reply` for anything else;
it raises :class:`JiraError` for Jira's ``ErrorCollection`` answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from jira_lab.sim.cloud import SimCloud
    from jira_lab.sim.model import Site
    from jira_lab.sim.permissions import PermissionEngine


class JiraError(Exception):
    """An error answered in Jira's ``ErrorCollection`` shape: ``{"errorMessages": [...], "errors": {...}}``."""

    def __init__(
        self,
        status: int,
        *messages: str,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status}: {'; '.join(messages) or errors}")
        self.status = status
        self.messages = list(messages)
        self.errors = errors or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errorMessages": self.messages, "errors": self.errors}


@dataclass(slots=True)
class Reply:
    """A non-200 answer, or one with extra headers or a non-JSON body."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    """One request to a simulated site, as a handler sees it."""

    cloud: SimCloud
    site: Site
    engine: PermissionEngine
    #: the authenticated account, ``None`` for an anonymous request
    caller: str | None
    request: httpx.Request
    path_params: dict[str, str]
    #: the site URL as the caller should see it in ``self`` links (Jira always links to the site URL)
    site_url: str
    #: origin + prefix the request came through, to build ``nextPage`` links the caller can follow
    api_base: str
    #: ``UserDetails`` rendered for this answer, by account id: a large answer embeds the same few authors thousands
    #: of times (shared, not copied: nothing changes them once rendered)
    rendered_users: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- query parameters ------------------------------------------------------------------------------------
    def query(self, name: str) -> str | None:
        value: str | None = self.request.url.params.get(name)
        return value

    def query_list(self, name: str) -> list[str]:
        """A repeated or comma-separated parameter (``id=1&id=2`` or ``id=1,2``), as Jira accepts both."""
        values: list[str] = []
        for raw in self.request.url.params.get_list(name):
            values.extend(part.strip() for part in raw.split(",") if part.strip())
        return values

    def expansions(self) -> set[str]:
        """The ``expand`` values of the request (repeated or comma-separated)."""
        return set(self.query_list("expand"))

    def query_int(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self.query(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise JiraError(400, f"The value '{raw}' is invalid for the parameter '{name}'.") from None
        if minimum is not None and value < minimum:
            raise JiraError(400, f"The value of '{name}' must be at least {minimum}.")
        if maximum is not None and value > maximum:
            value = maximum  # Jira silently lowers oversized page sizes
        return value

    def query_bool(self, name: str, default: bool) -> bool:
        raw = self.query(name)
        if raw is None:
            return default
        return raw.lower() == "true"

    # -- body ------------------------------------------------------------------------------------------------
    def json(self) -> Any:
        """The JSON body; Jira answers 400 to a malformed one."""
        content = self.request.content
        if not content:
            return {}
        try:
            return json.loads(content)
        except ValueError:
            raise JiraError(400, "Unexpected character in the request body: it is not valid JSON.") from None

    # -- links -----------------------------------------------------------------------------------------------
    def self_url(self, path: str) -> str:
        """``self`` link for a site path such as ``/rest/api/3/issue/10001``."""
        return self.site_url + path


Handler = Callable[[Call], Any]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]


ROUTES: list[Route] = []


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts if part)
    return re.compile(f"^{regex}$")


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method`` on the spec path ``template``."""

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method.upper(), template, handler, _compile(template)))
        return handler

    return register


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for a request path (without prefix), or ``None``.

    A path that exists under another method raises a 405 :class:`JiraError`. Literal segments win over
    parameters (``/issue/bulkfetch`` is not ``/issue/{issueIdOrKey}``), as in Jira's router.
    """
    candidates = [(r, m) for r in ROUTES if (m := r.pattern.match(path))]
    if not candidates:
        return None
    same_method = [(r, m) for r, m in candidates if r.method == method]
    if not same_method:
        raise JiraError(405, f"Method {method} is not allowed on {path}.")
    # fewest parameters first: the most literal template is the most specific
    best, found = min(same_method, key=lambda rm: rm[0].template.count("{"))
    return best, found.groupdict()
