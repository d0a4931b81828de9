"""Where the notebooks' data comes from: the simulated demo site or your own, loaded as two principals.

An audit needs the site loaded twice into one DuckDB file: as the **technical user** (what the connector sees) and as
an **analyst** who sees everything (a Jira administrator in every role, group and level)::

    with open_site("demo") as site:                     # the simulated demo site, served in this process
        load_site("jira.duckdb", site, analyst="ada.lindqvist@lumen-labs.example",
                  technical_user="search-connector@lumen-labs.example")

    ensure_loaded("jira.duckdb", "https://acme.atlassian.net", auth="basic", analyst=..., technical_user=...)

How each account signs in (``auth``):

* ``"oauth"``: the 3LO token that notebook 1 or ``jira-lab token`` stored for that account
  (:func:`jira_lab.auth.connect_from_store`). The app's id and secret come from ``$JIRA_LAB_CLIENT_ID`` and
  ``$JIRA_LAB_CLIENT_SECRET``, the token file from ``$JIRA_LAB_TOKEN_STORE`` (default: jira-lab's token file),
  Atlassian's hosts from ``$JIRA_LAB_AUTH_URL`` and ``$JIRA_LAB_API_URL`` (default: Atlassian's own). The scopes the
  technical user's app was granted are recorded with its load, so the preflight can check them.
* ``"basic"``: email and API token. The emails are the ``analyst`` and ``technical_user`` arguments; the API tokens
  come from ``$JIRA_LAB_API_TOKEN`` (the analyst, as for ``jira-lab load``) and ``$JIRA_LAB_TECHNICAL_USER_API_TOKEN``.

``"demo"`` is the simulated demo site (``data/demo-site.toml``):

* by default it is built and served **in this process** (no port, no network); with ``"oauth"`` both accounts consent
  to the demo app on the simulated consent page (answered automatically), exactly the flow of a real site;
* when ``$JIRA_LAB_SITE_URL`` is set (``jira-lab demo --serve`` prints it, with the variables above), the running
  demo site at that URL is used; when ``$JIRA_LAB_SIM_URL`` is set (``jira-lab sim --site demo``, as in notebook 1),
  the demo site of that simulated cloud, with the demo app's id and secret. With ``"basic"``, the demo's simulated API
  tokens are used (they open nothing outside the simulator).

No token, API token or client secret is ever printed, kept in a repr, or written anywhere by this module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import httpx

from jira_lab.auth.connect import (
    Connection,
    complete_authorization,
    connect_from_store,
    start_authorization,
)
from jira_lab.auth.httpauth import basic_auth
from jira_lab.auth.oauth import API_URL, AUTH_URL
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, MemoryTokenStore, TokenStore
from jira_lab.client import SyncJiraClient
from jira_lab.errors import AuthError
from jira_lab.load import LoadSummary, load

if TYPE_CHECKING:
    from jira_lab.sim.cloud import SimCloud
    from jira_lab.sim.model import Site, User

__all__ = [
    "API_TOKEN_VARIABLES",
    "DEMO",
    "Auth",
    "JiraSite",
    "Role",
    "ensure_loaded",
    "load_site",
    "open_site",
]

#: The simulated demo site's name, as ``site`` argument.
DEMO = "demo"

Auth = Literal["oauth", "basic"]
Role = Literal["analyst", "technical_user"]

#: Where Basic auth finds each principal's API token.
API_TOKEN_VARIABLES: dict[Role, str] = {
    "analyst": "JIRA_LAB_API_TOKEN",
    "technical_user": "JIRA_LAB_TECHNICAL_USER_API_TOKEN",
}

#: Makes a client signed in as an account (email or account id) that plays a role.
ClientFactory = Callable[[str, Role], SyncJiraClient]

_AUTH_KINDS = ("oauth", "basic")


@dataclass
class JiraSite:
    """A Jira Cloud site to load, and how its accounts sign in. Close it when done (it is a context manager).

    Attributes:
        url: the site's URL (``https://<name>.atlassian.net``, or the simulated site's).
        auth: ``oauth`` or ``basic``.
        simulated: the simulated demo site, built in this process or running elsewhere.
    """

    url: str
    auth: Auth
    simulated: bool
    _connect: ClientFactory = field(repr=False)
    _resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def client(self, account: str, role: Role) -> SyncJiraClient:
        """A new client signed in as ``account`` (email or account id), which plays ``role``; close it after use.

        Raises:
            AuthError: the account's credentials are missing, or no stored grant is the account's.
            ValueError: ``account`` is no account of the simulated demo site.
        """
        return self._connect(account, role)

    def close(self) -> None:
        """Release what the site holds (the in-process simulator, HTTP connections); safe to call twice."""
        self._resources.close()

    def __enter__(self) -> JiraSite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_site(site: str = DEMO, *, auth: Auth = "oauth", environ: Mapping[str, str] | None = None) -> JiraSite:
    """The site to load: ``"demo"`` (the simulated demo site, see the module docstring) or a site URL.

    Args:
        site: ``"demo"``, or your site's URL (``https://your-site.atlassian.net``).
        auth: ``"oauth"`` (stored 3LO tokens) or ``"basic"`` (API tokens from the environment).
        environ: where the variables are read (default: ``os.environ``).

    Raises:
        ValueError: ``auth`` is neither ``oauth`` nor ``basic``, or ``site`` is neither ``demo`` nor a URL.
    """
    if auth not in _AUTH_KINDS:
        raise ValueError(f"auth must be 'oauth' or 'basic', not {auth!r}")
    env = os.environ if environ is None else environ
    if site == DEMO:
        if env.get("JIRA_LAB_SITE_URL"):
            return _running_demo(env["JIRA_LAB_SITE_URL"], auth, env)
        if env.get("JIRA_LAB_SIM_URL"):
            sim = env["JIRA_LAB_SIM_URL"].rstrip("/")
            return _running_demo(f"{sim}/site/{DEMO}", auth, {**env, "JIRA_LAB_AUTH_URL": sim, "JIRA_LAB_API_URL": sim})
        return _demo_in_process(auth)
    if not site.startswith(("https://", "http://")):
        raise ValueError(f"site must be 'demo' or the site's URL (https://your-site.atlassian.net), not {site!r}")
    url = site.rstrip("/")
    if auth == "basic":
        return JiraSite(url, auth, False, _basic_clients(url, env))
    resources = contextlib.ExitStack()
    return JiraSite(url, auth, False, _stored_clients(url, env, resources), resources)


def load_site(
    database: str | Path,
    site: JiraSite,
    *,
    analyst: str,
    technical_user: str,
    progress: bool = False,
    full: bool = False,
) -> list[LoadSummary]:
    """Load ``site`` into ``database`` as the technical user, then as the analyst (incrementally when loaded before).

    The technical user loads first, so the analyst's load can ask Jira about it by account id
    (``permissions/check``, which needs an administrator).

    Args:
        database: the DuckDB file (created when missing).
        site: from :func:`open_site`.
        analyst: the analyst's email or account id (sees everything).
        technical_user: the connector's account: email or account id.
        progress: show progress bars.
        full: read everything again instead of from the cursors.

    Returns:
        The two load summaries, the technical user's first.
    """
    with site.client(technical_user, "technical_user") as client:
        technical = load(database, client, progress=progress, full=full)
    with site.client(analyst, "analyst") as client:
        analysts = load(database, client, progress=progress, full=full, check_accounts=[technical.principal_id])
    return [technical, analysts]


def ensure_loaded(
    database: str | Path,
    site: str = DEMO,
    *,
    auth: Auth = "oauth",
    analyst: str,
    technical_user: str,
    environ: Mapping[str, str] | None = None,
) -> list[LoadSummary]:
    """Load the site into ``database`` unless the file exists already (a notebook run on its own loads it first).

    Returns:
        The load summaries, or an empty list when the file was there.
    """
    if Path(database).exists():
        return []
    with open_site(site, auth=auth, environ=environ) as opened:
        return load_site(database, opened, analyst=analyst, technical_user=technical_user)


# -- the simulated demo site ---------------------------------------------------------------------------------------
def _demo_user(site: Site, account: str) -> User:
    """The demo site's user with this email (any case) or account id."""
    wanted = account.strip().casefold()
    for user in site.users.values():
        if user.account_id == account or (user.email or "").casefold() == wanted:
            return user
    people = ", ".join(sorted(u.email for u in site.users.values() if u.email and u.api_token))
    raise ValueError(f"{account!r} is no account of the demo site; its people include {people}")


