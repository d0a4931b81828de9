"""The simulated authorization server: consent page, auto-consent, code exchange, rotating refresh tokens, and what
the gateway then lets the tokens do. Everything goes through httpx and ``cloud.transport()``; time is a fake clock."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.authserver import AuthSettings, AutoConsent, OAuthApp
from jira_lab.sim.model import Site

CALLBACK = "http://localhost:13131/callback"
APP_SCOPES = ("read:jira-work", "read:jira-user", "manage:jira-configuration")
READ_SCOPES = ("read:jira-work", "read:jira-user", "offline_access")
EVE_NAME = 'Eve <script>alert("x")</script> & Co'
APP_NAME = "Lab <b>Auditor</b> & Sons"
MYSELF = "/rest/api/3/myself"
SEARCH = "/rest/api/3/search/jql"
BOUNDED_JQL = "created >= -1d"  # the search endpoint refuses unbounded queries
RESOURCES = "/oauth/token/accessible-resources"
INVALID_REFRESH = {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
MINUTE, DAY = 60.0, 86400.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    cloud: SimCloud
    clock: Clock
    alpha: Site
    beta: Site
    app: OAuthApp
    #: account ids: ann (alpha and beta), eve (alpha, HTML in her name), ina (alpha, inactive), bot (alpha, an app
    #: account), bea (beta)
    people: dict[str, str] = field(default_factory=dict)

    def email(self, who: str) -> str:
        for site in (self.alpha, self.beta):
            user = site.users.get(self.people[who])
            if user is not None and user.email:
                return user.email
        raise AssertionError(who)


@pytest.fixture
def world() -> World:
    a = SiteBuilder("alpha", title="Alpha Jira")
    ann = a.user("Ann Alpha", email="ann@example.com")
    eve = a.user(EVE_NAME)
    ina = a.user("Ina Inactive", active=False)
    bot = a.user("Automation", account_type="app", email=None)
    b = SiteBuilder("beta", title="Beta Jira")
    b.user("Ann Alpha", email="ann@example.com", account_id=ann)  # the same Atlassian account on both sites
    bea = b.user("Bea Beta", account_id="5b10ac8d82e05b22cc7dbea0")  # builders number users per site
    clock = Clock(1_780_000_000.0)
    cloud = SimCloud(a.site, b.site, clock=clock)
    app = cloud.auth.register_app(APP_NAME, callback_url=CALLBACK, scopes=APP_SCOPES)
    people = {"ann": ann, "eve": eve, "ina": ina, "bot": bot, "bea": bea}
    return World(cloud, clock, a.site, b.site, app, people)


# -- helpers -------------------------------------------------------------------------------------------------------


def auth_client(world: World) -> httpx.Client:
    return httpx.Client(transport=world.cloud.transport(), base_url="https://auth.atlassian.com")


def gateway(world: World, site: Site, token: str) -> httpx.Client:
    return httpx.Client(
        transport=world.cloud.transport(),
        base_url=world.cloud.gateway_url(site),
        headers={"Authorization": f"Bearer {token}"},
    )


def resources(world: World, token: str) -> httpx.Response:
    with httpx.Client(transport=world.cloud.transport(), base_url="https://api.atlassian.com") as client:
        return client.get(RESOURCES, headers={"Authorization": f"Bearer {token}"})


def authorize_params(app: OAuthApp, scopes: tuple[str, ...] = READ_SCOPES, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "audience": "api.atlassian.com",
        "client_id": app.client_id,
        "scope": " ".join(scopes),
        "redirect_uri": app.callback_url,
        "state": "st-123",
        "response_type": "code",
        "prompt": "consent",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


class ConsentPage(HTMLParser):
    """What a browser test would see of the consent form: hidden fields, selects, labels, buttons, scopes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action = ""
        self.method = ""
        self.hidden: dict[str, str] = {}
        self.select_names: dict[str, str] = {}
        self.options: dict[str, list[tuple[str, str]]] = {}
        self.labels: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}
        self.scopes: list[str] = []
        self.ids: set[str] = set()
        self._select = ""
        self._option = ""
        self._label = ""
        self._text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "form":
            self.action, self.method = a["action"], a["method"]
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a["value"]
        elif tag == "select":
            self._select = a["id"]
            self.select_names[a["id"]] = a["name"]
            self.options[a["id"]] = []
        elif tag == "option":
            self._option, self._text = a["value"], []
        elif tag == "label":
            self._label, self._text = a["for"], []
        elif tag == "button":
            self.buttons[a["id"]] = (a["name"], a["value"])
        elif tag == "li" and "data-scope" in a:
            self.scopes.append(a["data-scope"])

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option":
            self.options[self._select].append((self._option, "".join(self._text)))
        elif tag == "label":
            self.labels[self._label] = "".join(self._text)

    def submit(self, client: httpx.Client, *, account_id: str, cloud_id: str, button: str) -> httpx.Response:
        name, value = self.buttons[button]
        data = {
            **self.hidden,
            self.select_names["user"]: account_id,
            self.select_names["site"]: cloud_id,
            name: value,
        }
        assert self.method == "post"
        return client.post(self.action, data=data)


