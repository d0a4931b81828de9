"""Issue security schemes, their levels, each level's members (holders), and the scheme each project uses.

Endpoints (``shared/reference/jira-endpoints.md`` §13, §14), all but the last for Jira administrators only (403
otherwise, and the classic scopes ``manage:jira-project`` / ``manage:jira-configuration``):

* ``GET /issuesecurityschemes``: every scheme (without levels).
* ``GET /issuesecurityschemes/level`` (OFS-PageBean): every level, with its scheme id and whether it is the default.
* ``GET /issuesecurityschemes/level/member?expand=…`` (OFS-PageBean): every member of every level, as a
  ``PermissionHolder`` (the holder vocabulary of permission grants; see
  :func:`jira_lab.resources.permissions.holder_columns`).
* ``GET /issuesecurityschemes/project`` (OFS-PageBean): scheme-to-project pairs, all projects in one walk.
* ``GET /project/{id}/issuesecuritylevelscheme``: one project's scheme with its levels, which a project
  administrator may read too. It is the fallback when the pairs above are refused, one request per project; a
  project without a scheme answers 404 (or nothing) there.

Ids come as integers from some of these and as strings from others (``SecurityLevel.id``,
``issueSecuritySchemeId``, the member ids): every frame normalises them to integers.

Refusals come back as :class:`~jira_lab.resources.access.Refusal` values (see :mod:`jira_lab.resources.access`):
a technical user without Administer Jira gets ``security_schemes``, ``security_levels`` and
``security_level_members`` refused, and ``project_security_schemes:{project id}`` for each project it does not
administer. Whether it is a member of a level then cannot be told from here; that is what an audit must say.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.errors import JiraApiError, JiraLabError
from jira_lab.pagination import Page, page_bean_pages
from jira_lab.resources.access import Refusal, gather_all, refusable, refusable_pages, refusal_of, scoped
from jira_lab.resources.convert import json_text, to_int, without
from jira_lab.resources.permissions import holder_columns
from jira_lab.schema import table

SECURITY_SCHEMES = table("security_schemes")
SECURITY_LEVELS = table("security_levels")
SECURITY_LEVEL_MEMBERS = table("security_level_members")
PROJECT_SECURITY_SCHEMES = table("project_security_schemes")

#: Items per page to ask the paged security endpoints for (their default is 50; Jira lowers an oversized request
#: and the walk follows what it gives).
SECURITY_PAGE_SIZE = 100
#: the holders' sub-objects (names of groups, roles, users and fields), as for permission grants
MEMBER_EXPAND = "user,group,projectRole,field"


@dataclass(frozen=True, slots=True)
class ProjectSecurityScheme:
    """The issue security scheme one project uses.

    Attributes:
        project_id: the project.
        scheme_id: its scheme.
        scheme: the ``SecurityScheme`` with its levels, when read through the project (the fallback); ``None`` when
            the pair came from ``issuesecurityschemes/project``.
    """

    project_id: int
    scheme_id: int
    scheme: dict[str, Any] | None = None


# -- fetching ------------------------------------------------------------------------------------------------------


async def fetch_security_schemes(client: JiraClient) -> AsyncIterator[Page | Refusal]:
    """Every issue security scheme, from ``GET /rest/api/3/issuesecurityschemes``.

    Yields:
        One page (items: ``SecurityScheme`` objects), or a refusal for ``security_schemes``.
    """
    body = await refusable(SECURITY_SCHEMES.name, client.get("/rest/api/3/issuesecurityschemes"))
    if isinstance(body, Refusal):
        yield body
    else:
        yield Page(list((body or {}).get("issueSecuritySchemes") or []), body)


def fetch_security_levels(client: JiraClient, *, page_size: int = SECURITY_PAGE_SIZE) -> AsyncIterator[Page | Refusal]:
    """Every level of every scheme, in pages of ``GET /rest/api/3/issuesecurityschemes/level``.

    Yields:
        Each page (items: ``SecurityLevel`` objects with ``issueSecuritySchemeId`` and ``isDefault``), or a refusal
        for ``security_levels`` instead of the rest.
    """
    pages = page_bean_pages(client, "/rest/api/3/issuesecurityschemes/level", max_results=page_size)
    return refusable_pages(SECURITY_LEVELS.name, pages)


def fetch_security_level_members(
    client: JiraClient, *, page_size: int = SECURITY_PAGE_SIZE
) -> AsyncIterator[Page | Refusal]:
    """Every member of every level, in pages of ``GET /rest/api/3/issuesecurityschemes/level/member``.

    Yields:
        Each page (items: ``{id, issueSecurityLevelId, issueSecuritySchemeId, holder}``), or a refusal for
        ``security_level_members`` instead of the rest.
    """
    pages = page_bean_pages(
        client,
        "/rest/api/3/issuesecurityschemes/level/member",
        params={"expand": MEMBER_EXPAND},
        max_results=page_size,
    )
    return refusable_pages(SECURITY_LEVEL_MEMBERS.name, pages)


async def fetch_project_security_schemes(
    client: JiraClient, project_ids: Iterable[int], *, page_size: int = SECURITY_PAGE_SIZE
) -> AsyncIterator[ProjectSecurityScheme | Refusal]:
    """The issue security scheme of each project that has one.

    First through ``GET /issuesecurityschemes/project``: every pair in one walk, for Jira administrators. If that
    is refused, through ``GET /project/{id}/issuesecuritylevelscheme`` for each project (concurrently), which a
    project's administrators may read: those answers carry the scheme and its levels.

    Args:
        client: the client.
        project_ids: the projects to ask about one by one if the pairs are refused.
        page_size: pairs per page.

    Yields:
        A :class:`ProjectSecurityScheme` per project with a scheme; a ``project_security_schemes:{project id}``
        refusal for each project Jira would not tell about (in the fallback only).
    """
    pairs: list[ProjectSecurityScheme] = []
    refused = False
    pages = page_bean_pages(client, "/rest/api/3/issuesecurityschemes/project", max_results=page_size)
    async for page in refusable_pages(PROJECT_SECURITY_SCHEMES.name, pages):
        if isinstance(page, Refusal):
            refused = True
            break
        for pair in page.items:
            project_id, scheme_id = to_int(pair.get("projectId")), to_int(pair.get("issueSecuritySchemeId"))
            if project_id is not None and scheme_id is not None:
                pairs.append(ProjectSecurityScheme(project_id, scheme_id))
    if not refused:
        for pair in pairs:
            yield pair
        return
    answers = await gather_all(_project_scheme(client, int(p)) for p in dict.fromkeys(project_ids))
    for answer in answers:
        if answer is not None:
            yield answer


async def _project_scheme(client: JiraClient, project_id: int) -> ProjectSecurityScheme | Refusal | None:
    try:
        body = await client.get(f"/rest/api/3/project/{project_id}/issuesecuritylevelscheme")
    except JiraLabError as error:
        if isinstance(error, JiraApiError) and error.status == 404:
            return None  # the project was listed, so it exists and is visible: it has no issue security scheme
        refusal = refusal_of(scoped(PROJECT_SECURITY_SCHEMES.name, project_id), error)
        if refusal is None:
            raise
        return refusal
    scheme_id = to_int((body or {}).get("id"))
    return None if scheme_id is None else ProjectSecurityScheme(project_id, scheme_id, dict(body))


# -- frames --------------------------------------------------------------------------------------------------------


def security_schemes_frame(schemes: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``security_schemes`` rows of ``SecurityScheme`` objects (with or without their levels)."""
    rows: dict[int, dict[str, Any]] = {}
    for scheme in schemes:
        scheme_id = to_int(scheme.get("id"))
        if scheme_id is None:
            continue
        default_level = scheme.get("defaultSecurityLevelId", scheme.get("defaultLevel"))
        rows[scheme_id] = {
            "site_id": site_id,
            "id": scheme_id,
            "name": scheme.get("name"),
            "description": scheme.get("description"),
            "default_security_level_id": to_int(default_level),
            "raw": json_text(without(scheme, "levels")),
        }
    return SECURITY_SCHEMES.frame(rows.values())


