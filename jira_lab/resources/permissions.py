"""Permission schemes and their grants, each project's scheme, and permission answers for accounts.

Endpoints (``shared/reference/jira-endpoints.md`` §12, §14, §15):

* ``GET /permissionscheme?expand=permissions,user,group,projectRole,field``: every scheme with every grant, in one
  request ("permissions are included when you specify any value"); the holders' sub-objects (``holder.group``
  ...) come along, so a group holder's id is known even where Jira left ``value`` out. Needs access to Jira.
* ``GET /project/{id}/permissionscheme``: the scheme a project uses (no expand: its grants came with the list).
  Needs Administer Jira or Administer Projects there; 403 otherwise.
* ``GET /permissions``: the catalogue of permission keys on the site (apps add their own), each GLOBAL or
  PROJECT. ``mypermissions`` says to ask it for the keys to check. Without it (no ``manage:jira-configuration``
  scope) the keys built into Jira are used, and a key the site does not know is dropped when Jira names it.
* ``GET /mypermissions?permissions=…`` (no context): the loading principal's global permissions, and for each
  project permission whether it holds it in *any* project. These are the ``my_permissions`` rows of project
  :data:`~jira_lab.schema.GLOBAL_CONTEXT`.
* ``POST /permissions/check``: the project permissions per project (up to 1000 projects a request) for the caller,
  and, with ``accountId``, for **another account**. Jira Cloud has no API listing who holds a global permission, so
  "does the technical user hold ADMINISTER (or Browse Projects in HR)" can only be asked this way, and only by a
  Jira administrator: anyone else gets 403 "Only Jira administrators can perform this operation.", which comes back
  as a :class:`~jira_lab.resources.access.Refusal`.

Grants keep their holder as Jira gives it (``holder_type``/``holder_parameter``/``holder_value``, §14): a group
holder's parameter is the group's *name* and its value the group *id* (join on the value); a role holder's value is
the role id; a user holder's value the account id.

Points: schemes, grants and permissions are identity objects (2 points each). The grants of every scheme come in one
request; the caller's permissions in every project in one ``permissions/check`` per 1000 projects, instead of one
``mypermissions`` (about 40 permissions, 80 points) per project.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.errors import JiraApiError, JiraLabError
from jira_lab.pagination import Page, chunked
from jira_lab.permission_keys import GLOBAL_PERMISSIONS, PROJECT_PERMISSIONS
from jira_lab.resources.access import Refusal, gather_all, refusable, refusal_of, scoped
from jira_lab.resources.convert import json_text, to_int, without
from jira_lab.schema import GLOBAL_CONTEXT, table

PERMISSION_SCHEMES = table("permission_schemes")
PERMISSION_GRANTS = table("permission_grants")
PROJECT_PERMISSION_SCHEMES = table("project_permission_schemes")
MY_PERMISSIONS = table("my_permissions")
PERMISSION_CHECKS = table("permission_checks")

#: the access resource of ``GET /permissions`` (no table: its keys only decide what to ask)
PERMISSION_CATALOGUE = "permission_catalogue"
#: every sub-object a holder can carry (``all`` would ask the same)
SCHEME_EXPAND = "permissions,user,group,projectRole,field"
#: ``permissions/check`` takes at most this many projects, and as many issues, a request.
CHECK_MAX_IDS = 1000

PermissionType = Literal["GLOBAL", "PROJECT"]

#: holder types whose ``parameter`` is also their ``value`` (§14), so a missing value can be filled in
_PARAMETER_IS_VALUE = frozenset({"user", "projectRole", "applicationRole", "userCustomField", "groupCustomField"})


@dataclass(frozen=True, slots=True)
class ProjectPermissionScheme:
    """``GET /project/{id}/permissionscheme``: the scheme (``PermissionScheme``) the project uses."""

    project_id: int
    scheme: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MyPermissionsAnswer:
    """``GET /mypermissions`` in one context (:data:`~jira_lab.schema.GLOBAL_CONTEXT` or a project id)."""

    project_id: int
    permissions: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PermissionCheckAnswer:
    """One ``POST /permissions/check``: what was asked (``request``) and Jira's ``answer``.

    Attributes:
        account_id: the account checked; ``None`` for the caller itself.
        request: the ``BulkPermissionsRequestBean`` sent.
        answer: the ``BulkPermissionGrants`` received (it lists only what the account holds).
        issue_projects: issue id -> project id of the issues asked about, for the rows' ``project_id``.
    """

    account_id: str | None
    request: dict[str, Any]
    answer: dict[str, Any]
    issue_projects: dict[int, int] = field(default_factory=dict)


# -- fetching: schemes -------------------------------------------------------------------------------------------


async def fetch_permission_schemes(client: JiraClient) -> AsyncIterator[Page | Refusal]:
    """Every permission scheme with all its grants and their holders, in one ``GET /rest/api/3/permissionscheme``.

    Yields:
        One page (items: ``PermissionScheme`` objects with ``permissions``); or refusals for
        ``permission_schemes`` and ``permission_grants``.
    """
    try:
        body = await client.get("/rest/api/3/permissionscheme", params={"expand": SCHEME_EXPAND})
    except JiraLabError as error:
        refusal = refusal_of(PERMISSION_SCHEMES.name, error)
        if refusal is None:
            raise
        yield refusal
        yield refusal.for_resource(PERMISSION_GRANTS.name)
        return
    yield Page(list((body or {}).get("permissionSchemes") or []), body)


async def fetch_project_permission_schemes(
    client: JiraClient, project_ids: Iterable[int]
) -> AsyncIterator[ProjectPermissionScheme | Refusal]:
    """The scheme each project uses (``GET /rest/api/3/project/{id}/permissionscheme``), projects concurrently.

    Reading it needs Administer Projects in *that* project (or Administer Jira), so each project answers for
    itself. A project deleted meanwhile (404) is skipped.

    Yields:
        A :class:`ProjectPermissionScheme` per project, in the order given; or a ``project_permission_schemes:{id}``
        refusal for each project Jira would not tell.
    """
    answers = await gather_all(_project_scheme(client, int(project_id)) for project_id in dict.fromkeys(project_ids))
    for answer in answers:
        if answer is not None:
            yield answer


async def _project_scheme(client: JiraClient, project_id: int) -> ProjectPermissionScheme | Refusal | None:
    try:
        body = await client.get(f"/rest/api/3/project/{project_id}/permissionscheme")
    except JiraLabError as error:
        if isinstance(error, JiraApiError) and error.status == 404:
            return None
        refusal = refusal_of(scoped(PROJECT_PERMISSION_SCHEMES.name, project_id), error)
        if refusal is None:
            raise
        return refusal
    return ProjectPermissionScheme(project_id, dict(body))


# -- fetching: permissions of accounts ---------------------------------------------------------------------------


async def fetch_permission_catalogue(client: JiraClient) -> AsyncIterator[Page | Refusal]:
    """Every permission the site knows (``GET /rest/api/3/permissions``), apps' own included.

    Yields:
        One page (items: the permission objects ``{key, name, type, description}``); or a refusal for
        ``permission_catalogue`` (a token without ``manage:jira-configuration``): use :func:`permission_keys`
        without a catalogue then.
    """
    try:
        body = await client.get("/rest/api/3/permissions")
    except JiraLabError as error:
        refusal = refusal_of(PERMISSION_CATALOGUE, error)
        if refusal is None:
            raise
        yield refusal
        return
    permissions = (body or {}).get("permissions") or {}
    yield Page([{"key": key, **value} for key, value in permissions.items()], body)


def permission_keys(catalogue: Iterable[Mapping[str, Any]] | None = None) -> dict[str, PermissionType]:
    """Permission key -> ``GLOBAL`` or ``PROJECT``: the catalogue's, or Jira's built-in keys without one.

    Args:
        catalogue: the items of :func:`fetch_permission_catalogue`; ``None`` (or an empty one) for the built-ins.
    """
    keys: dict[str, PermissionType] = {}
    for permission in catalogue or ():
        kind = str(permission.get("type") or "").upper()
        if permission.get("key") and kind in ("GLOBAL", "PROJECT"):
            keys[str(permission["key"])] = "GLOBAL" if kind == "GLOBAL" else "PROJECT"
    if keys:
        return keys
    return {
        **dict.fromkeys(GLOBAL_PERMISSIONS, "GLOBAL"),
        **dict.fromkeys(PROJECT_PERMISSIONS, "PROJECT"),
    }


async def fetch_my_permissions(
    client: JiraClient, project_ids: Iterable[int], *, keys: Mapping[str, PermissionType]
) -> AsyncIterator[MyPermissionsAnswer | PermissionCheckAnswer | Refusal]:
    """The loading principal's own permissions: global context, then every project.

    ``GET /mypermissions`` with every key gives the global permissions and, for project permissions, Jira's "held
    in any project". ``POST /permissions/check`` (no ``accountId``: the caller) gives each project permission per
    project, 1000 projects a request. Neither needs a permission, but ``permissions/check`` has no classic OAuth
    scope (only ``read:permission:jira``): for a token without it, ``mypermissions`` is asked project by project.

    Args:
        client: the client.
        project_ids: the projects to ask about.
        keys: from :func:`permission_keys`.

    Yields:
        The global :class:`MyPermissionsAnswer`, then one :class:`PermissionCheckAnswer` per chunk of projects (or
        one :class:`MyPermissionsAnswer` per project); or a ``my_permissions`` refusal instead of the part refused.
    """
    projects = list(dict.fromkeys(int(p) for p in project_ids))
    global_answer = await refusable(MY_PERMISSIONS.name, _my_permissions(client, keys, GLOBAL_CONTEXT))
    if global_answer is not None:
        yield global_answer
    requests = check_requests(keys, projects, global_permissions=False)
    if not requests:
        return
    first = await refusable(MY_PERMISSIONS.name, _check(client, None, requests[0]))
    if isinstance(first, Refusal):
        if isinstance(global_answer, Refusal):
            return  # mypermissions is refused too: asking it per project would only be refused again
        project_keys = {key: kind for key, kind in keys.items() if kind == "PROJECT"}
        by_project = await gather_all(_my_permissions(client, project_keys, project_id) for project_id in projects)
        for project_answer in by_project:
            if project_answer is not None:
                yield project_answer
        return
    yield first
    for check in await gather_all(_check(client, None, request) for request in requests[1:]):
        yield check


async def _my_permissions(
    client: JiraClient, keys: Mapping[str, PermissionType], project_id: int
) -> MyPermissionsAnswer | None:
    """``mypermissions`` in one context; keys the site does not know are dropped. ``None``: the project is gone."""
    params = {} if project_id == GLOBAL_CONTEXT else {"projectId": str(project_id)}
    asked = dict(keys)
    body: Any = None
    while asked:
        try:
            body = await client.get("/rest/api/3/mypermissions", params={**params, "permissions": ",".join(asked)})
            break
        except JiraApiError as error:
            if error.status == 404 and project_id != GLOBAL_CONTEXT:
                return None
            asked = _without_unknown(error, asked)
    return MyPermissionsAnswer(project_id, dict((body or {}).get("permissions") or {}))


async def fetch_permission_checks(
    client: JiraClient,
    account_id: str,
    project_ids: Iterable[int],
    *,
    keys: Mapping[str, PermissionType],
    issue_projects: Mapping[int, int] | None = None,
) -> AsyncIterator[PermissionCheckAnswer | Refusal]:
    """Another account's permissions, through ``POST /rest/api/3/permissions/check`` with its ``accountId``.

    Only a Jira administrator may ask about another account. The first request (every global permission, and the
    project permissions in the first 1000 projects) goes alone: if it is refused, one ``permission_checks:{account
    id}`` :class:`Refusal` is yielded and nothing more is asked. The other requests go concurrently.

    Args:
        client: the client (its principal must hold Administer Jira).
        account_id: the account to check, e.g. the technical user.
        project_ids: the projects to check the project permissions in.
        keys: from :func:`permission_keys`.
        issue_projects: issue id -> project id of issues to check too (issue security and the reporter/assignee
            holders then count, per issue); none by default.

    Yields:
        One :class:`PermissionCheckAnswer` per request; or the refusal.
    """
    issues = dict(issue_projects or {})
    requests = [
        {"accountId": account_id, **request}
        for request in check_requests(keys, project_ids, issue_ids=issues, global_permissions=True)
    ]
    if not requests:
        return
    try:
        first = await _check(client, account_id, requests[0], issues)
    except JiraLabError as error:
        refusal = refusal_of(scoped(PERMISSION_CHECKS.name, account_id), error)
        if refusal is None:
            raise
        yield refusal
        return
    yield first
    for answer in await gather_all(_check(client, account_id, request, issues) for request in requests[1:]):
        yield answer


def check_requests(
    keys: Mapping[str, PermissionType],
    project_ids: Iterable[int],
    *,
    issue_ids: Iterable[int] = (),
    global_permissions: bool,
) -> list[dict[str, Any]]:
    """The ``permissions/check`` bodies asking every key about every project and issue, 1000 ids a body.

    The global permissions, when asked, ride along in the first body.
    """
    global_keys = [key for key, kind in keys.items() if kind == "GLOBAL"] if global_permissions else []
    project_keys = [key for key, kind in keys.items() if kind == "PROJECT"]
    bodies: list[dict[str, Any]] = []
    if project_keys:
        bodies += [
            {"projectPermissions": [{"permissions": project_keys, "projects": chunk}]}
            for chunk in chunked((int(p) for p in project_ids), CHECK_MAX_IDS)
        ]
        bodies += [
            {"projectPermissions": [{"permissions": project_keys, "issues": chunk}]}
            for chunk in chunked((int(i) for i in issue_ids), CHECK_MAX_IDS)
        ]
    if global_keys:
        bodies[:1] = [{"globalPermissions": global_keys, **(bodies[0] if bodies else {})}]
    return bodies


async def _check(
    client: JiraClient, account_id: str | None, request: dict[str, Any], issues: Mapping[int, int] | None = None
) -> PermissionCheckAnswer:
    """One ``permissions/check``; keys the site does not know (a 400 naming them) are dropped and asked again."""
    while True:
        try:
            answer = await client.post("/rest/api/3/permissions/check", json=request)
        except JiraApiError as error:
            request = _request_without_unknown(error, request)
            continue
        asked_issues = {i: issues[i] for i in _asked_issues(request) if issues and i in issues}
        return PermissionCheckAnswer(account_id, request, dict(answer or {}), asked_issues)


def _asked_issues(request: Mapping[str, Any]) -> list[int]:
    return [int(i) for entry in request.get("projectPermissions") or [] for i in entry.get("issues") or []]


def _unknown_keys(error: JiraApiError, keys: Iterable[str]) -> set[str]:
    """The permission keys a 400 names as unknown (``permissions/check`` names them in ``errors``)."""
    if error.status != 400:
        return set()
    text = " ".join([*error.messages, *error.errors, *error.errors.values()])
    return {key for key in keys if key in error.errors or f"'{key}'" in text or f'"{key}"' in text}


def _without_unknown(error: JiraApiError, asked: Mapping[str, PermissionType]) -> dict[str, PermissionType]:
    unknown = _unknown_keys(error, asked)
    if not unknown:
        raise error
    return {key: kind for key, kind in asked.items() if key not in unknown}


def _request_without_unknown(error: JiraApiError, request: dict[str, Any]) -> dict[str, Any]:
    entries = request.get("projectPermissions") or []
    asked = [*(request.get("globalPermissions") or []), *(k for entry in entries for k in entry["permissions"])]
    unknown = _unknown_keys(error, asked)
    if not unknown:
        raise error
    trimmed = dict(request)
    if "globalPermissions" in request:
        trimmed["globalPermissions"] = [k for k in request["globalPermissions"] if k not in unknown]
    trimmed["projectPermissions"] = [
        {**entry, "permissions": [k for k in entry["permissions"] if k not in unknown]}
        for entry in entries
        if any(k not in unknown for k in entry["permissions"])
    ]
    return trimmed


# -- frames --------------------------------------------------------------------------------------------------------


def holder_columns(holder: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``holder_type``/``holder_parameter``/``holder_value`` of a ``PermissionHolder``, as Jira gives them (§14).

    Where Jira leaves ``value`` out, it is filled from what identifies the holder: a group's id from the expanded
    ``holder.group``, and the parameter of the types whose parameter is their value (user, projectRole,
    applicationRole and the custom field types). The group's name stays the parameter.
    """
    if not isinstance(holder, Mapping):
        return {"holder_type": None, "holder_parameter": None, "holder_value": None}
    kind = holder.get("type")
    parameter = holder.get("parameter")
    value = holder.get("value")
    if value is None and kind == "group":
        group = holder.get("group")
        value = group.get("groupId") if isinstance(group, Mapping) else None
    if value is None and kind in _PARAMETER_IS_VALUE:
        value = parameter
    return {
        "holder_type": str(kind) if kind is not None else None,
        "holder_parameter": str(parameter) if parameter is not None else None,
        "holder_value": str(value) if value is not None else None,
    }


