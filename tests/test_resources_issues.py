"""Issues through search/jql pages, their embedded comments and worklogs, and the per-issue completion of truncated
ones, as the analyst and as the technical user of the tiny generated site.

Ground truth is the site itself and the simulator's permission engine: the frames must hold exactly the issues,
comments and worklogs the engine lets each principal see, each once, with the site's values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl
import pytest
from resource_world import EVERY_ISSUE, PRINCIPALS, Recorder, World, items_of, pages_of, run, tiny_world

from jira_lab.pagination import Page
from jira_lab.ratelimit import TruncatedBody
from jira_lab.resources.audit import fetch_audit_records
from jira_lab.resources.changelogs import fetch_changelog_pages
from jira_lab.resources.comments import comments_frame, fetch_comments_by_ids, fetch_issue_comments
from jira_lab.resources.issues import (
    FRAMES_KEY,
    ISSUE_FIELDS,
    SEARCH_MAX_RESULTS,
    SearchPageFrames,
    decode_walk_page,
    fetch_issue_pages,
    issue_row,
    issue_totals_frame,
    picker_field_ids,
    search_page_frames,
    truncated_issue_ids,
    walk_page_frames,
)
from jira_lab.resources.worklogs import (
    fetch_deleted_worklogs,
    fetch_issue_worklogs,
    fetch_updated_worklogs,
    worklogs_frame,
)
from jira_lab.schema import table
from jira_lab.sim.api.comments import MAX_COMMENTS_PER_PAGE
from jira_lab.sim.api.fields import status_identity
from jira_lab.sim.api.projects import issue_type_named
from jira_lab.sim.api.search import SEARCH_VIEW_LIMIT
from jira_lab.sim.model import Comment, Issue, Visibility, Worklog

SITE = "tiny-site"


@dataclass
class Loaded:
    """One principal's issues, loaded the cheap way, and every request it took."""

    world: World
    principal: str
    pickers: list[str]
    pages: list[Page]
    frames: list[SearchPageFrames]
    completed_comments: dict[int, pl.DataFrame]
    completed_worklogs: dict[int, pl.DataFrame]
    recorder: Recorder

    @property
    def account(self) -> str:
        return self.world.account(self.principal)

    def table(self, name: str) -> pl.DataFrame:
        frames: list[pl.DataFrame] = [getattr(page_frames, name) for page_frames in self.frames]
        return pl.concat(frames)

    @property
    def truncated_comments(self) -> list[int]:
        return [issue_id for frames in self.frames for issue_id in frames.truncated_comment_issue_ids]

    @property
    def truncated_worklogs(self) -> list[int]:
        return [issue_id for frames in self.frames for issue_id in frames.truncated_worklog_issue_ids]


def load(world: World, principal: str) -> Loaded:
    recorder = Recorder(world.cloud.transport())

    async def go() -> Loaded:
        async with world.client(principal, recorder) as client:
            pickers = picker_field_ids(await client.get("/rest/api/3/field"))
            pages = await pages_of(fetch_issue_pages(client, EVERY_ISSUE, picker_fields=pickers))
            frames = [
                search_page_frames(page.items, site_id=SITE, principal_id=world.account(principal), load_id=7)
                for page in pages
            ]
            comments, worklogs = {}, {}
            for page_frames in frames:
                for issue_id in page_frames.truncated_comment_issue_ids:
                    found = items_of(await pages_of(fetch_issue_comments(client, issue_id)))
                    comments[issue_id] = comments_frame(found, site_id=SITE, issue_id=issue_id)
                for issue_id in page_frames.truncated_worklog_issue_ids:
                    found = items_of(await pages_of(fetch_issue_worklogs(client, issue_id)))
                    worklogs[issue_id] = worklogs_frame(found, site_id=SITE, issue_id=issue_id)
        return Loaded(world, principal, pickers, pages, frames, comments, worklogs, recorder)

    return run(go())


@pytest.fixture(scope="module")
def world() -> World:
    return tiny_world()


@pytest.fixture(scope="module", params=PRINCIPALS)
def loaded(request: pytest.FixtureRequest, world: World) -> Loaded:
    return load(world, request.param)


def rows_by_id(frame: pl.DataFrame) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in frame.iter_rows(named=True)}


# -- issues --------------------------------------------------------------------------------------------------------


