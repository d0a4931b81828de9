"""Fields and picker fields, read through the simulated site and checked against it."""

from __future__ import annotations

from typing import Any

import pytest
from resource_helpers import READ_ONLY_CLASSIC_SCOPES, answers, as_account, principal, refusals

from jira_lab.resources.access import Refusal
from jira_lab.resources.fields import FIELDS, fetch_fields, fields_frame, picker_fields, picker_kind
from jira_lab.sim.api.fields import SYSTEM_FIELDS
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

SITES = ("tiny", "demo")


def fresh(size: str) -> Site:
    return generate_site(size, 0)


def fields_of(items: list[Any]) -> list[dict[str, Any]]:
    return [field for page in answers(items) for field in page.items]


@pytest.mark.parametrize("size", SITES)
def test_fields_are_the_system_fields_and_every_custom_field(size: str) -> None:
    site = fresh(size)
    caller = principal(site, "analyst")
    items = caller.collect(fetch_fields)

    frame = fields_frame(fields_of(items), site_id="s")
    assert frame.schema == FIELDS.polars_schema
    assert set(frame["id"]) == {f.id for f in SYSTEM_FIELDS} | set(site.custom_fields)
    custom = frame.filter(frame["custom"])
    assert dict(zip(custom["id"], custom["name"], strict=True)) == {f.id: f.name for f in site.custom_fields.values()}
    assert dict(zip(custom["id"], custom["schema_custom_id"], strict=True)) == {
        f.id: int(f.id.removeprefix("customfield_")) for f in site.custom_fields.values()
    }
    assert len(caller.transport.requests) == 1


@pytest.mark.parametrize("size", SITES)
def test_picker_fields_are_the_custom_fields_holding_users_or_groups(size: str) -> None:
    site = fresh(size)
    items = principal(site, "analyst").collect(fetch_fields)

    expected = {f.id: f.kind for f in site.custom_fields.values() if f.kind in ("user", "group")}
    assert picker_fields(fields_of(items)) == expected
    assert {"user", "group"} <= set(expected.values())
    assert any(f.multi for f in site.custom_fields.values() if f.id in expected)  # arrays of users/groups count too


def test_a_principal_browsing_no_project_sees_only_the_system_fields() -> None:
    site = fresh("tiny")
    engine = PermissionEngine(site)
    outsider = site.accounts["app"]
    assert not any(engine.can_browse_project(outsider, p) for p in site.projects.values())
    items = as_account(site, outsider).collect(fetch_fields)

    # Jira says nothing about the custom fields it leaves out: no refusal to record, the frame just lacks them
    assert refusals(items) == []
    assert set(fields_frame(fields_of(items), site_id="s")["id"]) == {f.id for f in SYSTEM_FIELDS}


def test_a_token_without_read_jira_work_gets_the_fields_refused() -> None:
    site = fresh("tiny")
    items = principal(site, "analyst", scopes=READ_ONLY_CLASSIC_SCOPES - {"read:jira-work"}).collect(fetch_fields)

    [refusal] = items
    assert isinstance(refusal, Refusal)
    assert (refusal.resource, refusal.outcome) == ("fields", "missing_scope")
    assert "read:jira-work" in refusal.message


def test_picker_kind_reads_the_schema_of_custom_fields_only() -> None:
    assert picker_kind({"id": "reporter", "custom": False, "schema": {"type": "user", "system": "reporter"}}) is None
    assert picker_kind({"id": "customfield_1", "custom": True, "schema": {"type": "array", "items": "user"}}) == "user"
    assert picker_kind({"id": "customfield_2", "custom": True, "schema": {"type": "group"}}) == "group"
    assert picker_kind({"id": "customfield_3", "custom": True, "schema": {"type": "array", "items": "option"}}) is None
    assert picker_kind({"id": "customfield_4", "custom": True}) is None
