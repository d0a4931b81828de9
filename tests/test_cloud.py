"""SimCloud's dispatch and authentication: site URLs with Basic auth, the API gateway with Bearer tokens, and the
gateway's ``accessible-resources``, for sync and async httpx clients over the in-process transport."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from spec import assert_response_matches_spec, load_spec

from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.app import api_routes
from jira_lab.sim.model import Site

UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}
SERVER_INFO = "/rest/api/3/serverInfo"
MYSELF = "/rest/api/3/myself"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class TwoSites:
    cloud: SimCloud
    clock: Clock
    alpha: Site
    beta: Site
    #: account ids by name: ann (alpha, with an API token), ina (alpha, inactive), bea (beta), ann_on_beta
    accounts: dict[str, str]


def _site(name: str, title: str, people: list[tuple[str, bool]]) -> tuple[Site, dict[str, str]]:
    b = SiteBuilder(name, title=title)
    accounts = {
        display.split()[0].lower(): b.user(display, api_token=f"{display.split()[0].lower()}-token", active=active)
        for display, active in people
    }
    return b.site, accounts


@pytest.fixture
def two_sites() -> TwoSites:
    alpha, on_alpha = _site("alpha", "Alpha Jira", [("Ann Alpha", True), ("Ina Inactive", False)])
    beta, on_beta = _site("beta", "Beta Jira", [("Bea Beta", True)])
    clock = Clock(1_780_000_000.0)
    return TwoSites(SimCloud(alpha, beta, clock=clock), clock, alpha, beta, {**on_alpha, **on_beta})


@pytest.fixture
def alpha_client(two_sites: TwoSites) -> Iterator[httpx.Client]:
    with httpx.Client(transport=two_sites.cloud.transport(), base_url="https://alpha.atlassian.net") as client:
        yield client


def gateway(two_sites: TwoSites, site: Site, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(
        transport=two_sites.cloud.transport(), base_url=two_sites.cloud.gateway_url(site), headers=headers
    )


def email_of(site: Site, account_id: str) -> str:
    email = site.users[account_id].email
    assert email is not None
    return email


# -- Basic auth on the site URL ----------------------------------------------------------------------------------


def test_basic_auth_with_the_right_api_token_is_the_user(two_sites: TwoSites, alpha_client: httpx.Client) -> None:
    ann = two_sites.accounts["ann"]
    response = alpha_client.get(MYSELF, auth=(email_of(two_sites.alpha, ann), "ann-token"))
    assert response.status_code == 200
    assert response.json()["accountId"] == ann
    assert_response_matches_spec("GET", MYSELF, response)


@pytest.mark.parametrize(
    ("who", "password"),
    [("ann", "wrong-token"), ("ina", "ina-token"), ("nobody", "nobody-token")],
    ids=["bad password", "inactive user", "unknown email"],
)
def test_basic_auth_refusals_are_401(two_sites: TwoSites, alpha_client: httpx.Client, who: str, password: str) -> None:
    email = email_of(two_sites.alpha, two_sites.accounts[who]) if who in two_sites.accounts else "nobody@alpha.example"
    for path in (MYSELF, SERVER_INFO):  # even an anonymous-allowed operation refuses bad credentials
        response = alpha_client.get(path, auth=(email, password))
        assert response.status_code == 401
        assert response.json()["errorMessages"], response.text
        assert_response_matches_spec("GET", path, response)


def test_a_bearer_token_sent_to_the_site_url_is_refused(two_sites: TwoSites, alpha_client: httpx.Client) -> None:
    token = two_sites.cloud.mint_access_token(two_sites.accounts["ann"], ["read:jira-user"])
    response = alpha_client.get(MYSELF, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    # the same token is good at the gateway, so it is the URL that is wrong
    assert gateway(two_sites, two_sites.alpha, token).get(MYSELF).status_code == 200


def _anonymous_allowed(method: str, template: str) -> bool:
    return {} in load_spec()["paths"][template][method.lower()].get("security", [])


def _concrete_path(template: str) -> str:
    """The template with placeholder path parameters: dispatch authenticates before any lookup."""
    return template.replace("{", "").replace("}", "")


@pytest.mark.parametrize("key", [f"{r.method} {r.template}" for r in api_routes()])
def test_anonymous_callers_reach_only_anonymous_operations(key: str, alpha_client: httpx.Client) -> None:
    method, template = key.split(" ", 1)
    response = alpha_client.request(method, _concrete_path(template), json={} if method == "POST" else None)
    if _anonymous_allowed(method, template):
        assert response.status_code != 401, f"{key} can be called anonymously: {response.text[:200]}"
    else:
        assert response.status_code == 401, f"{key} needs a user: {response.text[:200]}"
    assert_response_matches_spec(method, template, response)


def test_anonymous_server_info_is_answered(alpha_client: httpx.Client) -> None:
    response = alpha_client.get(SERVER_INFO)
    assert response.status_code == 200
    assert response.json()["serverTitle"] == "Alpha Jira"


# -- the API gateway -----------------------------------------------------------------------------------------------


def test_a_valid_token_reaches_its_site(two_sites: TwoSites) -> None:
    token = two_sites.cloud.mint_access_token(two_sites.accounts["ann"], ["read:jira-user"])
    response = gateway(two_sites, two_sites.alpha, token).get(MYSELF)
    assert response.status_code == 200
    assert response.json()["accountId"] == two_sites.accounts["ann"]


def test_an_expired_token_is_refused(two_sites: TwoSites) -> None:
    token = two_sites.cloud.mint_access_token(two_sites.accounts["ann"], ["read:jira-user"], expires_in=3600)
    client = gateway(two_sites, two_sites.alpha, token)
    two_sites.clock.now += 3599
    assert client.get(MYSELF).status_code == 200
    two_sites.clock.now += 1
    response = client.get(MYSELF)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic YW5uQGFscGhhLmV4YW1wbGU6YW5uLXRva2Vu"])
def test_the_gateway_needs_a_known_bearer_token(two_sites: TwoSites, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = gateway(two_sites, two_sites.alpha, None).get(SERVER_INFO, headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_a_token_for_another_site_is_refused(two_sites: TwoSites) -> None:
    token = two_sites.cloud.mint_access_token(two_sites.accounts["ann"], ["read:jira-user"], sites=[two_sites.alpha])
    response = gateway(two_sites, two_sites.beta, token).get(MYSELF)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_an_unknown_cloud_id_is_404(two_sites: TwoSites) -> None:
    token = two_sites.cloud.mint_access_token(two_sites.accounts["ann"], ["read:jira-user"])
    client = httpx.Client(transport=two_sites.cloud.transport(), headers={"Authorization": f"Bearer {token}"})
    response = client.get(f"https://api.atlassian.com/ex/jira/00000000-0000-0000-0000-000000000000{MYSELF}")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not Found"}


def test_a_token_of_a_deactivated_account_is_refused(two_sites: TwoSites) -> None:
    ann = two_sites.accounts["ann"]
    client = gateway(two_sites, two_sites.alpha, two_sites.cloud.mint_access_token(ann, ["read:jira-user"]))
    two_sites.alpha.users[ann].active = False
    assert client.get(MYSELF).status_code == 401


def test_accessible_resources_lists_exactly_the_token_sites(two_sites: TwoSites) -> None:
    cloud, alpha, beta = two_sites.cloud, two_sites.alpha, two_sites.beta
    ann = two_sites.accounts["ann"]
    beta.users[ann] = alpha.users[ann]  # the same Atlassian account on both sites
    client = httpx.Client(transport=cloud.transport(), base_url="https://api.atlassian.com")
    path = "/oauth/token/accessible-resources"

    def listed(token: str) -> list[tuple[str, str]]:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        return [(r["id"], r["url"]) for r in response.json()]

    scopes = ["read:jira-work", "read:jira-user"]
    only_alpha = cloud.mint_access_token(ann, scopes, sites=[alpha])
    both = cloud.mint_access_token(ann, scopes)
    assert listed(only_alpha) == [(alpha.cloud_id, "https://alpha.atlassian.net")]
    assert sorted(listed(both)) == sorted(
        [(alpha.cloud_id, "https://alpha.atlassian.net"), (beta.cloud_id, "https://beta.atlassian.net")]
    )
    resource = client.get(path, headers={"Authorization": f"Bearer {only_alpha}"}).json()[0]
    assert resource["name"] == "alpha" and resource["scopes"] == sorted(scopes)
    assert client.get(path).status_code == 401


# -- choosing the site -----------------------------------------------------------------------------------------------


def test_the_site_is_chosen_by_prefix_then_host_then_default(two_sites: TwoSites) -> None:
    client = httpx.Client(transport=two_sites.cloud.transport())

    def title(url: str) -> str:
        response = client.get(url)
        assert response.status_code == 200, response.text
        return str(response.json()["serverTitle"])

    assert title(f"https://beta.atlassian.net{SERVER_INFO}") == "Beta Jira"
    assert title(f"https://alpha.atlassian.net{SERVER_INFO}") == "Alpha Jira"
    assert title(f"http://127.0.0.1:8080/site/beta{SERVER_INFO}") == "Beta Jira"
    # the prefix wins over the host
    assert title(f"https://alpha.atlassian.net/site/beta{SERVER_INFO}") == "Beta Jira"
    # no prefix, no known host: the first site
    assert title(f"http://localhost{SERVER_INFO}") == "Alpha Jira"
    missing = client.get(f"http://localhost/site/gamma{SERVER_INFO}")
    assert missing.status_code == 404


def test_basic_auth_is_checked_against_the_chosen_site(two_sites: TwoSites) -> None:
    client = httpx.Client(transport=two_sites.cloud.transport())
    bea = two_sites.accounts["bea"]
    credentials = (email_of(two_sites.beta, bea), "bea-token")
    on_beta = client.get(f"http://127.0.0.1/site/beta{MYSELF}", auth=credentials)
    assert on_beta.status_code == 200 and on_beta.json()["accountId"] == bea
    assert client.get(f"https://beta.atlassian.net{MYSELF}", auth=credentials).status_code == 200
    # Bea has no account on alpha
    assert client.get(f"http://127.0.0.1/site/alpha{MYSELF}", auth=credentials).status_code == 401


# -- unknown paths and methods ---------------------------------------------------------------------------------------


def test_unknown_paths_are_404_and_wrong_methods_405(two_sites: TwoSites, alpha_client: httpx.Client) -> None:
    missing = alpha_client.get("/rest/api/3/no-such-resource")
    assert missing.status_code == 404
    assert missing.json()["errorMessages"]
    wrong_method = alpha_client.delete(SERVER_INFO)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["errorMessages"]
    token = two_sites.cloud.mint_access_token(two_sites.accounts["ann"], ["read:jira-user"])
    through_gateway = gateway(two_sites, two_sites.alpha, token)
    assert through_gateway.get("/rest/api/3/no-such-resource").status_code == 404
    assert through_gateway.post(SERVER_INFO).status_code == 405


# -- sync and async clients ------------------------------------------------------------------------------------------


def test_sync_client_over_the_transport(two_sites: TwoSites) -> None:
    with httpx.Client(transport=two_sites.cloud.transport(), base_url="https://beta.atlassian.net") as client:
        bea = two_sites.accounts["bea"]
        response = client.get(MYSELF, auth=(email_of(two_sites.beta, bea), "bea-token"))
    assert response.status_code == 200
    assert response.json()["accountId"] == bea


@pytest.mark.anyio
async def test_async_client_over_the_transport(two_sites: TwoSites) -> None:
    ann = two_sites.accounts["ann"]
    token = two_sites.cloud.mint_access_token(ann, ["read:jira-user"])
    async with httpx.AsyncClient(
        transport=two_sites.cloud.transport(),
        base_url=two_sites.cloud.gateway_url(two_sites.alpha),
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        me = await client.get(MYSELF)
        refused = await client.get(MYSELF, headers={"Authorization": "Bearer nope"})
        info = await client.get(SERVER_INFO)
    assert me.status_code == 200 and me.json()["accountId"] == ann
    assert refused.status_code == 401 and refused.json() == UNAUTHORIZED
    assert info.json()["serverTitle"] == "Alpha Jira"