def permission_schemes_frames(schemes: Iterable[Mapping[str, Any]], *, site_id: str) -> dict[str, pl.DataFrame]:
    """``permission_schemes`` and ``permission_grants`` rows of ``PermissionScheme`` objects with their grants.

    Returns:
        ``{"permission_schemes": frame, "permission_grants": frame}``.
    """
    scheme_rows: dict[int, dict[str, Any]] = {}
    grant_rows: dict[tuple[int, int], dict[str, Any]] = {}
    for scheme in schemes:
        scheme_id = to_int(scheme.get("id"))
        if scheme_id is None:
            continue
        scheme_rows[scheme_id] = {
            "site_id": site_id,
            "id": scheme_id,
            "name": scheme.get("name"),
            "description": scheme.get("description"),
            "raw": json_text(without(scheme, "permissions")),
        }
        for grant in scheme.get("permissions") or []:
            grant_id = to_int(grant.get("id"))
            if grant_id is None:
                continue
            grant_rows[(scheme_id, grant_id)] = {
                "site_id": site_id,
                "scheme_id": scheme_id,
                "id": grant_id,
                "permission": grant.get("permission"),
                **holder_columns(grant.get("holder")),
                "raw": json_text(grant),
            }
    return {
        PERMISSION_SCHEMES.name: PERMISSION_SCHEMES.frame(scheme_rows.values()),
        PERMISSION_GRANTS.name: PERMISSION_GRANTS.frame(grant_rows.values()),
    }


