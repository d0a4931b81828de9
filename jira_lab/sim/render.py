"""JSON shapes shared by the simulated API's handlers: times, users, groups, visibility.

Jira renders the same user, group or time the same way in every response; these helpers keep it so.
"""

from __future__ import annotations

import functools
import hashlib
import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from jira_lab.sim.model import Comment, Site, User, Visibility, Worklog
from jira_lab.sim.routing import Call


def jira_time(moment: datetime) -> str:
    """Jira's timestamp format: ``2021-01-17T12:34:00.000+0000`` (milliseconds, offset without a colon)."""
    # isoformat is C code; it ends in "+00:00" for UTC, which Jira writes "+0000"
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "+0000"


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@functools.lru_cache(maxsize=4096)
def _avatar_urls(seed: str) -> tuple[tuple[str, str], ...]:
    digest = hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()
    base = f"https://secure.gravatar.com/avatar/{digest}?d=identicon"
    return tuple((size, f"{base}&s={size[:2]}") for size in ("48x48", "24x24", "16x16", "32x32"))


def avatar_urls(seed: str) -> dict[str, str]:
    # a fresh dict each time (callers may change it); the digest is worked out once per seed
    return dict(_avatar_urls(seed))


def user_details(call: Call, account_id: str | None) -> dict[str, Any] | None:
    """``UserDetails`` as embedded in issues, comments, worklogs and changelogs.

    The email address is shown only to callers who may browse users, as Jira's profile visibility does.
    """
    if account_id is None:
        return None
    rendered = call.rendered_users.get(account_id)
    if rendered is None:
        rendered = call.rendered_users[account_id] = _user_details(call, account_id)
    return rendered


def _user_details(call: Call, account_id: str) -> dict[str, Any]:
    user = call.site.users.get(account_id)
    if user is None:
        return {"accountId": "unknown", "active": False, "displayName": "Former user", "accountType": "unknown"}
    details: dict[str, Any] = {
        "self": call.self_url(f"/rest/api/3/user?accountId={user.account_id}"),
        "accountId": user.account_id,
        "avatarUrls": avatar_urls(user.account_id),
        "displayName": user.display_name,
        "active": user.active,
        "timeZone": user.time_zone,
        "accountType": user.account_type,
    }
    if user.email is not None and call.engine.can_browse_users(call.caller):
        details["emailAddress"] = user.email
    return details


def user_json(call: Call, user: User) -> dict[str, Any]:
    """The ``User`` shape of the user endpoints (a superset of ``UserDetails``)."""
    details = _user_details(call, user.account_id)
    details["locale"] = user.locale
    if user.account_type == "app":
        details["appType"] = "service"
    return details


def group_name(site: Site, group_id: str) -> dict[str, Any]:
    """``GroupName``: the group's current name and its stable id."""
    group = site.groups[group_id]
    return {"name": group.name, "groupId": group.group_id}


def group_name_json(call: Call, group_id: str) -> dict[str, Any]:
    """``GroupName`` with its ``self`` link, as user groups, application roles and permission holders list it."""
    body = group_name(call.site, group_id)
    body["self"] = call.self_url(f"/rest/api/3/group?groupId={group_id}")
    return body


def _page_link(call: Call, base: str, start_at: int, max_results: int) -> str:
    """The request's own URL under ``base``, at another ``startAt`` (other parameters kept as sent)."""
    prefix = httpx.URL(call.api_base).path.rstrip("/")
    path = call.request.url.path
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    params = call.request.url.params.set("startAt", str(start_at)).set("maxResults", str(max_results))
    return f"{base}{path}?{params}"


_Item = TypeVar("_Item")


def page_bean(
    call: Call,
    items: Sequence[_Item],
    render: Callable[[_Item], Any],
    *,
    start_at: int,
    max_results: int,
) -> dict[str, Any]:
    """A ``PageBean*`` (offset style) of ``items[start_at : start_at + max_results]``, each passed to ``render``.

    ``self`` points at the site URL, as Jira's links do; ``nextPage`` at the URL the request came through, so a
    client can follow it. ``total`` is the number of ``items``.
    """
    page = items[start_at : start_at + max_results]
    is_last = start_at + len(page) >= len(items)
    bean: dict[str, Any] = {
        "self": _page_link(call, call.site_url, start_at, max_results),
        "maxResults": max_results,
        "startAt": start_at,
        "total": len(items),
        "isLast": is_last,
        "values": [render(item) for item in page],
    }
    if not is_last:
        bean["nextPage"] = _page_link(call, call.api_base, start_at + len(page), max_results)
    return bean


