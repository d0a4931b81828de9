"""A hand-built site for the identity and project endpoint tests (users, groups, projects, roles).

Every expectation of those tests reads off this description:

* ``admin`` (Ada) is only in ``jira-administrators`` (Administer Jira): she *views* every project but browses only
  PUB, where anyone may.
* ``browser`` (Bea) holds *Browse users and groups* through ``user-browsers`` and is a developer.
* ``dev`` (Carl) is a developer without *Browse users and groups*.
* ``lead`` (Pat) leads ENG, is an actor of its Administrators role (so administers ENG only) and is in ``ops``.
* ``opsie`` (Olga) is only in ``ops``; ``outsider`` (Otto) is in no group at all.
* ``gone`` (Dora) is a deactivated developer; ``bot`` is an app account; ``customer`` a JSM customer.

Projects: ENG (Browse: ``developers``; Administer Projects: role Administrators), OPS (Browse: ``ops``; same
administration rule, where nobody is an actor), PUB (Browse: anyone, anonymous included) and SEC (Browse: the
user ``bot`` only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from site_clients import HandBuiltSite, api_token

from jira_lab.sim import Holder, SimCloud, SiteBuilder

#: accounts that can call the site with Basic auth (email, "token-<name>")
CALLERS = ("admin", "browser", "dev", "lead", "opsie", "outsider")


@dataclass
class IdentitySite(HandBuiltSite):
    groups: dict[str, str]
    projects: dict[str, int]
    roles: dict[str, int]


def build_identity_site() -> IdentitySite:
    b = SiteBuilder("ident")
    users = {
        "admin": b.user("Ada Admin", api_token=api_token("admin")),
        "browser": b.user("Bea Browser", api_token=api_token("browser")),
        "dev": b.user("Carl Developer", api_token=api_token("dev")),
        "lead": b.user("Pat Lead", api_token=api_token("lead")),
        "opsie": b.user("Olga Ops", api_token=api_token("opsie")),
        "outsider": b.user("Otto Outsider", api_token=api_token("outsider")),
        "gone": b.user("Dora Departed", active=False),
        "bot": b.user("Automation Bot", email=None, account_type="app"),
        "customer": b.user("Cleo Customer", account_type="customer"),
    }
    staff = [users[name] for name in ("admin", "browser", "dev", "lead", "opsie", "outsider")]
    groups = {
        "jira-administrators": b.group("jira-administrators", members=[users["admin"]]),
        "user-browsers": b.group("user-browsers", members=[users["browser"]]),
        # "zeta" sorts last by name although it is created early, so listing order is tested against names
        "zeta": b.group("zeta-team", members=[users["dev"]]),
        "developers": b.group("developers", members=[users["browser"], users["dev"], users["gone"]]),
        "ops": b.group("ops", members=[users["lead"], users["opsie"]]),
        "jira-software-users": b.group("jira-software-users", members=staff),
    }
    b.global_permission("ADMINISTER", groups["jira-administrators"])
    b.global_permission("USER_PICKER", groups["user-browsers"])
    b.application_role("jira-software", "Jira Software", [groups["jira-software-users"]])

    roles = {
        "Administrators": b.role("Administrators", "Project administrators"),
        "Developers": b.role("Developers", "People who work on issues"),
        "Viewers": b.role("Viewers"),
    }
    b.role_default_actor(roles["Administrators"], groups=[groups["jira-administrators"]])
    b.role_default_actor(roles["Developers"], users=[users["dev"]], groups=[groups["developers"]])

    administrators = Holder("projectRole", str(roles["Administrators"]))

    def scheme(name: str, browse: Holder) -> int:
        return b.permission_scheme(
            name,
            grants=[
                ("BROWSE_PROJECTS", browse),
                ("ADMINISTER_PROJECTS", administrators),
                ("CREATE_ISSUES", browse),
            ],
        )

    projects = {
        "ENG": b.project(
            "ENG",
            "Engineering",
            lead=users["lead"],
            permission_scheme=scheme("Eng", Holder("group", groups["developers"])),
        ),
        "OPS": b.project(
            "OPS", "Operations", lead=users["opsie"], permission_scheme=scheme("Ops", Holder("group", groups["ops"]))
        ),
        "PUB": b.project(
            "PUB",
            "Public Board",
            lead=users["admin"],
            permission_scheme=scheme("Public", Holder("anyone")),
            project_type_key="business",
        ),
        "SEC": b.project(
            "SEC", "Secret Research", lead=users["admin"], permission_scheme=scheme("Sec", Holder("user", users["bot"]))
        ),
    }
    b.site.projects[projects["ENG"]].description = "Where the product is built"
    b.role_actor(projects["ENG"], roles["Administrators"], users=[users["lead"]])
    b.role_actor(
        projects["ENG"], roles["Developers"], users=[users["gone"], users["outsider"]], groups=[groups["developers"]]
    )
    b.role_actor(projects["OPS"], roles["Developers"], groups=[groups["ops"]])
    for title in ("Set up CI", "Write docs", "Fix login"):
        b.issue(projects["ENG"], title, reporter=users["dev"])
    b.issue(projects["ENG"], "Incident review", reporter=users["dev"], issue_type="Postmortem")
    b.issue(projects["OPS"], "Rotate keys", reporter=users["opsie"])
    return IdentitySite(b, SimCloud(b.site), users, groups, projects, roles)


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    """GET ``path`` and return its JSON body, failing on anything but 200."""
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()
