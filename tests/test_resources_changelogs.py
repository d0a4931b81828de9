"""Changelogs through changelog/bulkfetch: pages merged by issue give each history of each browsable issue once.

Small pages force one issue's histories across several pages, as Jira's ordering (by date, then issue) does on any
real site; the ground truth is the site's histories of the issues the permission engine lets the principal browse.
"""

from __future__ import annotations

import json

import pytest
from resource_world import PRINCIPALS, Recorder, items_of, pages_of, run, tiny_world
from spec import spec_operation

from jira_lab.pagination import Page
from jira_lab.resources.changelogs import (
    BULKFETCH_MAX_RESULTS,
    changelog_frames,
    fetch_changelog_pages,
    merge_issue_changelogs,
)
from jira_lab.resources.convert import jira_time
from jira_lab.schema import table

SITE = "tiny-site"
SMALL_PAGE = 7


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_merged_pages_give_every_history_of_every_browsable_issue_once(principal: str) -> None:
    world = tiny_world()
    every_issue = list(world.site.issues)  # hidden ones too: bulkfetch skips them silently

    async def go() -> list[Page]:
        async with world.client(principal) as client:
            return await pages_of(fetch_changelog_pages(client, every_issue, max_results=SMALL_PAGE))

    pages = run(go())
    pages_per_issue: dict[str, int] = {}
    for page in pages:
        for entry in page.items:
            pages_per_issue[entry["issueId"]] = pages_per_issue.get(entry["issueId"], 0) + 1
    assert max(pages_per_issue.values()) > 1, "some issue's histories span pages"

    frames = changelog_frames(items_of(pages), site_id=SITE)
    assert frames.histories.schema == table("changelog_histories").polars_schema
    assert frames.items.schema == table("changelog_items").polars_schema
    expected = world.visible_histories(principal)
    assert frames.histories["id"].n_unique() == frames.histories.height == len(expected)
    for row in frames.histories.iter_rows(named=True):
        history = expected[row["id"]]
        assert (row["issue_id"], row["author_account_id"], row["created"]) == (
            history.issue_id,
            history.author_account_id,
            history.created,
        )
        assert "items" not in json.loads(row["raw"])
    assert frames.items.height == sum(len(history.items) for history in expected.values())
    for row in frames.items.iter_rows(named=True):
        item = expected[row["history_id"]].items[row["position"]]
        assert row["issue_id"] == expected[row["history_id"]].issue_id
        assert (row["field"], row["field_id"], row["fieldtype"]) == (item.field, item.field_id, item.fieldtype)
        assert (row["from_value"], row["from_string"]) == (item.from_value, item.from_string)
        assert (row["to_value"], row["to_string"]) == (item.to_value, item.to_string)


def test_default_pages_are_as_large_as_jira_allows() -> None:
    world = tiny_world()
    recorder = Recorder(world.cloud.transport())

    async def go() -> list[Page]:
        async with world.client("analyst", recorder) as client:
            return await pages_of(fetch_changelog_pages(client, list(world.site.issues)))

    pages = run(go())
    assert sum(len(issue.changelog) for issue in world.site.issues.values()) < BULKFETCH_MAX_RESULTS
    assert len(pages) == 1 and len(recorder.sent) == 1
    assert json.loads(recorder.sent[0][2])["maxResults"] == BULKFETCH_MAX_RESULTS


def test_merging_keeps_each_history_once_oldest_first() -> None:
    first = {"id": "2", "created": "2021-01-17T12:00:00.000+0000", "items": []}
    second = {"id": "1", "created": "2021-01-17T13:00:00.000+0000", "items": []}
    again = {**first, "items": [{"field": "status"}]}
    merged = merge_issue_changelogs(
        [
            {"issueId": "10", "changeHistories": [first]},
            {"issueId": "11", "changeHistories": []},
            {"issueId": "10", "changeHistories": [second, again]},
        ]
    )
    assert merged == {10: [again, second], 11: []}
    with pytest.raises(ValueError, match="issueId"):
        merge_issue_changelogs([{"changeHistories": []}])


def test_the_specs_example_with_epoch_seconds_reads() -> None:
    example = json.loads(
        spec_operation("POST", "/rest/api/3/changelog/bulkfetch")["responses"]["200"]["content"]["application/json"][
            "example"
        ]
    )
    entry = example["issueChangeLogs"][0]
    frames = changelog_frames(example["issueChangeLogs"], site_id=SITE)
    histories = {row["id"]: row for row in frames.histories.iter_rows(named=True)}
    for history in entry["changeHistories"]:
        assert isinstance(history["created"], int)  # the example's epoch seconds, where the schema says date-time
        row = histories[int(history["id"])]
        assert row["created"] == jira_time(history["created"])
        assert row["created"].year == 2017  # 1492070429 s: April 2017 (as milliseconds it would be January 1970)
        assert row["issue_id"] == int(entry["issueId"])
    assert frames.items["from_string"].to_list() == ["old summary", "old summary 2"]


def test_history_metadata_is_kept_as_json() -> None:
    history = {
        "id": "5",
        "created": "2021-01-17T12:00:00.000+0000",
        "historyMetadata": {"type": "myplugin:type", "description": "text description"},
        "items": [{"field": "status", "fieldtype": "jira", "from": "1", "to": "3", "toString": "In Progress"}],
    }
    frames = changelog_frames([{"issueId": 9, "changeHistories": [history]}], site_id=SITE)
    row = frames.histories.row(0, named=True)
    assert json.loads(row["history_metadata"]) == history["historyMetadata"]
    item = frames.items.row(0, named=True)
    assert (item["from_value"], item["from_string"], item["to_value"], item["to_string"]) == (
        "1",
        None,
        "3",
        "In Progress",
    )
