"""Audit records through auditing/record: every record once with its changed values and associated items, the
``from`` window for incremental loads, and the 403 a principal without Administer Jira gets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from resource_world import PRINCIPALS, Recorder, World, items_of, pages_of, run, tiny_world

from jira_lab.errors import JiraApiError
from jira_lab.pagination import Page
from jira_lab.resources.audit import audit_frames, fetch_audit_records, newest_record_time
from jira_lab.resources.convert import format_jira_time
from jira_lab.schema import table
from jira_lab.sim.model import AuditItem

SITE = "tiny-site"
SMALL_PAGE = 50


def records(world: World, principal: str, recorder: Recorder | None = None, **options: object) -> list[Page]:
    async def go() -> list[Page]:
        async with world.client(principal, recorder) as client:
            return await pages_of(fetch_audit_records(client, **options))  # type: ignore[arg-type]

    return run(go())


def item_columns(item: AuditItem) -> tuple[str | None, ...]:
    return item.id, item.name, item.type_name, item.parent_id, item.parent_name


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_record_comes_once_with_its_changes_and_items(principal: str) -> None:
    world = tiny_world()
    assert world.engine.is_admin(world.account(principal))  # both hold Administer Jira on this site
    pages = records(world, principal, limit=SMALL_PAGE)
    assert len(pages) > 1
    frames = audit_frames(items_of(pages), site_id=SITE)
    assert frames.records.schema == table("audit_records").polars_schema
    assert frames.changed_values.schema == table("audit_changed_values").polars_schema
    assert frames.associated_items.schema == table("audit_associated_items").polars_schema
    expected = {record.id: record for record in world.site.audit_records}
    assert sorted(frames.records["id"]) == sorted(expected)
    for row in frames.records.iter_rows(named=True):
        record = expected[row["id"]]
        assert (row["summary"], row["category"], row["created"]) == (record.summary, record.category, record.created)
        assert (row["author_account_id"], row["remote_address"]) == (record.author_account_id, record.remote_address)
        assert row["description"] == (record.description or None)
        object_item = (
            row["object_item_id"],
            row["object_item_name"],
            row["object_item_type_name"],
            row["object_item_parent_id"],
            row["object_item_parent_name"],
        )
        assert object_item == item_columns(record.object_item)
    changed = sorted(
        (r["audit_record_id"], r["position"], r["field_name"], r["changed_from"], r["changed_to"])
        for r in frames.changed_values.iter_rows(named=True)
    )
    assert changed == sorted(
        (record.id, position, change.field_name, change.changed_from, change.changed_to)
        for record in expected.values()
        for position, change in enumerate(record.changed_values)
    )
    associated = sorted(
        (
            r["audit_record_id"],
            r["position"],
            r["item_id"],
            r["item_name"],
            r["type_name"],
            r["parent_id"],
            r["parent_name"],
        )
        for r in frames.associated_items.iter_rows(named=True)
    )
    assert associated == sorted(
        (record.id, position, *item_columns(item))
        for record in expected.values()
        for position, item in enumerate(record.associated_items)
    )
    assert changed and associated


def test_from_makes_a_load_incremental_and_to_pins_the_window() -> None:
    """``from`` and ``to`` go out the way Jira writes times, and bound the records inclusively."""
    world = tiny_world()
    by_time = sorted(world.site.audit_records, key=lambda record: record.created)
    since, until = by_time[len(by_time) // 3].created, by_time[2 * len(by_time) // 3].created
    recorder = Recorder(world.cloud.transport())
    frames = audit_frames(
        items_of(records(world, "analyst", recorder, since=since, until=until, limit=SMALL_PAGE)), site_id=SITE
    )
    expected = {record.id for record in by_time if since <= record.created <= until}
    assert set(frames.records["id"]) == expected
    query = recorder.urls[0].params
    assert (query["from"], query["to"]) == (format_jira_time(since), format_jira_time(until))
    assert newest_record_time(items_of(records(world, "analyst", since=since))) == by_time[-1].created


def test_a_principal_without_administer_jira_is_refused() -> None:
    world = tiny_world()
    engine = world.engine
    someone = next(
        user
        for user in world.site.users.values()
        if user.email is not None and user.active and not engine.is_admin(user.account_id)
    )
    someone.api_token = "token-someone"
    with pytest.raises(JiraApiError) as refused:
        records(world, someone.account_id)
    assert refused.value.status == 403


def test_an_inverted_window_is_a_mistake() -> None:
    world = tiny_world()
    moment = world.site.audit_records[0].created
    with pytest.raises(ValueError, match="after until"):
        records(world, "analyst", since=moment, until=moment - timedelta(seconds=1))


def test_records_repeated_across_pages_are_kept_once_and_a_missing_author_is_null() -> None:
    record = {"id": 5, "summary": "User created", "created": "2021-01-17T12:34:00.000+0000", "objectItem": {}}
    newer = {**record, "summary": "User created (again)"}
    frames = audit_frames([record, newer], site_id=SITE)
    row = frames.records.row(0, named=True)
    assert frames.records.height == 1 and row["summary"] == "User created (again)"
    assert row["author_account_id"] is None and row["object_item_id"] is None
    assert frames.changed_values.is_empty() and frames.associated_items.is_empty()
    assert newest_record_time([]) is None
