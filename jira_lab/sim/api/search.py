"""Issue search: ``search/jql`` (GET and POST), ``search/approximate-count``, and the removed ``search`` (410).

``search/jql`` pages with an opaque ``nextPageToken`` and reports ``isLast``, never a ``total``; the last page has
``isLast: true`` and no token. Issues the caller cannot browse (no *Browse Projects*, or not a member of the issue's
security level) are silently left out; nothing tells the caller they exist.

The first page fixes which issues a search covers and in what order, like a search index's point in time; the
token points into that snapshot, so a page scans forward from where the previous one stopped instead of sorting the
site again. Later pages return the issues with their current data and leave out any that were deleted, no longer
match, or that the caller may no longer see; issues created, or changed into the query, after the first page are
not added ("Recent updates might not be immediately visible"): a new search finds them. The token also keeps the
sort key of the last issue returned: if the snapshot is gone (more than :data:`MAX_SNAPSHOTS` searches since), the
search resumes after that key in the current order. And it keeps the clock reading of the first page, so relative
dates (``updated >= -1h``) mean the same moment on every page. A token is bound to the site, the caller and the JQL:
any other use, a tampered token or one older than 7 days is a 400.

Validation follows what Jira Cloud answers, in its order (measured by others on live sites): the token is read
first, then ``maxResults`` (1 to 5,000, else 400), then the JQL (an unbounded one, empty or only ``ORDER BY``, is a
400). A POST body must be a JSON object of ``SearchAndReconcileRequestBean``'s properties only.

Page sizes are the simulator's choice, as Jira documents only that heavy field sets get fewer issues per page:
:data:`MAX_IDS_PAGE` when only ``id``/``key`` are requested, :data:`MAX_HEAVY_PAGE` when comments, worklogs,
descriptions, ``*all`` or the changelog are requested, :data:`MAX_FIELDS_PAGE` otherwise. Embedded comments,
worklogs and histories are capped at 20 per issue.

Without ``ORDER BY`` issues come newest key first (``key DESC``); ties on any order are broken by ascending id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jira_lab.sim import jql
from jira_lab.sim.api.issues import (
    FieldSelection,
    IssueView,
    expand_values,
    field_names,
    find_issue,
    issue_json,
    resolve_fields,
)
from jira_lab.sim.model import Issue, Site
from jira_lab.sim.routing import Call, JiraError, Reply, route

#: Most issues per page when only ids or keys are requested ("It returns max 5000 issues").
MAX_IDS_PAGE = 5000
#: Most issues per page with ordinary fields.
MAX_FIELDS_PAGE = 1000
#: Most issues per page when heavy fields (or the changelog) are requested.
MAX_HEAVY_PAGE = 100
HEAVY_FIELDS = frozenset({"comment", "worklog", "description"})
#: Embedded comments, worklogs and histories per issue in search results.
SEARCH_VIEW_LIMIT = 20
DEFAULT_MAX_RESULTS = 50
#: ``reconcileIssues`` "accepts max 50 ids".
MAX_RECONCILE_ISSUES = 50
#: Page tokens "will expire in 7 days".
TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600

UNBOUNDED_JQL = "Unbounded JQL queries are not allowed here. Add a search restriction to the query."
MAX_RESULTS_RANGE = "The maxResults parameter must be between 1 and 5,000."
INVALID_TOKEN = "The provided nextPageToken is invalid or has expired."
BODY_EMPTY = "No content to map to Object due to end of input"
BODY_NOT_AN_OBJECT = "Invalid request payload. Refer to the REST API documentation and try again."
SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
SEARCH_BEAN_PROPERTIES = frozenset(
    {"expand", "fields", "fieldsByKeys", "jql", "maxResults", "nextPageToken", "properties", "reconcileIssues"}
)


# -- page tokens -----------------------------------------------------------------------------------------------
#: Signs the page tokens of this process; a token from elsewhere (or edited) fails the signature check.
_TOKEN_SECRET = secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(*parts: object) -> str:
    """A short digest binding a token to what it pages (site, caller, query ...)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


