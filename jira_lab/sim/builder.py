"""A small fluent builder for :class:`~jira_lab.sim.model.Site`, used by the generator and by hand-built test sites.

It hands out ids the way Jira does (numeric ids from 10000, keys ``PROJ-1``...), so that tests read like a site
admin's description::

    b = SiteBuilder("tiny")
    ann = b.user("Ann Analyst")
    devs = b.group("developers", members=[ann])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", devs))])
    eng = b.project("ENG", "Engineering", lead=ann, permission_scheme=scheme)
    issue = b.issue(eng, "First issue", reporter=ann)
    b.comment(issue, ann, "hello", visibility=Visibility("group", devs))
    site = b.site
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from jira_lab.sim.model import (
    AccountType,
    ApplicationRole,
    ChangeItem,
    ChangelogHistory,
    Comment,
    CustomField,
    Group,
    Holder,
    Issue,
    PermissionGrant,
    PermissionScheme,
    Project,
    ProjectRole,
    RoleActors,
    SecurityLevel,
    SecurityLevelMember,
    SecurityScheme,
    Site,
    User,
    Visibility,
    Worklog,
)

#: The moment generated sites are anchored to, so that every seed gives the same timestamps.
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def adf(text: str) -> dict[str, Any]:
    """A one-paragraph Atlassian Document Format document."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


