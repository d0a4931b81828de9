"""Atlassian Document Format (ADF) to plain text: the one pure function every resource uses for bodies.

Comment bodies, worklog comments and issue descriptions come from API v3 as ADF documents: a tree of block nodes
(paragraphs, headings, lists, code blocks, quotes, tables, panels ...) holding inline nodes (text with marks,
mentions, emoji, hard breaks, cards ...). :func:`adf_to_text` flattens one into readable text:

* text nodes give their text, marks dropped (bold, italics, code and links read the same in plain text);
* mentions give ``@Name`` (the name Jira stored in the mention, else the account id), emoji their character (else
  their short name), cards their URL, status lozenges their text, dates ``YYYY-MM-DD``;
* paragraphs, headings and other blocks each start on a new line, hard breaks are line breaks, code blocks keep
  their own lines;
* list items start with ``- `` (bullets) or ``1. `` (numbered, from the list's ``order``), task items with
  ``[ ]``/``[x]``; nested lists are indented under their item; quotes are prefixed with ``> ``;
* table rows become lines with their cells separated by `` | ``.

Unicode is kept exactly as sent. Node types this module does not know are read for their text and children, so a
new kind of node loses its formatting, never its words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jira_lab.resources.convert import is_mapping

Node = Mapping[str, Any]

BULLET = "- "
QUOTE = "> "
CELL_SEPARATOR = " | "
RULE = "---"


def adf_to_text(document: Any) -> str | None:
    """Plain text of an ADF document (see the module docstring for how each node reads).

    Args:
        document: an ADF ``doc`` (or any ADF node); a string (an API v2 body in wiki markup) is returned as is.

    Returns:
        The text, or ``None`` when there is no document.
    """
    if document is None:
        return None
    if isinstance(document, str):
        return document
    if not is_mapping(document):
        raise ValueError(f"an ADF document is a JSON object, not {type(document).__name__}")
    if _is_inline(document):
        return _inline(document)
    return _block(document)


# -- inline nodes --------------------------------------------------------------------------------------------------


def _attrs(node: Node) -> Mapping[str, Any]:
    attrs = node.get("attrs")
    return attrs if is_mapping(attrs) else {}


def _mention(node: Node) -> str:
    attrs = _attrs(node)
    name = str(attrs.get("text") or "").strip()
    if not name:
        name = str(attrs.get("id") or "")
    return name if name.startswith("@") else f"@{name}"


def _emoji(node: Node) -> str:
    attrs = _attrs(node)
    return str(attrs.get("text") or attrs.get("shortName") or "")


def _card(node: Node) -> str:
    attrs = _attrs(node)
    if attrs.get("url"):
        return str(attrs["url"])
    data = attrs.get("data")
    if is_mapping(data):
        return str(data.get("url") or data.get("name") or "")
    return ""


def _date(node: Node) -> str:
    stamp = _attrs(node).get("timestamp")
    try:
        return datetime.fromtimestamp(int(str(stamp)) / 1000, UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError):
        return str(stamp or "")


_INLINE: dict[str, Callable[[Node], str]] = {
    "text": lambda node: str(node.get("text", "")),
    "hardBreak": lambda node: "\n",
    "mention": _mention,
    "emoji": _emoji,
    "inlineCard": _card,
    "status": lambda node: str(_attrs(node).get("text") or ""),
    "date": _date,
    "mediaInline": lambda node: str(_attrs(node).get("alt") or ""),
    "placeholder": lambda node: "",  # the editor's prompt for an empty spot, not content
    "inlineExtension": lambda node: str(_attrs(node).get("text") or ""),
}


#: Block nodes that are read as their children, each child block on its own line.
_CONTAINERS = frozenset(
    {
        "doc",
        "paragraph",
        "heading",
        "listItem",
        "taskList",
        "decisionList",
        "panel",
        "expand",
        "nestedExpand",
        "layoutSection",
        "layoutColumn",
        "mediaSingle",
        "mediaGroup",
        "tableRow",
        "tableCell",
        "tableHeader",
        "extension",
        "bodiedExtension",
        "multiBodiedExtension",
        "extensionFrame",
    }
)


def _is_inline(node: Node) -> bool:
    kind = node.get("type")
    if kind in _INLINE:
        return True
    if kind in _BLOCKS or kind in _CONTAINERS:
        return False
    # an unknown node is inline when it has text or nothing, a block when it holds other nodes
    return not isinstance(node.get("content"), list)


def _inline(node: Node) -> str:
    render = _INLINE.get(str(node.get("type")))
    if render is not None:
        return render(node)
    if "text" in node:
        return str(node["text"])
    return "".join(_inline(child) for child in _content(node))


# -- block nodes ---------------------------------------------------------------------------------------------------


def _content(node: Node) -> Sequence[Node]:
    content = node.get("content")
    if not isinstance(content, list):
        return ()
    return [child for child in content if is_mapping(child)]


def _children(node: Node) -> str:
    """The node's children: runs of inline nodes joined as they are, each block on its own line(s)."""
    parts: list[str] = []
    run: list[str] = []
    for child in _content(node):
        if _is_inline(child):
            run.append(_inline(child))
            continue
        if run:
            parts.append("".join(run))
            run = []
        text = _block(child)
        # a block that says nothing (an image, an empty panel) takes no line; an empty paragraph is a blank line
        if text or child.get("type") == "paragraph":
            parts.append(text)
    if run:
        parts.append("".join(run))
    return "\n".join(parts)


def _prefixed(text: str, first: str, rest: str) -> str:
    """``text`` with ``first`` before its first line and ``rest`` before every following non-empty line."""
    lines = text.split("\n")
    return "\n".join([first + lines[0], *(rest + line if line else line for line in lines[1:])])


def _list(node: Node, ordered: bool) -> str:
    start = 1
    if ordered:
        try:
            start = int(_attrs(node).get("order", 1))
        except (TypeError, ValueError):
            start = 1
    items = []
    for position, item in enumerate(_content(node)):
        marker = f"{start + position}. " if ordered else BULLET
        items.append(_prefixed(_children(item), marker, " " * len(marker)))
    return "\n".join(items)


def _task_item(node: Node) -> str:
    marker = "[x] " if str(_attrs(node).get("state", "")).upper() == "DONE" else "[ ] "
    return _prefixed(_children(node), marker, " " * len(marker))


def _quote(node: Node) -> str:
    return "\n".join(QUOTE + line if line else QUOTE.rstrip() for line in _children(node).split("\n"))


def _table(node: Node) -> str:
    rows = []
    for row in _content(node):
        cells = [_children(cell).replace("\n", " ") for cell in _content(row)]
        rows.append(CELL_SEPARATOR.join(cells))
    return "\n".join(rows)


def _code(node: Node) -> str:
    return "".join(_inline(child) for child in _content(node))


_BLOCKS: dict[str, Callable[[Node], str]] = {
    "bulletList": lambda node: _list(node, ordered=False),
    "orderedList": lambda node: _list(node, ordered=True),
    "taskItem": _task_item,
    "decisionItem": lambda node: _prefixed(_children(node), BULLET, " " * len(BULLET)),
    "blockquote": _quote,
    "codeBlock": _code,
    "table": _table,
    "rule": lambda node: RULE,
    "blockCard": _card,
    "embedCard": _card,
    "media": lambda node: str(_attrs(node).get("alt") or ""),
}


def _block(node: Node) -> str:
    render = _BLOCKS.get(str(node.get("type")))
    if render is not None:
        return render(node)
    # doc, paragraph, heading, listItem, panel, expand, layouts, task and decision lists, unknown containers
    return _children(node)
