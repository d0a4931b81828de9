"""Helpers for contract tests against Atlassian's official OpenAPI spec of the Jira Cloud platform REST API v3.

The spec is found through the ``JIRA_OPENAPI_SPEC`` environment variable, else at
``../shared/jira-openapi/jira-platform-v3.json`` relative to the repository root (where CI has it). It is loaded once.

:func:`assert_matches_spec` validates a response body against the operation's response schema with
openapi-schema-validator's OpenAPI 3.0 validator (the *read* flavour: a response must carry its ``readOnly`` required
properties and may not carry ``writeOnly`` ones; ``nullable``, ``additionalProperties: false``, ``enum`` and
``int32``/``int64`` ranges are enforced as declared). ``$ref`` resolves into the spec itself through a ``referencing``
registry, so nothing is hand-validated.

Where the helper goes beyond the literal spec, deliberately, narrowly and in the open:

* **date-time**: the spec declares Jira's timestamps ``format: date-time`` (RFC 3339, offset ``+00:00``), yet every
  one of its own examples, and real Jira, write the offset without a colon: ``2020-03-31T16:43:50.000+0000``. The
  format checker accepts RFC 3339 *and* that ``+hhmm`` form, nothing looser (see :data:`SPEC_QUIRKS`).
* **error bodies**: many error statuses list only a description. For those (and for error statuses the operation
  does not list at all: Jira's router and the API gateway answer 401/404/405/429/5xx for any operation) the body must
  be Jira's ``ErrorCollection`` or the API gateway's ``{"code": <status>, "message": "..."}``. The gateway's shape is
  also accepted where the spec documents a schema for an error status, because the gateway answers (bad token,
  missing scope) before the operation runs.
* **errata**: a few schemas contradict the spec's own examples or parameter descriptions (a property the schema
  forbids, a ``null`` it does not allow). :data:`SPEC_ERRATA` lists each with its evidence; a test checks the evidence
  is in the spec and the schema is still wrong. Nothing else is corrected: where only real Jira (not the spec) shows
  a shape, the simulator follows the spec.

The module also builds the site the contract and scope tests run on (:func:`contract_world`): ``generate_site("tiny",
0)`` plus an all-seeing analyst and a restricted user.
"""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import httpx
from jsonschema import FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError, best_match  # type: ignore[import-untyped]
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from jira_lab.sim import Holder, Site
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import (
    GLOBAL_PERMISSIONS,
    PROJECT_PERMISSIONS,
    ApplicationRole,
    Comment,
    Group,
    Issue,
    PermissionGrant,
    Project,
    RoleActors,
    SecurityLevelMember,
    User,
)

SPEC_ENV = "JIRA_OPENAPI_SPEC"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO_ROOT.parent / "shared" / "jira-openapi" / "jira-platform-v3.json"
#: the URI the spec is registered under; every ``#/components/...`` reference resolves inside it
SPEC_URI = "urn:jira-platform-v3"

#: The API gateway's own error body (bad or expired token, missing scope, unknown cloud id).
GATEWAY_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "additionalProperties": False,
}

#: Where the spec disagrees with what Jira (and the spec's own examples) send, and what the helper does about it.
SPEC_QUIRKS: dict[str, str] = {
    "date-time offset": (
        "Timestamps are declared `format: date-time` (RFC 3339 wants `+00:00`), but Jira and every example in the "
        "spec write `+0000`; the format checker accepts both forms and nothing else."
    ),
}


@dataclass(frozen=True, slots=True)
class Erratum:
    """A schema error of the spec that the spec itself contradicts, and its narrow correction.

    ``kind`` ``"missing"``: the schema forbids a property (``additionalProperties: false``) that the spec shows;
    ``definition`` declares it. ``"nullable"``: the schema declares a property non-nullable while the spec's examples
    send ``null``; the correction adds ``nullable: true`` and nothing else. ``evidence`` must occur in a text of the
    ``evidence_operation`` (its example or a parameter's description, see :func:`operation_texts`), and the schema
    must still be wrong: a test checks both, so an erratum is dropped as soon as Atlassian fixes the spec.
    """

    schema: str
    property: str
    kind: Literal["missing", "nullable"]
    evidence_operation: tuple[str, str]
    evidence: str
    why: str
    definition: dict[str, Any] = field(default_factory=dict)

    def corrected(self, original: dict[str, Any] | None) -> dict[str, Any]:
        if self.kind == "missing":
            return self.definition
        assert original is not None
        return {**original, "nullable": True}


