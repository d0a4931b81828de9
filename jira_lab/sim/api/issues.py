"""Issues: one issue by id or key, issues in bulk, and the ``IssueBean`` every issue endpoint renders.

:func:`issue_json` is the one place an issue becomes JSON (the search and changelog modules use it too). What an
issue shows depends on the endpoint, through an :class:`IssueView`:

* ``fields`` selects system and custom fields (:func:`resolve_fields`: ``*all``, ``*navigable``, names, ``-name``
  exclusions; ``id`` alone selects no field; unknown names are ignored, as Jira ignores them);
* the embedded ``comment`` (``{comments, self, maxResults, total, startAt}``) and ``worklog``
  (``{startAt, maxResults, total, worklogs}``) fields hold only what the caller may see (through
  :meth:`~jira_lab.sim.permissions.PermissionEngine.can_see_item`), oldest first; ``total`` counts what the caller
  may see and ``maxResults`` is the number embedded, so a client can tell when to page the dedicated endpoint;
* ``expand=changelog`` embeds the most recent histories, newest first, with ``total`` counting them all;
* ``expand=names`` adds the display name of each field. Other expansions are accepted and ignored.

Caps where Jira truncates (``shared/reference/jira-semantics.md`` §2.2, the spec's ``BulkFetchIssueRequestBean``):
``GET /issue`` embeds every visible comment, 20 worklogs and 100 histories; ``issue/bulkfetch`` 20 comments, 20
worklogs and 40 histories; ``search/jql`` 20 of each.

A hidden issue and a missing one give the same 404, so existence does not leak. ``issue/bulkfetch`` leaves both out
silently: the spec's ``BulkIssueResults.issueErrors`` says that issues "which aren't found or that the user doesn't
have permission to view won't be returned in this list", so ``issueErrors`` stays empty here (it is for retriable
errors, which the simulator does not produce).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jira_lab.sim.api.fields import status_json
from jira_lab.sim.api.issue_items import ISSUE_NOT_FOUND, visible_items
from jira_lab.sim.api.projects import issue_type_json, issue_type_named, project_avatar_urls
from jira_lab.sim.api.security import level_json
from jira_lab.sim.model import ChangelogHistory, Issue, Project, Site
from jira_lab.sim.render import comment_json, jira_time, user_details, worklog_json
from jira_lab.sim.routing import Call, JiraError, route

#: ``issue/bulkfetch`` takes at most this many ids and keys.
MAX_BULK_ISSUES = 100
#: What ``IssueBean.expand`` lists before anything is expanded (as Jira sends it).
EXPANDABLE = ("renderedFields", "names", "schema", "operations", "editmeta", "changelog", "versionedRepresentations")


# -- fields ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SystemField:
    name: str
    navigable: bool


#: The system fields the simulated sites hold, in the order Jira lists them.
SYSTEM_FIELDS: dict[str, SystemField] = {
    "summary": SystemField("Summary", True),
    "issuetype": SystemField("Issue Type", True),
    "status": SystemField("Status", True),
    "project": SystemField("Project", True),
    "reporter": SystemField("Reporter", True),
    "assignee": SystemField("Assignee", True),
    "created": SystemField("Created", True),
    "updated": SystemField("Updated", True),
    "security": SystemField("Security Level", True),
    "labels": SystemField("Labels", True),
    "description": SystemField("Description", True),
    "comment": SystemField("Comment", False),
    "worklog": SystemField("Log Work", False),
}


@dataclass(frozen=True, slots=True)
class FieldSelection:
    """The fields one request asked for, resolved against the site's fields."""

    fields: tuple[str, ...]
    #: ``key`` was named (it is no field, but an ids-only search then returns keys too)
    with_key: bool = False

    @property
    def ids_only(self) -> bool:
        return not self.fields


def all_field_ids(site: Site) -> list[str]:
    """Every field id of the site: the system fields, then the custom fields."""
    return [*SYSTEM_FIELDS, *site.custom_fields]