def encode_token(payload: dict[str, Any]) -> str:
    """An opaque, signed page token for ``payload`` (JSON-serializable)."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(_TOKEN_SECRET, data, hashlib.sha256).digest()[:16]
    return f"{_b64(data)}.{_b64(signature)}"


def decode_token(token: str, *, binding: str, now: float, message: str = INVALID_TOKEN) -> dict[str, Any]:
    """The payload of a token this module issued for ``binding``; Jira's 400 for anything else.

    Args:
        token: the ``nextPageToken`` received.
        binding: the fingerprint of the request the token must belong to.
        now: the cloud's clock, to expire tokens after 7 days.
        message: the error message of the 400.
    """
    try:
        data_part, signature_part = token.split(".")
        data = _unb64(data_part)
        expected = hmac.new(_TOKEN_SECRET, data, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(expected, _unb64(signature_part)):
            raise ValueError("bad signature")
        payload: dict[str, Any] = json.loads(data)
        expired = now - float(payload["iat"]) > TOKEN_LIFETIME_SECONDS
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise JiraError(400, message) from None
    if expired or payload.get("b") != binding:
        raise JiraError(400, message)
    return payload


# -- the request -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchRequest:
    jql: str | None
    next_page_token: str | None
    max_results: int
    fields: list[str]
    expand: set[str]
    reconcile_issues: list[Any]


def _max_results_from_query(call: Call) -> int:
    raw = call.query("maxResults")
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_RESULTS
    try:
        return int(raw.strip())
    except ValueError:
        raise JiraError(400, f"The value '{raw}' is invalid for the parameter 'maxResults'.") from None


def _request_from_query(call: Call) -> SearchRequest:
    return SearchRequest(
        jql=call.query("jql"),
        next_page_token=call.query("nextPageToken") or None,
        max_results=_max_results_from_query(call),
        fields=call.query_list("fields"),
        expand=call.expansions(),
        reconcile_issues=call.query_list("reconcileIssues"),
    )


def read_object_body(call: Call, allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object body of a search request, refused the way Jira refuses what its bean cannot hold."""
    if not call.request.content.strip():
        raise JiraError(400, BODY_EMPTY)
    body = call.json()
    if not isinstance(body, dict) or not set(body) <= allowed:
        raise JiraError(400, BODY_NOT_AN_OBJECT)
    return body


def _scalar_text(value: Any) -> str | None:
    """A string property as Jackson reads it: scalars become text, ``null`` is absent, containers are refused."""
    if value is None:
        return None
    if isinstance(value, list | dict):
        raise JiraError(400, BODY_NOT_AN_OBJECT)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _body_max_results(body: dict[str, Any]) -> int:
    if "maxResults" not in body:
        return DEFAULT_MAX_RESULTS
    value = body["maxResults"]
    if value is None:
        return 0  # Jackson reads a null int as 0, which the range check then refuses
    if isinstance(value, bool | list | dict):
        raise JiraError(400, BODY_NOT_AN_OBJECT)
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise JiraError(400, BODY_NOT_AN_OBJECT) from None


def _body_list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _request_from_body(call: Call) -> SearchRequest:
    body = read_object_body(call, SEARCH_BEAN_PROPERTIES)
    return SearchRequest(
        jql=_scalar_text(body.get("jql")),
        next_page_token=_scalar_text(body.get("nextPageToken")) or None,
        max_results=_body_max_results(body),
        fields=[str(f) for f in _body_list(body, "fields")],
        expand=expand_values([_scalar_text(body.get("expand")) or ""]),
        reconcile_issues=_body_list(body, "reconcileIssues"),
    )


# -- the query -------------------------------------------------------------------------------------------------
def caller_time_zone(call: Call) -> tzinfo:
    """The caller's profile time zone, in which JQL reads absolute dates (UTC for anonymous callers)."""
    user = call.site.users.get(call.caller) if call.caller is not None else None
    try:
        return ZoneInfo(user.time_zone) if user is not None else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def jql_context(call: Call, now: datetime) -> jql.Context:
    """Binds JQL values to what the caller may see: hidden projects and issues "do not exist"."""

    def project_id(value: str, by_id: bool) -> int | None:
        if by_id:
            project = call.site.projects.get(int(value))
        else:
            project = call.site.project_by_key(value) or next(
                (p for p in call.site.projects.values() if p.name.lower() == value.lower()), None
            )
        if project is None or not call.engine.can_browse_project(call.caller, project):
            return None
        return project.id

    def issue_id(reference: str) -> int | None:
        issue = find_issue(call.site, reference)
        if issue is None or not call.engine.can_browse_issue(call.caller, issue):
            return None
        return issue.id

    return jql.Context(now=now, time_zone=caller_time_zone(call), project_id=project_id, issue_id=issue_id)