#: The spec's schema errors the contract tests correct, narrowly and openly (reported to the lead, not hidden).
SPEC_ERRATA: tuple[Erratum, ...] = (
    Erratum(
        "AuditRecordBean",
        "authorAccountId",
        "missing",
        ("GET", "/rest/api/3/auditing/record"),
        '"authorAccountId":"5ab8f18d741e9c2c7e9d4538"',
        "The schema has only the deprecated authorKey, but the operation's own example carries authorAccountId.",
        {"type": "string"},
    ),
    Erratum(
        "PermissionHolder",
        "user",
        "missing",
        ("GET", "/rest/api/3/issuesecurityschemes/{issueSecuritySchemeId}/members"),
        '"expand":"user","type":"user","user":{',
        "expand=user adds holder.user (the operation's example shows it), yet the schema forbids it.",
        {"$ref": "#/components/schemas/UserDetails"},
    ),
    Erratum(
        "PermissionHolder",
        "group",
        "missing",
        ("GET", "/rest/api/3/permissionscheme"),
        "`group` Returns information about the group that is granted the permission.",
        "expand=group adds holder.group (the expand parameter documents it), yet the schema forbids it.",
        {"$ref": "#/components/schemas/GroupName"},
    ),
    Erratum(
        "PermissionHolder",
        "projectRole",
        "missing",
        ("GET", "/rest/api/3/permissionscheme"),
        "`projectRole` Returns information about the project role granted the permission.",
        "expand=projectRole adds holder.projectRole (the expand parameter documents it), yet the schema forbids it.",
        {"$ref": "#/components/schemas/ProjectRole"},
    ),
    Erratum(
        "PermissionHolder",
        "field",
        "missing",
        ("GET", "/rest/api/3/permissionscheme"),
        "`field` Returns information about the custom field granted the permission.",
        "expand=field adds holder.field (the expand parameter documents it), yet the schema forbids it.",
        {"$ref": "#/components/schemas/FieldDetails"},
    ),
    Erratum(
        "ChangeDetails",
        "from",
        "nullable",
        ("GET", "/rest/api/3/issue/{issueIdOrKey}/changelog"),
        '"from":null,',
        'The operation\'s example sends `"from":null` (a field that had no value), yet the schema says non-null.',
    ),
    Erratum(
        "ChangeDetails",
        "to",
        "nullable",
        ("GET", "/rest/api/3/issue/{issueIdOrKey}/changelog"),
        '"to":null,',
        'The operation\'s example sends `"to":null` (a field that was cleared), yet the schema says non-null.',
    ),
)

_JIRA_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$")


class SpecNotFoundError(FileNotFoundError):
    """The OpenAPI spec is not where the tests look for it."""


def spec_path() -> Path:
    """The spec file: ``$JIRA_OPENAPI_SPEC`` if set, else the shared copy beside the repository."""
    override = os.environ.get(SPEC_ENV)
    path = Path(override) if override else DEFAULT_SPEC
    if not path.is_file():
        raise SpecNotFoundError(
            f"Jira's OpenAPI spec was not found at {path}. Contract tests need it: set {SPEC_ENV} to the file "
            f"(currently {override or 'unset'}), or put it at {DEFAULT_SPEC} (../shared/jira-openapi/"
            "jira-platform-v3.json relative to the repository root, where CI has it)."
        )
    return path


@cache
def load_spec() -> dict[str, Any]:
    """The parsed spec, read once per test session."""
    spec: dict[str, Any] = json.loads(spec_path().read_text())
    return spec


def spec_operation(method: str, template: str) -> dict[str, Any]:
    """The spec's operation object for ``METHOD template``; fails if the spec has no such operation."""
    operation = load_spec()["paths"].get(template, {}).get(method.lower())
    assert operation is not None, f"the OpenAPI spec has no operation {method.upper()} {template}"
    result: dict[str, Any] = operation
    return result


