"""Issue comments: the per-issue list, one comment by id, and comments by a list of ids.

Every comment passes :meth:`~jira_lab.sim.permissions.PermissionEngine.can_see_item` for the caller (Browse
Projects, the issue's security level, and the comment's group or role ``visibility``); the others are left out
silently, and ``total`` counts only what the caller may see (the spec describes it as "the number of items
returned"). Reading a single hidden comment gives the same 404 as a missing one, so its existence does not leak.

Choices where Jira's documentation is silent, kept in one place:

* ``GET .../comment`` lowers ``maxResults`` to :data:`MAX_COMMENTS_PER_PAGE` (the spec's default); the page's
  ``maxResults`` says so, and clients advance by the comments they received.
* ``POST /comment/list`` returns the visible comments in ascending id order, in one page whose ``maxResults`` is
  the 1048576 of the spec's example.
"""

from __future__ import annotations

from typing import Any

from jira_lab.sim.model import Comment, Issue
from jira_lab.sim.render import adf_html, comment_json
from jira_lab.sim.routing import Call, JiraError, route

#: The server-side cap on ``maxResults`` of ``GET /issue/{issueIdOrKey}/comment``.
MAX_COMMENTS_PER_PAGE = 100
#: Jira's limit on the ids of one ``POST /comment/list`` request.
MAX_IDS = 1000
#: ``maxResults`` of the single page ``POST /comment/list`` answers (the value in the spec's example).
COMMENT_LIST_MAX_RESULTS = 1048576

ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
ORDER_BY_VALUES = ("created", "+created", "-created")


def visible_issue(call: Call) -> Issue:
    """The path's ``issueIdOrKey`` if the caller may browse it; otherwise Jira's 404, whether missing or hidden."""
    reference = call.path_params["issueIdOrKey"]
    issue = call.site.issues.get(int(reference)) if reference.isdigit() else call.site.issue_by_key(reference)
    if issue is None or not call.engine.can_browse_issue(call.caller, issue):
        raise JiraError(404, ISSUE_NOT_FOUND)
    return issue


def expansions(call: Call) -> set[str]:
    """The comma-separated ``expand`` values of the request."""
    return set(call.query_list("expand"))


def render_comment(call: Call, comment: Comment, expand: set[str]) -> dict[str, Any]:
    body = comment_json(call, comment)
    if "renderedBody" in expand:
        body["renderedBody"] = adf_html(comment.body)
    if "properties" in expand:
        body["properties"] = []  # the simulated sites hold no comment properties
    return body


def _ordered(comments: list[Comment], order_by: str | None) -> list[Comment]:
    if order_by is None:
        return sorted(comments, key=lambda c: (c.created, c.id))
    if order_by not in ORDER_BY_VALUES:
        raise JiraError(
            400, f"The orderBy value '{order_by}' is not supported. Valid values: {', '.join(ORDER_BY_VALUES)}."
        )
    return sorted(comments, key=lambda c: (c.created, c.id), reverse=order_by.startswith("-"))


@route("GET", "/rest/api/3/issue/{issueIdOrKey}/comment")
def get_comments(call: Call) -> dict[str, Any]:
    """``getComments``: a ``PageOfComments`` of the comments the caller may see, oldest first by default."""
    issue = visible_issue(call)
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", MAX_COMMENTS_PER_PAGE, minimum=0, maximum=MAX_COMMENTS_PER_PAGE)
    visible = [c for c in issue.comments if call.engine.can_see_item(call.caller, issue, c.visibility)]
    ordered = _ordered(visible, call.query("orderBy"))
    expand = expansions(call)
    page = ordered[start_at : start_at + max_results]
    return {
        "startAt": start_at,
        "maxResults": max_results,
        "total": len(ordered),
        "comments": [render_comment(call, c, expand) for c in page],
    }


@route("GET", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}")
def get_comment(call: Call) -> dict[str, Any]:
    """``getComment``: one comment; missing, on another issue, or hidden from the caller all give the same 404."""
    issue = visible_issue(call)
    reference = call.path_params["id"]
    comment = call.site.comment(int(reference)) if reference.isdigit() else None
    if (
        comment is None
        or comment.issue_id != issue.id
        or not call.engine.can_see_item(call.caller, issue, comment.visibility)
    ):
        raise JiraError(404, f"Can not find a comment for the id: {reference}.")
    return render_comment(call, comment, expansions(call))


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


@route("POST", "/rest/api/3/comment/list")
def get_comments_by_ids(call: Call) -> dict[str, Any]:
    """``getCommentsByIds``: a ``PageBeanComment`` of the requested comments the caller may see."""
    expand = expansions(call)
    found: list[Comment] = []
    for comment_id in sorted(requested_ids(call, "comment")):
        comment = call.site.comment(comment_id)
        if comment is None:
            continue
        issue = call.site.issues[comment.issue_id]
        if call.engine.can_see_item(call.caller, issue, comment.visibility):
            found.append(comment)
    return {
        "startAt": 0,
        "maxResults": COMMENT_LIST_MAX_RESULTS,
        "total": len(found),
        "isLast": True,
        "values": [render_comment(call, c, expand) for c in found],
    }