class SiteBuilder:
    """Builds a :class:`Site` with Jira-like ids; every method returns the id of what it created."""

    def __init__(self, name: str, cloud_id: str | None = None, *, title: str = "Jira") -> None:
        self.site = Site(
            name=name, cloud_id=cloud_id or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.sim")), title=title
        )
        self._next: dict[str, int] = {}
        self._issue_numbers: dict[int, int] = {}

    def next_id(self, kind: str, start: int = 10000) -> int:
        value = self._next.get(kind, start)
        self._next[kind] = value + 1
        return value

    # -- people ------------------------------------------------------------------------------------------------
    def user(
        self,
        display_name: str,
        *,
        email: str | None = "",
        active: bool = True,
        account_type: AccountType = "atlassian",
        api_token: str | None = None,
        account_id: str | None = None,
    ) -> str:
        n = self.next_id("user", 1)
        account_id = account_id or f"5b10ac8d82e05b22cc7d{n:04x}"
        if email == "":
            email = display_name.lower().replace(" ", ".") + f"@{self.site.name}.example"
        self.site.users[account_id] = User(account_id, display_name, email, active, account_type, api_token=api_token)
        return account_id

    def group(self, name: str, *, members: Iterable[str] = (), group_id: str | None = None) -> str:
        gid = group_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.site.name}/group/{name}"))
        self.site.groups[gid] = Group(gid, name)
        self.site.group_members[gid] = set(members)
        return gid

    def add_members(self, group_id: str, *account_ids: str) -> None:
        self.site.group_members[group_id].update(account_ids)

    def application_role(self, key: str, name: str, groups: Iterable[str]) -> str:
        group_ids = list(groups)
        self.site.application_roles[key] = ApplicationRole(key, name, group_ids, group_ids[:1])
        return key

    def global_permission(self, permission: str, *group_ids: str) -> None:
        self.site.global_permissions.setdefault(permission, set()).update(group_ids)

    # -- configuration -----------------------------------------------------------------------------------------
    def role(self, name: str, description: str = "") -> int:
        role_id = self.next_id("role", 10002)
        self.site.project_roles[role_id] = ProjectRole(role_id, name, description)
        return role_id

    def role_default_actor(self, role_id: int, *, users: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
        """Default actors of a role (``GET /role``); they do not change the actors of existing projects."""
        actors = self.site.project_roles[role_id].default_actors
        actors.account_ids.update(users)
        actors.group_ids.update(groups)

    def permission_scheme(self, name: str, grants: Iterable[tuple[str, Holder]] = ()) -> int:
        scheme_id = self.next_id("permission_scheme", 10000)
        self.site.permission_schemes[scheme_id] = PermissionScheme(scheme_id, name)
        for permission, holder in grants:
            self.grant(scheme_id, permission, holder)
        return scheme_id

    def grant(self, scheme_id: int, permission: str, holder: Holder) -> int:
        grant_id = self.next_id("grant", 10100)
        self.site.permission_schemes[scheme_id].grants.append(PermissionGrant(grant_id, permission, holder))
        return grant_id

    def security_scheme(self, name: str, description: str = "") -> int:
        scheme_id = self.next_id("security_scheme", 10000)
        self.site.security_schemes[scheme_id] = SecurityScheme(scheme_id, name, description)
        return scheme_id

    def security_level(
        self, scheme_id: int, name: str, members: Iterable[Holder] = (), *, default: bool = False
    ) -> int:
        level_id = self.next_id("security_level", 10000)
        level = SecurityLevel(level_id, name)
        for holder in members:
            level.members.append(SecurityLevelMember(self.next_id("level_member", 10000), holder))
        scheme = self.site.security_schemes[scheme_id]
        scheme.levels.append(level)
        if default:
            scheme.default_level_id = level_id
        return level_id

    def custom_field(self, name: str, kind: str, *, multi: bool = False) -> str:
        field_id = f"customfield_{self.next_id('custom_field', 10050)}"
        self.site.custom_fields[field_id] = CustomField(field_id, name, kind, multi)  # type: ignore[arg-type]
        return field_id

    def project(
        self,
        key: str,
        name: str,
        *,
        lead: str,
        permission_scheme: int,
        security_scheme: int | None = None,
        project_type_key: str = "software",
    ) -> int:
        project_id = self.next_id("project", 10000)
        self.site.projects[project_id] = Project(
            project_id, key, name, lead, permission_scheme, security_scheme, project_type_key
        )
        self._issue_numbers[project_id] = 0
        return project_id

    def role_actor(
        self, project_id: int, role_id: int, *, users: Iterable[str] = (), groups: Iterable[str] = ()
    ) -> None:
        actors = self.site.projects[project_id].role_actors.setdefault(role_id, RoleActors())
        actors.account_ids.update(users)
        actors.group_ids.update(groups)

    # -- content -----------------------------------------------------------------------------------------------
    def issue(
        self,
        project_id: int,
        summary: str,
        *,
        reporter: str | None,
        assignee: str | None = None,
        security_level: int | None = None,
        created: datetime | None = None,
        updated: datetime | None = None,
        status: str = "To Do",
        issue_type: str = "Task",
        description: str | None = None,
        custom_fields: dict[str, Any] | None = None,
    ) -> int:
        issue_id = self.next_id("issue", 10000)
        self._issue_numbers[project_id] += 1
        key = f"{self.site.projects[project_id].key}-{self._issue_numbers[project_id]}"
        created = created or EPOCH + timedelta(hours=issue_id - 10000)
        self.site.add_issue(
            Issue(
                id=issue_id,
                key=key,
                project_id=project_id,
                summary=summary,
                issue_type=issue_type,
                status=status,
                created=created,
                updated=updated or created,
                reporter_account_id=reporter,
                assignee_account_id=assignee,
                security_level_id=security_level,
                description=adf(description) if description is not None else None,
                custom_fields=dict(custom_fields or {}),
            )
        )
        return issue_id

    def _touch(self, issue_id: int, moment: datetime) -> None:
        issue = self.site.issues[issue_id]
        issue.updated = max(issue.updated, moment)

    def comment(
        self,
        issue_id: int,
        author: str,
        text: str,
        *,
        visibility: Visibility | None = None,
        created: datetime | None = None,
        jsd_public: bool = True,
    ) -> int:
        comment_id = self.next_id("comment", 10000)
        issue = self.site.issues[issue_id]
        created = created or issue.created + timedelta(minutes=len(issue.comments) + 1)
        self.site.add_comment(
            Comment(comment_id, issue_id, author, adf(text), created, created, author, visibility, jsd_public)
        )
        self._touch(issue_id, created)
        return comment_id

    def worklog(
        self,
        issue_id: int,
        author: str,
        seconds: int,
        *,
        text: str | None = None,
        visibility: Visibility | None = None,
        started: datetime | None = None,
        created: datetime | None = None,
    ) -> int:
        worklog_id = self.next_id("worklog", 10000)
        issue = self.site.issues[issue_id]
        created = created or issue.created + timedelta(minutes=len(issue.worklogs) + 1)
        self.site.add_worklog(
            Worklog(
                worklog_id,
                issue_id,
                author,
                started or created,
                seconds,
                created,
                created,
                adf(text) if text is not None else None,
                author,
                visibility,
            )
        )
        self._touch(issue_id, created)
        return worklog_id

    def change(
        self, issue_id: int, author: str, items: Iterable[ChangeItem], *, created: datetime | None = None
    ) -> int:
        history_id = self.next_id("changelog", 10000)
        issue = self.site.issues[issue_id]
        created = created or issue.created + timedelta(minutes=len(issue.changelog) + 1)
        issue.changelog.append(ChangelogHistory(history_id, issue_id, author, created, list(items)))
        self._touch(issue_id, created)
        return history_id
