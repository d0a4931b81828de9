"""``jira_lab.sites``: the demo site (in process, or served by another process) or a site of one's own, signed in to
with stored 3LO tokens or API tokens from the environment, and loaded as the technical user and the analyst.

Every site here is the simulated demo site; "a site of one's own" is the demo served on loopback and named by URL,
which takes exactly the code path of a real site.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from jira_lab import store
from jira_lab.audits import model
from jira_lab.audits.preflight import preflight
from jira_lab.auth.scopes import OFFLINE_ACCESS, REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore
from jira_lab.demo import DemoSite, connect, serve_demo_site
from jira_lab.errors import AuthError
from jira_lab.sim.authserver import DEMO_CLIENT_SECRET
from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site, User
from jira_lab.sim.server import serve
from jira_lab.sites import JiraSite, Role, ensure_loaded, load_site, open_site

ANALYST = "ada.lindqvist@lumen-labs.example"
TECHNICAL_USER = "search-connector@lumen-labs.example"


@pytest.fixture(scope="module")
def demo() -> Site:
    return generate_site("demo")


def person(site: Site, email: str) -> User:
    return next(user for user in site.users.values() if user.email == email)


def who_answers(site: JiraSite, account: str, role: Role = "technical_user") -> str:
    """The account id ``/myself`` names for a client of ``site`` signed in as ``account``."""
    with site.client(account, role) as client:
        return str(client.get("/rest/api/3/myself")["accountId"])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[DemoSite]:
    """The demo site served on loopback, with both principals' 3LO tokens stored as ``jira-lab demo`` stores them."""
    with serve_demo_site(tmp_path / "demo") as demo_site:
        tokens = FileTokenStore(demo_site.token_file)
        for role in ("analyst", "technical_user"):
            connect(demo_site, role, tokens)
        yield demo_site


# -- the demo site in this process -------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["oauth", "basic"])
def test_the_demo_in_process_signs_each_account_in(demo: Site, auth: str) -> None:
    with open_site("demo", auth=auth, environ={}) as site:  # type: ignore[arg-type]
        assert site.simulated and site.url == "https://demo.atlassian.net"
        assert who_answers(site, TECHNICAL_USER) == demo.accounts["technical_user"]
        assert who_answers(site, ANALYST, "analyst") == demo.accounts["analyst"]
        # by account id too
        assert who_answers(site, demo.accounts["technical_user"]) == demo.accounts["technical_user"]


def test_the_demo_in_process_with_oauth_goes_through_the_gateway_with_every_scope(demo: Site) -> None:
    with open_site("demo", environ={}) as site, site.client(TECHNICAL_USER, "technical_user") as client:
        assert client.aio.base_url == f"https://api.atlassian.com/ex/jira/{demo.cloud_id}"
        assert client.aio.scopes == frozenset(REQUIRED_SCOPES) | {OFFLINE_ACCESS}
        assert DEMO_CLIENT_SECRET not in repr(site) and DEMO_CLIENT_SECRET not in repr(client)


def test_an_unknown_demo_account_is_refused_with_the_people_there_are() -> None:
    with open_site("demo", auth="basic", environ={}) as site, pytest.raises(ValueError, match=TECHNICAL_USER):
        site.client("nobody@example.com", "analyst")


def test_loading_the_demo_records_both_principals_and_the_scopes(demo: Site, tmp_path: Path) -> None:
    database = tmp_path / "jira.duckdb"
    with open_site("demo", environ={}) as site:
        technical, analyst = load_site(database, site, analyst=ANALYST, technical_user=TECHNICAL_USER)
    assert (technical.principal_id, analyst.principal_id) == (demo.accounts["technical_user"], demo.accounts["analyst"])
    assert technical.status == analyst.status == "succeeded"
    with store.connect(database, read_only=True) as conn:
        tables = model.from_db(conn)
        principals = {
            row[0]: json.loads(row[1])
            for row in conn.sql("SELECT principal_id, scopes FROM _jira_lab_principals").fetchall()
        }
        checked = conn.sql("SELECT DISTINCT account_id, principal_id FROM permission_checks").fetchall()
    assert tables.site_id == demo.cloud_id
    assert set(principals[technical.principal_id]) == set(REQUIRED_SCOPES) | {OFFLINE_ACCESS}
    # the analyst, loading second, asked Jira about the technical user
    assert checked == [(technical.principal_id, analyst.principal_id)]
    checks = preflight(tables, TECHNICAL_USER)
    assert checks.filter(checks["check_name"] == "scopes")["status"].item() == "pass"


