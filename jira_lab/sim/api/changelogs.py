"""Changelogs: one issue's histories (paged or by id) and the histories of up to 1000 issues at once.

Histories carry no restriction of their own: whoever may browse the issue sees all of them. A hidden issue gives
the same 404 as a missing one on the per-issue endpoints and is skipped silently by ``changelog/bulkfetch``.

``changelog/bulkfetch`` orders histories by creation time, then issue id (then history id), oldest first, and cuts
pages by histories, so one issue's histories can span pages: a client merges ``issueChangeLogs`` by ``issueId``.
Within a page each issue appears once, in the order its first history comes. ``fieldIds`` keeps only the items of
those fields (by field id, or by name for items without one) and drops histories left without items. The page
token goes in the body, is bound to the caller and the request, and is left out of the last page. ``created`` is
written as a timestamp string, as the ``Changelog`` schema declares (the spec's example shows epoch seconds).

Choices where the spec is silent: ``GET .../changelog`` lowers ``maxResults`` to its default (100);
``changelog/list`` returns the requested histories of the issue, oldest first, in one page, ignoring ids of other
issues.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, cast
from urllib.parse import urlencode

from jira_lab.sim.api.issues import find_issue, history_json, visible_issue
from jira_lab.sim.api.search import decode_token, encode_token, fingerprint
from jira_lab.sim.model import ChangelogHistory, Issue, Site
from jira_lab.sim.routing import Call, JiraError, route

#: The default and largest page of ``GET /issue/{issueIdOrKey}/changelog``.
MAX_CHANGELOG_PAGE = 100
#: ``changelog/bulkfetch`` limits (from ``BulkChangelogRequestBean``).
MAX_BULK_CHANGELOG_ISSUES = 1000
MAX_FIELD_IDS = 10
DEFAULT_BULK_MAX_RESULTS = 1000
MAX_BULK_MAX_RESULTS = 10000
INVALID_BULK_TOKEN = "The provided nextPageToken is invalid or has expired."
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _oldest_first(histories: list[ChangelogHistory]) -> list[ChangelogHistory]:
    return sorted(histories, key=lambda h: (h.created, h.id))


@route("GET", "/rest/api/3/issue/{issueIdOrKey}/changelog")
def get_changelogs(call: Call) -> dict[str, Any]:
    """``getChangeLogs``: a ``PageBeanChangelog`` of the issue's histories, oldest first."""
    issue = visible_issue(call)
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", MAX_CHANGELOG_PAGE, minimum=0, maximum=MAX_CHANGELOG_PAGE)
    histories = _oldest_first(issue.changelog)
    page = histories[start_at : start_at + max_results]
    is_last = start_at + len(page) >= len(histories)
    path = f"/rest/api/3/issue/{call.path_params['issueIdOrKey']}/changelog"
    body: dict[str, Any] = {
        "self": call.self_url(f"{path}?{urlencode({'startAt': start_at, 'maxResults': max_results})}"),
        "maxResults": max_results,
        "startAt": start_at,
        "total": len(histories),
        "isLast": is_last,
        "values": [history_json(call, h) for h in page],
    }
    if not is_last:
        next_query = urlencode({"startAt": start_at + len(page), "maxResults": max_results})
        body["nextPage"] = f"{call.api_base}{path}?{next_query}"
    return body


