"""What the ``test_resources_*`` modules share: the tiny generated site, clients for its principals, and the ground
truth of what each principal may see, straight from the simulator's permission engine.

Every client talks to the simulator in process (``SimCloud.transport()``), whose answers are the JSON the resource
functions are tested on: nothing is hand-written that could drift from the spec. The cloud's clock is a
:class:`~jira_lab.sim.clock.FakeClock` at :data:`~jira_lab.sim.builder.EPOCH`, just after everything a generated
site holds, so the worklog feeds' quiet minute hides nothing unless a test moves a change into it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from jira_lab.client import JiraClient
from jira_lab.pagination import Page
from jira_lab.sim import SimCloud
from jira_lab.sim.builder import EPOCH
from jira_lab.sim.clock import FakeClock
from jira_lab.sim.model import ChangelogHistory, Comment, Issue, Site, Worklog
from jira_lab.sim.permissions import PermissionEngine

T = TypeVar("T")

#: The principals every ground-truth test runs as: one sees everything, the other misses what ``site.story`` says.
PRINCIPALS = ("analyst", "technical_user")
#: Classic scopes of the technical user's 3LO app (DESIGN §1).
CLASSIC_SCOPES = ("read:jira-work", "read:jira-user", "manage:jira-configuration")
#: A bounded JQL query matching every issue of a generated site.
EVERY_ISSUE = "created >= 2000-01-01"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end (each test owns its event loop)."""
    return asyncio.run(coroutine)


async def pages_of(pages: AsyncIterable[Page]) -> list[Page]:
    """Every page of a walk, in order."""
    return [page async for page in pages]


def items_of(pages: Iterable[Page]) -> list[Any]:
    """The items of every page, in order."""
    return [item for page in pages for item in page.items]


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """The cloud's transport, remembering every request (method, path, body, URL) it passed on."""

    inner: httpx.AsyncBaseTransport
    sent: list[tuple[str, str, bytes]] = field(default_factory=list)
    urls: list[httpx.URL] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.method, request.url.path, body))
        self.urls.append(request.url)
        return await self.inner.handle_async_request(request)

    def paths(self, method: str | None = None) -> list[str]:
        return [path for sent_method, path, _ in self.sent if method is None or sent_method == method]


@dataclass
class World:
    """A site served by a simulated cloud with a fake clock."""

    site: Site
    cloud: SimCloud
    clock: FakeClock

    @property
    def engine(self) -> PermissionEngine:
        return PermissionEngine(self.site)

    def account(self, principal: str) -> str:
        return self.site.accounts[principal]

    def client(self, principal: str, transport: httpx.AsyncBaseTransport | None = None) -> JiraClient:
        """A Basic-auth client on the site URL, as ``principal`` (a ``site.accounts`` role or an account id)."""
        user = self.site.users[self.site.accounts.get(principal, principal)]
        assert user.email is not None and user.api_token is not None, f"{principal} cannot use Basic auth"
        return JiraClient.for_site(
            self.cloud.site_url(self.site),
            auth=httpx.BasicAuth(user.email, user.api_token),
            transport=transport or self.cloud.transport(),
            rng=random.Random(0),
        )

    def gateway_client(self, principal: str, scopes: Iterable[str] = CLASSIC_SCOPES) -> JiraClient:
        """A 3LO client through the API gateway, with a Bearer token holding exactly ``scopes``."""
        token = self.cloud.mint_access_token(self.account(principal), scopes, sites=[self.site])
        return JiraClient.for_cloud(
            self.site.cloud_id,
            auth=_Bearer(token),
            transport=self.cloud.transport(),
            rng=random.Random(0),
            scopes=scopes,
        )

    # -- ground truth ------------------------------------------------------------------------------------------
    def visible_issues(self, principal: str) -> list[Issue]:
        engine, account = self.engine, self.account(principal)
        return [issue for issue in self.site.issues.values() if engine.can_browse_issue(account, issue)]

    def visible_comments(self, principal: str, issue: Issue) -> list[Comment]:
        """The issue's comments the principal may see, oldest first (as Jira lists them)."""
        engine, account = self.engine, self.account(principal)
        visible = [c for c in issue.comments if engine.can_see_item(account, issue, c.visibility)]
        return sorted(visible, key=lambda c: (c.created, c.id))

    def visible_worklogs(self, principal: str, issue: Issue) -> list[Worklog]:
        engine, account = self.engine, self.account(principal)
        visible = [w for w in issue.worklogs if engine.can_see_item(account, issue, w.visibility)]
        return sorted(visible, key=lambda w: (w.created, w.id))

    def all_visible_comments(self, principal: str) -> dict[int, Comment]:
        return {c.id: c for issue in self.visible_issues(principal) for c in self.visible_comments(principal, issue)}

    def all_visible_worklogs(self, principal: str) -> dict[int, Worklog]:
        return {w.id: w for issue in self.visible_issues(principal) for w in self.visible_worklogs(principal, issue)}

    def visible_histories(self, principal: str) -> dict[int, ChangelogHistory]:
        return {h.id: h for issue in self.visible_issues(principal) for h in issue.changelog}


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def tiny_world(site: Site | None = None) -> World:
    """The tiny generated site (a fresh one unless given), served with the clock at EPOCH."""
    from jira_lab.sim.generator import generate_site

    site = site if site is not None else generate_site("tiny", 0)
    clock = FakeClock(EPOCH)
    return World(site, SimCloud(site, clock=clock), clock)