@dataclass(frozen=True, slots=True)
class CompiledSearch:
    predicate: jql.Predicate
    key: Callable[[Issue], jql.SortKey]


def compile_search(call: Call, text: str | None, now: datetime) -> CompiledSearch:
    """Parse, check and bind a JQL string; Jira's 400 for an unbounded or invalid query."""
    try:
        query = jql.parse(text or "")
        if not query.bounded:
            raise JiraError(400, UNBOUNDED_JQL)
        predicate = jql.compile_query(query, jql_context(call, now))
    except jql.JqlError as error:
        raise JiraError(400, *error.messages) from None
    return CompiledSearch(predicate, jql.sort_key(jql.effective_order(query)))


def ordered_candidates(
    call: Call, search: CompiledSearch, after: jql.SortKey | None = None
) -> list[tuple[jql.SortKey, int]]:
    """(sort key, issue id) of every matching issue in a project the caller may browse, in order, after ``after``.

    Projects the caller cannot browse at all are skipped before any issue is looked at; the per-issue check
    (reporter grants, security levels) is left to whoever consumes the list, for the issues it reaches.
    """
    browsable = {p.id for p in call.site.projects.values() if call.engine.can_browse_project(call.caller, p)}
    predicate, key = search.predicate, search.key
    candidates = [
        (key(issue), issue.id)
        for issue in call.site.issues.values()
        if issue.project_id in browsable and predicate(issue)
    ]
    if after is not None:
        candidates = [candidate for candidate in candidates if candidate[0] > after]
    candidates.sort()
    return candidates


def visible_matches(call: Call, search: CompiledSearch) -> Iterator[Issue]:
    """Every matching issue the caller may browse, in order."""
    for _, issue_id in ordered_candidates(call, search):
        issue = call.site.issues[issue_id]
        if call.engine.can_browse_issue(call.caller, issue):
            yield issue


# -- snapshots -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Snapshot:
    """The ordered issue ids a search covers, fixed by its first page, so later pages scan forward in it."""

    site: Site
    binding: str
    issue_ids: list[int]


#: Snapshots of recent searches, least recently used first.
_SNAPSHOTS: OrderedDict[str, _Snapshot] = OrderedDict()
MAX_SNAPSHOTS = 64


def _new_snapshot(call: Call, search: CompiledSearch, binding: str, after: jql.SortKey | None) -> str:
    snapshot = _Snapshot(call.site, binding, [issue_id for _, issue_id in ordered_candidates(call, search, after)])
    snapshot_id = secrets.token_hex(8)
    _SNAPSHOTS[snapshot_id] = snapshot
    while len(_SNAPSHOTS) > MAX_SNAPSHOTS:
        _SNAPSHOTS.popitem(last=False)
    return snapshot_id


def _kept_snapshot(call: Call, binding: str, payload: dict[str, Any]) -> _Snapshot | None:
    snapshot = _SNAPSHOTS.get(str(payload["s"]))
    if snapshot is None or snapshot.site is not call.site or snapshot.binding != binding:
        return None
    _SNAPSHOTS.move_to_end(str(payload["s"]))
    return snapshot


def _scan(call: Call, search: CompiledSearch, issue_ids: list[int], start: int, count: int) -> list[tuple[int, Issue]]:
    """Up to ``count`` (position, issue) from ``start`` that still exist, still match, and the caller may browse."""
    taken: list[tuple[int, Issue]] = []
    for position in range(start, len(issue_ids)):
        issue = call.site.issues.get(issue_ids[position])
        if issue is None or not search.predicate(issue) or not call.engine.can_browse_issue(call.caller, issue):
            continue
        taken.append((position, issue))
        if len(taken) == count:
            break
    return taken


def _page(
    call: Call, search: CompiledSearch, binding: str, payload: dict[str, Any] | None, limit: int
) -> tuple[list[Issue], dict[str, Any] | None]:
    """One page of visible issues and, unless it is the last, what its token must hold to resume."""
    snapshot = _kept_snapshot(call, binding, payload) if payload is not None else None
    if snapshot is not None and payload is not None:
        snapshot_id, start = str(payload["s"]), int(payload["p"])
    else:
        after = jql.key_from_json(payload["after"]) if payload is not None else None
        snapshot_id, start = _new_snapshot(call, search, binding, after), 0
        snapshot = _SNAPSHOTS[snapshot_id]
    taken = _scan(call, search, snapshot.issue_ids, start, limit + 1)
    page = taken[:limit]
    if len(taken) <= limit:
        return [issue for _, issue in page], None
    last_position, last_issue = page[-1]
    return [issue for _, issue in page], {"s": snapshot_id, "p": last_position + 1, "after": search.key(last_issue)}