def test_the_site_has_what_these_tests_need(world: World) -> None:
    analyst = "analyst"
    counts = [len(world.visible_comments(analyst, issue)) for issue in world.visible_issues(analyst)]
    assert max(counts) > MAX_COMMENTS_PER_PAGE, "an issue with more comments than one page of the comment endpoint"
    worklogs = [len(world.visible_worklogs(analyst, issue)) for issue in world.visible_issues(analyst)]
    assert max(worklogs) > SEARCH_VIEW_LIMIT, "an issue with more worklogs than search embeds"
    assert len(world.visible_issues("technical_user")) < len(world.site.issues), "the technical user misses issues"


def test_issue_rows_are_exactly_the_issues_the_principal_may_browse(loaded: Loaded) -> None:
    issues = loaded.table("issues")
    expected = {issue.id for issue in loaded.world.visible_issues(loaded.principal)}
    assert issues["id"].n_unique() == issues.height
    assert set(issues["id"]) == expected
    assert issues.schema == table("issues").polars_schema


def test_issue_rows_hold_the_sites_values(loaded: Loaded) -> None:
    site = loaded.world.site
    for issue_id, row in rows_by_id(loaded.table("issues")).items():
        issue = site.issues[issue_id]
        project = site.projects[issue.project_id]
        status_id, category = status_identity(issue.status)
        assert row["site_id"] == SITE
        assert (row["key"], row["summary"]) == (issue.key, issue.summary)
        assert (row["project_id"], row["project_key"]) == (project.id, project.key)
        assert (row["issue_type_id"], row["issue_type_name"]) == (
            issue_type_named(issue.issue_type).id,
            issue.issue_type,
        )
        assert (row["status_id"], row["status_name"], row["status_category_key"]) == (
            status_id,
            issue.status,
            category.key,
        )
        assert row["security_level_id"] == issue.security_level_id
        assert row["reporter_account_id"] == issue.reporter_account_id
        assert row["assignee_account_id"] == issue.assignee_account_id
        assert (row["created"], row["updated"]) == (issue.created, issue.updated)
        assert json.loads(row["labels"]) == issue.labels
        assert row["deleted_at"] is None


def test_raw_keeps_the_issue_but_not_its_embedded_pages(loaded: Loaded) -> None:
    site = loaded.world.site
    for issue_id, row in rows_by_id(loaded.table("issues")).items():
        raw = json.loads(row["raw"])
        assert raw["key"] == site.issues[issue_id].key
        assert "comment" not in raw["fields"] and "worklog" not in raw["fields"]
        assert raw["fields"]["description"] == site.issues[issue_id].description


def test_security_levels_come_through(loaded: Loaded) -> None:
    levels = loaded.table("issues").drop_nulls("security_level_id")
    expected = [i.id for i in loaded.world.visible_issues(loaded.principal) if i.security_level_id is not None]
    assert sorted(levels["id"]) == sorted(expected)
    if loaded.principal == "analyst":
        assert expected, "the tiny site has issues at security levels"


def test_the_search_asks_for_the_needed_fields_and_as_many_issues_as_jira_gives(loaded: Loaded) -> None:
    searches = [body for method, path, body in loaded.recorder.sent if path.endswith("/search/jql")]
    assert len(searches) == len(loaded.pages)
    first = json.loads(searches[0])
    assert first["fields"] == [*ISSUE_FIELDS, *loaded.pickers]
    assert first["maxResults"] == SEARCH_MAX_RESULTS
    site_pickers = [f.id for f in loaded.world.site.custom_fields.values() if f.kind in ("user", "group")]
    assert sorted(loaded.pickers) == sorted(site_pickers)


# -- embedded comments and worklogs, totals, truncation ------------------------------------------------------------


def test_embedded_comments_are_the_oldest_visible_ones_of_each_issue(loaded: Loaded) -> None:
    comments = loaded.table("comments")
    assert comments.schema == table("comments").polars_schema
    for issue in loaded.world.visible_issues(loaded.principal):
        visible = loaded.world.visible_comments(loaded.principal, issue)
        embedded = comments.filter(pl.col("issue_id") == issue.id)["id"].to_list()
        assert embedded == [c.id for c in visible[:SEARCH_VIEW_LIMIT]]


def test_embedded_worklogs_are_the_oldest_visible_ones_of_each_issue(loaded: Loaded) -> None:
    worklogs = loaded.table("worklogs")
    for issue in loaded.world.visible_issues(loaded.principal):
        visible = loaded.world.visible_worklogs(loaded.principal, issue)
        embedded = worklogs.filter(pl.col("issue_id") == issue.id)["id"].to_list()
        assert embedded == [w.id for w in visible[:SEARCH_VIEW_LIMIT]]


