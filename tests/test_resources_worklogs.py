"""Worklogs through the change feeds (worklog/updated + worklog/list, worklog/deleted) and worklog rows.

Two sites: the tiny generated one (ground truth from the permission engine, as the analyst and the technical user)
and a hand-built busy one whose feed spans several pages, with group-restricted and deleted worklogs.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from resource_world import PRINCIPALS, World, items_of, pages_of, run, tiny_world

from jira_lab.resources.convert import epoch_ms
from jira_lab.resources.worklogs import (
    TOMBSTONE_COLUMNS,
    WorklogBatch,
    deleted_worklogs_frame,
    fetch_deleted_worklogs,
    fetch_issue_worklogs,
    fetch_updated_worklogs,
    fetch_worklog_changes,
    fetch_worklogs_by_ids,
    worklog_row,
    worklogs_frame,
)
from jira_lab.schema import DELETED, table
from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.api.worklogs import FEED_PAGE_SIZE
from jira_lab.sim.builder import EPOCH
from jira_lab.sim.clock import FakeClock

SITE = "site"
BUSY_WORKLOGS = 2 * FEED_PAGE_SIZE + 400
RESTRICTED_EVERY = 5
DELETED_IDS_EVERY = 97


def busy_world() -> World:
    """One project, three issues, 2,400 worklogs a minute apart; every fifth restricted to ``payroll`` (which only
    ``worker`` is in), every 97th deleted. ``outsider`` browses the project but is not in ``payroll``."""
    b = SiteBuilder("busy")
    worker = b.user("Wes Worker", api_token="token-worker")
    outsider = b.user("Otto Outsider", api_token="token-outsider")
    staff = b.group("jira-software-users", members=[worker, outsider])
    payroll = b.group("payroll", members=[worker])
    b.application_role("jira-software", "Jira Software", [staff])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", staff))])
    project = b.project("OPS", "Operations", lead=worker, permission_scheme=scheme)
    start = EPOCH - timedelta(days=10)
    issues = [b.issue(project, f"Issue {n}", reporter=worker, created=start) for n in range(3)]
    worklog_ids = []
    for n in range(BUSY_WORKLOGS):
        visibility = Visibility("group", payroll) if n % RESTRICTED_EVERY == 0 else None
        created = start + timedelta(minutes=n + 1)
        worklog_ids.append(
            b.worklog(issues[n % 3], worker, 600, text=f"log {n}", visibility=visibility, created=created)
        )
    for n, worklog_id in enumerate(worklog_ids):
        if n % DELETED_IDS_EVERY == 0:
            b.site.delete_worklog(worklog_id, start + timedelta(days=2, seconds=n))
    b.site.accounts = {"worker": worker, "outsider": outsider}
    clock = FakeClock(EPOCH)
    return World(b.site, SimCloud(b.site, clock=clock), clock)


def updated_batches(world: World, principal: str, since: int = 0) -> list[WorklogBatch]:
    async def go() -> list[WorklogBatch]:
        async with world.client(principal) as client:
            return [batch async for batch in fetch_updated_worklogs(client, since)]

    return run(go())


def deleted_changes(world: World, principal: str, since: int = 0) -> list[dict[str, object]]:
    async def go() -> list[dict[str, object]]:
        async with world.client(principal) as client:
            return items_of(await pages_of(fetch_deleted_worklogs(client, since)))

    return run(go())


def batch_ids(batches: list[WorklogBatch]) -> list[int]:
    return [int(worklog["id"]) for batch in batches for worklog in batch.worklogs]


# -- the updated feed ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_the_feed_gives_every_worklog_the_principal_may_see_once(principal: str) -> None:
    world = tiny_world()
    batches = updated_batches(world, principal)
    ids = batch_ids(batches)
    assert len(ids) == len(set(ids))
    assert set(ids) == set(world.all_visible_worklogs(principal))
    frame = pl.concat([worklogs_frame(batch.worklogs, site_id=SITE) for batch in batches])
    expected = world.all_visible_worklogs(principal)
    for row in frame.iter_rows(named=True):
        worklog = expected[row["id"]]
        assert row["issue_id"] == worklog.issue_id
        assert (row["updated"], row["time_spent_seconds"]) == (worklog.updated, worklog.time_spent_seconds)
        assert row["visibility_identifier"] == (worklog.visibility.identifier if worklog.visibility else None)


@pytest.mark.parametrize("principal", ["worker", "outsider"])
def test_a_feed_of_several_pages_comes_in_batches_with_rising_cursors(principal: str) -> None:
    world = busy_world()
    batches = updated_batches(world, principal)
    expected = world.all_visible_worklogs(principal)
    assert len(batches) >= math.ceil(len(expected) / FEED_PAGE_SIZE) >= 2  # one batch per feed page
    ids = batch_ids(batches)
    assert len(ids) == len(set(ids)) and set(ids) == set(expected)
    cursors = [batch.until for batch in batches]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    assert cursors[-1] == max(epoch_ms(worklog.updated) for worklog in expected.values())
    assert all(batch.missing_ids == [] for batch in batches)
    for batch in batches:
        assert {int(w["id"]) for w in batch.worklogs} == {int(c["worklogId"]) for c in batch.changes}
    if principal == "outsider":
        assert len(expected) < sum(len(issue.worklogs) for issue in world.site.issues.values())


def test_resuming_from_the_cursor_skips_nothing_changed_in_the_quiet_minute() -> None:
    world = busy_world()
    cursor = updated_batches(world, "worker")[-1].until
    edited = next(iter(world.site.issues.values())).worklogs[0]
    edited.updated = world.clock.time() + timedelta(seconds=30)  # after the cursor, inside the minute Jira holds back
    world.clock.advance(60)
    held_back = batch_ids(updated_batches(world, "worker", cursor))
    assert edited.id not in held_back
    assert held_back == [w.id for w in world.all_visible_worklogs("worker").values() if epoch_ms(w.updated) == cursor]
    world.clock.advance(60)
    later = updated_batches(world, "worker", cursor)
    assert edited.id in batch_ids(later)
    assert later[-1].until == epoch_ms(edited.updated)


def test_a_worklog_deleted_between_the_feed_and_the_list_is_reported_missing() -> None:
    world = busy_world()

    async def go() -> tuple[WorklogBatch, int]:
        async with world.client("worker") as client:
            page = await anext(aiter(fetch_worklog_changes(client)))  # the first feed page only
            victim = int(page.items[0]["worklogId"])
            world.site.delete_worklog(victim, world.clock.time())
            ids = [int(change["worklogId"]) for change in page.items]
            worklogs = items_of(await pages_of(fetch_worklogs_by_ids(client, ids)))
        return WorklogBatch(page.items, worklogs, page.body["until"]), victim

    batch, victim = run(go())
    assert batch.missing_ids == [victim]
    assert len(batch.worklogs) == len(batch.changes) - 1


def test_stopping_early_leaves_no_request_running() -> None:
    world = busy_world()

    async def go() -> tuple[int, set[asyncio.Task[Any]]]:
        async with world.client("worker") as client:
            feed = fetch_updated_worklogs(client)
            first = await anext(feed)
            await feed.aclose()  # type: ignore[attr-defined]
            others = {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}
        return len(first.worklogs), others

    count, running = run(go())
    assert count > 0
    assert running == set()


# -- the deleted feed ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_deleted_worklogs_come_with_their_deletion_time(principal: str) -> None:
    world = tiny_world()
    assert world.site.deleted_worklogs
    frame = deleted_worklogs_frame(deleted_changes(world, principal), site_id=SITE)
    expected = {d.id: d.deleted for d in world.site.deleted_worklogs}
    assert sorted(frame["id"]) == sorted(expected)
    for row in frame.iter_rows(named=True):
        assert epoch_ms(row["deleted_at"]) == epoch_ms(expected[row["id"]])
        assert row["deleted_reason"] == DELETED


def test_the_deleted_feed_names_worklogs_the_principal_never_saw() -> None:
    world = busy_world()
    deleted = {d.id for d in world.site.deleted_worklogs}
    hidden = {d.id for d in world.site.deleted_worklogs if d.visibility is not None}
    assert hidden
    frame = deleted_worklogs_frame(deleted_changes(world, "outsider"), site_id=SITE)
    assert set(frame["id"]) == deleted


def test_tombstones_set_only_the_deletion_columns() -> None:
    frame = deleted_worklogs_frame(
        [{"worklogId": 10001, "updatedTime": 1610886840000}, {"updatedTime": 1}], site_id=SITE
    )
    declared = table("worklogs").polars_schema
    assert frame.columns == list(TOMBSTONE_COLUMNS)
    assert dict(frame.schema) == {name: declared[name] for name in TOMBSTONE_COLUMNS}
    assert frame.height == 1 and frame["id"].to_list() == [10001]


# -- per issue and rows ----------------------------------------------------------------------------------------------


def test_the_issue_with_the_most_worklogs_is_read_whole() -> None:
    world = tiny_world()
    issue = max(world.visible_issues("analyst"), key=lambda i: len(world.visible_worklogs("analyst", i)))

    async def go() -> pl.DataFrame:
        async with world.client("analyst") as client:
            found = items_of(await pages_of(fetch_issue_worklogs(client, issue.id)))
        return worklogs_frame(found, site_id=SITE)

    frame = run(go())
    assert frame["id"].to_list() == [w.id for w in world.visible_worklogs("analyst", issue)]


def test_a_worklog_row_holds_its_comment_as_adf_and_text() -> None:
    comment = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Réunion"}]}],
    }
    worklog = {
        "id": "10005",
        "issueId": "10010",
        "author": {"accountId": "a-1"},
        "comment": comment,
        "started": "2021-01-17T12:34:00.000+0000",
        "timeSpent": "3h 20m",
        "timeSpentSeconds": 12000,
        "visibility": {"type": "group", "value": "payroll", "identifier": "g-1"},
    }
    frame = worklogs_frame([worklog], site_id=SITE)
    assert frame.schema == table("worklogs").polars_schema
    row = frame.row(0, named=True)
    assert (row["id"], row["issue_id"], row["time_spent"], row["time_spent_seconds"]) == (10005, 10010, "3h 20m", 12000)
    assert json.loads(row["comment_adf"]) == comment and row["comment_text"] == "Réunion"
    assert (row["visibility_type"], row["visibility_value"], row["visibility_identifier"]) == (
        "group",
        "payroll",
        "g-1",
    )
    assert "comment" not in json.loads(row["raw"])
    bare = worklog_row({"id": "1", "issueId": "2"}, site_id=SITE)
    assert bare["comment_adf"] is None and bare["comment_text"] is None and bare["update_author_account_id"] is None
    with pytest.raises(ValueError, match="issueId"):
        worklog_row({"id": "1"}, site_id=SITE)
