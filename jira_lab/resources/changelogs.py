"""Changelogs through ``changelog/bulkfetch``: histories of up to 1000 issues a request, and their frames.

``POST /rest/api/3/changelog/bulkfetch`` (:func:`fetch_changelog_pages`) pages by a token in the body and cuts pages
by histories, ordered by date then issue: one issue's histories can span pages (and ``issueChangeLogs`` can name
the same issue on several of them). :func:`merge_issue_changelogs` merges the entries by issue and keeps each
history once; :func:`changelog_frames` does that and builds the ``changelog_histories`` and ``changelog_items``
frames. Issues the caller may not browse are skipped silently.

``created`` is a date-time string in the ``Changelog`` schema but an epoch-seconds number in the endpoint's
example; both are read (:func:`jira_lab.resources.convert.jira_time`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.pagination import Page, changelogs_by_issue_ids
from jira_lab.resources.convert import account_id, jira_time, json_text, raw_item, to_int
from jira_lab.resources.users import user_details_frame
from jira_lab.schema import table

CHANGELOG_HISTORIES = table("changelog_histories")
CHANGELOG_ITEMS = table("changelog_items")
#: Histories per page to ask ``changelog/bulkfetch`` for: the most ``BulkChangelogRequestBean`` allows.
BULKFETCH_MAX_RESULTS = 10000
_OLDEST = datetime.min.replace(tzinfo=UTC)


def fetch_changelog_pages(
    client: JiraClient,
    issue_ids: Iterable[int | str],
    *,
    field_ids: Sequence[str] = (),
    max_results: int = BULKFETCH_MAX_RESULTS,
) -> AsyncIterator[Page]:
    """Pages of ``POST /rest/api/3/changelog/bulkfetch`` for these issues (ids or keys), 1000 issues a chunk.

    Args:
        client: the client.
        issue_ids: the issues.
        field_ids: keep only the items of these fields (at most 10); every field by default.
        max_results: histories per page to ask for.

    Yields:
        Each page; its items are ``{issueId, changeHistories}`` entries (merge them with :func:`changelog_frames`).
    """
    return changelogs_by_issue_ids(client, issue_ids, field_ids=field_ids, max_results=max_results)


def merge_issue_changelogs(entries: Iterable[Mapping[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Issue id -> its histories, oldest first, each once, from ``issueChangeLogs`` entries of any pages.

    A history seen twice (pages overlapping after a retry) keeps its last copy.
    """
    merged: dict[int, dict[int, dict[str, Any]]] = {}
    for entry in entries:
        issue_id = to_int(entry.get("issueId"))
        if issue_id is None:
            raise ValueError(f"an issueChangeLogs entry without an issueId: {dict(entry)!r}")
        histories = merged.setdefault(issue_id, {})
        for history in entry.get("changeHistories") or ():
            history_id = to_int(history.get("id"))
            if history_id is None:
                raise ValueError(f"a history of issue {issue_id} without an id")
            histories[history_id] = history
    return {issue_id: sorted(histories.values(), key=_history_order) for issue_id, histories in merged.items()}


def _history_order(history: Mapping[str, Any]) -> tuple[datetime, int]:
    return jira_time(history.get("created")) or _OLDEST, to_int(history.get("id")) or 0


def history_row(history: Mapping[str, Any], *, site_id: str, issue_id: int) -> dict[str, Any]:
    """One ``changelog_histories`` row (``raw`` without the items, which have their own rows)."""
    return {
        "site_id": site_id,
        "id": to_int(history.get("id")),
        "issue_id": issue_id,
        "author_account_id": account_id(history.get("author")),
        "created": jira_time(history.get("created")),
        "history_metadata": json_text(history.get("historyMetadata")),
        "raw": json_text(raw_item(history, drop=("items",))),
    }


def item_rows(history: Mapping[str, Any], *, site_id: str, issue_id: int) -> list[dict[str, Any]]:
    """The ``changelog_items`` rows of one history, in Jira's order."""
    history_id = to_int(history.get("id"))
    return [
        {
            "site_id": site_id,
            "history_id": history_id,
            "position": position,
            "issue_id": issue_id,
            "field": item.get("field"),
            "field_id": item.get("fieldId"),
            "fieldtype": item.get("fieldtype"),
            "from_value": _text(item.get("from")),
            "from_string": _text(item.get("fromString")),
            "to_value": _text(item.get("to")),
            "to_string": _text(item.get("toString")),
        }
        for position, item in enumerate(history.get("items") or ())
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ChangelogFrames:
    """``changelog_histories``, ``changelog_items`` and (of the histories' authors) ``user_details`` rows of some
    issues."""

    histories: pl.DataFrame
    items: pl.DataFrame
    user_details: pl.DataFrame


def changelog_frames(entries: Iterable[Mapping[str, Any]], *, site_id: str) -> ChangelogFrames:
    """The frames of ``issueChangeLogs`` entries, merged by issue (see :func:`merge_issue_changelogs`).

    Pass the entries of every page of one walk together, or of one page at a time: a history is the same row
    whichever page it came on.
    """
    histories: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    merged = merge_issue_changelogs(entries)
    for issue_id, issue_histories in merged.items():
        for history in issue_histories:
            histories.append(history_row(history, site_id=site_id, issue_id=issue_id))
            items.extend(item_rows(history, site_id=site_id, issue_id=issue_id))
    authors = user_details_frame((history for found in merged.values() for history in found), site_id=site_id)
    return ChangelogFrames(CHANGELOG_HISTORIES.frame(histories), CHANGELOG_ITEMS.frame(items), authors)