def open_consent_page(client: httpx.Client, app: OAuthApp, **overrides: Any) -> ConsentPage:
    response = client.get("/authorize", params=authorize_params(app, **overrides))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return ConsentPage(response.text)


def redirect_params(response: httpx.Response, callback: str = CALLBACK) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == callback
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def consent(world: World, who: str, site: Site, scopes: tuple[str, ...] = READ_SCOPES, state: str = "st-1") -> str:
    """Go through the consent page as ``who`` for ``site``; the authorization code."""
    with auth_client(world) as client:
        page = open_consent_page(client, world.app, scopes=scopes, state=state)
        answer = page.submit(client, account_id=world.people[who], cloud_id=site.cloud_id, button="accept")
    params = redirect_params(answer)
    assert params["state"] == state
    return params["code"]


def token_request(world: World, body: dict[str, str], encoding: str = "json") -> httpx.Response:
    with auth_client(world) as client:
        if encoding == "json":
            return client.post("/oauth/token", json=body)
        return client.post("/oauth/token", data=body)


def exchange(world: World, code: str, encoding: str = "json", **overrides: str) -> httpx.Response:
    body = {
        "grant_type": "authorization_code",
        "client_id": world.app.client_id,
        "client_secret": world.app.client_secret,
        "code": code,
        "redirect_uri": world.app.callback_url,
        **overrides,
    }
    return token_request(world, body, encoding)


def refresh(world: World, refresh_token: str, encoding: str = "json") -> httpx.Response:
    body = {
        "grant_type": "refresh_token",
        "client_id": world.app.client_id,
        "client_secret": world.app.client_secret,
        "refresh_token": refresh_token,
    }
    return token_request(world, body, encoding)


def tokens(world: World, who: str = "ann", site: Site | None = None, scopes: tuple[str, ...] = READ_SCOPES) -> Any:
    response = exchange(world, consent(world, who, site or world.alpha, scopes))
    assert response.status_code == 200, response.text
    return response.json()


def works(world: World, site: Site, token: str, path: str = MYSELF) -> bool:
    with gateway(world, site, token) as client:
        status = client.get(path).status_code
    assert status in (200, 401)
    return status == 200


# -- the consent page ----------------------------------------------------------------------------------------------


def test_the_consent_page_offers_the_active_people_and_the_sites_and_shows_the_request(world: World) -> None:
    with auth_client(world) as client:
        page = open_consent_page(client, world.app, state='s"<&>')
    accounts = [value for value, _ in page.options["user"]]
    p = world.people
    assert accounts == [p["ann"], p["eve"], p["bea"]]  # no inactive user, no app account
    assert [value for value, _ in page.options["site"]] == [world.alpha.cloud_id, world.beta.cloud_id]
    assert any("https://alpha.atlassian.net" in text for _, text in page.options["site"])
    assert page.labels.keys() >= {"user", "site"}
    assert page.scopes == list(READ_SCOPES)
    assert page.hidden["state"] == 's"<&>'
    assert page.hidden["nonce"]
    assert page.buttons["accept"][1] == "accept" and page.buttons["deny"][1] == "deny"
    assert "app-name" in page.ids