def project_permission_schemes_frame(answers: Iterable[ProjectPermissionScheme], *, site_id: str) -> pl.DataFrame:
    """``project_permission_schemes`` rows: the scheme each project uses."""
    rows: dict[int, dict[str, Any]] = {}
    for answer in answers:
        scheme_id = to_int(answer.scheme.get("id"))
        if scheme_id is not None:
            rows[answer.project_id] = {"site_id": site_id, "project_id": answer.project_id, "scheme_id": scheme_id}
    return PROJECT_PERMISSION_SCHEMES.frame(rows.values())


def my_permissions_frame(
    answers: Iterable[MyPermissionsAnswer | PermissionCheckAnswer],
    *,
    site_id: str,
    principal_id: str,
    load_id: int | None = None,
) -> pl.DataFrame:
    """``my_permissions`` rows: every permission asked about, held or not, per context.

    ``mypermissions`` answers give the global context (project :data:`~jira_lab.schema.GLOBAL_CONTEXT`; a project
    permission there means "in any project") with their ``type``; ``permissions/check`` answers give each project
    permission per project (held when Jira lists the project).
    """
    rows: dict[tuple[int, str], dict[str, Any]] = {}

    def add(project_id: int, permission: str, kind: str | None, have: bool) -> None:
        rows[(project_id, permission)] = {
            "site_id": site_id,
            "principal_id": principal_id,
            "project_id": project_id,
            "permission": permission,
            "permission_type": kind,
            "have_permission": have,
            "load_id": load_id,
        }

    for answer in answers:
        if isinstance(answer, MyPermissionsAnswer):
            for key, permission in answer.permissions.items():
                kind = permission.get("type")
                add(answer.project_id, str(key), str(kind) if kind else None, bool(permission.get("havePermission")))
            continue
        for check in _checked(answer):
            if check.issue_id == GLOBAL_CONTEXT:
                add(check.project_id, check.permission, check.kind, check.have)
    return MY_PERMISSIONS.frame(rows.values())


