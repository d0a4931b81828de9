"""Worklogs: the change feeds and ids (incremental), the per-issue endpoint (truncated issues), and frames.

The cheap way to load worklogs is by change feed, not by issue:

* ``GET /worklog/updated?since=`` (SINCE, up to 1000 ids a page, oldest first) lists the worklogs changed since a
  time that the caller may see; ``POST /worklog/list`` (1000 ids) reads them. :func:`fetch_updated_worklogs` walks
  both and yields one :class:`WorklogBatch` per feed page, with the feed's ``until`` as the cursor to resume from.
  The feed leaves out the minute before the request, so a worklog changed just now comes in the next run.
* ``GET /worklog/deleted?since=`` lists deleted worklog ids with their deletion time, for anyone with access to
  Jira, including ids of worklogs the caller never saw. :func:`deleted_worklogs_frame` makes the tombstones.

A ``search/jql`` page also embeds up to 20 worklogs per issue (rows through
:func:`jira_lab.resources.issues.search_page_frames`); for an issue whose ``worklog.total`` exceeds that,
:func:`fetch_issue_worklogs` pages ``GET /issue/{id}/worklog``. Every endpoint returns only the worklogs the caller
may see (Browse Projects, issue security, the worklog's group or role ``visibility``), silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.pagination import Page, legacy_offset_pages, since_pages, worklogs_by_ids
from jira_lab.resources.adf import adf_to_text
from jira_lab.resources.convert import account_id, jira_time, json_text, raw_item, to_int, visibility_columns
from jira_lab.schema import DELETED, table

WORKLOGS = table("worklogs")
UPDATED_PATH = "/rest/api/3/worklog/updated"
DELETED_PATH = "/rest/api/3/worklog/deleted"
#: Worklogs per page to ask ``GET /issue/{id}/worklog`` for (its documented default and cap).
ISSUE_WORKLOGS_PAGE_SIZE = 5000
#: The columns a tombstone sets: upserting only these marks a known worklog deleted and keeps the rest of its row.
TOMBSTONE_COLUMNS = ("site_id", "id", "deleted_at", "deleted_reason")


# -- fetching ------------------------------------------------------------------------------------------------------


def fetch_issue_worklogs(
    client: JiraClient, issue_id_or_key: int | str, *, max_results: int = ISSUE_WORKLOGS_PAGE_SIZE
) -> AsyncIterator[Page]:
    """Every worklog of one issue the caller may see, in pages of ``GET /rest/api/3/issue/{id}/worklog``."""
    return legacy_offset_pages(
        client, f"/rest/api/3/issue/{issue_id_or_key}/worklog", "worklogs", max_results=max_results
    )


def fetch_worklog_changes(client: JiraClient, since: int = 0) -> AsyncIterator[Page]:
    """Pages of ``GET /rest/api/3/worklog/updated``: ``{worklogId, updatedTime}`` of the visible worklogs changed
    at or after ``since`` (epoch ms); ``page.body["until"]`` is the cursor once the page is stored."""
    return since_pages(client, UPDATED_PATH, since=since)


def fetch_deleted_worklogs(client: JiraClient, since: int = 0) -> AsyncIterator[Page]:
    """Pages of ``GET /rest/api/3/worklog/deleted``: ``{worklogId, updatedTime}`` of the worklogs deleted at or
    after ``since`` (epoch ms; ``updatedTime`` is the deletion time); ``page.body["until"]`` is the cursor."""
    return since_pages(client, DELETED_PATH, since=since)


def fetch_worklogs_by_ids(client: JiraClient, ids: Iterable[int]) -> AsyncIterator[Page]:
    """The worklogs with these ids the caller may see, through ``POST /rest/api/3/worklog/list`` (1000 a request)."""
    return worklogs_by_ids(client, ids)


@dataclass(frozen=True, slots=True)
class WorklogBatch:
    """One page of the ``worklog/updated`` feed and the worklogs it names.

    Attributes:
        changes: the feed's ``{worklogId, updatedTime}`` items.
        worklogs: the worklogs ``worklog/list`` returned for them.
        until: the feed page's ``until`` (epoch ms): resume from it once this batch is stored.
    """

    changes: list[dict[str, Any]]
    worklogs: list[dict[str, Any]]
    until: int

    @property
    def missing_ids(self) -> list[int]:
        """Ids the feed named that ``worklog/list`` did not return: deleted or hidden since the feed was read."""
        returned = {to_int(worklog.get("id")) for worklog in self.worklogs}
        return [worklog_id for worklog_id in _change_ids(self.changes) if worklog_id not in returned]


def _change_ids(changes: Iterable[Mapping[str, Any]]) -> list[int]:
    return [worklog_id for change in changes if (worklog_id := to_int(change.get("worklogId"))) is not None]


async def _read_worklogs(client: JiraClient, ids: list[int]) -> list[dict[str, Any]]:
    worklogs: list[dict[str, Any]] = []
    if ids:
        async for page in worklogs_by_ids(client, ids):
            worklogs.extend(page.items)
    return worklogs


async def fetch_updated_worklogs(client: JiraClient, since: int = 0) -> AsyncIterator[WorklogBatch]:
    """The worklogs changed at or after ``since`` (epoch ms), one :class:`WorklogBatch` per feed page, in order.

    The ``worklog/list`` request of one page runs while the next feed page is asked for, so the feed (which has to
    be read one page after another) sets the pace.
    """
    pending: tuple[Page, asyncio.Task[list[dict[str, Any]]]] | None = None
    try:
        async for page in fetch_worklog_changes(client, since):
            task = asyncio.ensure_future(_read_worklogs(client, _change_ids(page.items)))
            if pending is not None:
                yield await _batch(*pending, since)
            pending = (page, task)
        if pending is not None:
            finished, pending = pending, None
            yield await _batch(*finished, since)
    finally:
        if pending is not None:
            pending[1].cancel()
            with contextlib.suppress(BaseException):
                await pending[1]


async def _batch(page: Page, task: asyncio.Task[list[dict[str, Any]]], since: int) -> WorklogBatch:
    until = page.body.get("until") if isinstance(page.body, dict) else None
    return WorklogBatch(list(page.items), await task, until if isinstance(until, int) else since)


# -- frames --------------------------------------------------------------------------------------------------------


def worklog_row(worklog: Mapping[str, Any], *, site_id: str, issue_id: int | None = None) -> dict[str, Any]:
    """One ``worklogs`` row of a ``Worklog`` (its ``issueId``, or ``issue_id`` when given).

    Raises:
        ValueError: the worklog names no issue and no ``issue_id`` is given.
    """
    owner = issue_id if issue_id is not None else to_int(worklog.get("issueId"))
    if owner is None:
        raise ValueError(f"worklog {worklog.get('id')!r} has no issueId; pass issue_id")
    comment = worklog.get("comment")
    return {
        "site_id": site_id,
        "id": to_int(worklog.get("id")),
        "issue_id": owner,
        "author_account_id": account_id(worklog.get("author")),
        "update_author_account_id": account_id(worklog.get("updateAuthor")),
        "created": jira_time(worklog.get("created")),
        "updated": jira_time(worklog.get("updated")),
        "started": jira_time(worklog.get("started")),
        "time_spent": worklog.get("timeSpent"),
        "time_spent_seconds": to_int(worklog.get("timeSpentSeconds")),
        **visibility_columns(worklog.get("visibility")),
        "comment_adf": json_text(comment),
        "comment_text": adf_to_text(comment),
        "raw": json_text(raw_item(worklog, drop=("comment",))),
    }


def worklogs_frame(worklogs: Iterable[Mapping[str, Any]], *, site_id: str, issue_id: int | None = None) -> pl.DataFrame:
    """A ``worklogs`` frame of worklogs as Jira sent them (any worklog endpoint or a search page)."""
    return WORKLOGS.frame(worklog_row(worklog, site_id=site_id, issue_id=issue_id) for worklog in worklogs)


def deleted_worklogs_frame(changes: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """Tombstones of the ``worklog/deleted`` feed: ``site_id, id, deleted_at, deleted_reason`` (``'deleted'``).

    Only :data:`TOMBSTONE_COLUMNS`, typed as ``worklogs`` declares them, so an upsert marks a stored worklog and
    leaves its other columns alone. The feed lists ids of worklogs the caller never saw as well: join on the stored
    rows first to mark only those.
    """
    rows = []
    for change in changes:
        worklog_id = to_int(change.get("worklogId"))
        if worklog_id is None:
            continue
        deleted_at: datetime | None = jira_time(change.get("updatedTime"))
        rows.append({"site_id": site_id, "id": worklog_id, "deleted_at": deleted_at, "deleted_reason": DELETED})
    return WORKLOGS.frame(rows).select(TOMBSTONE_COLUMNS)
