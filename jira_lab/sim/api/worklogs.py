"""Issue worklogs: the per-issue list, one worklog by id, the updated/deleted feeds and worklogs by ids.

Visibility follows :meth:`~jira_lab.sim.permissions.PermissionEngine.can_see_item` everywhere a worklog is
returned: Browse Projects, the issue's security level, and the worklog's group or role ``visibility``. The spec's
wording for ``worklog/updated`` and ``worklog/list`` ("Viewable by All Users", or a member of the role or group)
names only the last rule; "Viewable by All Users" means everyone who can see the issue, so the full rule applies.

The change feeds (``worklog/updated``, ``worklog/deleted``) page by time, at most :data:`FEED_PAGE_SIZE` items,
oldest first. ``since`` is inclusive, as in the spec's example, so the item at ``until`` comes again at the top of
the next page. Items changed in the minute before the request (by ``call.cloud.clock()``) are held back. ``nextPage``
is always present (``since=<until>``, also on the last page, as in the example) and is built on ``call.api_base``
so a client can follow it through the gateway it called; only its path and query are meant to be kept.

The deleted feed is filtered only by "Permission to access Jira", which is all Atlassian documents for it
(``shared/reference/jira-semantics.md`` §3.5): any caller with Jira product access sees every deleted id, including
ids of worklogs it could never see (the worklog is gone, so there is nothing left to restrict). A caller without
product access sees an empty feed.

Choices where Jira's documentation is silent: ``maxResults`` of the per-issue list is capped at its default
(:data:`MAX_WORKLOGS_PER_PAGE`); ``startedAfter`` is inclusive ("started on or after", as the description says) and
``startedBefore`` exclusive; ``worklog/list`` answers in ascending id order.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable
from operator import attrgetter, itemgetter
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from jira_lab.sim.api.issue_items import can_see, item_from_path, requested_ids, visible_issue, visible_items
from jira_lab.sim.model import Site, Worklog
from jira_lab.sim.render import epoch_ms, worklog_json
from jira_lab.sim.routing import Call, JiraError, route

_T = TypeVar("_T")

#: The server-side cap on ``maxResults`` of ``GET /issue/{issueIdOrKey}/worklog`` (the spec's default).
MAX_WORKLOGS_PER_PAGE = 5000
#: Items per page of the ``worklog/updated`` and ``worklog/deleted`` feeds.
FEED_PAGE_SIZE = 1000
#: The feeds do not return items changed during the minute preceding the request.
QUIET_PERIOD_MS = 60_000
#: Jira's 404 for a worklog that is missing or hidden from the caller (``{id}``: the id asked for).
WORKLOG_NOT_FOUND = "Cannot find worklog with id: {id}."


def render_worklog(call: Call, worklog: Worklog, expand: set[str]) -> dict[str, Any]:
    body = worklog_json(call, worklog)
    if "properties" in expand:
        body["properties"] = []  # the simulated sites hold no worklog properties
    return body


def _page_param(call: Call, name: str, default: int, maximum: int | None = None) -> int:
    """``startAt``/``maxResults``: the spec documents a 404, not a 400, for non-numeric values."""
    try:
        return call.query_int(name, default, minimum=0, maximum=maximum)
    except JiraError as error:
        raise JiraError(404, *error.messages) from None


def _started_in_range(worklog: Worklog, after_ms: int | None, before_ms: int | None) -> bool:
    started = epoch_ms(worklog.started)
    return (after_ms is None or started >= after_ms) and (before_ms is None or started < before_ms)


def _optional_ms(call: Call, name: str) -> int | None:
    return call.query_int(name, 0) if call.query(name) not in (None, "") else None


@route("GET", "/rest/api/3/issue/{issueIdOrKey}/worklog")
def get_issue_worklogs(call: Call) -> dict[str, Any]:
    """``getIssueWorklog``: a ``PageOfWorklogs`` of the worklogs the caller may see, by created time."""
    issue = visible_issue(call)
    start_at = _page_param(call, "startAt", 0)
    max_results = _page_param(call, "maxResults", MAX_WORKLOGS_PER_PAGE, MAX_WORKLOGS_PER_PAGE)
    after_ms, before_ms = _optional_ms(call, "startedAfter"), _optional_ms(call, "startedBefore")
    visible = visible_items(call, issue, issue.worklogs)
    selected = [w for w in visible if _started_in_range(w, after_ms, before_ms)]
    expand = call.expansions()
    return {
        "startAt": start_at,
        "maxResults": max_results,
        "total": len(selected),
        "worklogs": [render_worklog(call, w, expand) for w in selected[start_at : start_at + max_results]],
    }


@route("GET", "/rest/api/3/issue/{issueIdOrKey}/worklog/{id}")
def get_worklog(call: Call) -> dict[str, Any]:
    """``getWorklog``: one worklog; missing, on another issue, or hidden from the caller all give the same 404."""
    worklog = item_from_path(call, visible_issue(call), call.site.worklog, WORKLOG_NOT_FOUND)
    return render_worklog(call, worklog, call.expansions())


def _feed(
    call: Call, path: str, ordered: Iterable[tuple[int, int, _T]], visible: Callable[[_T], bool] | None = None
) -> dict[str, Any]:
    """A ``ChangedWorklogs`` page of the caller's ``(change time in epoch ms, worklog id, item)`` changes.

    ``ordered`` is oldest first. ``visible`` is asked only of the changes in the page's window, in that order, until
    the page is full and one more is found (which tells ``lastPage``): the page is the same as filtering every
    change first, without asking about the whole site on every page.
    """
    since = call.query_int("since", 0)
    settled_before = int(call.cloud.clock() * 1000) - QUIET_PERIOD_MS
    page: list[tuple[int, int]] = []
    last_page = True
    for time_ms, worklog_id, item in ordered:
        if time_ms < since:
            continue
        if time_ms > settled_before:
            break
        if visible is not None and not visible(item):
            continue
        if len(page) == FEED_PAGE_SIZE:
            last_page = False
            break
        page.append((time_ms, worklog_id))
    until = page[-1][0] if page else since
    extra = {"expand": call.query("expand")} if call.query("expand") else {}
    return {
        "values": [{"worklogId": worklog_id, "updatedTime": time_ms, "properties": []} for time_ms, worklog_id in page],
        "since": since,
        "until": until,
        "self": call.self_url(f"{path}?{urlencode({'since': since, **extra})}"),
        "nextPage": f"{call.api_base}{path}?{urlencode({'since': until, **extra})}",
        "lastPage": last_page,
    }


_UPDATED = attrgetter("updated")
#: feed changes in order: by time, then worklog id (never by the item, which does not compare)
_BY_TIME = itemgetter(0, 1)


def _worklogs_by_update(site: Site) -> list[tuple[int, int, Worklog]]:
    """Every worklog as ``(updated in epoch ms, id, worklog)``, oldest first.

    The feed is read a page at a time, so the order is kept in ``site.derived`` and reused while the site holds the
    same worklog objects with the same update times (tests set those directly). Both lists compare by identity first,
    so checking them costs far less than sorting again.
    """
    every = list(itertools.chain.from_iterable(issue.worklogs for issue in site.issues.values()))
    updated = list(map(_UPDATED, every))
    kept = site.derived.get("worklogs_by_update")
    if kept is not None and kept[0] == every and kept[1] == updated:
        return cast(list[tuple[int, int, Worklog]], kept[2])
    ordered = sorted(((epoch_ms(worklog.updated), worklog.id, worklog) for worklog in every), key=_BY_TIME)
    site.derived["worklogs_by_update"] = (every, updated, ordered)
    return ordered


@route("GET", "/rest/api/3/worklog/updated")
def get_updated_worklogs(call: Call) -> dict[str, Any]:
    """``getIdsOfWorklogsModifiedSince``: ids and update times of the worklogs the caller may see."""
    ordered = _worklogs_by_update(call.site)
    start = bisect.bisect_left(ordered, call.query_int("since", 0), key=lambda change: change[0])
    changes = itertools.islice(ordered, start, None)
    return _feed(call, "/rest/api/3/worklog/updated", changes, lambda worklog: can_see(call, worklog))


@route("GET", "/rest/api/3/worklog/deleted")
def get_deleted_worklogs(call: Call) -> dict[str, Any]:
    """``getIdsOfWorklogsDeletedSince``: ids and deletion times, for any caller with Jira product access."""
    if not call.engine.has_application_access(call.caller):
        return _feed(call, "/rest/api/3/worklog/deleted", [])
    changes = sorted(
        ((epoch_ms(deleted.deleted), deleted.id, deleted) for deleted in call.site.deleted_worklogs),
        key=_BY_TIME,
    )
    return _feed(call, "/rest/api/3/worklog/deleted", changes)


@route("POST", "/rest/api/3/worklog/list")
def get_worklogs_for_ids(call: Call) -> list[dict[str, Any]]:
    """``getWorklogsForIds``: a bare array of the requested worklogs the caller may see."""
    expand = call.expansions()
    found = []
    for worklog_id in sorted(requested_ids(call, "worklog")):
        worklog = call.site.worklog(worklog_id)
        if worklog is not None and can_see(call, worklog):
            found.append(render_worklog(call, worklog, expand))
    return found