def permission_checks_frame(
    answers: Iterable[PermissionCheckAnswer],
    *,
    site_id: str,
    principal_id: str,
    load_id: int | None = None,
    caller_id: str | None = None,
) -> pl.DataFrame:
    """``permission_checks`` rows: every (permission, project or issue) asked about an account, held or not.

    Args:
        answers: the answers of :func:`fetch_permission_checks` (or of the caller's own checks).
        site_id: the site.
        principal_id: the principal that asked.
        load_id: the load.
        caller_id: the account checked by answers without ``account_id`` (the caller); ``principal_id`` by
            default.
    """
    rows: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for answer in answers:
        account = answer.account_id or caller_id or principal_id
        for check in _checked(answer):
            rows[(account, check.permission, check.project_id, check.issue_id)] = {
                "site_id": site_id,
                "account_id": account,
                "permission": check.permission,
                "project_id": check.project_id,
                "issue_id": check.issue_id,
                "have_permission": check.have,
                "principal_id": principal_id,
                "load_id": load_id,
            }
    return PERMISSION_CHECKS.frame(rows.values())


@dataclass(frozen=True, slots=True)
class _Checked:
    permission: str
    kind: PermissionType
    project_id: int
    issue_id: int
    have: bool


def _checked(answer: PermissionCheckAnswer) -> list[_Checked]:
    """Every (permission, project or issue) a check asked about, with whether the answer lists it as held."""
    held_globally = set(answer.answer.get("globalPermissions") or [])
    held_projects: dict[str, set[int]] = {}
    held_issues: dict[str, set[int]] = {}
    for entry in answer.answer.get("projectPermissions") or []:
        permission = str(entry.get("permission"))
        held_projects.setdefault(permission, set()).update(int(p) for p in entry.get("projects") or [])
        held_issues.setdefault(permission, set()).update(int(i) for i in entry.get("issues") or [])
    checked = [
        _Checked(str(key), "GLOBAL", GLOBAL_CONTEXT, GLOBAL_CONTEXT, key in held_globally)
        for key in answer.request.get("globalPermissions") or []
    ]
    for entry in answer.request.get("projectPermissions") or []:
        for key in entry.get("permissions") or []:
            checked += [
                _Checked(str(key), "PROJECT", int(p), GLOBAL_CONTEXT, int(p) in held_projects.get(key, set()))
                for p in entry.get("projects") or []
            ]
            checked += [
                _Checked(
                    str(key),
                    "PROJECT",
                    answer.issue_projects.get(int(i), GLOBAL_CONTEXT),
                    int(i),
                    int(i) in held_issues.get(key, set()),
                )
                for i in entry.get("issues") or []
            ]
    return checked