@cache
def corrected_spec() -> dict[str, Any]:
    """The spec with :data:`SPEC_ERRATA` applied: what responses are validated against."""
    spec = copy.deepcopy(load_spec())
    for erratum in SPEC_ERRATA:
        properties = spec["components"]["schemas"][erratum.schema]["properties"]
        properties[erratum.property] = erratum.corrected(properties.get(erratum.property))
    return spec


def operation_texts(method: str, template: str) -> list[str]:
    """Every string of an operation object: descriptions, and examples (which the spec stores as JSON text)."""
    found: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(spec_operation(method, template))
    return found


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = DRAFT4.create_resource(corrected_spec())
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def _is_date_time(value: object) -> bool:
    """RFC 3339 or Jira's ``+hhmm`` offset; a real calendar moment either way."""
    if not isinstance(value, str):
        return True  # a format only constrains strings; `type` reports the rest
    if not _JIRA_DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@cache
def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checkers = dict(oas30_format_checker.checkers)
    checker.checks("date-time")(_is_date_time)
    return checker


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


@cache
def _validator(pointer: str) -> Any:
    """A validator for the schema at ``pointer`` inside the spec (the pointer keeps ``$ref`` bases right)."""
    return OAS30ReadValidator(
        {"$ref": f"{SPEC_URI}#/{pointer}"}, registry=_registry(), format_checker=_format_checker()
    )


@cache
def _standalone_validator(schema_json: str) -> Any:
    return OAS30ReadValidator(json.loads(schema_json), registry=_registry(), format_checker=_format_checker())


def _errors(validator: Any, body: Any) -> ValidationError | None:
    error: ValidationError | None = best_match(validator.iter_errors(body))
    return error


def _json_schema_pointer(responses: Mapping[str, Any], status: int) -> tuple[str | None, str | None]:
    """(status key used, pointer to its JSON schema or ``None``) for a response status of an operation."""
    key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
    if key is None:
        return None, None
    content = responses[key].get("content") or {}
    for media_type, media in content.items():
        if "json" in media_type and media.get("schema"):
            return key, _pointer("responses", key, "content", media_type, "schema")
    return key, None


def _describe(error: ValidationError) -> str:
    location = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"at {location}: {error.message}"


def _is_gateway_error(status: int, body: Any) -> bool:
    return _errors(_standalone_validator(json.dumps(GATEWAY_ERROR_SCHEMA)), body) is None and body.get("code") == status


def _error_collection_problem(body: Any) -> str | None:
    error = _errors(
        _standalone_validator(json.dumps({"$ref": f"{SPEC_URI}#/components/schemas/ErrorCollection"})), body
    )
    return None if error is None else _describe(error)


def assert_matches_spec(method: str, template: str, status: int, body: Any) -> None:
    """Fail unless ``body`` is what the spec allows ``METHOD template`` to answer with ``status``.

    * A status the operation documents with a JSON schema: the body validates against that schema (an error status
      may instead carry the API gateway's ``{"code", "message"}`` body, since the gateway answers first).
    * A 2xx status the operation does not document, or documents without a schema while a body came back: failure.
    * An error status (4xx/5xx) without a schema, documented or not: the body is Jira's ``ErrorCollection``
      (``{"errorMessages": [...], "errors": {...}}``) or the gateway's ``{"code": <status>, "message": "..."}``.
      An error without a body fails: Jira and the gateway always say what went wrong.

    Args:
        method: HTTP method, any case.
        template: the spec's path key, e.g. ``/rest/api/3/issue/{issueIdOrKey}``.
        status: the response's HTTP status.
        body: the decoded JSON body (``None`` for an empty one).
    """
    operation = spec_operation(method, template)
    key, pointer = _json_schema_pointer(operation["responses"], status)
    where = f"{method.upper()} {template} -> {status}"
    if status < 400:
        assert key is not None, (
            f"{where}: the spec does not document this status (documents {list(operation['responses'])})"
        )
        if pointer is None:
            assert body is None, f"{where}: the spec documents no body for this status, got {str(body)[:200]}"
            return
        error = _errors(_validator(_pointer("paths", template, method.lower()) + "/" + pointer), body)
        assert error is None, f"{where}: body does not match the spec {_describe(error)}"
        return
    assert body is not None, f"{where}: an error answer without a body"
    if isinstance(body, dict) and _is_gateway_error(status, body):
        return
    if pointer is not None:
        error = _errors(_validator(_pointer("paths", template, method.lower()) + "/" + pointer), body)
        assert error is None, f"{where}: error body does not match the spec {_describe(error)}"
        return
    problem = _error_collection_problem(body)
    assert problem is None, (
        f"{where}: the spec has no schema for this status, and the body is neither an ErrorCollection "
        f"({problem}) nor the gateway's {{code, message}}: {str(body)[:300]}"
    )


