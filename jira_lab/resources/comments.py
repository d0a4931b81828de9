"""Comments: the per-issue endpoint (for issues whose inline comments were truncated), comments by id, and frames.

Most comments never need a request of their own: a ``search/jql`` page embeds up to 20 per issue
(:func:`jira_lab.resources.issues.search_page_frames` turns them into rows). Only an issue whose embedded
``comment.total`` exceeds what came inline is paged through ``GET /issue/{id}/comment``
(:func:`fetch_issue_comments`, OFS-legacy, oldest first). ``POST /comment/list`` (:func:`fetch_comments_by_ids`,
1000 ids a request) re-reads known ids, for the sweep that finds comments deleted or no longer visible: the ids it
leaves out are gone for this principal (Jira cannot say which of the two).

Every endpoint returns only the comments the caller may see (Browse Projects, issue security, and membership of the
group or role in the comment's ``visibility``), silently. Rows keep that ``visibility`` (type, the name as loaded,
and the stable identifier: group id or role name) and ``jsdPublic``, the service-desk internal/public flag that is
*not* expressed through ``visibility``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.pagination import Page, comments_by_ids, legacy_offset_pages
from jira_lab.resources.adf import adf_to_text
from jira_lab.resources.convert import (
    account_id,
    issue_id_from_self,
    jira_time,
    json_text,
    raw_item,
    to_int,
    visibility_columns,
)
from jira_lab.schema import table

COMMENTS = table("comments")
#: Comments per page to ask ``GET /issue/{id}/comment`` for; Jira lowers it to its cap (100 today).
ISSUE_COMMENTS_PAGE_SIZE = 5000


# -- fetching ------------------------------------------------------------------------------------------------------


def fetch_issue_comments(
    client: JiraClient, issue_id_or_key: int | str, *, max_results: int = ISSUE_COMMENTS_PAGE_SIZE
) -> AsyncIterator[Page]:
    """Every comment of one issue the caller may see, in pages of ``GET /rest/api/3/issue/{id}/comment``.

    Ordered oldest first (``orderBy=created``), so a comment added while paging lands after the pages already read.

    Args:
        client: the client.
        issue_id_or_key: the issue (build rows with ``comments_frame(..., issue_id=...)``: ``Comment`` has no
            ``issueId``).
        max_results: comments per page to ask for; Jira lowers it.

    Yields:
        Each ``PageOfComments``; its items are the comments.
    """
    return legacy_offset_pages(
        client,
        f"/rest/api/3/issue/{issue_id_or_key}/comment",
        "comments",
        params={"orderBy": "created"},
        max_results=max_results,
    )


def fetch_comments_by_ids(client: JiraClient, ids: Iterable[int]) -> AsyncIterator[Page]:
    """The comments with these ids the caller may see, through ``POST /rest/api/3/comment/list`` (1000 a request).

    Ids that are missing from the answer are deleted or hidden from the caller; Jira does not say which.
    """
    return comments_by_ids(client, ids)


# -- frames --------------------------------------------------------------------------------------------------------


def comment_row(comment: Mapping[str, Any], *, site_id: str, issue_id: int | None = None) -> dict[str, Any]:
    """One ``comments`` row of a ``Comment``.

    Args:
        comment: the comment as Jira sent it.
        site_id: the site.
        issue_id: the issue it is on; by default read from the comment's ``self`` URL.

    Raises:
        ValueError: no ``issue_id`` given and none in ``self``.
    """
    owner = issue_id if issue_id is not None else issue_id_from_self(comment)
    if owner is None:
        raise ValueError(f"comment {comment.get('id')!r} names no issue in its self URL; pass issue_id")
    body = comment.get("body")
    return {
        "site_id": site_id,
        "id": to_int(comment.get("id")),
        "issue_id": owner,
        "author_account_id": account_id(comment.get("author")),
        "update_author_account_id": account_id(comment.get("updateAuthor")),
        "created": jira_time(comment.get("created")),
        "updated": jira_time(comment.get("updated")),
        **visibility_columns(comment.get("visibility")),
        "jsd_public": comment.get("jsdPublic"),
        "jsd_author_can_see_request": comment.get("jsdAuthorCanSeeRequest"),
        "body_adf": json_text(body),
        "body_text": adf_to_text(body),
        "raw": json_text(raw_item(comment, drop=("body",))),
    }


def comments_frame(comments: Iterable[Mapping[str, Any]], *, site_id: str, issue_id: int | None = None) -> pl.DataFrame:
    """A ``comments`` frame of comments as Jira sent them (from any comment endpoint or a search page).

    Args:
        comments: the comments.
        site_id: the site.
        issue_id: the issue they are all on (the per-issue endpoint); by default each one's ``self`` URL says.
    """
    return COMMENTS.frame(comment_row(comment, site_id=site_id, issue_id=issue_id) for comment in comments)