def test_totals_count_what_this_principal_may_see(loaded: Loaded) -> None:
    totals = loaded.table("issue_totals")
    assert totals.schema == table("issue_totals").polars_schema
    by_issue = {row["issue_id"]: row for row in totals.iter_rows(named=True)}
    for issue in loaded.world.visible_issues(loaded.principal):
        row = by_issue.pop(issue.id)
        assert row["principal_id"] == loaded.account
        assert row["comment_total"] == len(loaded.world.visible_comments(loaded.principal, issue))
        assert row["worklog_total"] == len(loaded.world.visible_worklogs(loaded.principal, issue))
        assert row["changelog_total"] is None  # not expanded
        assert row["load_id"] == 7
    assert not by_issue


def test_truncated_issues_are_those_with_more_visible_items_than_search_embeds(loaded: Loaded) -> None:
    world, principal = loaded.world, loaded.principal
    issues = world.visible_issues(principal)
    expected_comments = {i.id for i in issues if len(world.visible_comments(principal, i)) > SEARCH_VIEW_LIMIT}
    expected_worklogs = {i.id for i in issues if len(world.visible_worklogs(principal, i)) > SEARCH_VIEW_LIMIT}
    assert sorted(loaded.truncated_comments) == sorted(expected_comments)
    assert sorted(loaded.truncated_worklogs) == sorted(expected_worklogs)
    if principal == "analyst":
        assert expected_comments and expected_worklogs


def completed(embedded: pl.DataFrame, by_issue: dict[int, pl.DataFrame]) -> pl.DataFrame:
    """Embedded rows, with the per-issue endpoint's rows in place of a truncated issue's (as an upsert would)."""
    return pl.concat([embedded, *by_issue.values()]).unique(subset=["site_id", "id"], keep="last")


def assert_visibility(row: dict[str, Any], visibility: Visibility | None, world: World) -> None:
    if visibility is None:
        assert (row["visibility_type"], row["visibility_value"], row["visibility_identifier"]) == (None, None, None)
        return
    assert row["visibility_type"] == visibility.type
    assert row["visibility_identifier"] == visibility.identifier  # group id, or role name
    name = world.site.groups[visibility.identifier].name if visibility.type == "group" else visibility.identifier
    assert row["visibility_value"] == name


def test_completing_truncated_issues_gives_every_visible_comment_once(loaded: Loaded) -> None:
    world = loaded.world
    expected: dict[int, Comment] = world.all_visible_comments(loaded.principal)
    comments = completed(loaded.table("comments"), loaded.completed_comments)
    assert comments.height == len(expected)
    for comment_id, row in rows_by_id(comments).items():
        comment = expected[comment_id]
        assert row["issue_id"] == comment.issue_id
        assert row["author_account_id"] == comment.author_account_id
        assert (row["created"], row["updated"]) == (comment.created, comment.updated)
        assert row["jsd_public"] is comment.jsd_public
        assert json.loads(row["body_adf"]) == comment.body
        assert "body" not in json.loads(row["raw"])
        assert_visibility(row, comment.visibility, world)
    for issue_id, frame in loaded.completed_comments.items():
        issue = world.site.issues[issue_id]
        assert frame["id"].to_list() == [c.id for c in world.visible_comments(loaded.principal, issue)]


def test_completing_truncated_issues_gives_every_visible_worklog_once(loaded: Loaded) -> None:
    world = loaded.world
    expected: dict[int, Worklog] = world.all_visible_worklogs(loaded.principal)
    worklogs = completed(loaded.table("worklogs"), loaded.completed_worklogs)
    assert worklogs.height == len(expected)
    for worklog_id, row in rows_by_id(worklogs).items():
        worklog = expected[worklog_id]
        assert row["issue_id"] == worklog.issue_id
        assert (row["started"], row["time_spent_seconds"]) == (worklog.started, worklog.time_spent_seconds)
        assert_visibility(row, worklog.visibility, world)
    for issue_id, frame in loaded.completed_worklogs.items():
        issue = world.site.issues[issue_id]
        assert frame["id"].to_list() == [w.id for w in world.visible_worklogs(loaded.principal, issue)]


def test_only_truncated_issues_cost_requests_of_their_own(loaded: Loaded) -> None:
    comment_paths = [p for p in loaded.recorder.paths("GET") if p.endswith("/comment")]
    worklog_paths = [p for p in loaded.recorder.paths("GET") if p.endswith("/worklog")]
    assert {int(p.split("/")[-2]) for p in comment_paths} == set(loaded.truncated_comments)
    assert {int(p.split("/")[-2]) for p in worklog_paths} == set(loaded.truncated_worklogs)
    expected_comment_requests = sum(
        math.ceil(
            len(loaded.world.visible_comments(loaded.principal, loaded.world.site.issues[i])) / MAX_COMMENTS_PER_PAGE
        )
        for i in loaded.truncated_comments
    )
    assert len(comment_paths) == expected_comment_requests
    assert len(worklog_paths) == len(loaded.truncated_worklogs)  # one page of up to 5000 each


