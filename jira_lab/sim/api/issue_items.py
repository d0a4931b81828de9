"""What the comment and worklog endpoints share, and the issue's embedded comments and worklogs with them.

Comments and worklogs are an issue's *items*: each carries its own group or role ``visibility``, and a caller sees
one only if :meth:`~jira_lab.sim.permissions.PermissionEngine.can_see_item` allows it (Browse Projects, the issue's
security level, the item's visibility). A hidden item, like a hidden issue, is indistinguishable from a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from jira_lab.sim.model import Comment, Issue, Worklog
from jira_lab.sim.routing import Call, JiraError

#: Jira's 404 for an issue that is missing or that the caller may not browse.
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
#: Jira's limit on the ids of one ``POST /comment/list`` or ``POST /worklog/list`` request.
MAX_IDS = 1000

_Item = TypeVar("_Item", Comment, Worklog)


def visible_issue(call: Call) -> Issue:
    """The path's ``issueIdOrKey`` if the caller may browse it; otherwise Jira's 404, whether missing or hidden.

    Unlike :func:`jira_lab.sim.api.issues.visible_issue`, the reference is taken as given (not stripped).
    """
    reference = call.path_params["issueIdOrKey"]
    issue = call.site.issues.get(int(reference)) if reference.isdigit() else call.site.issue_by_key(reference)
    if issue is None or not call.engine.can_browse_issue(call.caller, issue):
        raise JiraError(404, ISSUE_NOT_FOUND)
    return issue


def visible_items(call: Call, issue: Issue, items: Iterable[_Item]) -> list[_Item]:
    """The items of ``issue`` the caller may see, oldest first (by creation, then id)."""
    visible = [item for item in items if call.engine.can_see_item(call.caller, issue, item.visibility)]
    return sorted(visible, key=lambda item: (item.created, item.id))


def can_see(call: Call, item: Comment | Worklog) -> bool:
    """Whether the caller may see ``item``, on whichever issue it is."""
    return call.engine.can_see_item(call.caller, call.site.issues[item.issue_id], item.visibility)


def item_from_path(call: Call, issue: Issue, find: Callable[[int], _Item | None], not_found: str) -> _Item:
    """The path's ``id`` item of ``issue``, if the caller may see it.

    Args:
        call: the request.
        issue: the path's issue, already known to be visible.
        find: looks an item up by id, on any issue.
        not_found: Jira's 404 message, with ``{id}`` where the path's id goes; the same for a missing item, one on
            another issue and one hidden from the caller.
    """
    reference = call.path_params["id"]
    item = find(int(reference)) if reference.isdigit() else None
    if item is None or item.issue_id != issue.id or not call.engine.can_see_item(call.caller, issue, item.visibility):
        raise JiraError(404, not_found.format(id=reference))
    return item


def requested_ids(call: Call, noun: str) -> list[int]:
    """The ``ids`` of a bulk request body, deduplicated in order; Jira's 400 when missing, empty or over 1000.

    Args:
        call: the request.
        noun: what the ids name (``comment``, ``worklog``), for the error messages.
    """
    body = call.json()
    raw = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(raw, list) or not raw:
        raise JiraError(400, f"The list of {noun} IDs must not be empty.", errors={"ids": "must not be empty"})
    ids = [_as_id(value) for value in raw]
    if None in ids:
        raise JiraError(400, f"The {noun} IDs must be integers.")
    if len(ids) > MAX_IDS:
        raise JiraError(400, f"The number of {noun} IDs must not exceed {MAX_IDS}. You provided {len(ids)}.")
    return [i for i in dict.fromkeys(ids) if i is not None]


def _as_id(value: object) -> int | None:
    """An id from the body; like Jira's JSON binding, a string of digits is read as the number it spells."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
