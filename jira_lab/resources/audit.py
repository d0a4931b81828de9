"""Audit records: ``GET /rest/api/3/auditing/record`` (Administer Jira only), incrementally by ``from``, and frames.

Records come newest first, paged by ``offset``/``limit`` (:func:`fetch_audit_records`). ``from`` (inclusive) makes
a load incremental: pass the newest ``created`` already stored (:func:`newest_record_time`); the record at that
instant comes again and deduplicates on its id. Pin ``to`` for the walk (the load's start, say): records written
while paging would otherwise shift later pages by one, repeating one record (harmless) per new record.

Callers without *Administer Jira* get a 403 (:class:`~jira_lab.errors.JiraApiError`); so does every caller on a
site whose Jira products are all on free plans.

:func:`audit_frames` gives ``audit_records``, ``audit_changed_values`` and ``audit_associated_items``. The author is
``authorAccountId``, which Jira sends although the schema does not declare it (``authorKey`` is deprecated).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.pagination import Page, offset_limit_pages
from jira_lab.resources.convert import format_jira_time, jira_time, json_text, to_int
from jira_lab.schema import table

AUDIT_RECORDS = table("audit_records")
AUDIT_CHANGED_VALUES = table("audit_changed_values")
AUDIT_ASSOCIATED_ITEMS = table("audit_associated_items")
AUDIT_PATH = "/rest/api/3/auditing/record"
#: Records per page to ask for: the endpoint's default and cap.
AUDIT_PAGE_SIZE = 1000


def fetch_audit_records(
    client: JiraClient,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filter_text: str | None = None,
    limit: int = AUDIT_PAGE_SIZE,
) -> AsyncIterator[Page]:
    """Pages of audit records, newest first.

    Args:
        client: the client (its principal needs *Administer Jira*).
        since: only records created at or after this time (``from``); all of them by default.
        until: only records created at or before this time (``to``): pins the window while paging.
        filter_text: Jira's ``filter``: space-separated strings, each of which must occur in the record.
        limit: records per page to ask for.

    Raises:
        ValueError: ``since`` is after ``until``, or a naive datetime.
    """
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since}) is after until ({until}); Jira would return nothing")
    params: dict[str, Any] = {}
    if since is not None:
        params["from"] = format_jira_time(since)
    if until is not None:
        params["to"] = format_jira_time(until)
    if filter_text:
        params["filter"] = filter_text
    return offset_limit_pages(client, AUDIT_PATH, "records", params=params, limit=limit)


def newest_record_time(records: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The newest ``created`` among the records: the ``since`` of the next incremental load."""
    times = [moment for record in records if (moment := jira_time(record.get("created"))) is not None]
    return max(times, default=None)


def _item_columns(item: Any) -> dict[str, str | None]:
    item = item if isinstance(item, Mapping) else {}
    return {
        "id": _text(item.get("id")),
        "name": _text(item.get("name")),
        "type_name": _text(item.get("typeName")),
        "parent_id": _text(item.get("parentId")),
        "parent_name": _text(item.get("parentName")),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def audit_record_row(record: Mapping[str, Any], *, site_id: str) -> dict[str, Any]:
    """One ``audit_records`` row (``raw`` keeps the record whole: its lists are small)."""
    item = _item_columns(record.get("objectItem"))
    return {
        "site_id": site_id,
        "id": to_int(record.get("id")),
        "summary": record.get("summary"),
        "category": record.get("category"),
        "event_source": record.get("eventSource"),
        "created": jira_time(record.get("created")),
        "author_account_id": _text(record.get("authorAccountId")),
        "remote_address": record.get("remoteAddress"),
        "description": record.get("description"),
        "object_item_id": item["id"],
        "object_item_name": item["name"],
        "object_item_type_name": item["type_name"],
        "object_item_parent_id": item["parent_id"],
        "object_item_parent_name": item["parent_name"],
        "raw": json_text(record),
    }


@dataclass(frozen=True, slots=True)
class AuditFrames:
    """``audit_records``, ``audit_changed_values`` and ``audit_associated_items`` rows of some records."""

    records: pl.DataFrame
    changed_values: pl.DataFrame
    associated_items: pl.DataFrame


def audit_frames(records: Iterable[Mapping[str, Any]], *, site_id: str) -> AuditFrames:
    """The frames of audit records as Jira sent them, each record once (pages may repeat one; the last copy wins)."""
    unique: dict[int, Mapping[str, Any]] = {}
    for record in records:
        record_id = to_int(record.get("id"))
        if record_id is None:
            raise ValueError(f"an audit record without an id: {record.get('summary')!r}")
        unique[record_id] = record
    record_rows, changed_rows, associated_rows = [], [], []
    for record_id, record in unique.items():
        record_rows.append(audit_record_row(record, site_id=site_id))
        for position, change in enumerate(record.get("changedValues") or ()):
            changed_rows.append(
                {
                    "site_id": site_id,
                    "audit_record_id": record_id,
                    "position": position,
                    "field_name": _text(change.get("fieldName")),
                    "changed_from": _text(change.get("changedFrom")),
                    "changed_to": _text(change.get("changedTo")),
                }
            )
        for position, associated in enumerate(record.get("associatedItems") or ()):
            columns = _item_columns(associated)
            associated_rows.append(
                {
                    "site_id": site_id,
                    "audit_record_id": record_id,
                    "position": position,
                    "item_id": columns["id"],
                    "item_name": columns["name"],
                    "type_name": columns["type_name"],
                    "parent_id": columns["parent_id"],
                    "parent_name": columns["parent_name"],
                }
            )
    return AuditFrames(
        AUDIT_RECORDS.frame(record_rows),
        AUDIT_CHANGED_VALUES.frame(changed_rows),
        AUDIT_ASSOCIATED_ITEMS.frame(associated_rows),
    )