def response_json(response: httpx.Response) -> Any:
    """The response's JSON body (``None`` when empty), failing unless it is declared and parses as JSON."""
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/json"), f"non-JSON content type {content_type!r}"
    return response.json()


def assert_response_matches_spec(method: str, template: str, response: httpx.Response) -> Any:
    """:func:`assert_matches_spec` on an httpx response; returns its decoded body."""
    body = response_json(response)
    assert_matches_spec(method, template, response.status_code, body)
    return body


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """The path for ``template`` with each ``{name}`` replaced by ``values[name]`` (a missing name fails)."""

    def value_for(found: re.Match[str]) -> str:
        name = found.group(1)
        assert name in values, f"no value for path parameter {{{name}}} of {template}"
        return str(values[name])

    return re.sub(r"\{([^}]+)\}", value_for, template)


# -- the site the contract and scope tests run on ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """An account the tests call the simulator as, with the API token its Basic auth uses."""

    account_id: str
    email: str
    api_token: str


@dataclass(frozen=True, slots=True)
class ContractWorld:
    """A site with two well-known callers and the ids the contract table fills requests with.

    ``analyst`` sees everything: Jira administrator, member of every group, actor of every role in every project,
    holder of every project permission and member of every issue security level. ``restricted`` holds Browse
    Projects (through a user grant) in the projects of one permission scheme only, and belongs to no group or role,
    so hidden issues, comments and worklogs are left out for it and admin-only operations refuse it.
    """

    site: Site
    analyst: Caller
    restricted: Caller
    #: an issue the restricted caller may browse, with comments (one of them restricted), worklogs and changes
    issue: Issue
    #: an issue with a security level the restricted caller is not a member of
    secured_issue: Issue
    project: Project
    role_id: int
    permission_scheme_id: int
    security_scheme_id: int
    security_level_id: int
    group_id: str
    #: an ordinary account (neither caller)
    account_id: str
    application_role_key: str
    custom_field_id: str

    @property
    def restricted_comment(self) -> Comment:
        return next(c for c in self.issue.comments if c.visibility is not None)


def contract_world() -> ContractWorld:
    """``generate_site("tiny", 0)`` with the two callers added."""
    site = generate_site("tiny", 0)
    analyst = add_analyst(site)
    restricted = add_restricted_user(site)
    return _world(site, analyst, restricted)


def _next_id(existing: Iterable[int]) -> int:
    return max(existing, default=10000) + 1


def _new_caller(site: Site, display_name: str) -> Caller:
    slug = display_name.lower().replace(" ", ".")
    account_id = "712020:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site.name}/{slug}"))
    caller = Caller(account_id, f"{slug}@{site.name}.example", f"{slug}-token")
    site.users[account_id] = User(account_id, display_name, caller.email, api_token=caller.api_token)
    return caller


def add_analyst(site: Site) -> Caller:
    """Add an account that sees everything on ``site`` (see :class:`ContractWorld`)."""
    analyst = _new_caller(site, "Contract Analyst")
    for members in site.group_members.values():
        members.add(analyst.account_id)
    group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site.name}/group/contract-analysts"))
    site.groups[group_id] = Group(group_id, "contract-analysts")
    site.group_members[group_id] = {analyst.account_id}
    for permission in GLOBAL_PERMISSIONS:
        site.global_permissions.setdefault(permission, set()).add(group_id)
    if not site.application_roles:
        site.application_roles["jira-software"] = ApplicationRole("jira-software", "Jira Software")
    for role in site.application_roles.values():
        role.group_ids.append(group_id)
    grant_id = _next_id(g.id for s in site.permission_schemes.values() for g in s.grants)
    for scheme in site.permission_schemes.values():
        for permission in PROJECT_PERMISSIONS:
            scheme.grants.append(PermissionGrant(grant_id, permission, Holder("user", analyst.account_id)))
            grant_id += 1
    levels = [level for scheme in site.security_schemes.values() for level in scheme.levels]
    first_member_id = _next_id(m.id for level in levels for m in level.members)
    for member_id, level in enumerate(levels, start=first_member_id):
        level.members.append(SecurityLevelMember(member_id, Holder("user", analyst.account_id)))
    for project in site.projects.values():
        for role_id in site.project_roles:
            project.role_actors.setdefault(role_id, RoleActors()).account_ids.add(analyst.account_id)
    return analyst


