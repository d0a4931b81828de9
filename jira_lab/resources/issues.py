"""Issues from ``search/jql`` pages, with the comments and worklogs embedded in them, and their frames.

One ``POST /rest/api/3/search/jql`` page (:func:`fetch_issue_pages`) asks for the key fields, the security level,
the people, the description, the embedded ``comment`` and ``worklog`` fields and the user/group picker custom fields
(:func:`picker_field_ids` finds them in ``GET /field``), with ``maxResults`` at Jira's documented maximum: Jira
lowers it for a field set this heavy (100 issues a page today), and the walk follows whatever it gives.

:func:`search_page_frames` turns one page into everything it holds, for the loader to store in one go:

* ``issues`` rows (``raw`` without the embedded comment, worklog and changelog pages);
* ``comments`` and ``worklogs`` rows of the embedded items (at most 20 of each per issue);
* ``issue_totals``: ``fields.comment.total``/``fields.worklog.total``, which count what *this principal* may see;
* ``issue_field_values``: the users and groups held by picker custom fields (replace an issue's rows as a whole,
  e.g. :func:`jira_lab.store.replace_rows` scoped to the page's issues, since a cleared field leaves no row);
* the ids of issues whose embedded comments or worklogs were truncated (``total`` above what came inline): only
  those need :func:`jira_lab.resources.comments.fetch_issue_comments` /
  :func:`jira_lab.resources.worklogs.fetch_issue_worklogs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from jira_lab.client import Decoder, JiraClient, json_body
from jira_lab.pagination import Page, search_pages
from jira_lab.resources.comments import comment_row
from jira_lab.resources.convert import account_id, is_mapping, jira_time, json_text, to_int
from jira_lab.resources.users import user_details_frame
from jira_lab.resources.worklogs import worklog_row
from jira_lab.schema import table

ISSUES = table("issues")
ISSUE_TOTALS = table("issue_totals")
ISSUE_FIELD_VALUES = table("issue_field_values")
COMMENTS = table("comments")
WORKLOGS = table("worklogs")

#: The fields every issue search asks for (picker custom fields are added): what the tables and audits need.
ISSUE_FIELDS: tuple[str, ...] = (
    "summary",
    "issuetype",
    "status",
    "project",
    "parent",
    "security",
    "reporter",
    "assignee",
    "creator",
    "created",
    "updated",
    "labels",
    "description",
    "comment",
    "worklog",
)
#: ``maxResults`` to ask ``search/jql`` for: its documented maximum ("It returns max 5000 issues"). Jira gives
#: fewer for heavy field sets such as :data:`ISSUE_FIELDS`, and asking for the most never gives less than it allows.
SEARCH_MAX_RESULTS = 5000

Collection = Literal["comment", "worklog"]
_PICKER_TYPES = frozenset({"user", "group"})


# -- fetching ------------------------------------------------------------------------------------------------------


def search_fields(picker_fields: Iterable[str] = ()) -> list[str]:
    """The ``fields`` of an issue search: :data:`ISSUE_FIELDS` and the picker custom fields, each once."""
    return list(dict.fromkeys([*ISSUE_FIELDS, *picker_fields]))


def fetch_issue_pages(
    client: JiraClient,
    jql: str,
    *,
    picker_fields: Iterable[str] = (),
    max_results: int = SEARCH_MAX_RESULTS,
    reconcile_issues: Sequence[int] = (),
    decode: Decoder | None = None,
) -> AsyncIterator[Page]:
    """Pages of the issues a bounded JQL query finds, through ``POST /rest/api/3/search/jql``.

    Args:
        client: the client.
        jql: a bounded query (Jira refuses one without a restriction).
        picker_fields: ids of the user/group picker custom fields (:func:`picker_field_ids`).
        max_results: issues per page to ask for; Jira lowers it.
        reconcile_issues: up to 50 issue ids just written, to read them back consistently.
        decode: what to make of each page's body instead of its JSON (e.g. :func:`decode_walk_page`).

    Yields:
        Each page (:func:`search_page_frames` turns ``page.items`` into frames).
    """
    return search_pages(
        client,
        jql,
        fields=search_fields(picker_fields),
        max_results=max_results,
        reconcile_issues=reconcile_issues,
        decode=decode,
    )


def picker_field_ids(fields: Iterable[Mapping[str, Any]] | pl.DataFrame) -> list[str]:
    """Ids of the custom fields holding users or groups (single or multi pickers), in the order given.

    Args:
        fields: ``GET /rest/api/3/field`` as Jira sent it (``FieldDetails``), or a ``fields`` table frame.
    """
    if isinstance(fields, pl.DataFrame):
        picked = fields.filter(
            pl.col("custom").fill_null(False)
            & (
                pl.col("schema_type").is_in(list(_PICKER_TYPES))
                | ((pl.col("schema_type") == "array") & pl.col("schema_items").is_in(list(_PICKER_TYPES)))
            )
        )
        return [str(field_id) for field_id in picked["id"].to_list()]
    found = []
    for field in fields:
        schema = field.get("schema")
        if not field.get("custom") or not is_mapping(schema):
            continue
        kind, items = schema.get("type"), schema.get("items")
        if kind in _PICKER_TYPES or (kind == "array" and items in _PICKER_TYPES):
            found.append(str(field["id"]))
    return found


# -- truncation ----------------------------------------------------------------------------------------------------


def _embedded(issue: Mapping[str, Any], collection: Collection) -> tuple[list[dict[str, Any]], int | None]:
    """The items embedded in the issue's ``comment``/``worklog`` field and the ``total`` Jira reported."""
    fields = issue.get("fields")
    page = fields.get(collection) if is_mapping(fields) else None
    if not is_mapping(page):
        return [], None
    items = page.get("comments" if collection == "comment" else "worklogs")
    return (list(items) if isinstance(items, list) else []), to_int(page.get("total"))