def test_the_consent_page_escapes_names_and_the_app(world: World) -> None:
    with auth_client(world) as client:
        text = client.get("/authorize", params=authorize_params(world.app)).text
    assert "<script>" not in text and "<b>" not in text
    assert html.escape(EVE_NAME) in text
    assert html.escape(APP_NAME) in text
    page = ConsentPage(text)
    assert any(label.startswith(EVE_NAME) for _, label in page.options["user"])


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "no-such-app"}, "unauthorized_client"),
        ({"redirect_uri": CALLBACK + "/"}, "unauthorized_client"),
        ({"redirect_uri": "http://localhost:13132/callback"}, "unauthorized_client"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"audience": None}, "invalid_request"),
        ({"audience": "example.com"}, "invalid_request"),
        ({"prompt": None}, "invalid_request"),
        ({"state": None}, "invalid_request"),
        ({"scope": ""}, "invalid_request"),
        ({"scope": "read:jira-work write:jira-work"}, "invalid_scope"),
    ],
    ids=[
        "unknown client",
        "trailing slash",
        "other port",
        "no redirect_uri",
        "implicit grant",
        "no audience",
        "wrong audience",
        "no prompt",
        "no state",
        "no scope",
        "scope not configured on the app",
    ],
)
def test_a_bad_authorization_request_is_an_error_page_never_a_redirect(
    world: World, overrides: dict[str, str | None], error: str
) -> None:
    with auth_client(world) as client:
        params = {k: v for k, v in {**authorize_params(world.app), **overrides}.items() if v is not None}
        response = client.get("/authorize", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert f'<p id="error">{error}</p>' in response.text
    assert world.cloud.auth.consents == []


def test_an_unregistered_redirect_uri_is_named_escaped_on_the_error_page(world: World) -> None:
    evil = "http://evil.example/<script>"
    with auth_client(world) as client:
        response = client.get("/authorize", params=authorize_params(world.app, redirect_uri=evil))
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert html.escape(evil) in response.text


def test_auto_consent_does_not_skip_the_checks(world: World) -> None:
    world.cloud.auth.auto_consent = world.email("ann")
    with auth_client(world) as client:
        response = client.get("/authorize", params=authorize_params(world.app, redirect_uri="http://localhost:1/"))
    assert response.status_code == 400 and "location" not in response.headers


def test_deny_redirects_with_access_denied_and_the_state(world: World) -> None:
    with auth_client(world) as client:
        page = open_consent_page(client, world.app, state="deny-me")
        response = page.submit(client, account_id=world.people["ann"], cloud_id=world.alpha.cloud_id, button="deny")
    params = redirect_params(response)
    assert params["error"] == "access_denied"
    assert params["error_description"]
    assert params["state"] == "deny-me"
    assert "code" not in params
    assert world.cloud.auth.grant(world.app.client_id, world.people["ann"]) is None
    assert [c.decision for c in world.cloud.auth.consents] == ["deny"]


def test_accept_redirects_with_a_code_that_buys_a_token_for_the_chosen_site_only(world: World) -> None:
    code = consent(world, "ann", world.alpha, state="accept-me")
    response = exchange(world, code)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"].split() == sorted(READ_SCOPES)
    assert body["refresh_token"]
    with gateway(world, world.alpha, body["access_token"]) as client:
        me = client.get(MYSELF)
    assert me.status_code == 200 and me.json()["accountId"] == world.people["ann"]
    assert not works(world, world.beta, body["access_token"])  # ann is on beta too, but beta was not granted
    listed = resources(world, body["access_token"]).json()
    assert [r["id"] for r in listed] == [world.alpha.cloud_id]


def test_accepting_a_site_the_person_is_not_on_shows_the_page_again(world: World) -> None:
    with auth_client(world) as client:
        page = open_consent_page(client, world.app)
        response = page.submit(client, account_id=world.people["bea"], cloud_id=world.alpha.cloud_id, button="accept")
        assert response.status_code == 400 and "location" not in response.headers
        again = ConsentPage(response.text)
        assert "problem" in again.ids
        assert again.hidden["nonce"] != page.hidden["nonce"]
        fixed = again.submit(client, account_id=world.people["bea"], cloud_id=world.beta.cloud_id, button="accept")
    assert "code" in redirect_params(fixed)


def test_a_decision_without_the_page_nonce_is_refused(world: World) -> None:
    ann, alpha = world.people["ann"], world.alpha.cloud_id
    with auth_client(world) as client:
        page = open_consent_page(client, world.app)
        forged = {"nonce": "guessed", "state": "st-123", "account_id": ann, "cloud_id": alpha, "decision": "accept"}
        assert client.post("/authorize", data=forged).status_code == 400
        first = page.submit(client, account_id=ann, cloud_id=alpha, button="accept")
        replayed = page.submit(client, account_id=ann, cloud_id=alpha, button="accept")
    assert first.status_code == 302
    assert replayed.status_code == 400 and "location" not in replayed.headers
    assert len(world.cloud.auth.consents) == 1


def test_a_consent_page_left_open_too_long_expires(world: World) -> None:
    with auth_client(world) as client:
        page = open_consent_page(client, world.app)
        world.clock.advance(2 * 3600)
        response = page.submit(client, account_id=world.people["ann"], cloud_id=world.alpha.cloud_id, button="accept")
    assert response.status_code == 400 and "location" not in response.headers


# -- auto-consent --------------------------------------------------------------------------------------------------


def test_auto_consent_by_email_grants_every_site_of_the_user(world: World) -> None:
    world.cloud.auth.auto_consent = world.email("ann")
    with auth_client(world) as client:
        response = client.get("/authorize", params=authorize_params(world.app, state="auto"))
    params = redirect_params(response)
    assert params["state"] == "auto"
    body = exchange(world, params["code"]).json()
    listed = resources(world, body["access_token"]).json()
    assert sorted(r["id"] for r in listed) == sorted([world.alpha.cloud_id, world.beta.cloud_id])
    assert all(r["scopes"] == ["read:jira-user", "read:jira-work"] for r in listed)
    assert all(r["name"] and r["url"] and r["avatarUrl"] for r in listed)
    assert works(world, world.alpha, body["access_token"]) and works(world, world.beta, body["access_token"])
    assert world.cloud.auth.consents[-1].automatic


def test_auto_consent_by_account_id_for_named_sites(world: World) -> None:
    world.cloud.auth.set_auto_consent(world.people["ann"], sites=["beta"])
    with auth_client(world) as client:
        code = redirect_params(client.get("/authorize", params=authorize_params(world.app)))["code"]
    token = exchange(world, code).json()["access_token"]
    assert [r["id"] for r in resources(world, token).json()] == [world.beta.cloud_id]


def test_auto_consent_can_deny(world: World) -> None:
    world.cloud.auth.auto_consent = AutoConsent(world.email("ann"), decision="deny")
    with auth_client(world) as client:
        params = redirect_params(client.get("/authorize", params=authorize_params(world.app, state="x")))
    assert params["error"] == "access_denied" and params["state"] == "x"


@pytest.mark.parametrize(
    ("who", "sites"),
    [("nobody@example.com", None), ("ina", None), ("bot", None), ("bea", ["alpha"])],
    ids=["unknown", "inactive", "app account", "not on that site"],
)
def test_auto_consent_needs_an_active_person_of_the_named_sites(
    world: World, who: str, sites: list[str] | None
) -> None:
    user = world.people.get(who, who)
    with pytest.raises(ValueError):
        world.cloud.auth.set_auto_consent(user, sites=sites)
    assert world.cloud.auth.auto_consent is None


# -- authorization codes -------------------------------------------------------------------------------------------


def test_a_code_is_single_use(world: World) -> None:
    code = consent(world, "ann", world.alpha)
    assert exchange(world, code).status_code == 200
    again = exchange(world, code)
    assert again.status_code == 403
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


def test_a_code_expires_after_ten_minutes(world: World) -> None:
    early, late = consent(world, "ann", world.alpha), consent(world, "ann", world.alpha)
    world.clock.advance(9 * MINUTE)
    assert exchange(world, early).status_code == 200
    world.clock.advance(1 * MINUTE + 1)
    response = exchange(world, late)
    assert response.status_code == 403 and response.json()["error"] == "invalid_grant"


def test_the_code_lifetime_is_configurable(world: World) -> None:
    world.cloud.auth.settings = AuthSettings(code_lifetime=30)
    code = consent(world, "ann", world.alpha)
    world.clock.advance(31)
    assert exchange(world, code).status_code == 403


@pytest.mark.parametrize(
    "overrides",
    [{"client_secret": "wrong"}, {"client_secret": ""}, {"client_id": "no-such-app"}],
    ids=["wrong secret", "empty secret", "unknown client"],
)
def test_a_refused_client_is_401_and_leaves_the_code_usable(world: World, overrides: dict[str, str]) -> None:
    code = consent(world, "ann", world.alpha)
    refused = exchange(world, code, **overrides)
    assert refused.status_code == 401
    assert refused.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    assert world.app.client_secret not in refused.text
    assert exchange(world, code).status_code == 200


def test_a_code_of_another_app_is_refused(world: World) -> None:
    other = world.cloud.auth.register_app("other", callback_url=CALLBACK, scopes=APP_SCOPES)
    code = consent(world, "ann", world.alpha)
    response = exchange(world, code, client_id=other.client_id, client_secret=other.client_secret)
    assert response.status_code == 403 and response.json()["error"] == "invalid_grant"


def test_the_redirect_uri_must_be_the_one_sent_to_authorize(world: World) -> None:
    code = consent(world, "ann", world.alpha)
    wrong = exchange(world, code, redirect_uri="http://localhost:13131/other")
    assert wrong.status_code == 403 and wrong.json()["error"] == "invalid_grant"
    assert exchange(world, code).status_code == 200


@pytest.mark.parametrize("missing", ["code", "redirect_uri", "grant_type"])
def test_a_missing_parameter_is_invalid_request(world: World, missing: str) -> None:
    code = consent(world, "ann", world.alpha)
    body = {
        "grant_type": "authorization_code",
        "client_id": world.app.client_id,
        "client_secret": world.app.client_secret,
        "code": code,
        "redirect_uri": CALLBACK,
    }
    del body[missing]
    response = token_request(world, body)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"Missing required parameter: {missing}",
    }


