"""Projects, project roles, and each project's role actors (users and groups).

Endpoints (``shared/reference/jira-endpoints.md`` §10, §11):

* ``GET /project/search?expand=lead,description`` (OFS-PageBean, at most 100 a page): the projects the caller may
  *view* (Browse Projects, Administer Projects or Administer Jira there). A project it cannot view does not exist
  for it; Jira says nothing.
* ``GET /project/{id}/role``: ``{roleName: roleURL}``, the project's roles (the role id is the URL's last segment).
  Needs Administer Projects in *any* project, or Administer Jira; otherwise 401 "You cannot edit the configuration
  of this project."
* ``GET /project/{id}/role/{roleId}``: the role with *this project's* actors, user actors by account id and group
  actors by group id. Needs Administer Projects in *this* project, or Administer Jira (401 otherwise).

Roles are global in Jira Cloud, but each project has its own actors per role, so actors are read per project and
role. The role map is the same for every company-managed project and is read once; team-managed projects have
roles of their own, and their maps are read each. Refusals come back as
:class:`~jira_lab.resources.access.Refusal` values: the first map is read alone, and if it is refused (a
permission that holds site-wide), ``project_roles`` and ``role_actors`` are refused once and nothing more is
asked; a project whose roles alone are refused gives one ``role_actors:{project id}``. A map costs 1 point plus 2
per role, a role read 1 plus 2 per actor, so neither is read twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from jira_lab.client import JiraClient
from jira_lab.errors import JiraApiError, JiraLabError
from jira_lab.pagination import Page, page_bean_pages
from jira_lab.resources.access import Refusal, gather_all, refusable_pages, refusal_of, scoped
from jira_lab.resources.convert import account_id, json_text, to_int, without
from jira_lab.schema import table

PROJECTS = table("projects")
PROJECT_ROLES = table("project_roles")
ROLE_ACTORS = table("role_actors")

#: ``project/search`` returns at most 100 projects a page.
PROJECTS_PAGE_SIZE = 100
#: what the project rows need beyond the defaults: the lead (``lead_account_id``) and the description (``raw``)
PROJECT_EXPAND = "lead,description"

#: Jira's actor types, stored as ``user`` and ``group`` in ``role_actors.actor_type``
USER_ACTOR = "atlassian-user-role-actor"
GROUP_ACTOR = "atlassian-group-role-actor"


@dataclass(frozen=True, slots=True)
class ProjectRolePage:
    """One ``GET /project/{id}/role/{roleId}`` answer: the role (``ProjectRole``) with this project's actors."""

    project_id: int
    role: dict[str, Any]


# -- fetching ------------------------------------------------------------------------------------------------------


def fetch_projects(client: JiraClient, *, page_size: int = PROJECTS_PAGE_SIZE) -> AsyncIterator[Page | Refusal]:
    """Every project the caller may view, with lead and description, in pages of ``GET /rest/api/3/project/search``.

    Yields:
        Each page (items: ``Project`` objects); or a :class:`Refusal` for ``projects`` instead of the rest.
    """
    pages = page_bean_pages(
        client, "/rest/api/3/project/search", params={"expand": PROJECT_EXPAND}, max_results=page_size
    )
    return refusable_pages(PROJECTS.name, pages)


