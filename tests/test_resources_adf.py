"""ADF to plain text: each kind of node by the rules of jira_lab.resources.adf, and every body of a generated site.

The hand-built documents state their expected text from the rules (a bullet is ``- ``, a block starts a line ...).
The generated site's bodies are checked against the documents themselves: every word they hold comes out, in order
and unchanged, and every mention reads ``@`` + the mentioned user's name on the site.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from jira_lab.resources.adf import adf_to_text
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site


def text(value: str, *marks: str, **attrs: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = [{"type": mark, **({"attrs": attrs} if mark == "link" else {})} for mark in marks]
    return node


def paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def doc(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(blocks)}


def item(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "listItem", "content": list(blocks)}


# -- the rules, one node kind at a time ------------------------------------------------------------------------------


def test_no_document_is_no_text_and_a_wiki_string_passes_through() -> None:
    assert adf_to_text(None) is None
    assert adf_to_text("h1. *wiki* markup from API v2") == "h1. *wiki* markup from API v2"


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        adf_to_text(["not", "a", "node"])


def test_marks_drop_and_their_text_stays() -> None:
    body = doc(
        paragraph(
            text("Plain, "),
            text("bold", "strong"),
            text(", "),
            text("code", "code"),
            text(" and "),
            text("a link", "link", href="https://example.com"),
        )
    )
    assert adf_to_text(body) == "Plain, bold, code and a link"


def test_paragraphs_and_headings_start_lines_and_hard_breaks_break_them() -> None:
    body = doc(
        {"type": "heading", "attrs": {"level": 2}, "content": [text("Title")]},
        paragraph(text("first line"), {"type": "hardBreak"}, text("second line")),
        paragraph(),
        paragraph(text("after a blank line")),
    )
    assert adf_to_text(body) == "Title\nfirst line\nsecond line\n\nafter a blank line"


def test_mentions_read_as_at_name_whatever_jira_stored() -> None:
    body = doc(
        paragraph(
            {"type": "mention", "attrs": {"id": "5b10a", "text": "@Ann Lee"}},
            text(" and "),
            {"type": "mention", "attrs": {"id": "5b10b", "text": "Bob"}},
            text(" and "),
            {"type": "mention", "attrs": {"id": "5b10c"}},
        )
    )
    assert adf_to_text(body) == "@Ann Lee and @Bob and @5b10c"


def test_emoji_cards_status_and_dates_read_as_their_text() -> None:
    body = doc(
        paragraph(
            {"type": "emoji", "attrs": {"shortName": ":tada:", "text": "🎉"}},
            {"type": "emoji", "attrs": {"shortName": ":custom:"}},
            text(" "),
            {"type": "inlineCard", "attrs": {"url": "https://example.com/x"}},
            text(" "),
            {"type": "status", "attrs": {"text": "IN REVIEW", "color": "blue"}},
            text(" "),
            {"type": "date", "attrs": {"timestamp": "1767603600000"}},  # 2026-01-05T09:00Z
        )
    )
    assert adf_to_text(body) == "🎉:custom: https://example.com/x IN REVIEW 2026-01-05"


def test_bullet_and_numbered_lists_nest_under_their_items() -> None:
    body = doc(
        {
            "type": "bulletList",
            "content": [
                item(paragraph(text("one"))),
                item(
                    paragraph(text("two")),
                    {
                        "type": "orderedList",
                        "attrs": {"order": 3},
                        "content": [item(paragraph(text("three"))), item(paragraph(text("four")))],
                    },
                ),
            ],
        }
    )
    assert adf_to_text(body) == "- one\n- two\n  3. three\n  4. four"


def test_code_blocks_keep_their_lines_and_quotes_are_marked() -> None:
    body = doc(
        {"type": "codeBlock", "attrs": {"language": "python"}, "content": [text("a = 1\nb = 2")]},
        {"type": "blockquote", "content": [paragraph(text("quoted")), paragraph(text("twice"))]},
        {"type": "rule"},
    )
    assert adf_to_text(body) == "a = 1\nb = 2\n> quoted\n> twice\n---"


def test_tables_are_rows_of_cells() -> None:
    def cell(kind: str, value: str) -> dict[str, Any]:
        return {"type": kind, "content": [paragraph(text(value))]}

    body = doc(
        {
            "type": "table",
            "content": [
                {"type": "tableRow", "content": [cell("tableHeader", "Name"), cell("tableHeader", "Role")]},
                {"type": "tableRow", "content": [cell("tableCell", "Ann"), cell("tableCell", "Lead")]},
            ],
        }
    )
    assert adf_to_text(body) == "Name | Role\nAnn | Lead"


def test_tasks_panels_and_media() -> None:
    body = doc(
        {
            "type": "taskList",
            "attrs": {"localId": "t"},
            "content": [
                {"type": "taskItem", "attrs": {"state": "DONE"}, "content": [text("shipped")]},
                {"type": "taskItem", "attrs": {"state": "TODO"}, "content": [text("document")]},
            ],
        },
        {"type": "panel", "attrs": {"panelType": "info"}, "content": [paragraph(text("Heads up"))]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "m", "type": "file"}}]},
        paragraph(text("end")),
    )
    assert adf_to_text(body) == "[x] shipped\n[ ] document\nHeads up\nend"


def test_unknown_nodes_keep_their_words() -> None:
    body = doc(
        {"type": "futureBlock", "content": [paragraph(text("inside a new block"))]},
        paragraph(text("before "), {"type": "futureInline", "text": "new inline"}, text(" after")),
    )
    assert adf_to_text(body) == "inside a new block\nbefore new inline after"


# -- the generated site's bodies --------------------------------------------------------------------------------------


def texts(node: Mapping[str, Any]) -> Iterator[str]:
    """Every text node's text, in document order."""
    if node.get("type") == "text":
        yield str(node["text"])
    for child in node.get("content", []):
        yield from texts(child)


