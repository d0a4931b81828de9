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

from jira_lab.sim.api.issue_items import can_see, item_from_path, requested_ids, visible_issue, visible_items
from jira_lab.sim.model import Comment
from jira_lab.sim.render import adf_html, comment_json
from jira_lab.sim.routing import Call, JiraError, route

#: The server-side cap on ``maxResults`` of ``GET /issue/{issueIdOrKey}/comment``.
MAX_COMMENTS_PER_PAGE = 100
#: ``maxResults`` of the single page ``POST /comment/list`` answers (the value in the spec's example).
COMMENT_LIST_MAX_RESULTS = 1048576
#: Jira's 404 for a comment that is missing or hidden from the caller (``{id}``: the id asked for).
COMMENT_NOT_FOUND = "Can not find a comment for the id: {id}."

ORDER_BY_VALUES = ("created", "+created", "-created")


def render_comment(call: Call, comment: Comment, expand: set[str]) -> dict[str, Any]:
    body = comment_json(call, comment)
    if "renderedBody" in expand:
        body["renderedBody"] = adf_html(comment.body)
    if "properties" in expand:
        body["properties"] = []  # the simulated sites hold no comment properties
    return body


def _newest_first(order_by: str | None) -> bool:
    """Whether ``orderBy`` asks for the newest comments first; Jira's 400 for anything but (+/-)``created``."""
    if order_by is not None and order_by not in ORDER_BY_VALUES:
        raise JiraError(
            400, f"The orderBy value '{order_by}' is not supported. Valid values: {', '.join(ORDER_BY_VALUES)}."
        )
    return order_by is not None and order_by.startswith("-")


@route("GET", "/rest/api/3/issue/{issueIdOrKey}/comment")
def get_comments(call: Call) -> dict[str, Any]:
    """``getComments``: a ``PageOfComments`` of the comments the caller may see, oldest first by default."""
    issue = visible_issue(call)
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", MAX_COMMENTS_PER_PAGE, minimum=0, maximum=MAX_COMMENTS_PER_PAGE)
    oldest_first = visible_items(call, issue, issue.comments)
    ordered = oldest_first[::-1] if _newest_first(call.query("orderBy")) else oldest_first
    expand = call.expansions()
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
    comment = item_from_path(call, visible_issue(call), call.site.comment, COMMENT_NOT_FOUND)
    return render_comment(call, comment, call.expansions())


@route("POST", "/rest/api/3/comment/list")
def get_comments_by_ids(call: Call) -> dict[str, Any]:
    """``getCommentsByIds``: a ``PageBeanComment`` of the requested comments the caller may see."""
    expand = call.expansions()
    found: list[Comment] = []
    for comment_id in sorted(requested_ids(call, "comment")):
        comment = call.site.comment(comment_id)
        if comment is not None and can_see(call, comment):
            found.append(comment)
    return {
        "startAt": 0,
        "maxResults": COMMENT_LIST_MAX_RESULTS,
        "total": len(found),
        "isLast": True,
        "values": [render_comment(call, c, expand) for c in found],
    }