async def fetch_role_actors(
    client: JiraClient, project_ids: Iterable[int], *, team_managed: Iterable[int] = ()
) -> AsyncIterator[ProjectRolePage | Refusal]:
    """Every role of every project, with that project's actors.

    Company-managed projects all have the site's roles (roles are global in Jira Cloud), so one role map serves
    them all: it is read once, from the first of them, alone (it also tells whether the caller may read roles at
    all). A team-managed project has roles of its own: its map is read too. The projects' roles are then read
    concurrently (the client caps requests in flight) and come out in the order given. Within a project the first
    role is read alone: a project the caller does not administer refuses all of them alike. A project or role
    deleted meanwhile (404) is skipped.

    Args:
        client: the client.
        project_ids: the projects' ids.
        team_managed: the ids of team-managed projects among them (see :func:`team_managed_ids`).

    Yields:
        A :class:`ProjectRolePage` per project and role; or refusals: ``project_roles`` and ``role_actors`` when the
        first role map is refused (nothing else is asked then), ``role_actors:{project id}`` for a project whose
        roles alone are refused.
    """
    ids = list(dict.fromkeys(int(project_id) for project_id in project_ids))
    if not ids:
        return
    own_roles = {int(project_id) for project_id in team_managed}
    probe = next((project_id for project_id in ids if project_id not in own_roles), ids[0])
    probe_map: Mapping[str, Any] | None = None
    try:
        probe_map = await client.get(_roles_path(probe))
    except JiraLabError as error:
        if not _is_not_found(error):
            refusal = refusal_of(ROLE_ACTORS.name, error)
            if refusal is None:
                raise
            yield refusal.for_resource(PROJECT_ROLES.name)
            yield refusal
            return
        ids.remove(probe)  # deleted meanwhile; the others read their own maps
    shared_map = probe_map if probe not in own_roles else None

    def role_map(project_id: int) -> Mapping[str, Any] | None:
        if project_id == probe:
            return probe_map
        return None if project_id in own_roles else shared_map

    projects = await gather_all(_project_role_pages(client, project_id, role_map(project_id)) for project_id in ids)
    for pages in projects:
        for item in pages:
            yield item


def team_managed_ids(projects: Iterable[Mapping[str, Any]]) -> set[int]:
    """The ids of the team-managed (``simplified``, style ``next-gen``) projects among ``Project`` objects."""
    return {
        project_id
        for project in projects
        if (project.get("simplified") is True or project.get("style") == "next-gen")
        and (project_id := to_int(project.get("id"))) is not None
    }


def _roles_path(project_id: int) -> str:
    return f"/rest/api/3/project/{project_id}/role"


def _is_not_found(error: JiraLabError) -> bool:
    return isinstance(error, JiraApiError) and error.status == 404


async def _project_role_pages(
    client: JiraClient, project_id: int, role_map: Mapping[str, Any] | None
) -> list[ProjectRolePage | Refusal]:
    """The roles of one project with its actors, or its refusal; ``role_map`` when it was read already."""
    try:
        if role_map is None:
            role_map = await client.get(_roles_path(project_id))
        role_ids = role_ids_of(role_map or {})
        if not role_ids:
            return []
        first = await _role(client, project_id, role_ids[0])
        rest = await gather_all(_role(client, project_id, role_id) for role_id in role_ids[1:])
    except JiraLabError as error:
        if _is_not_found(error):
            return []
        refusal = refusal_of(scoped(ROLE_ACTORS.name, project_id), error)
        if refusal is None:
            raise
        return [refusal]
    return [ProjectRolePage(project_id, role) for role in (first, *rest) if role is not None]


async def _role(client: JiraClient, project_id: int, role_id: int) -> dict[str, Any] | None:
    """One role with the project's actors; ``None`` when the role was deleted meanwhile."""
    try:
        answer = await client.get(f"{_roles_path(project_id)}/{role_id}")
    except JiraApiError as error:
        if error.status == 404:
            return None
        raise
    return dict(answer)


def role_ids_of(role_map: Mapping[str, Any]) -> list[int]:
    """The role ids of a ``{roleName: roleURL}`` map, from each URL's last segment, in the map's order."""
    ids: list[int] = []
    for url in role_map.values():
        role_id = to_int(str(url).rstrip("/").rsplit("/", 1)[-1]) if url else None
        if role_id is not None and role_id not in ids:
            ids.append(role_id)
    return ids


# -- frames --------------------------------------------------------------------------------------------------------


