"""Fields: every system and custom field the caller can see, and which custom fields pick users or groups.

``GET /rest/api/3/field`` (``shared/reference/jira-endpoints.md`` §16) answers the whole list in one request, no
paging. It lists only the fields the caller can see: custom fields used in no project it can browse are left out,
silently, so a principal without Browse Projects anywhere sees only the system fields.

User and group picker custom fields matter to the permission model: a ``userCustomField``/``groupCustomField``
grant or security level member names one, and whoever the field holds on an issue gets the permission there.
:func:`picker_fields` tells them apart by their ``schema``: ``user`` or ``group``, or an ``array`` of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Literal

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.pagination import Page
from jira_lab.resources.access import Refusal, refusable
from jira_lab.resources.convert import json_text, to_int
from jira_lab.schema import table

FIELDS = table("fields")

PickerKind = Literal["user", "group"]
_PICKED = ("user", "group")


async def fetch_fields(client: JiraClient) -> AsyncIterator[Page | Refusal]:
    """Every field the caller can see, from ``GET /rest/api/3/field``.

    Yields:
        One page (items: ``FieldDetails`` objects), or a refusal for ``fields`` (a token without its scope).
    """
    body = await refusable(FIELDS.name, client.get("/rest/api/3/field"))
    if isinstance(body, Refusal):
        yield body
    else:
        yield Page(list(body or []), body)


def picker_kind(field: Mapping[str, Any]) -> PickerKind | None:
    """``user`` or ``group`` for a custom field holding users or groups (one or many); ``None`` for any other."""
    if not field.get("custom"):
        return None
    schema = field.get("schema") or {}
    kind = schema.get("items") if schema.get("type") == "array" else schema.get("type")
    return kind if kind in _PICKED else None


def picker_fields(fields: Iterable[Mapping[str, Any]]) -> dict[str, PickerKind]:
    """Custom field id -> ``user`` or ``group``, for the user and group picker fields among ``FieldDetails``."""
    pickers: dict[str, PickerKind] = {}
    for field in fields:
        kind = picker_kind(field)
        if kind is not None and field.get("id"):
            pickers[str(field["id"])] = kind
    return pickers


def fields_frame(fields: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``fields`` rows of ``FieldDetails`` objects; a picker's kind is in ``schema_type`` (or ``schema_items``)."""
    rows: dict[str, dict[str, Any]] = {}
    for field in fields:
        field_id = field.get("id")
        if not field_id:
            continue
        schema = field.get("schema") or {}
        rows[str(field_id)] = {
            "site_id": site_id,
            "id": str(field_id),
            "key": field.get("key"),
            "name": field.get("name"),
            "custom": field.get("custom"),
            "orderable": field.get("orderable"),
            "navigable": field.get("navigable"),
            "searchable": field.get("searchable"),
            "schema_type": schema.get("type"),
            "schema_items": schema.get("items"),
            "schema_system": schema.get("system"),
            "schema_custom": schema.get("custom"),
            "schema_custom_id": to_int(schema.get("customId")),
            "clause_names": json_text(field.get("clauseNames")),
            "raw": json_text(field),
        }
    return FIELDS.frame(rows.values())