# -- picker custom fields --------------------------------------------------------------------------------------------


def picker_values(world: World, issue: Issue) -> Iterator[tuple[str, int, str, str, str]]:
    site = world.site
    for field in site.custom_fields.values():
        if field.kind not in ("user", "group"):
            continue
        value = issue.custom_fields.get(field.id)
        values = value if isinstance(value, list) else [] if value is None else [value]
        for position, held in enumerate(values):
            name = site.users[held].display_name if field.kind == "user" else site.groups[held].name
            yield field.id, position, field.kind, held, name


def test_picker_fields_give_one_row_per_user_or_group_held(loaded: Loaded) -> None:
    values = loaded.table("issue_field_values")
    assert values.schema == table("issue_field_values").polars_schema
    got = sorted(
        (r["issue_id"], r["field_id"], r["position"], r["value_type"], r["value_id"], r["value_name"])
        for r in values.iter_rows(named=True)
    )
    expected = sorted(
        (issue.id, *value)
        for issue in loaded.world.visible_issues(loaded.principal)
        for value in picker_values(loaded.world, issue)
    )
    assert got == expected
    assert {row[3] for row in expected} == {"user", "group"}


def test_picker_fields_are_found_in_a_fields_table_frame_too() -> None:
    fields = table("fields").frame(
        [
            {"site_id": SITE, "id": "customfield_1", "custom": True, "schema_type": "user"},
            {"site_id": SITE, "id": "customfield_2", "custom": True, "schema_type": "array", "schema_items": "group"},
            {"site_id": SITE, "id": "customfield_3", "custom": True, "schema_type": "array", "schema_items": "option"},
            {"site_id": SITE, "id": "customfield_4", "custom": True, "schema_type": "string"},
            {"site_id": SITE, "id": "assignee", "custom": False, "schema_type": "user"},
        ]
    )
    assert picker_field_ids(fields) == ["customfield_1", "customfield_2"]


# -- edge cases ----------------------------------------------------------------------------------------------------


def test_a_renamed_group_keeps_its_id_and_shows_its_new_name() -> None:
    world = tiny_world()
    restricted = [
        c
        for issue in world.visible_issues("analyst")
        for c in world.visible_comments("analyst", issue)[:SEARCH_VIEW_LIMIT]
        if c.visibility is not None and c.visibility.type == "group"
    ]
    assert restricted
    group_id = restricted[0].visibility.identifier  # type: ignore[union-attr]
    world.site.groups[group_id].name = "renamed-team"
    comments = load(world, "analyst").table("comments")
    rows = comments.filter(pl.col("visibility_identifier") == group_id)
    assert rows.height >= 1
    assert set(rows["visibility_value"]) == {"renamed-team"}


def test_an_issue_with_missing_optional_fields_gives_nulls() -> None:
    row = issue_row({"id": "10001", "key": "X-1", "fields": {"summary": "only a summary"}}, site_id=SITE)
    assert (row["id"], row["key"], row["summary"]) == (10001, "X-1", "only a summary")
    for column in ("project_id", "status_id", "security_level_id", "reporter_account_id", "assignee_account_id"):
        assert row[column] is None
    assert row["labels"] is None and row["created"] is None
    bare = {"id": "10002", "key": "X-2"}
    assert issue_row(bare, site_id=SITE)["summary"] is None
    assert truncated_issue_ids([bare], "comment") == []
    totals = issue_totals_frame([bare], site_id=SITE, principal_id="p")
    assert totals.row(0, named=True)["comment_total"] is None
    with pytest.raises(ValueError, match="without an id"):
        issue_row({"key": "X-3"}, site_id=SITE)


def test_an_expanded_changelog_gives_its_total_and_stays_out_of_raw() -> None:
    issue = {"id": "1", "key": "X-1", "fields": {}, "changelog": {"startAt": 0, "total": 42, "histories": []}}
    assert issue_totals_frame([issue], site_id=SITE, principal_id="p")["changelog_total"].to_list() == [42]
    assert "changelog" not in json.loads(issue_row(issue, site_id=SITE)["raw"])


