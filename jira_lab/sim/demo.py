"""The ``demo`` site, built from its definition in ``data/demo-site.toml``.

The TOML file is the single source of truth for the demo's people, groups, projects, schemes, roles, levels and
deliberate mistakes, and tells the story in its comments. This module only reads it: the permission model comes from
the file exactly, the content (issues, comments, worklogs, changelogs) from :func:`~jira_lab.sim.generator.
populate_content` with the seed, and the audit log from the file's ``[[history]]`` through
:func:`~jira_lab.sim.generator.write_audit_log`.

The file is found next to this module in an installed wheel (the build force-includes it there) and in ``data/`` of
a source checkout.
"""

from __future__ import annotations

import random
from typing import Any

from jira_lab.sim.builder import SiteBuilder
from jira_lab.sim.generator import (
    ADMIN_PERMISSIONS,
    DAY,
    WORK_PERMISSIONS,
    Change,
    ChangeKind,
    ContentPlan,
    Guarantee,
    ProjectPlan,
    VisibilityOption,
    demo_definition_path,
    demo_size,
    load_demo_definition,
    populate_content,
    write_audit_log,
)
from jira_lab.sim.model import Holder, Site, Visibility
from jira_lab.sim.permissions import PermissionEngine

__all__ = ["build_demo_site", "demo_definition_path", "demo_size", "load_demo_definition"]

#: History entries (``change = "..."``) and the change kind and direction each stands for.
_HISTORY_CHANGES: dict[str, tuple[ChangeKind, bool]] = {
    "group renamed": ("renamed", True),
    "user deactivated": ("deactivated", False),
    "member added": ("membership", True),
    "member removed": ("membership", False),
    "role actor added": ("role_actor", True),
    "role actor removed": ("role_actor", False),
    "grant added": ("grant", True),
    "grant removed": ("grant", False),
    "level member added": ("level_member", True),
    "level member removed": ("level_member", False),
    "global permission added": ("global_permission", True),
    "global permission removed": ("global_permission", False),
}
#: Accounts that never write content (they audit, index or automate it).
_NON_AUTHORS = {"analyst", "technical_user", "app"}


def build_demo_site(seed: int = 0) -> Site:
    """Build the demo site; the seed changes its content, never its permission model or its story."""
    return _DemoSite(load_demo_definition(), seed).build()