def projects_frame(projects: Iterable[Mapping[str, Any]], *, site_id: str) -> pl.DataFrame:
    """``projects`` rows of ``Project`` objects, once per id (the last one wins)."""
    rows: dict[int, dict[str, Any]] = {}
    for project in projects:
        project_id = to_int(project.get("id"))
        if project_id is None:
            continue
        rows[project_id] = {
            "site_id": site_id,
            "id": project_id,
            "key": project.get("key"),
            "name": project.get("name"),
            "project_type_key": project.get("projectTypeKey"),
            "style": project.get("style"),
            "simplified": project.get("simplified"),
            "is_private": project.get("isPrivate"),
            "archived": project.get("archived"),
            "lead_account_id": account_id(project.get("lead")),
            "raw": json_text(project),
        }
    return PROJECTS.frame(rows.values())


def project_roles_frame(pages: Iterable[ProjectRolePage], *, site_id: str) -> pl.DataFrame:
    """``project_roles`` rows: each role once (roles are global), without its per-project actors."""
    rows: dict[int, dict[str, Any]] = {}
    for page in pages:
        role_id = to_int(page.role.get("id"))
        if role_id is None or role_id in rows:
            continue
        rows[role_id] = {
            "site_id": site_id,
            "id": role_id,
            "name": page.role.get("name"),
            "description": page.role.get("description"),
            "raw": json_text(without(page.role, "actors", "self", "scope")),
        }
    return PROJECT_ROLES.frame(rows.values())


def role_actors_frame(pages: Iterable[ProjectRolePage], *, site_id: str) -> pl.DataFrame:
    """``role_actors`` rows: one per project, role and actor.

    A user actor is keyed by its account id, a group actor by its group id (its name, in ``actor_name``, can
    change). An actor of a type Jira may add later keeps that type and is keyed by its actor id, so nothing is lost.
    """
    rows: dict[tuple[int, int, str, str], dict[str, Any]] = {}
    for page in pages:
        role_id = to_int(page.role.get("id"))
        if role_id is None:
            continue
        for actor in page.role.get("actors") or []:
            identity = _actor_identity(actor)
            if identity is None:
                continue
            actor_type, actor_id, actor_name = identity
            rows[(page.project_id, role_id, actor_type, actor_id)] = {
                "site_id": site_id,
                "project_id": page.project_id,
                "role_id": role_id,
                "actor_type": actor_type,
                "actor_id": actor_id,
                "actor_name": actor_name,
                "role_actor_id": to_int(actor.get("id")),
                "raw": json_text(actor),
            }
    return ROLE_ACTORS.frame(rows.values())


def role_actors_scope(pages: Iterable[ProjectRolePage], *, site_id: str) -> pl.DataFrame:
    """``(site_id, project_id, role_id)`` of every role read in a project: the ``scope`` for replacing its actors.

    A role read whole lists all of its actors in that project, so stored actors it no longer lists have left it.
    """
    walked = dict.fromkeys(
        (page.project_id, role_id) for page in pages if (role_id := to_int(page.role.get("id"))) is not None
    )
    return pl.DataFrame(
        {
            "site_id": [site_id] * len(walked),
            "project_id": [project_id for project_id, _ in walked],
            "role_id": [role_id for _, role_id in walked],
        },
        schema={"site_id": pl.String(), "project_id": pl.Int64(), "role_id": pl.Int64()},
    )


def _actor_identity(actor: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """``(actor_type, actor_id, actor_name)`` of a ``RoleActor``; ``None`` when it names nobody."""
    kind = str(actor.get("type") or "")
    if kind == USER_ACTOR:
        user = actor.get("actorUser") or {}
        account = user.get("accountId")
        return ("user", str(account), actor.get("displayName")) if account else None
    if kind == GROUP_ACTOR:
        group = actor.get("actorGroup") or {}
        group_id = group.get("groupId")
        name = group.get("name") or actor.get("name") or actor.get("displayName")
        return ("group", str(group_id), name) if group_id else None
    actor_id = actor.get("id")
    return (kind or "unknown", str(actor_id), actor.get("displayName")) if actor_id is not None else None