def _demo_basic_client(base_url: str, user: User, transport: httpx.AsyncBaseTransport | None) -> SyncJiraClient:
    if not user.email or not user.api_token:
        raise ValueError(f"{user.display_name} has no API token on the demo site: choose another account")
    return SyncJiraClient(base_url, auth=basic_auth(user.email, user.api_token), transport=transport)


def _oauth_client(connection: Connection, transport: httpx.AsyncBaseTransport | None = None) -> SyncJiraClient:
    return SyncJiraClient(
        connection.api_base, auth=connection.auth, transport=transport, scopes=connection.token.scopes
    )


def _demo_in_process(auth: Auth) -> JiraSite:
    """The demo site built and answered in this process: nothing listens on a port."""
    from jira_lab.sim.authserver import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, register_demo_app
    from jira_lab.sim.cloud import SimCloud
    from jira_lab.sim.generator import generate_site

    site = generate_site(DEMO)
    cloud = SimCloud(site)
    resources = contextlib.ExitStack()
    if auth == "basic":

        def basic_client(account: str, role: Role) -> SyncJiraClient:
            return _demo_basic_client(cloud.site_url(site), _demo_user(site, account), cloud.transport())

        return JiraSite(cloud.site_url(site), auth, True, basic_client, resources)

    register_demo_app(cloud, REQUIRED_SCOPES)
    tokens = MemoryTokenStore()
    http = resources.enter_context(httpx.Client(transport=cloud.transport()))

    def oauth_client(account: str, role: Role) -> SyncJiraClient:
        user = _demo_user(site, account)
        consented = tokens.keys()  # a TokenStore is no mapping: keys() is its API
        if not any(key.account_id == user.account_id for key in consented):
            _consent_automatically(cloud, http, tokens, user.account_id, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        connection = connect_from_store(
            DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, store=tokens, account_id=user.account_id, http=http
        )
        return _oauth_client(connection, cloud.transport())

    return JiraSite(cloud.site_url(site), auth, True, oauth_client, resources)


def _consent_automatically(
    cloud: SimCloud, http: httpx.Client, tokens: TokenStore, account_id: str, client_id: str, client_secret: str
) -> None:
    """The 3LO consent as ``account_id``, answered by the simulated consent page at once; the token goes to ``tokens``.

    The browser's part is a GET of the consent page, which redirects to the app's callback URL with the code.
    """
    cloud.auth.set_auto_consent(account_id, sites=[DEMO])
    try:
        pending = start_authorization(client_id)
        redirect = http.get(pending.url).headers["location"]
    finally:
        cloud.auth.auto_consent = None
    complete_authorization(pending, client_secret, redirect, store=tokens, http=http)


def _running_demo(url: str, auth: Auth, env: Mapping[str, str]) -> JiraSite:
    """The demo site served by another process (``jira-lab demo --serve``, ``jira-lab sim``)."""
    from jira_lab.sim.authserver import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
    from jira_lab.sim.generator import generate_site

    url = url.rstrip("/")
    # every served demo has the same people: their account ids and simulated API tokens are known here too
    site = generate_site(DEMO)
    resources = contextlib.ExitStack()
    if auth == "basic":

        def basic_client(account: str, role: Role) -> SyncJiraClient:
            return _demo_basic_client(url, _demo_user(site, account), None)

        return JiraSite(url, auth, True, basic_client, resources)
    demo_app = {"JIRA_LAB_CLIENT_ID": DEMO_CLIENT_ID, "JIRA_LAB_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    stored_client = _stored_clients(url, {**demo_app, **_set(env)}, resources)

    def oauth_client(account: str, role: Role) -> SyncJiraClient:
        return stored_client(_demo_user(site, account).account_id, role)

    return JiraSite(url, auth, True, oauth_client, resources)


def _set(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that have a value (an empty one counts as unset)."""
    return {name: value for name, value in env.items() if value}


# -- a site of your own (or a running simulated one) ---------------------------------------------------------------
def _basic_clients(url: str, env: Mapping[str, str]) -> ClientFactory:
    def basic_client(account: str, role: Role) -> SyncJiraClient:
        variable = API_TOKEN_VARIABLES[role]
        api_token = env.get(variable, "")
        if not api_token:
            raise AuthError(f"set ${variable} to the API token of {account} (the {role.replace('_', ' ')})")
        if "@" not in account:
            raise ValueError(f"basic auth needs the {role.replace('_', ' ')}'s email, not {account!r}")
        return SyncJiraClient.for_site(url, auth=basic_auth(account, api_token))

    return basic_client


def _stored_clients(url: str, env: Mapping[str, str], resources: contextlib.ExitStack) -> ClientFactory:
    client_id, client_secret = env.get("JIRA_LAB_CLIENT_ID", ""), env.get("JIRA_LAB_CLIENT_SECRET", "")
    if not client_id or not client_secret:
        raise AuthError(
            "set $JIRA_LAB_CLIENT_ID and $JIRA_LAB_CLIENT_SECRET to the OAuth app's id and secret "
            "(its tokens are the ones notebook 1 or `jira-lab token` stored), or use auth='basic'"
        )
    store = FileTokenStore(env.get("JIRA_LAB_TOKEN_STORE") or None)
    auth_url, api_url = env.get("JIRA_LAB_AUTH_URL") or AUTH_URL, env.get("JIRA_LAB_API_URL") or API_URL
    http = resources.enter_context(httpx.Client(timeout=30))

    def connect(account_id: str | None) -> Connection:
        return connect_from_store(
            client_id,
            client_secret,
            store=store,
            site_url=url,
            account_id=account_id,
            auth_url=auth_url,
            api_url=api_url,
            http=http,
        )

    def oauth_client(account: str, role: Role) -> SyncJiraClient:
        return _oauth_client(_stored_connection(store, client_id, account, connect, http))

    return oauth_client


def _stored_connection(
    store: TokenStore,
    client_id: str,
    account: str,
    connect: Callable[[str | None], Connection],
    http: httpx.Client,
) -> Connection:
    """The stored grant of the app for ``account``: by account id, or by email (asked of Jira: the store keeps none).

    Raises:
        AuthError: no stored grant is the account's (or the account's own grant no longer works).
    """
    stored = store.keys()  # a TokenStore is no mapping: keys() is its API
    account_ids = [key.account_id for key in stored if key.client_id == client_id]
    if account in account_ids:
        return connect(account)
    wanted = account.strip().casefold()
    problems: list[str] = []
    for account_id in account_ids if "@" in wanted else []:
        try:
            connection = connect(account_id)
        except AuthError as error:  # another account's grant may be gone; this account's may still be here
            problems.append(f"{account_id}: {error}")
            continue
        me = http.get(connection.api_base + "/rest/api/3/myself", auth=connection.auth)
        if me.is_success and str(me.json().get("emailAddress") or "").casefold() == wanted:
            return connection
    grants = ", ".join(str(a) for a in account_ids) or "none"
    raise AuthError(
        f"no grant of app {client_id!r} stored in {store!r} is {account}'s (stored for account ids: {grants}); "
        f"consent as {account} with notebook 1 or `jira-lab token`"
        + (f" (unusable grants: {'; '.join(problems)})" if problems else "")
    )