def test_a_database_already_there_is_not_loaded_again(tmp_path: Path) -> None:
    database = tmp_path / "jira.duckdb"
    database.touch()
    # no credentials at all: loading would fail, so nothing was loaded
    assert (
        ensure_loaded(
            database, "https://acme.atlassian.net", analyst=ANALYST, technical_user=TECHNICAL_USER, environ={}
        )
        == []
    )


# -- a demo site served by another process -----------------------------------------------------------------------
def test_the_served_demo_is_found_through_the_variables_jira_lab_demo_prints(served: DemoSite, demo: Site) -> None:
    with open_site("demo", environ=served.environment()) as site:
        assert site.url == served.urls.site_url(served.site)
        assert who_answers(site, TECHNICAL_USER) == demo.accounts["technical_user"]
        assert who_answers(site, ANALYST, "analyst") == demo.accounts["analyst"]


def test_a_simulated_cloud_is_found_through_its_url_with_the_demos_api_tokens(demo: Site) -> None:
    with (
        serve(SimCloud(generate_site("demo"))) as urls,
        open_site("demo", auth="basic", environ={"JIRA_LAB_SIM_URL": urls.base}) as site,
    ):
        assert site.url == f"{urls.base}/site/demo"
        assert who_answers(site, TECHNICAL_USER) == demo.accounts["technical_user"]


# -- a site of one's own -----------------------------------------------------------------------------------------
def own_site_oauth_environment(served: DemoSite) -> dict[str, str]:
    variables = served.environment()
    return {
        name: variables[name]
        for name in ("JIRA_LAB_CLIENT_ID", "JIRA_LAB_CLIENT_SECRET", "JIRA_LAB_AUTH_URL", "JIRA_LAB_API_URL")
    } | {"JIRA_LAB_TOKEN_STORE": str(served.token_file)}


def test_a_stored_grant_is_found_by_the_accounts_email(served: DemoSite, demo: Site) -> None:
    url = served.urls.site_url(served.site)
    with open_site(url, environ=own_site_oauth_environment(served)) as site:
        assert not site.simulated
        assert who_answers(site, TECHNICAL_USER) == demo.accounts["technical_user"]
        assert who_answers(site, ANALYST, "analyst") == demo.accounts["analyst"]
        with pytest.raises(AuthError, match=re.escape("consent as someone@lumen-labs.example")):
            site.client("someone@lumen-labs.example", "analyst")


def test_oauth_without_the_apps_credentials_says_what_to_set() -> None:
    with pytest.raises(AuthError, match=r"\$JIRA_LAB_CLIENT_ID and \$JIRA_LAB_CLIENT_SECRET"):
        open_site("https://acme.atlassian.net", environ={"JIRA_LAB_CLIENT_ID": "x"})


def test_basic_auth_reads_each_principals_api_token_from_its_variable(served: DemoSite, demo: Site) -> None:
    url = served.urls.site_url(served.site)
    analyst, technical = person(demo, ANALYST), person(demo, TECHNICAL_USER)
    assert analyst.api_token and technical.api_token
    environ = {"JIRA_LAB_API_TOKEN": analyst.api_token, "JIRA_LAB_TECHNICAL_USER_API_TOKEN": technical.api_token}
    with open_site(url, auth="basic", environ=environ) as site:
        assert who_answers(site, TECHNICAL_USER) == technical.account_id
        assert who_answers(site, ANALYST, "analyst") == analyst.account_id
    with open_site(url, auth="basic", environ={}) as site:
        with pytest.raises(AuthError, match=r"\$JIRA_LAB_TECHNICAL_USER_API_TOKEN") as refused:
            site.client(TECHNICAL_USER, "technical_user")
        assert technical.api_token not in str(refused.value)


@pytest.mark.parametrize(
    ("site", "auth", "message"),
    [("demo", "token", "auth must be"), ("acme.atlassian.net", "basic", "site must be 'demo' or the site's URL")],
)
def test_misuse_is_a_value_error(site: str, auth: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_site(site, auth=auth, environ={})  # type: ignore[arg-type]
