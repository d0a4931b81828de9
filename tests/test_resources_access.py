"""Refusals: which errors are a principal being refused (recorded), and which must end the load (raised)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from resource_helpers import answers, principal, refusals, without_admin

from jira_lab import store
from jira_lab.errors import JiraApiError, JiraConnectionError, MissingScopeError, QuotaExhaustedError, RateLimitedError
from jira_lab.pagination import Page
from jira_lab.resources.access import Refusal, gather_all, refusable, refusable_pages, refusal_of, scoped
from jira_lab.resources.permissions import (
    fetch_permission_schemes,
    fetch_project_permission_schemes,
    permission_schemes_frames,
)
from jira_lab.resources.projects import fetch_projects, fetch_role_actors
from jira_lab.resources.security import fetch_security_level_members
from jira_lab.resources.users import fetch_groups, fetch_users, groups_frame, users_frame
from jira_lab.sim.generator import generate_site


def items_of(pages: list[Any]) -> list[dict[str, Any]]:
    return [item for page in answers(pages) for item in page.items]


def forbidden() -> JiraApiError:
    return JiraApiError(403, ["You are not authorized."], {"field": "detail"}, "GET https://x/rest/api/3/role")


def test_permission_errors_are_refusals_with_jiras_message_and_the_request() -> None:
    refusal = refusal_of("role_actors", forbidden())
    assert refusal == Refusal(
        "role_actors", "forbidden", 403, "You are not authorized.; field: detail", "GET https://x/rest/api/3/role"
    )
    assert str(refusal) == "could not read role_actors (403: You are not authorized.; field: detail)"
    assert refusal.access_fields() == {
        "resource": "role_actors",
        "outcome": "forbidden",
        "http_status": 403,
        "message": "You are not authorized.; field: detail",
    }
    unauthorized = refusal_of("x", JiraApiError(401, ["You cannot edit the configuration of this project."]))
    assert unauthorized is not None and unauthorized.outcome == "unauthorized"
    missing = refusal_of("x", MissingScopeError(["manage:jira-configuration"]))
    assert missing is not None and (missing.outcome, missing.http_status) == ("missing_scope", 401)
    assert "manage:jira-configuration" in missing.message


def test_a_not_found_is_a_refusal_only_where_the_endpoint_refuses_that_way() -> None:
    error = JiraApiError(404, ["not found or no permission"])
    assert refusal_of("x", error) is None
    refused = refusal_of("x", error, not_found_refuses=True)
    assert refused is not None and refused.outcome == "not_found"


@pytest.mark.parametrize(
    "error",
    [
        JiraApiError(400, ["bad request"]),
        JiraApiError(500, ["boom"]),
        RateLimitedError("jira-burst-based"),
        QuotaExhaustedError("jira-quota-global-based", datetime(2026, 1, 1, tzinfo=UTC)),
        JiraConnectionError("GET x", 4, ConnectionResetError()),
    ],
)
def test_rate_limits_server_errors_and_lost_connections_are_no_refusals(error: Exception) -> None:
    assert isinstance(error, JiraApiError | JiraConnectionError)
    assert refusal_of("x", error) is None

    async def failing() -> None:
        raise error

    with pytest.raises(type(error)):
        asyncio.run(refusable("x", failing()))


def test_refusable_pages_yields_the_pages_read_then_the_refusal() -> None:
    async def pages() -> AsyncIterator[Page]:
        yield Page([1, 2], {})
        raise forbidden()

    async def walk() -> list[Page | Refusal]:
        return [item async for item in refusable_pages("groups", pages())]

    first, refusal = asyncio.run(walk())
    assert first == Page([1, 2], {})
    assert isinstance(refusal, Refusal) and refusal.resource == "groups"


def test_scoped_names_the_project_or_group_a_refusal_is_about() -> None:
    assert scoped("role_actors", 10002) == "role_actors:10002"


def test_gather_all_keeps_the_order_and_raises_the_first_error_as_itself() -> None:
    cancelled: list[int] = []

    async def slow(value: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(value)
            raise
        return value

    async def quick(value: int) -> int:
        await asyncio.sleep(0)
        return value

    async def quota() -> int:
        await asyncio.sleep(0)
        raise QuotaExhaustedError("jira-quota-global-based", datetime(2026, 1, 1, tzinfo=UTC))

    assert asyncio.run(gather_all([quick(3), quick(1), quick(2)])) == [3, 1, 2]
    with pytest.raises(QuotaExhaustedError):  # not an ExceptionGroup: the loader catches it by its own type
        asyncio.run(gather_all([slow(1), quota(), slow(2)]))
    assert sorted(cancelled) == [1, 2]


def test_a_restricted_principals_model_and_its_refusals_land_in_the_database(tmp_path: Path) -> None:
    """What a loader does with these modules: frames upserted, refusals recorded, so audits can say "cannot tell"."""
    site = without_admin(generate_site("demo", 0), "search-connectors")
    caller = principal(site, "technical_user")
    site_id = site.cloud_id

    projects = caller.collect(fetch_projects)
    project_ids = [int(p["id"]) for p in items_of(projects)]
    users = caller.collect(fetch_users)
    groups = caller.collect(fetch_groups)
    roles = caller.collect(lambda c: fetch_role_actors(c, project_ids))
    schemes = caller.collect(fetch_permission_schemes)
    project_schemes = caller.collect(lambda c: fetch_project_permission_schemes(c, project_ids))
    level_members = caller.collect(fetch_security_level_members)

    conn = store.connect(tmp_path / "audit.duckdb")
    store.ensure_schema(conn)
    load_id = store.start_load(conn, site_id=site_id, principal_id=caller.account_id)
    store.upsert(conn, "users", users_frame(items_of(users), site_id=site_id))
    store.upsert(conn, "groups", groups_frame(items_of(groups), site_id=site_id))
    for table, frame in permission_schemes_frames(items_of(schemes), site_id=site_id).items():
        store.upsert(conn, table, frame)
    for refusal in refusals([*users, *groups, *roles, *schemes, *project_schemes, *level_members]):
        store.record_access(conn, load_id=load_id, **refusal.access_fields())

    access = store.read_frame(conn, "SELECT resource, outcome, http_status FROM _jira_lab_access ORDER BY resource")
    assert access.rows() == sorted(
        [("project_roles", "unauthorized", 401), ("role_actors", "unauthorized", 401)]
        + [(f"project_permission_schemes:{p}", "forbidden", 403) for p in project_ids]
        + [("security_level_members", "forbidden", 403)]
    )
    grants = store.read_frame(conn, "SELECT count(*) AS n FROM permission_grants")["n"].item()
    assert grants == sum(len(s.grants) for s in site.permission_schemes.values())
    stored_users = store.read_frame(conn, "SELECT count(*) AS n FROM users")["n"].item()
    assert stored_users == len(site.users)  # it still holds Browse users and groups
    conn.close()