def _int_list(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise JiraError(400, f"'{name}' must be a non-empty list of IDs.", errors={name: "must not be empty"})
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise JiraError(400, f"'{name}' must be a list of integer IDs.")
    return list(dict.fromkeys(value))


@route("POST", "/rest/api/3/issue/{issueIdOrKey}/changelog/list")
def get_changelogs_by_ids(call: Call) -> dict[str, Any]:
    """``getChangeLogsByIds``: a ``PageOfChangelogs`` of the requested histories of one issue, oldest first."""
    issue = visible_issue(call)
    body = call.json()
    wanted = set(_int_list(body.get("changelogIds") if isinstance(body, dict) else None, "changelogIds"))
    histories = _oldest_first([h for h in issue.changelog if h.id in wanted])
    return {
        "startAt": 0,
        "maxResults": len(histories),
        "total": len(histories),
        "histories": [history_json(call, h) for h in histories],
    }


# -- bulk ------------------------------------------------------------------------------------------------------
def _bulk_request(body: Any) -> tuple[list[str], frozenset[str] | None, int, str | None]:
    if not isinstance(body, dict):
        raise JiraError(400, "The request body must be a JSON object.")
    references = body.get("issueIdsOrKeys")
    if not isinstance(references, list) or not references:
        raise JiraError(400, "At least one issue ID or key must be provided in issueIdsOrKeys.")
    if len(references) > MAX_BULK_CHANGELOG_ISSUES:
        raise JiraError(
            400,
            f"The number of issue IDs or keys must not exceed {MAX_BULK_CHANGELOG_ISSUES}. "
            f"You provided {len(references)}.",
        )
    field_ids = body.get("fieldIds")
    if field_ids is not None and (not isinstance(field_ids, list) or len(field_ids) > MAX_FIELD_IDS):
        raise JiraError(400, f"fieldIds accepts at most {MAX_FIELD_IDS} field IDs.")
    max_results = body.get("maxResults", DEFAULT_BULK_MAX_RESULTS)
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise JiraError(400, "maxResults must be an integer.")
    if not 1 <= max_results <= MAX_BULK_MAX_RESULTS:
        raise JiraError(400, f"maxResults must be between 1 and {MAX_BULK_MAX_RESULTS}.")
    token = body.get("nextPageToken")
    return (
        [str(r) for r in references],
        frozenset(str(f) for f in field_ids) if field_ids else None,
        max_results,
        str(token) if token else None,
    )


def _microseconds(moment: datetime) -> int:
    return (moment - _UNIX_EPOCH) // timedelta(microseconds=1)


def _bulk_order(history: ChangelogHistory) -> tuple[int, int, int]:
    return _microseconds(history.created), history.issue_id, history.id


def _in_bulk_order(site: Site, issues: list[Issue]) -> list[tuple[tuple[int, int, int], ChangelogHistory]]:
    """The histories of ``issues`` with their order keys, oldest first.

    A client pages through the same issues a page at a time, so the order is kept in ``site.derived`` and reused
    while the issues hold the very same histories (they are only ever appended; the kept list holds them, so an
    ``id`` seen there cannot belong to another object).
    """
    key = tuple(issue.id for issue in issues)
    stamp = [id(history) for issue in issues for history in issue.changelog]
    kept = site.derived.get("changelog_bulk_order")
    if kept is not None and kept[0] == key and kept[1] == stamp:
        return cast(list[tuple[tuple[int, int, int], ChangelogHistory]], kept[2])
    # each history's order key worked out once (it takes a timedelta division), then sorted by it
    keyed = [(_bulk_order(h), h) for issue in issues for h in issue.changelog]
    keyed.sort(key=itemgetter(0))
    site.derived["changelog_bulk_order"] = (key, stamp, keyed)
    return keyed


def _keeps(history: ChangelogHistory, field_ids: frozenset[str]) -> bool:
    return any((item.field_id or item.field) in field_ids for item in history.items)


@route("POST", "/rest/api/3/changelog/bulkfetch")
def bulk_fetch_changelogs(call: Call) -> dict[str, Any]:
    """``getBulkChangelogs``: histories of up to 1000 issues, oldest first, paged by a token in the body."""
    references, field_ids, max_results, token = _bulk_request(call.json())
    clock = call.cloud.clock()
    binding = fingerprint("changelog/bulkfetch", call.site.cloud_id, call.caller, references, sorted(field_ids or ()))
    after: tuple[int, ...] | None = None
    if token is not None:
        payload = decode_token(token, binding=binding, now=clock, message=INVALID_BULK_TOKEN)
        after = tuple(payload.get("after", ()))
    issues = {}
    for reference in references:
        issue = find_issue(call.site, reference)
        if issue is not None and call.engine.can_browse_issue(call.caller, issue):
            issues[issue.id] = issue
    keyed = _in_bulk_order(call.site, list(issues.values()))
    histories = [
        h for order, h in keyed if (after is None or order > after) and (field_ids is None or _keeps(h, field_ids))
    ]
    page = histories[:max_results]
    grouped: dict[int, list[dict[str, Any]]] = {}
    for history in page:
        grouped.setdefault(history.issue_id, []).append(history_json(call, history, field_ids))
    body: dict[str, Any] = {
        "issueChangeLogs": [
            {"issueId": str(issue_id), "changeHistories": changes} for issue_id, changes in grouped.items()
        ]
    }
    if len(histories) > max_results:
        body["nextPageToken"] = encode_token({"b": binding, "after": list(_bulk_order(page[-1])), "iat": clock})
    return body