def test_an_unknown_grant_type_is_refused(world: World) -> None:
    body = {"grant_type": "password", "client_id": world.app.client_id, "client_secret": world.app.client_secret}
    response = token_request(world, body)
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_json_and_form_bodies_are_both_accepted(world: World, encoding: str) -> None:
    code = consent(world, "ann", world.alpha)
    first = exchange(world, code, encoding)
    assert first.status_code == 200
    second = refresh(world, first.json()["refresh_token"], encoding)
    assert second.status_code == 200
    assert works(world, world.alpha, second.json()["access_token"])


def test_without_offline_access_there_is_no_refresh_token(world: World) -> None:
    body = tokens(world, scopes=("read:jira-user",))
    assert "refresh_token" not in body
    assert body["scope"] == "read:jira-user"
    assert works(world, world.alpha, body["access_token"])


def test_access_tokens_expire_after_expires_in(world: World) -> None:
    world.cloud.auth.settings = AuthSettings(access_token_lifetime=120)
    body = tokens(world)
    assert body["expires_in"] == 120
    world.clock.advance(119)
    assert works(world, world.alpha, body["access_token"])
    world.clock.advance(2)
    assert not works(world, world.alpha, body["access_token"])


# -- scopes and sites of the grant -----------------------------------------------------------------------------------