def field_name(site: Site, field_id: str) -> str:
    if field_id in SYSTEM_FIELDS:
        return SYSTEM_FIELDS[field_id].name
    return site.custom_fields[field_id].name


def resolve_fields(site: Site, requested: Iterable[str], default: str) -> FieldSelection:
    """The fields a ``fields`` parameter selects.

    Args:
        site: whose custom fields exist.
        requested: the parameter's values (each may itself be comma-separated).
        default: what an absent parameter means (``id``, ``*navigable`` or ``*all``); a parameter holding only
            exclusions (``-description``) excludes from ``*navigable``, or from ``*all`` when that is the default.
    """
    names = [part.strip() for value in requested for part in value.split(",") if part.strip()] or [default]
    known = all_field_ids(site)
    navigable = [f for f in known if f not in SYSTEM_FIELDS or SYSTEM_FIELDS[f].navigable]
    chosen: set[str] = set()
    excluded: set[str] = set()
    with_key = False
    for name in names:
        if name == "*all":
            chosen.update(known)
        elif name == "*navigable":
            chosen.update(navigable)
        elif name.startswith("-"):
            excluded.add(name[1:])
        elif name == "key":
            with_key = True
        elif name in known:
            chosen.add(name)
    only_exclusions = all(name.startswith("-") for name in names)
    if only_exclusions:
        chosen.update(known if default == "*all" else navigable)
    return FieldSelection(tuple(f for f in known if f in chosen and f not in excluded), with_key)


# -- shapes shared with other endpoints ------------------------------------------------------------------------
def project_ref_json(call: Call, project: Project) -> dict[str, Any]:
    """The short project shape embedded in an issue's ``project`` field."""
    return {
        "self": call.self_url(f"/rest/api/3/project/{project.id}"),
        "id": str(project.id),
        "key": project.key,
        "name": project.name,
        "projectTypeKey": project.project_type_key,
        "simplified": False,
        "avatarUrls": project_avatar_urls(call, project),
    }


def history_json(call: Call, history: ChangelogHistory, field_ids: frozenset[str] | None = None) -> dict[str, Any]:
    """``Changelog``: one history with its items (only items of ``field_ids`` when given)."""
    items = []
    for item in history.items:
        if field_ids is not None and (item.field_id or item.field) not in field_ids:
            continue
        detail: dict[str, Any] = {"field": item.field, "fieldtype": item.fieldtype}
        if item.field_id is not None:
            detail["fieldId"] = item.field_id
        # `from`/`to` are null for an empty side, as the spec's examples show; the display strings are not
        # nullable in the schema, so an empty side leaves them out
        detail["from"] = item.from_value
        if item.from_string is not None:
            detail["fromString"] = item.from_string
        detail["to"] = item.to_value
        if item.to_string is not None:
            detail["toString"] = item.to_string
        items.append(detail)
    return {
        "id": str(history.id),
        "author": user_details(call, history.author_account_id),
        "created": jira_time(history.created),
        "items": items,
    }


# -- finding issues --------------------------------------------------------------------------------------------
def find_issue(site: Site, reference: str) -> Issue | None:
    """An issue by numeric id or by key (keys match case-insensitively, as Jira's fallback search does)."""
    reference = reference.strip()
    if reference.isdigit():
        return site.issues.get(int(reference))
    return site.issue_by_key(reference)


def visible_issue(call: Call, reference: str | None = None) -> Issue:
    """The issue the caller may browse, by id or key (default: the path's ``issueIdOrKey``).

    Missing and hidden issues give the same 404, so a caller cannot tell them apart.
    """
    issue = find_issue(call.site, reference if reference is not None else call.path_params["issueIdOrKey"])
    if issue is None or not call.engine.can_browse_issue(call.caller, issue):
        raise JiraError(404, ISSUE_NOT_FOUND)
    return issue


# -- rendering an issue ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IssueView:
    """How much of an issue an endpoint embeds; ``None`` means no cap (or, for the changelog, not expanded)."""

    comment_limit: int | None
    worklog_limit: int | None
    changelog_limit: int | None = None
    with_names: bool = False