def visibility_json(site: Site, visibility: Visibility | None) -> dict[str, Any] | None:
    """``Visibility`` with the group's *current* name as ``value`` (names change; identifiers do not)."""
    if visibility is None:
        return None
    if visibility.type == "group":
        group = site.groups.get(visibility.identifier)
        value = group.name if group is not None else visibility.identifier
        return {"type": "group", "value": value, "identifier": visibility.identifier}
    return {"type": "role", "value": visibility.identifier, "identifier": visibility.identifier}


def time_spent(seconds: int) -> str:
    """Jira's ``timeSpent`` text, in an 8-hour day and 5-day week: ``1w 2d 3h 20m``."""
    minutes = seconds // 60
    parts = []
    for unit, size in (("w", 5 * 8 * 60), ("d", 8 * 60), ("h", 60), ("m", 1)):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0m"


_ADF_BLOCK_TAGS = {
    "paragraph": "p",
    "bulletList": "ul",
    "orderedList": "ol",
    "listItem": "li",
    "blockquote": "blockquote",
    "codeBlock": "pre",
    "table": "table",
    "tableRow": "tr",
    "tableHeader": "th",
    "tableCell": "td",
}
_ADF_MARK_TAGS = {"strong": "b", "em": "em", "code": "tt", "strike": "del", "underline": "ins"}


def _adf_text_html(node: dict[str, Any]) -> str:
    text = html.escape(str(node.get("text", "")), quote=False)
    for mark in node.get("marks", []):
        kind = mark.get("type")
        if kind == "link":
            href = html.escape(str(mark.get("attrs", {}).get("href", "")))
            text = f'<a href="{href}" class="external-link" rel="nofollow noreferrer">{text}</a>'
        elif kind in _ADF_MARK_TAGS:
            tag = _ADF_MARK_TAGS[kind]
            text = f"<{tag}>{text}</{tag}>"
    return text


def adf_html(node: dict[str, Any] | None) -> str:
    """An Atlassian Document Format document as the HTML Jira sends in ``renderedBody``/``renderedFields``.

    Covers the nodes the simulated sites use (paragraphs, text marks, lists, headings, code, tables); other nodes
    render their children, as Jira's renderer degrades to their text.
    """
    if node is None:
        return ""
    kind = node.get("type")
    if kind == "text":
        return _adf_text_html(node)
    if kind == "hardBreak":
        return "<br/>"
    if kind == "rule":
        return "<hr/>"
    if kind in {"mention", "emoji"}:
        return html.escape(str(node.get("attrs", {}).get("text", "")), quote=False)
    inner = "".join(adf_html(child) for child in node.get("content", []))
    if kind == "heading":
        level = int(node.get("attrs", {}).get("level", 1))
        return f"<h{level}>{inner}</h{level}>"
    if kind in _ADF_BLOCK_TAGS:
        tag = _ADF_BLOCK_TAGS[kind]
        return f"<{tag}>{inner}</{tag}>"
    return inner


def comment_json(call: Call, comment: Comment) -> dict[str, Any]:
    """``Comment`` as every comment endpoint (and the embedded ``comment`` field) renders it."""
    body: dict[str, Any] = {
        "self": call.self_url(f"/rest/api/3/issue/{comment.issue_id}/comment/{comment.id}"),
        "id": str(comment.id),
        "author": user_details(call, comment.author_account_id),
        "body": comment.body,
        "updateAuthor": user_details(call, comment.update_author_account_id or comment.author_account_id),
        "created": jira_time(comment.created),
        "updated": jira_time(comment.updated),
        "jsdPublic": comment.jsd_public,
    }
    if comment.visibility is not None:
        body["visibility"] = visibility_json(call.site, comment.visibility)
    return body


def worklog_json(call: Call, worklog: Worklog) -> dict[str, Any]:
    """``Worklog`` as every worklog endpoint (and the embedded ``worklog`` field) renders it."""
    body: dict[str, Any] = {
        "self": call.self_url(f"/rest/api/3/issue/{worklog.issue_id}/worklog/{worklog.id}"),
        "author": user_details(call, worklog.author_account_id),
        "updateAuthor": user_details(call, worklog.update_author_account_id or worklog.author_account_id),
        "created": jira_time(worklog.created),
        "updated": jira_time(worklog.updated),
        "started": jira_time(worklog.started),
        "timeSpent": time_spent(worklog.time_spent_seconds),
        "timeSpentSeconds": worklog.time_spent_seconds,
        "id": str(worklog.id),
        "issueId": str(worklog.issue_id),
    }
    if worklog.comment is not None:
        body["comment"] = worklog.comment
    if worklog.visibility is not None:
        body["visibility"] = visibility_json(call.site, worklog.visibility)
    return body
