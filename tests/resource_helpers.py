"""Running the resource modules' fetchers against a simulated site as one principal, in process.

The JSON the fetchers receive is what :class:`~jira_lab.sim.SimCloud` answers (the recorded JSON of the tests), and
every expectation comes from the site model and :class:`~jira_lab.sim.permissions.PermissionEngine`, never from the
code under test. :class:`Recorder` keeps the requests, so tests can count them (no redundant calls) and can rewrite
an answer the way Jira sometimes shapes one (a page shortened by privacy filtering).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any, TypeVar

import httpx

from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.client import JiraClient
from jira_lab.resources.access import Refusal
from jira_lab.sim import SimCloud
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

T = TypeVar("T")

#: The scopes the technical user's app is configured with (shared/scopes.md): three classic, 31 granular.
APP_SCOPES = frozenset(REQUIRED_SCOPES)
#: An older app's token: classic scopes only, without ``manage:jira-configuration``.
READ_ONLY_CLASSIC_SCOPES = frozenset({"read:jira-work", "read:jira-user"})

Rewrite = Callable[[httpx.Request, Any], Any]


class Bearer(httpx.Auth):
    """A gateway access token, as a 3LO app sends it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the simulated cloud and keeps them; ``rewrite`` may change a JSON answer on the way back."""

    def __init__(self, cloud: SimCloud, rewrite: Rewrite | None = None) -> None:
        self.inner = cloud.transport()
        self.rewrite = rewrite
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.requests.append(request)
        if self.rewrite is None or response.status_code != 200:
            return response
        await response.aread()
        body = self.rewrite(request, response.json())
        return httpx.Response(response.status_code, json=body, headers={"Content-Type": "application/json"})

    def paths(self, suffix: str = "") -> list[str]:
        """The API paths requested (without the gateway prefix) that end with ``suffix``."""
        found = []
        for request in self.requests:
            path = request.url.path
            path = path[path.index("/rest/") :]
            if path.endswith(suffix):
                found.append(path)
        return found


class Principal:
    """One account calling a simulated site through the API gateway, with a token of the given scopes."""

    def __init__(
        self,
        cloud: SimCloud,
        site: Site,
        account_id: str,
        *,
        scopes: Iterable[str] = APP_SCOPES,
        rewrite: Rewrite | None = None,
    ) -> None:
        self.site = site
        self.account_id = account_id
        self.transport = Recorder(cloud, rewrite)
        self.scopes = frozenset(scopes)
        self.token = cloud.mint_access_token(account_id, self.scopes, sites=[site])

    def client(self) -> JiraClient:
        return JiraClient.for_cloud(
            self.site.cloud_id, auth=Bearer(self.token), transport=self.transport, scopes=self.scopes
        )

    def collect(self, fetch: Callable[[JiraClient], AsyncIterator[T]]) -> list[T]:
        """Everything ``fetch(client)`` yields, walked to the end."""

        async def walk() -> list[T]:
            async with self.client() as client:
                return [item async for item in fetch(client)]

        return asyncio.run(walk())


def principal(site: Site, role: str, **options: Any) -> Principal:
    """The well-known account ``role`` of the site (``analyst``, ``technical_user`` ...) on a fresh cloud."""
    return as_account(site, site.accounts[role], **options)


def as_account(site: Site, account_id: str, **options: Any) -> Principal:
    """Any account of the site, on a fresh cloud."""
    return Principal(SimCloud(site), site, account_id, **options)


def refusals(items: Iterable[object]) -> list[Refusal]:
    return [item for item in items if isinstance(item, Refusal)]


def answers(items: Iterable[T | Refusal]) -> list[T]:
    return [item for item in items if not isinstance(item, Refusal)]


def viewable_project_ids(site: Site, account_id: str) -> list[int]:
    engine = PermissionEngine(site)
    return [p.id for p in site.projects.values() if engine.can_view_project(account_id, p)]


def group_id_named(site: Site, name: str) -> str:
    return next(group.group_id for group in site.groups.values() if group.name == name)


def without_admin(site: Site, group_name: str) -> Site:
    """The site with ``group_name`` no longer holding Administer Jira (the site is changed in place)."""
    site.global_permissions["ADMINISTER"].discard(group_id_named(site, group_name))
    return site


def partial_project_admin(site: Site) -> str:
    """An active account that administers some projects but not all, without Administer Jira."""
    engine = PermissionEngine(site)
    for account_id in site.users:
        administered = sum(engine.can_administer_project(account_id, p) for p in site.projects.values())
        if engine.is_active(account_id) and not engine.is_admin(account_id) and 0 < administered < len(site.projects):
            return account_id
    raise AssertionError(f"site {site.name} has no account administering only some projects")