def _embedded_comments(call: Call, issue: Issue, view: IssueView) -> dict[str, Any]:
    visible = visible_items(call, issue, issue.comments)
    shown = visible if view.comment_limit is None else visible[: view.comment_limit]
    return {
        "comments": [comment_json(call, c) for c in shown],
        "self": call.self_url(f"/rest/api/3/issue/{issue.id}/comment"),
        "maxResults": len(shown),
        "total": len(visible),
        "startAt": 0,
    }


def _embedded_worklogs(call: Call, issue: Issue, view: IssueView) -> dict[str, Any]:
    visible = visible_items(call, issue, issue.worklogs)
    shown = visible if view.worklog_limit is None else visible[: view.worklog_limit]
    return {
        "startAt": 0,
        "maxResults": len(shown),
        "total": len(visible),
        "worklogs": [worklog_json(call, w) for w in shown],
    }


def embedded_changelog(call: Call, issue: Issue, limit: int) -> dict[str, Any]:
    """``PageOfChangelogs`` as ``expand=changelog`` embeds it: the most recent ``limit`` histories, newest first."""
    newest_first = sorted(issue.changelog, key=lambda h: (h.created, h.id), reverse=True)
    shown = newest_first[:limit]
    return {
        "startAt": 0,
        "maxResults": len(shown),
        "total": len(newest_first),
        "histories": [history_json(call, h) for h in shown],
    }


def _security(call: Call, issue: Issue) -> dict[str, Any] | None:
    if issue.security_level_id is None:
        return None
    found = call.site.security_level(issue.security_level_id)
    if found is None:
        return None
    _, level = found
    return level_json(call, level)


def _group_ref(call: Call, group_id: str) -> dict[str, Any]:
    group = call.site.groups.get(group_id)
    return {"name": group.name if group is not None else None, "groupId": group_id}


def custom_field_value(call: Call, issue: Issue, field_id: str) -> Any:
    """A custom field's value: ``UserDetails`` for user pickers, ``{name, groupId}`` for group pickers."""
    field = call.site.custom_fields[field_id]
    raw = issue.custom_fields.get(field_id)
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    if field.kind == "user":
        rendered: list[Any] = [user_details(call, str(v)) for v in values]
    elif field.kind == "group":
        rendered = [_group_ref(call, str(v)) for v in values]
    else:
        rendered = list(values)
    return rendered if field.multi or isinstance(raw, list) else rendered[0]


_FieldRenderer = Callable[[Call, Issue, IssueView], Any]

# Statuses come from api/fields.py and issue types from api/projects.py, so an issue's ids match GET /status and the
# project's issue types.
_SYSTEM_RENDERERS: dict[str, _FieldRenderer] = {
    "summary": lambda call, issue, view: issue.summary,
    "issuetype": lambda call, issue, view: issue_type_json(call, issue_type_named(issue.issue_type)),
    "status": lambda call, issue, view: status_json(call, issue.status),
    "project": lambda call, issue, view: project_ref_json(call, call.site.projects[issue.project_id]),
    "reporter": lambda call, issue, view: user_details(call, issue.reporter_account_id),
    "assignee": lambda call, issue, view: user_details(call, issue.assignee_account_id),
    "created": lambda call, issue, view: jira_time(issue.created),
    "updated": lambda call, issue, view: jira_time(issue.updated),
    "security": lambda call, issue, view: _security(call, issue),
    "labels": lambda call, issue, view: list(issue.labels),
    "description": lambda call, issue, view: issue.description,
    "comment": _embedded_comments,
    "worklog": _embedded_worklogs,
}


def _fields_json(call: Call, issue: Issue, selection: FieldSelection, view: IssueView) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    project = call.site.projects[issue.project_id]
    for field_id in selection.fields:
        if field_id == "security" and project.security_scheme_id is None:
            continue  # a project without an issue security scheme has no such field
        renderer = _SYSTEM_RENDERERS.get(field_id)
        fields[field_id] = renderer(call, issue, view) if renderer else custom_field_value(call, issue, field_id)
    return fields