def rich_issue(site: Site) -> Issue:
    """The unsecured issue with the most comments, worklogs and changes, one comment being restricted."""
    candidates = [
        issue
        for issue in site.issues.values()
        if issue.security_level_id is None
        and any(c.visibility is not None for c in issue.comments)
        and issue.worklogs
        and issue.changelog
    ]
    assert candidates, f"site {site.name!r} has no unsecured issue with a restricted comment, worklogs and changes"
    return max(candidates, key=lambda i: (len(i.comments) + len(i.worklogs) + len(i.changelog), -i.id))


def add_restricted_user(site: Site) -> Caller:
    """Add an account that may browse the projects of :func:`rich_issue`'s permission scheme, and nothing more."""
    restricted = _new_caller(site, "Contract Restricted")
    scheme = site.permission_schemes[site.projects[rich_issue(site).project_id].permission_scheme_id]
    grant_id = _next_id(g.id for s in site.permission_schemes.values() for g in s.grants)
    scheme.grants.append(PermissionGrant(grant_id, "BROWSE_PROJECTS", Holder("user", restricted.account_id)))
    return restricted


def _world(site: Site, analyst: Caller, restricted: Caller) -> ContractWorld:
    issue = rich_issue(site)
    secured = [i for i in site.issues.values() if i.security_level_id is not None]
    assert secured, f"site {site.name!r} has no issue with a security level"
    secured_issue = secured[0]
    assert secured_issue.security_level_id is not None
    found_level = site.security_level(secured_issue.security_level_id)
    assert found_level is not None
    project = site.projects[issue.project_id]
    roles_with_actors = [role_id for role_id, actors in project.role_actors.items() if actors.group_ids]
    restricted_groups = [
        c.visibility.identifier
        for i in site.issues.values()
        for c in i.comments
        if c.visibility and c.visibility.type == "group"
    ]
    others = [
        u.account_id
        for u in site.users.values()
        if u.active and u.account_id not in {analyst.account_id, restricted.account_id}
    ]
    assert roles_with_actors and restricted_groups and others and site.custom_fields
    return ContractWorld(
        site=site,
        analyst=analyst,
        restricted=restricted,
        issue=issue,
        secured_issue=secured_issue,
        project=project,
        role_id=roles_with_actors[0],
        permission_scheme_id=project.permission_scheme_id,
        security_scheme_id=found_level[0].id,
        security_level_id=found_level[1].id,
        group_id=restricted_groups[0],
        account_id=others[0],
        application_role_key=next(iter(site.application_roles)),
        custom_field_id=next(iter(site.custom_fields)),
    )


@dataclass(frozen=True, slots=True)
class SpecScopes:
    """The OAuth scopes the spec lists for an operation: classic (``state: Current``) and granular (``Beta``)."""

    classic: frozenset[str]
    granular: frozenset[str]

    @property
    def any(self) -> bool:
        return bool(self.classic or self.granular)


def spec_scopes(method: str, template: str) -> SpecScopes:
    """Read straight from the spec's ``x-atlassian-oauth2-scopes`` (else the ``OAuth2`` entry of ``security``)."""
    operation = spec_operation(method, template)
    by_state = {
        entry.get("state"): frozenset(entry.get("scopes", []))
        for entry in operation.get("x-atlassian-oauth2-scopes", [])
    }
    classic = by_state.get("Current", frozenset())
    if "x-atlassian-oauth2-scopes" not in operation:
        classic = frozenset(s for requirement in operation.get("security", []) for s in requirement.get("OAuth2", []))
    return SpecScopes(classic, by_state.get("Beta", frozenset()))