def test_a_3lo_token_with_the_classic_scopes_reads_every_resource_the_cheap_way() -> None:
    """The technical user's app holds read:jira-work, read:jira-user and manage:jira-configuration: enough for
    every endpoint these resources call (a missing scope would raise MissingScopeError)."""
    world = tiny_world()
    principal = "technical_user"

    async def go() -> tuple[Issue, dict[str, int]]:
        async with world.gateway_client(principal) as client:
            issues = items_of(await pages_of(fetch_issue_pages(client, EVERY_ISSUE)))
            issue_ids = [int(issue["id"]) for issue in issues]
            first = world.site.issues[issue_ids[0]]
            comment_ids = [c.id for i in world.site.issues.values() for c in i.comments]
            return first, {
                "issues": len(issues),
                "issue comments": len(items_of(await pages_of(fetch_issue_comments(client, issue_ids[0])))),
                "issue worklogs": len(items_of(await pages_of(fetch_issue_worklogs(client, issue_ids[0])))),
                "comments by id": len(items_of(await pages_of(fetch_comments_by_ids(client, comment_ids)))),
                "worklogs": sum([len(batch.worklogs) async for batch in fetch_updated_worklogs(client)]),
                "deleted worklogs": len(items_of(await pages_of(fetch_deleted_worklogs(client)))),
                "histories": sum(
                    len(entry["changeHistories"])
                    for entry in items_of(await pages_of(fetch_changelog_pages(client, issue_ids)))
                ),
                "audit records": len(items_of(await pages_of(fetch_audit_records(client)))),
            }

    first, counts = run(go())
    assert counts["issues"] == len(world.visible_issues(principal))
    assert counts["issue comments"] == len(world.visible_comments(principal, first))
    assert counts["issue worklogs"] == len(world.visible_worklogs(principal, first))
    assert counts["comments by id"] == len(world.all_visible_comments(principal))
    assert counts["worklogs"] == len(world.all_visible_worklogs(principal))
    assert counts["deleted worklogs"] == len(world.site.deleted_worklogs)
    assert counts["histories"] == len(world.visible_histories(principal))
    assert counts["audit records"] == len(world.site.audit_records)


# -- a load's walk pages -------------------------------------------------------------------------------------------

FRAME_NAMES = ("issues", "comments", "worklogs", "issue_totals", "issue_field_values", "user_details")


def test_a_walk_page_leaves_out_the_embedded_items_the_per_issue_reads_bring_whole(loaded: Loaded) -> None:
    if loaded.principal == "analyst":
        assert loaded.truncated_comments and loaded.truncated_worklogs, "pages with truncated comments and worklogs"
    for page, frames in zip(loaded.pages, loaded.frames, strict=True):
        options: dict[str, Any] = {"site_id": SITE, "principal_id": loaded.account, "load_id": 7}
        kept = walk_page_frames(page.items, reread_worklogs=False, **options)
        reread = walk_page_frames(page.items, reread_worklogs=True, **options)
        comments_read = pl.col("issue_id").is_in(frames.truncated_comment_issue_ids)
        worklogs_read = pl.col("issue_id").is_in(frames.truncated_worklog_issue_ids)
        for walked in (kept, reread):
            assert walked.comments.equals(frames.comments.filter(~comments_read))
            for name in ("issues", "issue_totals", "issue_field_values"):
                assert getattr(walked, name).equals(getattr(frames, name)), name
            # the totals say what the per-issue reads must bring
            assert walked.truncated_comment_issue_ids == frames.truncated_comment_issue_ids
            assert walked.truncated_worklog_issue_ids == frames.truncated_worklog_issue_ids
        assert kept.worklogs.equals(frames.worklogs)
        assert reread.worklogs.equals(frames.worklogs.filter(~worklogs_read))


def test_decoding_a_walk_page_gives_its_paging_its_issue_ids_and_its_frames(loaded: Loaded) -> None:
    options: dict[str, Any] = {"site_id": SITE, "principal_id": loaded.account, "load_id": 7}
    for page in loaded.pages:
        content = orjson.dumps(page.body)
        body = decode_walk_page(content, reread_worklogs=True, **options)
        assert body["issues"] == [int(issue["id"]) for issue in page.items]
        assert {k: v for k, v in body.items() if k not in ("issues", FRAMES_KEY)} == {
            k: v for k, v in page.body.items() if k != "issues"
        }
        expected = walk_page_frames(page.items, reread_worklogs=True, **options)
        for name in FRAME_NAMES:
            assert getattr(body[FRAMES_KEY], name).equals(getattr(expected, name)), name
        with pytest.raises(TruncatedBody):
            decode_walk_page(content[: len(content) // 2], reread_worklogs=True, **options)
    # not a page: returned as it came, for the pagination to refuse
    assert decode_walk_page(b"[1, 2]", reread_worklogs=True, **options) == [1, 2]
