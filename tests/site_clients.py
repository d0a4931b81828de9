"""Clients of a simulated site, and the base of every hand-built site the endpoint tests use.

A hand-built site names its accounts by short names (``ann``, ``bob``): :func:`add_accounts` creates them with the
API token ``token-<name>``, which is what :meth:`HandBuiltSite.client` authenticates with, so a test asks for
``site.client("bob")`` and calls the site URL as Bob with Basic auth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.model import Site


def api_token(name: str) -> str:
    """The API token of the account called ``name`` on a hand-built site."""
    return f"token-{name}"


def add_accounts(builder: SiteBuilder, names: Iterable[str]) -> dict[str, str]:
    """One account per short name, displayed as the name in title case; ``name -> account id``, in order."""
    return {name: builder.user(name.title(), api_token=api_token(name)) for name in names}


def site_url(site: Site) -> str:
    """Where a Cloud site answers: ``https://<name>.atlassian.net``."""
    return f"https://{site.name}.atlassian.net"


def basic_client(cloud: SimCloud, site: Site, email: str, token: str) -> httpx.Client:
    """A client of the site URL with Basic auth (email and API token)."""
    return httpx.Client(transport=cloud.transport(), base_url=site_url(site), auth=(email, token))


def gateway_client(cloud: SimCloud, site: Site, account_id: str, scopes: Iterable[str]) -> httpx.Client:
    """A 3LO client of the site through the API gateway, with a token of exactly ``scopes``."""
    token = cloud.mint_access_token(account_id, scopes)
    return httpx.Client(
        transport=cloud.transport(),
        base_url=f"https://api.atlassian.com/ex/jira/{site.cloud_id}",
        headers={"Authorization": f"Bearer {token}"},
    )


@dataclass
class HandBuiltSite:
    """A site built by a test module, the cloud serving it, and its accounts by short name."""

    builder: SiteBuilder
    cloud: SimCloud
    #: short name -> account id
    users: dict[str, str]

    def client(self, name: str) -> httpx.Client:
        """A Basic-auth client of the site URL for the account called ``name``."""
        email = self.builder.site.users[self.users[name]].email
        assert email is not None
        return basic_client(self.cloud, self.builder.site, email, api_token(name))

    def anonymous(self) -> httpx.Client:
        """A client of the site URL without credentials."""
        return httpx.Client(transport=self.cloud.transport(), base_url=site_url(self.builder.site))

    def gateway(self, name: str, scopes: Iterable[str]) -> httpx.Client:
        """A 3LO client through the API gateway for the account called ``name``, with a token of exactly ``scopes``."""
        return gateway_client(self.cloud, self.builder.site, self.users[name], scopes)


class CountingTransport(httpx.AsyncBaseTransport):
    """The cloud's async transport, noting ``METHOD path`` of every request in ``seen``."""

    def __init__(self, cloud: SimCloud) -> None:
        self.inner = cloud.transport()
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)