def mentions(node: Mapping[str, Any]) -> Iterator[str]:
    if node.get("type") == "mention":
        yield str(node["attrs"]["id"])
    for child in node.get("content", []):
        yield from mentions(child)


def bodies(site: Site) -> Iterator[dict[str, Any]]:
    for issue in site.issues.values():
        if issue.description is not None:
            yield issue.description
        for comment in issue.comments:
            yield comment.body
        for worklog in issue.worklogs:
            if worklog.comment is not None:
                yield worklog.comment


@pytest.fixture(scope="module")
def site() -> Site:
    return generate_site("tiny", 0)


def test_every_body_of_the_site_keeps_every_word_in_order(site: Site) -> None:
    checked = 0
    for body in bodies(site):
        plain = adf_to_text(body)
        assert plain is not None
        position = 0
        for word in texts(body):
            found = plain.find(word, position)
            assert found >= 0, f"{word!r} is missing or out of order in {plain!r}"
            position = found + len(word)
        checked += 1
    assert checked > sum(len(issue.comments) for issue in site.issues.values())  # and descriptions, worklogs


def test_every_mention_on_the_site_reads_as_at_the_users_name(site: Site) -> None:
    seen = 0
    for body in bodies(site):
        plain = adf_to_text(body)
        assert plain is not None
        for account_id in mentions(body):
            assert f"@{site.users[account_id].display_name}" in plain
            seen += 1
    assert seen > 0, "the generator writes some mentions"


def test_rich_bodies_of_the_site_read_as_lines_with_list_markers(site: Site) -> None:
    lists = {"bulletList": 0, "orderedList": 0}
    for body in bodies(site):
        plain = adf_to_text(body)
        assert plain is not None
        lines = plain.split("\n")
        for block in body["content"]:
            if block["type"] not in lists:
                continue
            lists[block["type"]] += 1
            for position, list_item in enumerate(block["content"]):
                words = "".join(texts(list_item))
                marker = "- " if block["type"] == "bulletList" else f"{block['attrs']['order'] + position}. "
                assert marker + words in lines
    assert all(lists.values()), f"the site has both kinds of list: {lists}"


def test_unicode_comes_through_unchanged(site: Site) -> None:
    non_ascii = [word for body in bodies(site) for word in texts(body) if not word.isascii()]
    assert non_ascii, "the generator writes accents, CJK and emoji"
    everything = "\n".join(filter(None, (adf_to_text(body) for body in bodies(site))))
    for word in non_ascii:
        assert word in everything
