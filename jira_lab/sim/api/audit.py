"""The audit log: ``GET /rest/api/3/auditing/record``, for Jira administrators only.

Records come newest first (the order real sites answer in), filtered by ``from``/``to`` (inclusive; ``from`` after
``to`` gives an empty list, not an error) and by ``filter``: space-separated strings, **each** of which must occur
in at least one of the fields the spec lists (the spec's example: ``man ed`` matches a record with summary "User
added to group" and category "group management"). Matching is a case-insensitive substring test. For a record
about a user, the user's account id (``objectItem.id``) can be matched as well, as the spec says.

``from``/``to`` take ISO 8601 dates or date-times (``2026-01-05``, ``2026-01-05T09:00``, with seconds, milliseconds
and an offset written ``Z``, ``+0000`` or ``+00:00``); without an offset they are in the site's time zone, UTC. A
value that is not such a date is a 400. ``limit`` defaults to and is capped at :data:`MAX_RECORDS`; ``total`` counts
every record that matches, so a client pages until ``offset + len(records) >= total``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from jira_lab.sim.api.admin_only import require_admin
from jira_lab.sim.model import AuditItem, AuditRecord
from jira_lab.sim.render import jira_time
from jira_lab.sim.routing import Call, JiraError, route

#: The default and largest ``limit``.
MAX_RECORDS = 1000

_OFFSET_WITHOUT_COLON = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_audit_time(name: str, raw: str) -> datetime:
    """A ``from``/``to`` value as an aware datetime; 400 when it is not an ISO 8601 date or date-time."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET_WITHOUT_COLON.sub(r"\1:\2", text) if "T" in text else text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise JiraError(
            400, f"The value '{raw}' of '{name}' is not a valid date, such as 2026-01-05T09:00:00.000+0000."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional_time(call: Call, name: str) -> datetime | None:
    raw = call.query(name)
    return None if raw is None or raw.strip() == "" else parse_audit_time(name, raw)


def searchable_text(record: AuditRecord) -> list[str]:
    """The field values ``filter`` strings are matched against, lower-cased."""
    item = record.object_item
    values = [
        record.summary,
        record.category,
        record.event_source,
        item.name,
        item.parent_name,
        item.type_name,
        record.remote_address,
    ]
    if item.type_name.upper() == "USER":
        values.append(item.id)
    for change in record.changed_values:
        values.extend([change.changed_from, change.changed_to])
    return [value.lower() for value in values if value]


def matches_filter(record: AuditRecord, terms: list[str]) -> bool:
    """Every term occurs in at least one searchable field."""
    fields = searchable_text(record)
    return all(any(term in value for value in fields) for term in terms)


def _item_json(item: AuditItem) -> dict[str, Any]:
    body = {
        "id": item.id,
        "name": item.name,
        "typeName": item.type_name,
        "parentId": item.parent_id,
        "parentName": item.parent_name,
    }
    return {key: value for key, value in body.items() if value is not None}


def audit_record_json(record: AuditRecord) -> dict[str, Any]:
    """``AuditRecordBean`` plus ``authorAccountId``, as Jira Cloud sends it."""
    body: dict[str, Any] = {
        "id": record.id,
        "summary": record.summary,
        "remoteAddress": record.remote_address,
        "authorAccountId": record.author_account_id,
        "created": jira_time(record.created),
        "category": record.category,
        "eventSource": record.event_source,
        "objectItem": _item_json(record.object_item),
        "changedValues": [
            {
                key: value
                for key, value in (
                    ("fieldName", change.field_name),
                    ("changedFrom", change.changed_from),
                    ("changedTo", change.changed_to),
                )
                if value is not None
            }
            for change in record.changed_values
        ],
        "associatedItems": [_item_json(item) for item in record.associated_items],
    }
    if record.description:
        body["description"] = record.description
    return body


@route("GET", "/rest/api/3/auditing/record")
def get_audit_records(call: Call) -> dict[str, Any]:
    """``getAuditRecords``: ``AuditRecords`` newest first; 403 unless the caller holds *Administer Jira*."""
    require_admin(call)
    offset = call.query_int("offset", 0, minimum=0)
    limit = call.query_int("limit", MAX_RECORDS, minimum=0, maximum=MAX_RECORDS)
    start, end = _optional_time(call, "from"), _optional_time(call, "to")
    terms = [term.lower() for term in (call.query("filter") or "").split()]
    selected = [
        record
        for record in call.site.audit_records
        if (start is None or record.created >= start)
        and (end is None or record.created <= end)
        and matches_filter(record, terms)
    ]
    selected.sort(key=attrgetter("created", "id"), reverse=True)
    return {
        "offset": offset,
        "limit": limit,
        "total": len(selected),
        "records": [audit_record_json(record) for record in selected[offset : offset + limit]],
    }