def levels_of_schemes(schemes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The levels inside ``SecurityScheme`` objects, each with its scheme's id and whether it is the default.

    For the fallback: ``project/{id}/issuesecuritylevelscheme`` nests levels without those two fields.
    """
    levels: list[dict[str, Any]] = []
    for scheme in schemes:
        default_level = to_int(scheme.get("defaultSecurityLevelId"))
        for level in scheme.get("levels") or []:
            levels.append(
                {
                    **level,
                    "issueSecuritySchemeId": level.get("issueSecuritySchemeId", scheme.get("id")),
                    "isDefault": level.get("isDefault", to_int(level.get("id")) == default_level),
                }
            )
    return levels


def security_levels_frame(levels: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``security_levels`` rows of ``SecurityLevel`` objects (string ids made integers)."""
    rows: dict[int, dict[str, Any]] = {}
    for level in levels:
        level_id = to_int(level.get("id"))
        if level_id is None:
            continue
        rows[level_id] = {
            "site_id": site_id,
            "id": level_id,
            "scheme_id": to_int(level.get("issueSecuritySchemeId")),
            "name": level.get("name"),
            "description": level.get("description"),
            "is_default": level.get("isDefault"),
            "raw": json_text(level),
        }
    return SECURITY_LEVELS.frame(rows.values())


def security_level_members_frame(members: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``security_level_members`` rows: one per level and member, the holder as Jira gives it (ids made integers)."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for member in members:
        level_id, member_id = to_int(member.get("issueSecurityLevelId")), to_int(member.get("id"))
        if level_id is None or member_id is None:
            continue
        rows[(level_id, member_id)] = {
            "site_id": site_id,
            "level_id": level_id,
            "id": member_id,
            "scheme_id": to_int(member.get("issueSecuritySchemeId")),
            **holder_columns(member.get("holder")),
            "raw": json_text(member),
        }
    return SECURITY_LEVEL_MEMBERS.frame(rows.values())


def project_security_schemes_frame(answers: Iterable[ProjectSecurityScheme], *, site_id: str) -> pl.DataFrame:
    """``project_security_schemes`` rows: the issue security scheme each project uses."""
    rows = {
        answer.project_id: {"site_id": site_id, "project_id": answer.project_id, "scheme_id": answer.scheme_id}
        for answer in answers
    }
    return PROJECT_SECURITY_SCHEMES.frame(rows.values())
