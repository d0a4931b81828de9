"""The 3LO helpers against the simulated authorization server and gateway (in process, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from jira_lab.auth.oauth import (
    API_URL,
    AUTH_URL,
    DEFAULT_REDIRECT_URI,
    aaccessible_resources,
    accessible_resources,
    aexchange_code,
    api_base,
    arefresh,
    authorization_request,
    exchange_code,
    parse_callback,
    parse_resources,
    pick_site,
    redirect_uri_for,
    refresh,
)
from jira_lab.auth.scopes import OFFLINE_ACCESS, REQUIRED_SCOPES
from jira_lab.auth.tokens import Site
from jira_lab.errors import CallbackError, ConsentRequiredError, InvalidClientError, SiteSelectionError
from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.authserver import OAuthApp

T0 = 1_780_000_000.0
ANN_ID = "5b10ac8d82e05b22cc7d0a11"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    cloud: SimCloud
    clock: Clock
    app: OAuthApp
    http: httpx.Client
    tiny_url: str
    other_url: str


@pytest.fixture
def world() -> Iterator[World]:
    """Two sites Ann works on, an app configured with the reader scopes, and auto-consent as Ann."""
    tiny, other = SiteBuilder("tiny"), SiteBuilder("other")
    tiny.user("Ann Analyst", email="ann@example.com", account_id=ANN_ID)
    other.user("Ann Analyst", email="ann@example.com", account_id=ANN_ID)
    tiny.user("Bob", email="bob@example.com")
    clock = Clock()
    cloud = SimCloud(tiny.site, other.site, clock=clock)
    app = cloud.auth.register_app("jira-lab", callback_url=DEFAULT_REDIRECT_URI, scopes=REQUIRED_SCOPES)
    cloud.auth.auto_consent = "ann@example.com"
    with httpx.Client(transport=cloud.transport()) as http:
        yield World(cloud, clock, app, http, cloud.site_url(tiny.site), cloud.site_url(other.site))


def consent(world: World, scopes: tuple[str, ...] = REQUIRED_SCOPES) -> tuple[str, str]:
    """Follow the authorize URL as a browser would (auto-consent); the redirect URL and the expected state."""
    request = authorization_request(world.app.client_id, scopes=scopes)
    answer = world.http.get(request.url)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"], request.state


def code_from_consent(world: World) -> str:
    location, state = consent(world)
    return parse_callback(location, state)


# -- authorize URL -------------------------------------------------------------------------------------------------
def test_authorize_url_carries_every_documented_parameter() -> None:
    request = authorization_request("my-client", redirect_uri="http://localhost:13131/")
    url = httpx.URL(request.url)

    assert (url.scheme, url.host, url.path) == ("https", "auth.atlassian.com", "/authorize")
    assert url.params["audience"] == "api.atlassian.com"
    assert url.params["client_id"] == "my-client"
    assert url.params["redirect_uri"] == "http://localhost:13131/"
    assert url.params["response_type"] == "code"
    assert url.params["prompt"] == "consent"
    assert url.params["state"] == request.state
    assert url.params["scope"].split(" ") == [*REQUIRED_SCOPES, OFFLINE_ACCESS]
    assert "%20" in request.url and "+" not in request.url  # spaces as Atlassian documents them
    assert request.redirect_uri == "http://localhost:13131/"


def test_offline_access_is_always_requested_once() -> None:
    with_it = authorization_request("c", scopes=["read:jira-work", OFFLINE_ACCESS])
    without_it = authorization_request("c", scopes=["read:jira-work"])

    assert httpx.URL(with_it.url).params["scope"] == "read:jira-work offline_access"
    assert httpx.URL(without_it.url).params["scope"] == "read:jira-work offline_access"


def test_each_request_gets_a_fresh_unguessable_state() -> None:
    states = {authorization_request("c").state for _ in range(20)}

    assert len(states) == 20
    assert all(len(state) >= 40 and state.isalnum() for state in states)
    assert authorization_request("c", state="given").state == "given"


def test_the_auth_url_and_port_are_parameters() -> None:
    request = authorization_request("c", auth_url="http://127.0.0.1:9999/", redirect_uri=redirect_uri_for(4242))

    assert request.url.startswith("http://127.0.0.1:9999/authorize?")
    assert httpx.URL(request.url).params["redirect_uri"] == "http://localhost:4242/"
    assert DEFAULT_REDIRECT_URI == redirect_uri_for(13131) == "http://localhost:13131/"


# -- callback --------------------------------------------------------------------------------------------------
def test_the_simulated_consent_redirect_yields_the_code(world: World) -> None:
    location, state = consent(world)

    code = parse_callback(location, state)

    assert location.startswith(DEFAULT_REDIRECT_URI + "?")
    assert code == httpx.URL(location).params["code"]


def test_a_state_mismatch_is_refused(world: World) -> None:
    location, _ = consent(world)

    with pytest.raises(CallbackError, match="state does not match"):
        parse_callback(location, "some-other-state")


def test_a_redirect_without_code_is_refused() -> None:
    with pytest.raises(CallbackError, match="no authorization code"):
        parse_callback("http://localhost:13131/?state=abc", "abc")


def test_denied_consent_says_so(world: World) -> None:
    world.cloud.auth.set_auto_consent("ann@example.com", decision="deny")
    location, state = consent(world)

    with pytest.raises(CallbackError) as raised:
        parse_callback(location, state)

    assert "access_denied" in str(raised.value)
    assert "denied" in str(raised.value)
    assert "User did not authorize the request" in str(raised.value)  # the server's description


def test_other_callback_errors_carry_error_and_description() -> None:
    url = "http://localhost:13131/?error=server_error&error_description=Try+later&state=s"

    with pytest.raises(CallbackError, match="server_error: Try later"):
        parse_callback(url, "s")


# -- code exchange -------------------------------------------------------------------------------------------------
def test_exchange_code_returns_the_grant(world: World) -> None:
    code = code_from_consent(world)

    grant = exchange_code(
        world.http, world.app.client_id, world.app.client_secret, code, DEFAULT_REDIRECT_URI, clock=world.clock
    )

    assert grant.scopes == frozenset(REQUIRED_SCOPES) | {OFFLINE_ACCESS}
    assert grant.expires_at == T0 + 3600  # Atlassian's access tokens live an hour
    assert grant.refresh_token
    assert grant.token_type.lower() == "bearer"
    assert world.cloud.auth.request_count("authorization_code") == 1


def test_a_code_is_single_use(world: World) -> None:
    code = code_from_consent(world)
    exchange_code(
        world.http, world.app.client_id, world.app.client_secret, code, DEFAULT_REDIRECT_URI, clock=world.clock
    )

    with pytest.raises(ConsentRequiredError, match="authorization code was refused"):
        exchange_code(
            world.http, world.app.client_id, world.app.client_secret, code, DEFAULT_REDIRECT_URI, clock=world.clock
        )


def test_an_expired_code_asks_to_authorize_again(world: World) -> None:
    code = code_from_consent(world)
    world.clock.now += world.cloud.auth.settings.code_lifetime + 1

    with pytest.raises(ConsentRequiredError) as raised:
        exchange_code(
            world.http, world.app.client_id, world.app.client_secret, code, DEFAULT_REDIRECT_URI, clock=world.clock
        )

    assert "jira-lab token" in str(raised.value)
    assert code not in str(raised.value)


def test_a_different_redirect_uri_is_refused(world: World) -> None:
    code = code_from_consent(world)

    with pytest.raises(ConsentRequiredError, match="redirect"):
        exchange_code(
            world.http, world.app.client_id, world.app.client_secret, code, "http://localhost:9/", clock=world.clock
        )


def test_a_wrong_client_secret_names_the_client_id_not_the_secret(world: World) -> None:
    code = code_from_consent(world)
    wrong = "not-the-secret-but-still-secret-9876"

    with pytest.raises(InvalidClientError) as raised:
        exchange_code(world.http, world.app.client_id, wrong, code, DEFAULT_REDIRECT_URI, clock=world.clock)

    message = str(raised.value)
    assert world.app.client_id in message
    assert wrong not in message
    assert world.app.client_secret not in message
    assert code not in message


async def _async_exchange_and_refresh(world: World) -> tuple[str | None, str | None]:
    code = code_from_consent(world)
    async with httpx.AsyncClient(transport=world.cloud.transport()) as http:
        grant = await aexchange_code(
            http, world.app.client_id, world.app.client_secret, code, DEFAULT_REDIRECT_URI, clock=world.clock
        )
        assert grant.refresh_token is not None
        rotated = await arefresh(
            http, world.app.client_id, world.app.client_secret, grant.refresh_token, clock=world.clock
        )
        sites = await aaccessible_resources(http, rotated.access_token)
        assert {s.url for s in sites} == {world.tiny_url, world.other_url}
    return grant.refresh_token, rotated.refresh_token


@pytest.mark.anyio
async def test_async_twins_exchange_and_rotate(world: World) -> None:
    first, second = await _async_exchange_and_refresh(world)

    assert first and second and first != second
    assert world.cloud.auth.request_count("refresh_token") == 1


# -- refresh -------------------------------------------------------------------------------------------------------
def fresh_grant(world: World) -> tuple[str, str]:
    code = code_from_consent(world)
    grant = exchange_code(
        world.http, world.app.client_id, world.app.client_secret, code, DEFAULT_REDIRECT_URI, clock=world.clock
    )
    assert grant.refresh_token is not None
    return grant.access_token, grant.refresh_token


def test_refresh_rotates_the_refresh_token(world: World) -> None:
    _, refresh_token = fresh_grant(world)
    world.clock.now += 100

    rotated = refresh(world.http, world.app.client_id, world.app.client_secret, refresh_token, clock=world.clock)

    assert rotated.refresh_token and rotated.refresh_token != refresh_token
    assert rotated.expires_at == world.clock.now + 3600


def test_reusing_a_refresh_token_after_the_window_requires_consent(world: World) -> None:
    _, refresh_token = fresh_grant(world)
    refresh(world.http, world.app.client_id, world.app.client_secret, refresh_token, clock=world.clock)
    world.clock.now += world.cloud.auth.settings.reuse_interval + 1

    with pytest.raises(ConsentRequiredError) as raised:
        refresh(world.http, world.app.client_id, world.app.client_secret, refresh_token, clock=world.clock)

    message = str(raised.value)
    assert f"jira-lab token --api jiracloud -i {world.app.client_id}" in message
    assert "invalid_grant" in message
    assert refresh_token not in message
    assert world.app.client_secret not in message


def test_a_revoked_grant_requires_consent(world: World) -> None:
    _, refresh_token = fresh_grant(world)
    assert world.cloud.auth.revoke_grant(world.app.client_id, ANN_ID)

    with pytest.raises(ConsentRequiredError, match="consent"):
        refresh(world.http, world.app.client_id, world.app.client_secret, refresh_token, clock=world.clock)


def test_refresh_with_a_wrong_secret_is_an_invalid_client(world: World) -> None:
    _, refresh_token = fresh_grant(world)

    with pytest.raises(InvalidClientError) as raised:
        refresh(world.http, world.app.client_id, "wrong-secret-value-123", refresh_token, clock=world.clock)

    assert world.app.client_id in str(raised.value)
    assert "wrong-secret-value-123" not in str(raised.value)
    assert refresh_token not in str(raised.value)


# -- sites ---------------------------------------------------------------------------------------------------------
def test_accessible_resources_lists_every_granted_site(world: World) -> None:
    access_token, _ = fresh_grant(world)

    sites = accessible_resources(world.http, access_token)

    by_url = {site.url: site for site in sites}
    assert set(by_url) == {world.tiny_url, world.other_url}
    tiny = world.cloud.site_named("tiny")
    assert tiny is not None
    assert by_url[world.tiny_url].cloud_id == tiny.cloud_id
    assert by_url[world.tiny_url].name == "tiny"
    assert "read:jira-work" in by_url[world.tiny_url].scopes


def test_the_api_base_of_a_picked_site_reaches_that_site(world: World) -> None:
    access_token, _ = fresh_grant(world)
    site = pick_site(accessible_resources(world.http, access_token), world.tiny_url)

    base = api_base(site)
    me = world.http.get(f"{base}/rest/api/3/myself", headers={"Authorization": f"Bearer {access_token}"})

    assert base == f"{API_URL}/ex/jira/{site.cloud_id}"
    assert me.status_code == 200
    assert me.json()["accountId"] == ANN_ID


def test_confluence_entries_sharing_a_cloud_id_are_not_jira_sites() -> None:
    entries = [
        {"id": "c-1", "name": "acme", "url": "https://acme.atlassian.net", "scopes": ["read:confluence-content.all"]},
        {"id": "c-1", "name": "acme", "url": "https://acme.atlassian.net", "scopes": ["read:jira-work"]},
    ]
    response = httpx.Response(
        200, json=entries, request=httpx.Request("GET", f"{API_URL}/oauth/token/accessible-resources")
    )

    assert parse_resources(response) == [
        Site("c-1", "acme", "https://acme.atlassian.net", frozenset({"read:jira-work"}))
    ]


SITES = [
    Site("id-a", "alpha", "https://alpha.atlassian.net"),
    Site("id-b", "beta", "https://beta.atlassian.net"),
]


@pytest.mark.parametrize(
    "wanted", ["https://beta.atlassian.net", "HTTPS://Beta.Atlassian.net/", "beta.atlassian.net", "id-b"]
)
def test_pick_site_by_url_whatever_its_spelling(wanted: str) -> None:
    assert pick_site(SITES, wanted) == SITES[1]


def test_pick_site_takes_the_only_one() -> None:
    assert pick_site(SITES[:1]) == SITES[0]


def test_pick_site_lists_the_choices_when_it_cannot_decide() -> None:
    with pytest.raises(SiteSelectionError) as several:
        pick_site(SITES)
    with pytest.raises(SiteSelectionError) as unknown:
        pick_site(SITES, "https://gamma.atlassian.net")
    with pytest.raises(SiteSelectionError, match="no Jira site"):
        pick_site([])

    for error in (several.value, unknown.value):
        assert "https://alpha.atlassian.net" in str(error)
        assert "https://beta.atlassian.net" in str(error)
    assert "gamma" in str(unknown.value)


def test_defaults_point_at_atlassian() -> None:
    assert AUTH_URL == "https://auth.atlassian.com"
    assert API_URL == "https://api.atlassian.com"