def _page_cap(selection: FieldSelection, expand: set[str], requested: list[str]) -> int:
    names = {part.strip() for value in requested for part in value.split(",")}
    if "*all" in names or "changelog" in expand or HEAVY_FIELDS & set(selection.fields):
        return MAX_HEAVY_PAGE
    return MAX_IDS_PAGE if selection.ids_only else MAX_FIELDS_PAGE


def _check_reconcile_issues(values: list[Any]) -> None:
    if len(values) > MAX_RECONCILE_ISSUES:
        raise JiraError(400, f"The reconcileIssues parameter accepts at most {MAX_RECONCILE_ISSUES} issue IDs.")


def _search(call: Call, request: SearchRequest) -> dict[str, Any]:
    clock = call.cloud.clock()
    binding = fingerprint("search/jql", call.site.cloud_id, call.caller, request.jql or "")
    payload = decode_token(request.next_page_token, binding=binding, now=clock) if request.next_page_token else None
    if not 1 <= request.max_results <= MAX_IDS_PAGE:
        raise JiraError(400, MAX_RESULTS_RANGE)
    _check_reconcile_issues(request.reconcile_issues)
    now = datetime.fromtimestamp(payload["now"] if payload else clock, UTC)
    search = compile_search(call, request.jql, now)
    selection = resolve_fields(call.site, request.fields, "id")
    limit = min(request.max_results, _page_cap(selection, request.expand, request.fields))
    try:
        page, resume = _page(call, search, binding, payload, limit)
    except (TypeError, KeyError, ValueError):
        raise JiraError(400, INVALID_TOKEN) from None
    result: dict[str, Any] = {"issues": [_search_issue_json(call, issue, selection, request.expand) for issue in page]}
    if resume is not None:
        result["nextPageToken"] = encode_token({"b": binding, "now": now.timestamp(), "iat": clock, **resume})
    result["isLast"] = resume is None
    if "names" in request.expand and not selection.ids_only:
        result["names"] = field_names(call.site, selection)
    return result


def _search_issue_json(call: Call, issue: Issue, selection: FieldSelection, expand: set[str]) -> dict[str, Any]:
    if selection.ids_only and "changelog" not in expand:
        compact = {"id": str(issue.id)}
        if selection.with_key:
            compact["key"] = issue.key
        return compact
    changelog_limit = SEARCH_VIEW_LIMIT if "changelog" in expand else None
    view = IssueView(SEARCH_VIEW_LIMIT, SEARCH_VIEW_LIMIT, changelog_limit)
    return issue_json(call, issue, selection, view)


# -- endpoints -------------------------------------------------------------------------------------------------
@route("GET", "/rest/api/3/search/jql")
def search_get(call: Call) -> dict[str, Any]:
    """``searchAndReconsileIssuesUsingJql``: one page of the visible issues a bounded JQL query matches."""
    return _search(call, _request_from_query(call))


@route("POST", "/rest/api/3/search/jql")
def search_post(call: Call) -> dict[str, Any]:
    """``searchAndReconsileIssuesUsingJqlPost``: the same search, its parameters in a JSON body only."""
    return _search(call, _request_from_body(call))


@route("POST", "/rest/api/3/search/approximate-count")
def approximate_count(call: Call) -> dict[str, Any]:
    """``countIssues``: how many issues the caller may see match a bounded JQL query (exact in the simulator)."""
    body = read_object_body(call, frozenset({"jql"}))
    search = compile_search(call, _scalar_text(body.get("jql")), datetime.fromtimestamp(call.cloud.clock(), UTC))
    return {"count": sum(1 for _ in visible_matches(call, search))}


def _removed(call: Call) -> Reply:
    return Reply(410, {"errorMessages": [SEARCH_REMOVED], "errors": {}})


@route("GET", "/rest/api/3/search")
def removed_search_get(call: Call) -> Reply:
    """The legacy search, removed from Jira Cloud (CHANGE-2046): always 410 Gone."""
    return _removed(call)


@route("POST", "/rest/api/3/search")
def removed_search_post(call: Call) -> Reply:
    """The legacy search, removed from Jira Cloud (CHANGE-2046): always 410 Gone."""
    return _removed(call)
