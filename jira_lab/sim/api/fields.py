"""Issue fields and statuses: ``GET /field``, ``GET /field/search``, ``GET /status`` and ``GET /statuscategory``.

``FieldDetails`` of the system fields are Jira Cloud's (id, name, clause names, schema); the site's custom fields
are user pickers, group pickers and short text fields, rendered with Jira's custom field type keys.

Choices where Jira's documentation is silent, kept in one place:

* The simulated sites have no field configurations or screens, so every custom field counts as used in every
  project: the caller sees the custom fields if it can browse at least one project ("the field is used in at least
  one project that the user has *Browse Projects* project permission for"), and the system fields always.
* The sites have one workflow for all projects. Its statuses are Jira's defaults (``To Do``, ``In Progress``,
  ``Done``) plus any other status an issue is in; ``GET /status`` lists them to a caller who can browse some
  project, and an empty list otherwise. A status outside Jira's defaults gets a stable id from its name and a
  category guessed from its name (done-like words: Done; progress-like words: In Progress; otherwise To Do).
* ``field/search`` and ``statuscategory`` need "Permission to access Jira" (product access; 403 otherwise), as the
  spec's permission texts say. ``field/search`` shows the same fields as ``GET /field``; every field is on one
  screen, in one context and in every project, and no field's last use is tracked (``lastUsed: NOT_TRACKED``).
  Its ``orderBy`` sorts by name; the count orders keep the catalogue order, as every count is equal.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from jira_lab.sim.model import CustomField
from jira_lab.sim.render import page_bean
from jira_lab.sim.routing import Call, JiraError, route


@dataclass(frozen=True, slots=True)
class SystemField:
    id: str
    name: str
    clause_names: tuple[str, ...]
    #: ``JsonTypeBean.type``; ``None``: Jira sends no ``schema`` for the field (``issuekey``)
    schema_type: str | None
    items: str | None = None
    orderable: bool = True
    navigable: bool = True
    searchable: bool = True


#: Jira Cloud's system fields (the ones the simulated issues can carry, and the common others).
SYSTEM_FIELDS = (
    SystemField("issuekey", "Key", ("id", "issue", "issuekey", "key"), None, orderable=False, searchable=False),
    SystemField("summary", "Summary", ("summary",), "string"),
    SystemField("issuetype", "Issue Type", ("issuetype", "type"), "issuetype"),
    SystemField("project", "Project", ("project",), "project", orderable=False),
    SystemField("status", "Status", ("status",), "status", orderable=False),
    SystemField("statusCategory", "Status Category", ("statusCategory",), "statusCategory", orderable=False),
    SystemField("priority", "Priority", ("priority",), "priority"),
    SystemField("resolution", "Resolution", ("resolution",), "resolution"),
    SystemField("resolutiondate", "Resolved", ("resolutiondate", "resolved"), "datetime", orderable=False),
    SystemField("reporter", "Reporter", ("reporter",), "user"),
    SystemField("assignee", "Assignee", ("assignee",), "user"),
    SystemField("creator", "Creator", ("creator",), "user", orderable=False),
    SystemField("created", "Created", ("created", "createdDate"), "datetime", orderable=False),
    SystemField("updated", "Updated", ("updated", "updatedDate"), "datetime", orderable=False),
    SystemField("duedate", "Due date", ("due", "duedate"), "date"),
    SystemField("description", "Description", ("description",), "string"),
    SystemField("environment", "Environment", ("environment",), "string"),
    SystemField("labels", "Labels", ("labels",), "array", items="string"),
    SystemField("components", "Components", ("component",), "array", items="component"),
    SystemField("fixVersions", "Fix versions", ("fixVersion",), "array", items="version"),
    SystemField("versions", "Affects versions", ("affectedVersion",), "array", items="version"),
    SystemField("security", "Security Level", ("level",), "securitylevel"),
    SystemField("comment", "Comment", ("comment",), "comments-page", navigable=False),
    SystemField("worklog", "Log Work", (), "array", items="worklog", navigable=False),
    SystemField("timetracking", "Time tracking", (), "timetracking", navigable=False),
    SystemField("timespent", "Time Spent", ("timespent",), "number", orderable=False, searchable=False),
    SystemField("attachment", "Attachment", ("attachments",), "array", items="attachment"),
    SystemField("issuelinks", "Linked Issues", ("issueLink",), "array", items="issuelinks"),
    SystemField("subtasks", "Sub-tasks", ("subtasks",), "array", items="issuelinks", orderable=False),
    SystemField("watches", "Watchers", ("watchers",), "watches", orderable=False, searchable=False),
    SystemField("votes", "Votes", ("votes",), "votes", orderable=False, searchable=False),
    SystemField("lastViewed", "Last Viewed", ("lastViewed",), "datetime", orderable=False, searchable=False),
)

#: (kind, multi) -> (schema type, schema items, custom field type key, searcher key)
_CUSTOM_TYPE_KEYS = {
    ("user", False): ("user", None, "userpicker", "userpickergroupsearcher"),
    ("user", True): ("array", "user", "multiuserpicker", "userpickergroupsearcher"),
    ("group", False): ("group", None, "grouppicker", "grouppickersearcher"),
    ("group", True): ("array", "group", "multigrouppicker", "multiselectsearcher"),
    ("string", False): ("string", None, "textfield", "textsearcher"),
    ("string", True): ("string", None, "textfield", "textsearcher"),
}
CUSTOM_TYPE_PREFIX = "com.atlassian.jira.plugin.system.customfieldtypes:"
NO_JIRA_ACCESS = "You do not have permission to access Jira."


def system_field_json(system_field: SystemField) -> dict[str, Any]:
    """``FieldDetails`` of a system field."""
    body: dict[str, Any] = {
        "id": system_field.id,
        "key": system_field.id,
        "name": system_field.name,
        "custom": False,
        "orderable": system_field.orderable,
        "navigable": system_field.navigable,
        "searchable": system_field.searchable,
        "clauseNames": list(system_field.clause_names),
    }
    if system_field.schema_type is not None:
        schema: dict[str, Any] = {"type": system_field.schema_type, "system": system_field.id}
        if system_field.items is not None:
            schema["items"] = system_field.items
        body["schema"] = schema
    return body


def custom_field_json(custom_field: CustomField) -> dict[str, Any]:
    """``FieldDetails`` of a custom field: JQL knows it as ``cf[10050]`` and by its name."""
    numeric_id = int(custom_field.id.removeprefix("customfield_"))
    kind, items, type_key, _ = _CUSTOM_TYPE_KEYS[(custom_field.kind, custom_field.multi)]
    schema: dict[str, Any] = {"type": kind, "custom": CUSTOM_TYPE_PREFIX + type_key, "customId": numeric_id}
    if items is not None:
        schema["items"] = items
    return {
        "id": custom_field.id,
        "key": custom_field.id,
        "name": custom_field.name,
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": [f"cf[{numeric_id}]", custom_field.name],
        "schema": schema,
    }


def _browses_any_project(call: Call) -> bool:
    return any(call.engine.can_browse_project(call.caller, project) for project in call.site.projects.values())


def _visible_fields(call: Call) -> list[SystemField | CustomField]:
    fields: list[SystemField | CustomField] = list(SYSTEM_FIELDS)
    if _browses_any_project(call):
        fields += list(call.site.custom_fields.values())
    return fields


def field_details_json(found: SystemField | CustomField) -> dict[str, Any]:
    """``FieldDetails`` of a system or custom field."""
    return system_field_json(found) if isinstance(found, SystemField) else custom_field_json(found)


@route("GET", "/rest/api/3/field")
def get_fields(call: Call) -> list[dict[str, Any]]:
    """``getFields``: the system fields, then the custom fields if the caller can browse some project."""
    return [field_details_json(found) for found in _visible_fields(call)]


FIELD_TYPES = ("custom", "system")
FIELD_ORDERS = ("contextsCount", "lastUsed", "name", "screensCount", "projectsCount")


def _require_jira_access(call: Call) -> None:
    if not call.engine.can_access_jira(call.caller):
        raise JiraError(403, NO_JIRA_ACCESS)


def _searched_fields(call: Call) -> list[SystemField | CustomField]:
    """The visible fields the ``type``, ``id``, ``query`` and ``projectIds`` filters keep, in ``orderBy`` order."""
    types = set(call.query_list("type")) or set(FIELD_TYPES)
    if not types <= set(FIELD_TYPES):
        raise JiraError(400, f"The type must be one of: {', '.join(FIELD_TYPES)}.")
    ids = set(call.query_list("id"))
    query = (call.query("query") or "").lower()
    project_ids = call.query_list("projectIds")
    browsed = [
        p
        for p in call.site.projects.values()
        if str(p.id) in project_ids and call.engine.can_browse_project(call.caller, p)
    ]
    if project_ids and not browsed:
        return []
    found = [
        f
        for f in _visible_fields(call)
        if ("custom" if isinstance(f, CustomField) else "system") in types
        and (not ids or f.id in ids)
        and query in f.name.lower()
    ]
    order_by = call.query("orderBy")
    if order_by is None:
        return found
    if order_by.lstrip("+-") not in FIELD_ORDERS:
        raise JiraError(400, f"The orderBy value '{order_by}' is not supported.")
    if order_by.lstrip("+-") == "name":
        found.sort(key=lambda f: f.name.lower(), reverse=order_by.startswith("-"))
    return found


def _field_json(call: Call, found: SystemField | CustomField, expand: set[str]) -> dict[str, Any]:
    """``Field`` as ``field/search`` pages it, with what ``expand`` asks for."""
    details = field_details_json(found)
    body: dict[str, Any] = {"id": found.id, "name": found.name, "schema": details.get("schema", {"type": "any"})}
    extras: dict[str, Any] = {
        "key": found.id,
        "stableId": f"sfid:{found.id}",
        "lastUsed": {"type": "NOT_TRACKED"},
        "screensCount": 1,
        "contextsCount": 1,
        "isLocked": False,
    }
    if isinstance(found, CustomField):
        searcher = _CUSTOM_TYPE_KEYS[(found.kind, found.multi)][3]
        extras["searcherKey"] = CUSTOM_TYPE_PREFIX + searcher
    body.update({name: value for name, value in extras.items() if name in expand})
    body["projectsCount"] = len(call.site.projects)
    return body


@route("GET", "/rest/api/3/field/search")
def get_fields_paginated(call: Call) -> dict[str, Any]:
    """``getFieldsPaginated``: a page of the fields the filters keep."""
    _require_jira_access(call)
    found = _searched_fields(call)
    expand = call.expansions()
    start_at = call.query_int("startAt", 0, minimum=0)
    max_results = call.query_int("maxResults", 50, minimum=0)
    return page_bean(call, found, lambda f: _field_json(call, f, expand), start_at=start_at, max_results=max_results)


# -- statuses ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusCategory:
    id: int
    key: str
    name: str
    color_name: str


NO_CATEGORY = StatusCategory(1, "undefined", "No Category", "medium-gray")
TO_DO = StatusCategory(2, "new", "To Do", "blue-gray")
IN_PROGRESS = StatusCategory(4, "indeterminate", "In Progress", "yellow")
DONE = StatusCategory(3, "done", "Done", "green")
STATUS_CATEGORIES = (NO_CATEGORY, TO_DO, IN_PROGRESS, DONE)

#: Jira Cloud's default statuses: name -> (id, category)
DEFAULT_STATUSES: dict[str, tuple[int, StatusCategory]] = {
    "To Do": (10000, TO_DO),
    "In Progress": (3, IN_PROGRESS),
    "Done": (10001, DONE),
}
_DONE_WORDS = ("done", "closed", "resolved", "complete", "cancel", "won't", "rejected")
_PROGRESS_WORDS = ("progress", "review", "testing", "doing", "waiting", "blocked")


def status_identity(name: str) -> tuple[int, StatusCategory]:
    """The id and category of a status by name: Jira's defaults, else a stable id and a category from the name."""
    if name in DEFAULT_STATUSES:
        return DEFAULT_STATUSES[name]
    lowered = name.lower()
    if any(word in lowered for word in _DONE_WORDS):
        category = DONE
    elif any(word in lowered for word in _PROGRESS_WORDS):
        category = IN_PROGRESS
    else:
        category = TO_DO
    return 10100 + zlib.crc32(name.encode()) % 9000, category