def test_the_gateway_honours_exactly_the_granted_scopes(world: World) -> None:
    body = tokens(world, scopes=("read:jira-user", "offline_access"))
    for token in (body["access_token"], refresh(world, body["refresh_token"]).json()["access_token"]):
        with gateway(world, world.alpha, token) as client:
            assert client.get(MYSELF).status_code == 200
            search = client.get(SEARCH, params={"jql": BOUNDED_JQL})
        assert search.status_code == 401
        assert search.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
        assert search.headers["x-failure-category"] == "FAILURE_CLIENT_SCOPE_CHECK"


def test_consenting_again_adds_the_site_and_replaces_the_scopes_of_the_grant(world: World) -> None:
    ann = world.people["ann"]
    first = tokens(world, "ann", world.alpha, ("read:jira-work", "read:jira-user", "offline_access"))
    with gateway(world, world.alpha, first["access_token"]) as client:
        assert client.get(SEARCH, params={"jql": BOUNDED_JQL}).status_code == 200
    second = tokens(world, "ann", world.beta, ("read:jira-user", "offline_access"))
    grant = world.cloud.auth.grant(world.app.client_id, ann)
    assert grant is not None
    assert grant.cloud_ids == (world.alpha.cloud_id, world.beta.cloud_id)
    assert grant.scopes == {"read:jira-user", "offline_access"}
    for body in (first, second):  # the older token follows the grant too
        token = body["access_token"]
        assert sorted(r["id"] for r in resources(world, token).json()) == sorted(grant.cloud_ids)
        assert works(world, world.beta, token)
        with gateway(world, world.alpha, token) as client:
            assert client.get(SEARCH, params={"jql": BOUNDED_JQL}).status_code == 401
    assert refresh(world, first["refresh_token"]).json()["scope"] == "offline_access read:jira-user"