def truncated_issue_ids(issues: Iterable[Mapping[str, Any]], collection: Collection) -> list[int]:
    """Ids of the issues whose embedded comments (or worklogs) hold fewer than the ``total`` Jira reported.

    Only these need the per-issue endpoint; the others came whole.
    """
    truncated = []
    for issue in issues:
        items, total = _embedded(issue, collection)
        if total is not None and total > len(items):
            truncated.append(_issue_id(issue))
    return truncated


def _issue_id(issue: Mapping[str, Any]) -> int:
    issue_id = to_int(issue.get("id"))
    if issue_id is None:
        raise ValueError(f"an issue without an id: {issue.get('key')!r}")
    return issue_id


# -- frames --------------------------------------------------------------------------------------------------------


def _ref(fields: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = fields.get(name)
    return value if is_mapping(value) else {}


def issue_raw(issue: Mapping[str, Any]) -> dict[str, Any]:
    """The issue for its ``raw`` column: without the embedded comment and worklog pages and the changelog."""
    raw = {key: value for key, value in issue.items() if key != "changelog"}
    fields = issue.get("fields")
    if is_mapping(fields):
        raw["fields"] = {key: value for key, value in fields.items() if key not in ("comment", "worklog")}
    return raw


def issue_row(issue: Mapping[str, Any], *, site_id: str) -> dict[str, Any]:
    """One ``issues`` row of an ``IssueBean``."""
    fields = issue.get("fields")
    fields = fields if is_mapping(fields) else {}
    project, issue_type, status = _ref(fields, "project"), _ref(fields, "issuetype"), _ref(fields, "status")
    labels = fields.get("labels")
    return {
        "site_id": site_id,
        "id": _issue_id(issue),
        "key": issue.get("key"),
        "project_id": to_int(project.get("id")),
        "project_key": project.get("key"),
        "issue_type_id": to_int(issue_type.get("id")),
        "issue_type_name": issue_type.get("name"),
        "parent_id": to_int(_ref(fields, "parent").get("id")),
        "summary": fields.get("summary"),
        "status_id": to_int(status.get("id")),
        "status_name": status.get("name"),
        "status_category_key": _ref(status, "statusCategory").get("key"),
        "security_level_id": to_int(_ref(fields, "security").get("id")),
        "reporter_account_id": account_id(fields.get("reporter")),
        "assignee_account_id": account_id(fields.get("assignee")),
        "creator_account_id": account_id(fields.get("creator")),
        "labels": json_text(labels) if isinstance(labels, list) else None,
        "created": jira_time(fields.get("created")),
        "updated": jira_time(fields.get("updated")),
        "raw": json_text(issue_raw(issue)),
    }


def issues_frame(issues: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """An ``issues`` frame of ``IssueBean`` objects (search pages, ``issue/bulkfetch``, ``GET /issue``)."""
    return ISSUES.frame(issue_row(issue, site_id=site_id) for issue in issues)


def issue_totals_frame(
    issues: Iterable[Mapping[str, Any]], *, site_id: str, principal_id: str, load_id: int | None = None
) -> pl.DataFrame:
    """An ``issue_totals`` frame: how many comments, worklogs (and histories, when the changelog was expanded) Jira
    reported on each issue to the loading principal."""
    rows = []
    for issue in issues:
        changelog = issue.get("changelog")
        rows.append(
            {
                "site_id": site_id,
                "principal_id": principal_id,
                "issue_id": _issue_id(issue),
                "comment_total": _embedded(issue, "comment")[1],
                "worklog_total": _embedded(issue, "worklog")[1],
                "changelog_total": to_int(changelog.get("total")) if is_mapping(changelog) else None,
                "load_id": load_id,
            }
        )
    return ISSUE_TOTALS.frame(rows)


def _picker_value(value: Any) -> tuple[str, str | None, str | None] | None:
    """(value type, id, name) of one user or group a picker field holds; ``None`` for anything else."""
    if not is_mapping(value):
        return None
    if "accountId" in value:
        return "user", account_id(value), value.get("displayName")
    if "groupId" in value:
        group_id = value.get("groupId")
        return "group", str(group_id) if group_id is not None else None, value.get("name")
    return None  # options, versions, text ...: not a person or a group


def issue_field_values_frame(issues: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """An ``issue_field_values`` frame: each user or group held by a custom field of each issue.

    Picker fields are recognised by their values (users carry ``accountId``, groups ``groupId``), so any custom
    field the search returned can be given. An issue whose pickers are all empty has no rows: replace an issue's
    rows as a whole.
    """
    rows = []
    for issue in issues:
        fields = issue.get("fields")
        if not is_mapping(fields):
            continue
        issue_id = _issue_id(issue)
        for field_id, value in fields.items():
            if not field_id.startswith("customfield_") or value is None:
                continue
            for position, item in enumerate(value if isinstance(value, list) else [value]):
                picked = _picker_value(item)
                if picked is None:
                    continue
                value_type, value_id, value_name = picked
                rows.append(
                    {
                        "site_id": site_id,
                        "issue_id": issue_id,
                        "field_id": field_id,
                        "position": position,
                        "value_type": value_type,
                        "value_id": value_id,
                        "value_name": value_name,
                    }
                )
    return ISSUE_FIELD_VALUES.frame(rows)


def embedded_comments_frame(issues: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """A ``comments`` frame of the comments embedded in the issues (the first 20 of each, in search results)."""
    return COMMENTS.frame(
        comment_row(comment, site_id=site_id, issue_id=_issue_id(issue))
        for issue in issues
        for comment in _embedded(issue, "comment")[0]
    )


def embedded_worklogs_frame(issues: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """A ``worklogs`` frame of the worklogs embedded in the issues (the first 20 of each, in search results)."""
    return WORKLOGS.frame(
        worklog_row(worklog, site_id=site_id, issue_id=_issue_id(issue))
        for issue in issues
        for worklog in _embedded(issue, "worklog")[0]
    )


@dataclass(frozen=True, slots=True)
class SearchPageFrames:
    """Everything one page of issues holds, as frames, and what it left out.

    Attributes:
        issues: ``issues`` rows.
        comments: ``comments`` rows of the embedded comments.
        worklogs: ``worklogs`` rows of the embedded worklogs.
        issue_totals: ``issue_totals`` rows (per principal).
        issue_field_values: ``issue_field_values`` rows of the picker fields.
        user_details: ``user_details`` rows of the authors of the embedded comments and worklogs.
        truncated_comment_issue_ids: issues with more comments than came inline (page the per-issue endpoint).
        truncated_worklog_issue_ids: issues with more worklogs than came inline.
    """

    issues: pl.DataFrame
    comments: pl.DataFrame
    worklogs: pl.DataFrame
    issue_totals: pl.DataFrame
    issue_field_values: pl.DataFrame
    user_details: pl.DataFrame
    truncated_comment_issue_ids: list[int]
    truncated_worklog_issue_ids: list[int]


def search_page_frames(
    issues: Sequence[Mapping[str, Any]], *, site_id: str, principal_id: str, load_id: int | None = None
) -> SearchPageFrames:
    """The frames of one page of issues (``page.items`` of :func:`fetch_issue_pages`).

    Args:
        issues: the page's ``IssueBean`` objects.
        site_id: the site.
        principal_id: account id of the loading principal (the totals are what it may see).
        load_id: the load writing the totals.
    """
    return SearchPageFrames(
        issues=issues_frame(issues, site_id=site_id),
        comments=embedded_comments_frame(issues, site_id=site_id),
        worklogs=embedded_worklogs_frame(issues, site_id=site_id),
        issue_totals=issue_totals_frame(issues, site_id=site_id, principal_id=principal_id, load_id=load_id),
        issue_field_values=issue_field_values_frame(issues, site_id=site_id),
        user_details=user_details_frame(
            (item for issue in issues for kind in ("comment", "worklog") for item in _embedded(issue, kind)[0]),
            site_id=site_id,
        ),
        truncated_comment_issue_ids=truncated_issue_ids(issues, "comment"),
        truncated_worklog_issue_ids=truncated_issue_ids(issues, "worklog"),
    )


def without_embedded(issue: Mapping[str, Any], *, comments: bool, worklogs: bool) -> Mapping[str, Any]:
    """The issue without its embedded comments (and/or worklogs), keeping their ``total``.

    For issues whose embedded lists were truncated: the per-issue endpoints read those whole, so framing the
    embedded ones as well would be wasted.
    """
    fields = issue.get("fields")
    dropped = [name for name, drop in (("comment", comments), ("worklog", worklogs)) if drop]
    if not dropped or not is_mapping(fields):
        return issue
    trimmed = dict(fields)
    for name in dropped:
        if is_mapping(trimmed.get(name)):
            trimmed[name] = {**trimmed[name], "comments" if name == "comment" else "worklogs": []}
    return {**issue, "fields": trimmed}


def walk_page_frames(
    issues: Sequence[Mapping[str, Any]],
    *,
    reread_worklogs: bool,
    site_id: str,
    principal_id: str,
    load_id: int | None = None,
) -> SearchPageFrames:
    """The frames of a page of a load's search walk: :func:`search_page_frames` without the embedded comments of
    the issues whose comments were truncated (and their worklogs too with ``reread_worklogs``), which the load reads
    whole from the per-issue endpoints."""
    comment_ids = set(truncated_issue_ids(issues, "comment"))
    worklog_ids = set(truncated_issue_ids(issues, "worklog")) if reread_worklogs else set()
    trimmed = [
        without_embedded(issue, comments=issue_id in comment_ids, worklogs=issue_id in worklog_ids)
        for issue, issue_id in zip(issues, map(_issue_id, issues), strict=True)
    ]
    return search_page_frames(trimmed, site_id=site_id, principal_id=principal_id, load_id=load_id)


#: Where :func:`decode_walk_page` puts a page's :class:`SearchPageFrames` in the body it returns.
FRAMES_KEY = "jira_lab.frames"


def decode_walk_page(
    content: bytes, *, reread_worklogs: bool, site_id: str, principal_id: str, load_id: int | None = None
) -> Any:
    """A ``search/jql`` answer's body, decoded and framed at once (a :data:`~jira_lab.client.Decoder`'s work).

    Returns:
        The body with ``issues`` reduced to their ids and the page's :func:`walk_page_frames` at
        :data:`FRAMES_KEY`: small to pass between processes, and all a load needs. A body that is not a page is
        returned as it came, for the pagination to refuse.

    Raises:
        TruncatedBody: the body does not parse (it was cut on the way).
    """
    body = json_body(content)
    items = body.get("issues", []) if isinstance(body, dict) else None
    if not isinstance(items, list):
        return body
    frames = walk_page_frames(
        items, reread_worklogs=reread_worklogs, site_id=site_id, principal_id=principal_id, load_id=load_id
    )
    return {**body, "issues": [_issue_id(issue) for issue in items], FRAMES_KEY: frames}