def status_json(call: Call, name: str) -> dict[str, Any]:
    """``StatusDetails`` of the status called ``name``."""
    status_id, category = status_identity(name)
    return {
        "self": call.self_url(f"/rest/api/3/status/{status_id}"),
        "description": "",
        "iconUrl": call.self_url("/images/icons/statuses/generic.png"),
        "name": name,
        "id": str(status_id),
        "statusCategory": status_category_json(call, category),
    }


def status_category_json(call: Call, category: StatusCategory) -> dict[str, Any]:
    """``StatusCategory``."""
    return {
        "self": call.self_url(f"/rest/api/3/statuscategory/{category.id}"),
        "id": category.id,
        "key": category.key,
        "colorName": category.color_name,
        "name": category.name,
    }


@route("GET", "/rest/api/3/status")
def get_statuses(call: Call) -> list[dict[str, Any]]:
    """``getStatuses``: the statuses of the site's workflow, to a caller who can browse some project."""
    if not _browses_any_project(call):
        return []
    names = list(DEFAULT_STATUSES)
    names += sorted({issue.status for issue in call.site.issues.values()} - set(names))
    return [status_json(call, name) for name in names]


@route("GET", "/rest/api/3/statuscategory")
def get_status_categories(call: Call) -> list[dict[str, Any]]:
    """``getStatusCategories``: Jira's four status categories."""
    _require_jira_access(call)
    return [status_category_json(call, category) for category in STATUS_CATEGORIES]
