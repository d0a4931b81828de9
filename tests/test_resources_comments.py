"""Comments by id (the sweep for deletions and lost access) and comment rows, against the tiny generated site.

Which comments come back, and with which visibility, is decided by the simulator's permission engine; the rows must
match the site's own comments.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from resource_world import PRINCIPALS, Recorder, World, items_of, pages_of, run, tiny_world

from jira_lab.pagination import Page
from jira_lab.resources.adf import adf_to_text
from jira_lab.resources.comments import comment_row, comments_frame, fetch_comments_by_ids, fetch_issue_comments
from jira_lab.schema import table
from jira_lab.sim.api.comments import MAX_COMMENTS_PER_PAGE

SITE = "tiny-site"


@pytest.fixture(scope="module")
def world() -> World:
    return tiny_world()


def every_comment_id(world: World) -> list[int]:
    return [c.id for issue in world.site.issues.values() for c in issue.comments]


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_comments_by_id_are_exactly_those_the_principal_may_see(world: World, principal: str) -> None:
    recorder = Recorder(world.cloud.transport())
    asked = every_comment_id(world)
    missing = [-1, 999_999_999]  # never existed

    async def go() -> pl.DataFrame:
        async with world.client(principal, recorder) as client:
            comments = items_of(await pages_of(fetch_comments_by_ids(client, [*asked, *missing])))
        return comments_frame(comments, site_id=SITE)

    frame = run(go())
    expected = world.all_visible_comments(principal)
    assert sorted(frame["id"]) == sorted(expected)
    for row in frame.iter_rows(named=True):
        assert row["issue_id"] == expected[row["id"]].issue_id  # read from the comment's self URL
    # the sweep's answer for the rest: gone for this principal (hidden or deleted, Jira cannot say which)
    gone = set(asked) - set(frame["id"])
    assert gone == set(asked) - set(expected)
    if principal == "technical_user":
        assert gone, "the technical user misses comments"
    assert len(recorder.paths("POST")) == 1  # 300 ids fit one request


def test_the_issue_with_the_most_comments_is_paged_whole(world: World) -> None:
    issue = max(world.visible_issues("analyst"), key=lambda i: len(world.visible_comments("analyst", i)))
    visible = world.visible_comments("analyst", issue)
    assert len(visible) > MAX_COMMENTS_PER_PAGE

    async def go() -> list[Page]:
        async with world.client("analyst") as client:
            return await pages_of(fetch_issue_comments(client, issue.key))

    pages = run(go())
    assert len(pages) > 1
    frame = comments_frame(items_of(pages), site_id=SITE, issue_id=issue.id)
    assert frame["id"].to_list() == [c.id for c in visible]


def test_service_desk_internal_notes_are_kept_apart_from_visibility(world: World) -> None:
    internal = {c.id for c in world.all_visible_comments("analyst").values() if not c.jsd_public}
    assert internal, "the tiny site has internal comments"

    async def go() -> pl.DataFrame:
        async with world.client("analyst") as client:
            found = items_of(await pages_of(fetch_comments_by_ids(client, sorted(internal))))
        return comments_frame(found, site_id=SITE)

    frame = run(go())
    assert set(frame.filter(~pl.col("jsd_public"))["id"]) == internal


def test_a_comment_row_holds_the_body_as_adf_and_as_text() -> None:
    body = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Zoë says ✓"}]}],
    }
    comment = {
        "self": "https://x.atlassian.net/rest/api/3/issue/10010/comment/10000",
        "id": "10000",
        "author": {"accountId": "a-1"},
        "updateAuthor": {"accountId": "a-2"},
        "body": body,
        "created": "2021-01-17T12:34:00.000+0000",
        "updated": "2021-01-18T12:34:00.000+0000",
        "visibility": {"type": "role", "value": "Administrators", "identifier": "Administrators"},
        "jsdPublic": True,
        "jsdAuthorCanSeeRequest": False,
    }
    frame = comments_frame([comment], site_id=SITE)
    assert frame.schema == table("comments").polars_schema
    row = frame.row(0, named=True)
    assert (row["id"], row["issue_id"]) == (10000, 10010)
    assert (row["author_account_id"], row["update_author_account_id"]) == ("a-1", "a-2")
    assert json.loads(row["body_adf"]) == body
    assert row["body_text"] == adf_to_text(body) == "Zoë says ✓"
    assert (row["visibility_type"], row["visibility_identifier"]) == ("role", "Administrators")
    assert row["jsd_author_can_see_request"] is False
    raw = json.loads(row["raw"])
    assert "body" not in raw and raw["visibility"] == comment["visibility"]


def test_a_comment_with_only_what_jira_must_send() -> None:
    row = comment_row({"id": "7", "self": "https://x.atlassian.net/rest/api/3/issue/3/comment/7"}, site_id=SITE)
    assert (row["id"], row["issue_id"]) == (7, 3)
    for column in ("author_account_id", "created", "visibility_type", "jsd_public", "body_adf", "body_text"):
        assert row[column] is None


def test_a_comment_that_names_no_issue_needs_one() -> None:
    with pytest.raises(ValueError, match="pass issue_id"):
        comment_row({"id": "7"}, site_id=SITE)
    assert comment_row({"id": "7"}, site_id=SITE, issue_id=3)["issue_id"] == 3