def field_names(site: Site, selection: FieldSelection) -> dict[str, str]:
    """``names``: the display name of each selected field."""
    return {field_id: field_name(site, field_id) for field_id in selection.fields}


def issue_json(call: Call, issue: Issue, selection: FieldSelection, view: IssueView) -> dict[str, Any]:
    """``IssueBean`` of an issue the caller may browse, with the selected fields and the view's embeds."""
    expanded = {"changelog"} if view.changelog_limit is not None else set()
    if view.with_names:
        expanded.add("names")
    body: dict[str, Any] = {
        "expand": ",".join(e for e in EXPANDABLE if e not in expanded),
        "id": str(issue.id),
        "self": call.self_url(f"/rest/api/3/issue/{issue.id}"),
        "key": issue.key,
    }
    if view.with_names:
        body["names"] = field_names(call.site, selection)
    body["fields"] = _fields_json(call, issue, selection, view)
    if view.changelog_limit is not None:
        body["changelog"] = embedded_changelog(call, issue, view.changelog_limit)
    return body


def expand_values(values: Iterable[Any]) -> set[str]:
    """The expansions of an ``expand`` parameter or body list (values may be comma-separated)."""
    return {part.strip() for value in values for part in str(value).split(",") if part.strip()}


# -- endpoints -------------------------------------------------------------------------------------------------
#: ``GET /issue``: every visible comment, Jira's 20 worklogs, the 100 most recent histories.
GET_ISSUE_VIEW = IssueView(comment_limit=None, worklog_limit=20, changelog_limit=100)
#: ``issue/bulkfetch``: 20 comments, 20 worklogs, and "a maximum of 40 changelogs" (the spec).
BULK_VIEW = IssueView(comment_limit=20, worklog_limit=20, changelog_limit=40)


def _view(base: IssueView, expand: set[str]) -> IssueView:
    return IssueView(
        base.comment_limit,
        base.worklog_limit,
        base.changelog_limit if "changelog" in expand else None,
        "names" in expand,
    )


@route("GET", "/rest/api/3/issue/{issueIdOrKey}")
def get_issue(call: Call) -> dict[str, Any]:
    """``getIssue``: one issue, all fields by default; 404 alike for hidden and missing issues."""
    issue = visible_issue(call)
    selection = resolve_fields(call.site, call.query_list("fields"), "*all")
    return issue_json(call, issue, selection, _view(GET_ISSUE_VIEW, call.expansions()))


def _bulk_references(body: Any) -> list[str]:
    raw = body.get("issueIdsOrKeys") if isinstance(body, dict) else None
    if not isinstance(raw, list) or not raw:
        raise JiraError(400, "At least one issue ID or key must be provided in issueIdsOrKeys.")
    if len(raw) > MAX_BULK_ISSUES:
        raise JiraError(
            400, f"The number of issue IDs or keys must not exceed {MAX_BULK_ISSUES}. You provided {len(raw)}."
        )
    return [str(value) for value in raw]


def _string_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise JiraError(400, f"'{name}' must be a list of strings.")
    return [str(item) for item in value]


@route("POST", "/rest/api/3/issue/bulkfetch")
def bulk_fetch_issues(call: Call) -> dict[str, Any]:
    """``bulkFetchIssues``: up to 100 issues by id or key, in ascending id order; hidden ones left out."""
    body = call.json()
    references = _bulk_references(body)
    selection = resolve_fields(call.site, _string_list(body, "fields"), "*navigable")
    view = _view(BULK_VIEW, expand_values(_string_list(body, "expand")))
    found: dict[int, Issue] = {}
    for reference in references:
        issue = find_issue(call.site, reference)
        if issue is not None and call.engine.can_browse_issue(call.caller, issue):
            found[issue.id] = issue
    return {
        "issues": [issue_json(call, found[issue_id], selection, view) for issue_id in sorted(found)],
        "issueErrors": [],
    }