def test_a_revoked_grant_kills_every_token(world: World) -> None:
    body = tokens(world)
    assert world.cloud.auth.revoke_grant(world.app.client_id, world.people["ann"])
    assert not works(world, world.alpha, body["access_token"])
    response = refresh(world, body["refresh_token"])
    assert response.status_code == 403 and response.json() == INVALID_REFRESH


# -- rotating refresh tokens -----------------------------------------------------------------------------------------


def test_a_refresh_rotates_both_tokens_and_the_old_access_token_lives_ten_minutes_more(world: World) -> None:
    body = tokens(world)
    world.clock.advance(30 * MINUTE)
    rotated = refresh(world, body["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != body["refresh_token"] and new["access_token"] != body["access_token"]
    assert new["token_type"] == "Bearer" and new["expires_in"] == 3600
    assert new["scope"].split() == sorted(READ_SCOPES)
    world.clock.advance(10 * MINUTE - 1)
    assert works(world, world.alpha, body["access_token"])
    world.clock.advance(2)
    assert not works(world, world.alpha, body["access_token"])  # still within its hour, but revoked
    assert works(world, world.alpha, new["access_token"])
    assert refresh(world, new["refresh_token"]).status_code == 200


def test_reusing_a_refresh_token_within_the_window_answers_a_fresh_pair(world: World) -> None:
    body = tokens(world)
    first = refresh(world, body["refresh_token"]).json()
    world.clock.advance(9 * MINUTE)
    again = refresh(world, body["refresh_token"])
    assert again.status_code == 200
    second = again.json()
    assert second["refresh_token"] not in (body["refresh_token"], first["refresh_token"])
    for pair in (first, second):
        assert works(world, world.alpha, pair["access_token"])
        assert refresh(world, pair["refresh_token"]).status_code == 200


def test_reusing_a_refresh_token_after_the_window_revokes_the_whole_family(world: World) -> None:
    body = tokens(world)
    other_family = tokens(world)  # a second code exchange of the same grant
    first = refresh(world, body["refresh_token"]).json()
    world.clock.advance(10 * MINUTE + 1)
    reused = refresh(world, body["refresh_token"])
    assert reused.status_code == 403
    assert reused.json() == INVALID_REFRESH
    assert not works(world, world.alpha, first["access_token"])  # companion of the newest refresh token
    assert refresh(world, first["refresh_token"]).json() == INVALID_REFRESH
    assert works(world, world.alpha, other_family["access_token"])
    assert refresh(world, other_family["refresh_token"]).status_code == 200


def test_the_reuse_window_is_configurable(world: World) -> None:
    world.cloud.auth.settings = AuthSettings(reuse_interval=MINUTE)
    body = tokens(world)
    refresh(world, body["refresh_token"])
    world.clock.advance(MINUTE + 1)
    assert refresh(world, body["refresh_token"]).status_code == 403


def test_a_refresh_token_unused_for_90_days_expires(world: World) -> None:
    body = tokens(world)
    world.clock.advance(90 * DAY + 1)
    response = refresh(world, body["refresh_token"])
    assert response.status_code == 403 and response.json() == INVALID_REFRESH


def test_refreshing_keeps_the_family_alive_until_365_days_after_consent(world: World) -> None:
    refresh_token = tokens(world)["refresh_token"]
    for _ in range(4):  # 356 days in, always within 90 days of the last refresh
        world.clock.advance(89 * DAY)
        response = refresh(world, refresh_token)
        assert response.status_code == 200
        refresh_token = response.json()["refresh_token"]
    world.clock.advance(9 * DAY + 1)
    response = refresh(world, refresh_token)
    assert response.status_code == 403 and response.json() == INVALID_REFRESH


def test_a_refresh_token_is_bound_to_its_app(world: World) -> None:
    other = world.cloud.auth.register_app("other", callback_url=CALLBACK, scopes=APP_SCOPES)
    body = tokens(world)
    stolen = {
        "grant_type": "refresh_token",
        "client_id": other.client_id,
        "client_secret": other.client_secret,
        "refresh_token": body["refresh_token"],
    }
    assert token_request(world, stolen).json() == INVALID_REFRESH
    wrong_secret = {**stolen, "client_id": world.app.client_id}
    assert token_request(world, wrong_secret).status_code == 401
    assert refresh(world, body["refresh_token"]).status_code == 200


# -- counters and secrets ------------------------------------------------------------------------------------------


def test_every_token_request_is_counted_by_grant_type(world: World) -> None:
    auth = world.cloud.auth
    body = tokens(world)
    refresh(world, body["refresh_token"])
    refresh(world, "not-a-token")
    exchange(world, "not-a-code", client_secret="wrong")
    assert auth.request_count() == 4
    assert auth.request_count("authorization_code") == 2
    assert auth.request_count("refresh_token") == 2
    assert [(r.grant_type, r.status, r.error) for r in auth.requests] == [
        ("authorization_code", 200, None),
        ("refresh_token", 200, None),
        ("refresh_token", 403, "invalid_grant"),
        ("authorization_code", 401, "access_denied"),
    ]
    assert all(r.client_id == world.app.client_id and r.at == world.clock.now for r in auth.requests)


def test_secrets_stay_out_of_reprs(world: World) -> None:
    body = tokens(world)
    refresh(world, body["refresh_token"])
    auth = world.cloud.auth
    shown = " ".join([repr(world.app), str(world.app), repr(auth), repr(auth.requests), repr(auth.consents)])
    assert world.app.client_id in repr(world.app)
    for secret in (world.app.client_secret, body["access_token"], body["refresh_token"]):
        assert secret not in shown


def test_an_app_cannot_be_registered_twice(world: World) -> None:
    with pytest.raises(ValueError):
        world.cloud.auth.register_app("copy", callback_url=CALLBACK, scopes=APP_SCOPES, client_id=world.app.client_id)


# -- state across restarts -----------------------------------------------------------------------------------------


def restarted(world: World) -> World:
    """The same sites served by a new cloud that restored the old authorization server's state (through JSON)."""
    saved = json.loads(json.dumps(world.cloud.auth.export_state()))
    cloud = SimCloud(world.alpha, world.beta, clock=world.clock)
    app = cloud.auth.register_app(
        world.app.name,
        callback_url=CALLBACK,
        scopes=APP_SCOPES,
        client_id=world.app.client_id,
        client_secret=world.app.client_secret,
    )
    cloud.auth.restore_state(saved)
    return World(cloud, world.clock, world.alpha, world.beta, app, world.people)


def test_a_restored_server_honours_the_tokens_it_issued_before_the_restart(world: World) -> None:
    body = tokens(world)
    fresh = World(SimCloud(world.alpha, world.beta, clock=world.clock), world.clock, world.alpha, world.beta, world.app)
    assert not works(fresh, world.alpha, body["access_token"])  # a cloud that remembers nothing
    again = restarted(world)
    assert works(again, world.alpha, body["access_token"])
    assert not works(again, world.beta, body["access_token"])  # the grant's sites, no more
    rotated = refresh(again, body["refresh_token"])
    assert rotated.status_code == 200
    assert works(again, world.alpha, rotated.json()["access_token"])
    assert again.cloud.auth.grant(world.app.client_id, world.people["ann"]) == world.cloud.auth.grant(
        world.app.client_id, world.people["ann"]
    )


def test_a_restored_server_still_revokes_a_family_on_late_reuse(world: World) -> None:
    body = tokens(world)
    first = refresh(world, body["refresh_token"]).json()
    world.clock.advance(10 * MINUTE + 1)
    again = restarted(world)
    assert refresh(again, body["refresh_token"]).json() == INVALID_REFRESH
    assert not works(again, world.alpha, first["access_token"])
    assert refresh(again, first["refresh_token"]).json() == INVALID_REFRESH


def test_revoked_and_expired_tokens_are_not_restored(world: World) -> None:
    revoked = tokens(world, "eve")
    world.cloud.auth.revoke_grant(world.app.client_id, world.people["eve"])
    expired = tokens(world)
    world.clock.advance(3600 + 1)
    state = world.cloud.auth.export_state()
    assert revoked["refresh_token"] not in json.dumps(state) and revoked["access_token"] not in json.dumps(state)
    assert expired["access_token"] not in {entry["token"] for entry in state["access_tokens"]}
    again = restarted(world)
    assert refresh(again, revoked["refresh_token"]).json() == INVALID_REFRESH
    assert refresh(again, expired["refresh_token"]).status_code == 200


def test_restoring_something_else_is_a_value_error(world: World) -> None:
    with pytest.raises(ValueError, match="not a saved authorization server state"):
        world.cloud.auth.restore_state({"grants": [{"client_id": "x"}]})