class _DemoSite:
    def __init__(self, definition: dict[str, Any], seed: int) -> None:
        self.definition = definition
        self.seed = seed
        site_info = definition["site"]
        self.b = SiteBuilder(site_info["name"], title=site_info.get("title", "Jira"))
        self.site = self.b.site
        self.people: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.roles: dict[str, int] = {}
        self.fields: dict[str, str] = {}
        self.permission_schemes: dict[str, int] = {}
        self.security_schemes: dict[str, int] = {}
        self.levels: dict[tuple[str, str], int] = {}
        self.projects: dict[str, int] = {}

    def build(self) -> Site:
        self.add_people()
        self.add_groups()
        self.add_access()
        self.add_roles_and_fields()
        self.add_security_schemes()
        self.add_permission_schemes()
        self.add_projects()
        rng = random.Random(f"jira-lab/demo/{self.seed}")
        populate_content(self.b, self.content_plan(), rng)
        write_audit_log(self.b, self.site.accounts["admin"], self.history(), rng)
        self.site.story = self.definition["site"]["story"].strip()
        return self.site

    # -- permission model --------------------------------------------------------------------------------------
    def add_people(self) -> None:
        for key, person in self.definition["people"].items():
            account_type = person.get("type", "atlassian")
            account_id = self.b.user(
                person["name"],
                email=person.get("email") if account_type != "app" else None,
                active=person.get("active", True),
                account_type=account_type,
                api_token=person.get("api_token"),
            )
            self.people[key] = account_id
            if "account" in person:
                self.site.accounts[person["account"]] = account_id

    def add_groups(self) -> None:
        for name, group in self.definition["groups"].items():
            members = [self.person(key) for key in group.get("members", [])]
            group_id = self.b.group(group.get("formerly", name), members=members)
            self.site.groups[group_id].name = name
            self.groups[name] = group_id

    def add_access(self) -> None:
        for key, role in self.definition["application_roles"].items():
            self.b.application_role(key, role["name"], [self.group(name) for name in role["groups"]])
        for permission, groups in self.definition["global_permissions"].items():
            self.b.global_permission(permission, *(self.group(name) for name in groups))

    def add_roles_and_fields(self) -> None:
        for name, description in self.definition["roles"].items():
            self.roles[name] = self.b.role(name, description)
        for key, custom_field in self.definition["custom_fields"].items():
            self.fields[key] = self.b.custom_field(
                custom_field["name"], custom_field["kind"], multi=custom_field.get("multi", False)
            )

    def add_security_schemes(self) -> None:
        for key, scheme in self.definition["security_schemes"].items():
            scheme_id = self.b.security_scheme(scheme["name"], scheme.get("description", ""))
            self.security_schemes[key] = scheme_id
            for level in scheme["levels"]:
                members = [self.holder(text) for text in level["members"]]
                level_id = self.b.security_level(scheme_id, level["name"], members, default=level.get("default", False))
                self.site.security_schemes[scheme_id].levels[-1].description = level.get("description", "")
                self.levels[(key, level["name"])] = level_id

    def add_permission_schemes(self) -> None:
        for key, scheme in self.definition["permission_schemes"].items():
            scheme_id = self.b.permission_scheme(scheme["name"])
            self.site.permission_schemes[scheme_id].description = scheme.get("description", "")
            self.permission_schemes[key] = scheme_id
            for permissions, holders in ((ADMIN_PERMISSIONS, scheme["admin"]), (WORK_PERMISSIONS, scheme["work"])):
                for permission in permissions:
                    for text in holders:
                        self.b.grant(scheme_id, permission, self.holder(text))
            for permission, holders in scheme.get("grants", {}).items():
                for text in holders:
                    self.b.grant(scheme_id, permission, self.holder(text))

    def add_projects(self) -> None:
        for key, project in self.definition["projects"].items():
            security = project.get("security_scheme")
            project_id = self.b.project(
                key,
                project["name"],
                lead=self.person(project["lead"]),
                permission_scheme=self.permission_schemes[project["permission_scheme"]],
                security_scheme=None if security is None else self.security_schemes[security],
                project_type_key=project["type"],
            )
            self.site.projects[project_id].description = project.get("description", project["name"])
            self.projects[key] = project_id
            for role_name, actors in project["roles"].items():
                self.b.role_actor(
                    project_id,
                    self.role(role_name),
                    users=[self.person(p) for p in actors.get("users", [])],
                    groups=[self.group(g) for g in actors.get("groups", [])],
                )

    # -- content -----------------------------------------------------------------------------------------------
    def content_plan(self) -> ContentPlan:
        volume = self.definition["volume"]
        plans = [self.project_plan(key, project) for key, project in self.definition["projects"].items()]
        return ContentPlan(
            projects=plans,
            issues=volume["issues"],
            comments=volume["comments"],
            worklogs=volume["worklogs"],
            changelog_items=volume["changelog_items"],
            deleted_worklogs=volume.get("deleted_worklogs", 0),
            automation=self.site.accounts.get("app"),
            group_values=[self.group(name) for name in self.definition["content"]["group_values"]],
        )

    def project_plan(self, key: str, project: dict[str, Any]) -> ProjectPlan:
        site_project = self.site.projects[self.projects[key]]
        engine = PermissionEngine(self.site)
        non_authors = {self.site.accounts[name] for name in _NON_AUTHORS if name in self.site.accounts}
        actors: set[str] = set()
        for role_id in site_project.role_actors:
            actors |= engine.role_members(site_project, role_id)
        people = sorted(actors - non_authors)
        agents: list[str] = []
        if "Service Desk Team" in self.roles:
            agents = sorted(engine.role_members(site_project, self.roles["Service Desk Team"]) - non_authors)
        levels: list[int] = []
        if site_project.security_scheme_id is not None:
            levels = [level.id for level in self.site.security_schemes[site_project.security_scheme_id].levels]
        guarantees: list[Guarantee] = []
        comment_options = self.restrictions(project.get("comment_restrictions", []), "comment", guarantees)
        worklog_options = self.restrictions(project.get("worklog_restrictions", []), "worklog", guarantees)
        return ProjectPlan(
            project_id=site_project.id,
            theme=project.get("theme", "software"),
            people=people,
            agents=agents,
            comment_options=comment_options,
            worklog_options=worklog_options,
            levels=levels,
            level_share=project.get("security_share", 0.0),
            weight=project.get("weight", 1.0),
            internal_share=project.get("internal_share", 0.0),
            guarantees=guarantees,
            forced_levels=list(levels),
        )

    def restrictions(
        self, entries: list[dict[str, Any]], kind: str, guarantees: list[Guarantee]
    ) -> list[VisibilityOption]:
        options: list[VisibilityOption] = []
        for entry in entries:
            visibility = self.visibility(entry["to"])
            options.append((visibility, entry["share"]))
            if "at_least" in entry:
                guarantees.append(
                    Guarantee("comment" if kind == "comment" else "worklog", visibility, entry["at_least"])
                )
        restricted = sum(share for _, share in options)
        if restricted >= 1:
            raise ValueError(f"restriction shares add up to {restricted}; some items must stay unrestricted")
        return [(None, 1.0 - restricted), *options]

    # -- history -----------------------------------------------------------------------------------------------
    def history(self) -> list[Change]:
        changes: list[Change] = []
        for index, entry in enumerate(self.definition.get("history", [])):
            if entry["change"] not in _HISTORY_CHANGES:
                raise ValueError(f"unknown history change {entry['change']!r}; use one of {sorted(_HISTORY_CHANGES)}")
            kind, added = _HISTORY_CHANGES[entry["change"]]
            # the same day's changes keep the file's order, during office hours
            moment = -entry["days_ago"] * DAY + 3600 * (1 + index % 6) + 60 * index
            holders = entry.get("holders", [entry["holder"]] if "holder" in entry else [None])
            for text in holders:
                changes.append(self.change(entry, kind, added, moment, None if text is None else self.holder(text)))
        return changes

    def change(
        self, entry: dict[str, Any], kind: ChangeKind, added: bool, moment: float, holder: Holder | None
    ) -> Change:
        group_id = self.group(entry["group"]) if "group" in entry else None
        old_name = None
        if kind == "renamed":
            old_name = self.definition["groups"][entry["group"]]["formerly"]
        level_id = None
        if "level" in entry:
            level_id = self.levels[(entry["security_scheme"], entry["level"])]
        return Change(
            moment,
            kind,
            added,
            group_id=group_id,
            account_id=self.person(entry["user"]) if "user" in entry else None,
            project_id=self.projects[entry["project"]] if "project" in entry else None,
            role_id=self.role(entry["role"]) if "role" in entry else None,
            scheme_id=self.permission_schemes[entry["scheme"]] if "scheme" in entry else None,
            level_id=level_id,
            permission=entry.get("permission"),
            holder=holder,
            old_name=old_name,
            author=self.person(entry["by"]) if "by" in entry else None,
        )

    # -- names -------------------------------------------------------------------------------------------------
    def person(self, key: str) -> str:
        if key not in self.people:
            raise ValueError(f"unknown person {key!r} in demo-site.toml")
        return self.people[key]

    def group(self, name: str) -> str:
        if name not in self.groups:
            raise ValueError(f"unknown group {name!r} in demo-site.toml")
        return self.groups[name]

    def role(self, name: str) -> int:
        if name not in self.roles:
            raise ValueError(f"unknown role {name!r} in demo-site.toml")
        return self.roles[name]

    def holder(self, text: str) -> Holder:
        """A holder from ``type`` or ``type:value`` (see the file's header)."""
        kind, _, value = text.partition(":")
        if kind in ("anyone", "reporter", "assignee", "projectLead") and not value:
            return Holder(kind)
        if kind == "applicationRole":
            return Holder(kind, value or None)
        if kind == "group":
            return Holder(kind, self.group(value))
        if kind == "projectRole":
            return Holder(kind, str(self.role(value)))
        if kind == "user":
            return Holder(kind, self.person(value))
        if kind in ("userCustomField", "groupCustomField") and value in self.fields:
            return Holder(kind, self.fields[value])
        raise ValueError(f"cannot read the holder {text!r} in demo-site.toml")

    def visibility(self, text: str) -> Visibility:
        kind, _, value = text.partition(":")
        if kind == "role":
            self.role(value)
            return Visibility("role", value)
        if kind == "group":
            return Visibility("group", self.group(value))
        raise ValueError(f"cannot read the restriction {text!r} in demo-site.toml; use role:<name> or group:<name>")
