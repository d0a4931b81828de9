"""The simulated site's data model: plain mutable dataclasses, one per Jira entity.

A :class:`Site` holds everything one Jira Cloud site knows. Entities refer to each other by id (account id, group
id, project id, role id, level id ...), never by object, so a site can be generated, mutated by tests (rename a
group, remove a role actor) and rendered by the API without stale copies. Group names live only on :class:`Group`:
a comment's ``visibility`` stores the group *id* and shows whichever name the group has when it is read, as Jira
does.

Times are timezone-aware UTC datetimes; the API layer formats them the way Jira does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# re-exported: the simulator's modules import the keys from here
from jira_lab.permission_keys import GLOBAL_PERMISSIONS as GLOBAL_PERMISSIONS
from jira_lab.permission_keys import PROJECT_PERMISSIONS as PROJECT_PERMISSIONS

AccountType = Literal["atlassian", "app", "customer"]

#: Holder types Jira documents for permission grants and issue security level members.
HOLDER_TYPES = (
    "anyone",
    "applicationRole",
    "group",
    "projectRole",
    "user",
    "reporter",
    "assignee",
    "projectLead",
    "userCustomField",
    "groupCustomField",
)


@dataclass(slots=True)
class User:
    account_id: str
    display_name: str
    email: str | None
    active: bool = True
    account_type: AccountType = "atlassian"
    time_zone: str = "UTC"
    locale: str = "en_US"
    #: API token for Basic auth against the site URL (``None``: this account cannot use Basic auth).
    api_token: str | None = None


@dataclass(slots=True)
class Group:
    group_id: str
    name: str


@dataclass(slots=True)
class ApplicationRole:
    """Product access (``jira-software``, ``jira-servicedesk`` ...), granted through groups."""

    key: str
    name: str
    group_ids: list[str] = field(default_factory=list)
    default_group_ids: list[str] = field(default_factory=list)
    number_of_seats: int = 35000


@dataclass(slots=True)
class Holder:
    """Who a grant or a security level member applies to.

    ``parameter`` is what identifies the holder, by type: group id (``group``), account id (``user``), role id as a
    string (``projectRole``), application key (``applicationRole``; ``None`` means any logged-in user), custom field
    id (``userCustomField``/``groupCustomField``); ``None`` for ``anyone``, ``reporter``, ``assignee``,
    ``projectLead``.
    """

    type: str
    parameter: str | None = None


@dataclass(slots=True)
class PermissionGrant:
    id: int
    permission: str
    holder: Holder


@dataclass(slots=True)
class PermissionScheme:
    id: int
    name: str
    description: str = ""
    grants: list[PermissionGrant] = field(default_factory=list)


@dataclass(slots=True)
class SecurityLevelMember:
    id: int
    holder: Holder


@dataclass(slots=True)
class SecurityLevel:
    id: int
    name: str
    description: str = ""
    members: list[SecurityLevelMember] = field(default_factory=list)


@dataclass(slots=True)
class SecurityScheme:
    id: int
    name: str
    description: str = ""
    default_level_id: int | None = None
    levels: list[SecurityLevel] = field(default_factory=list)


@dataclass(slots=True)
class ProjectRole:
    """A project role. Roles are global in Jira Cloud; each project has its own actors per role."""

    id: int
    name: str
    description: str = ""
    #: the role's default actors (``GET /role``), which Jira copies into projects created later
    default_actors: RoleActors = field(default_factory=lambda: RoleActors())


@dataclass(slots=True)
class RoleActors:
    account_ids: set[str] = field(default_factory=set)
    group_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Project:
    id: int
    key: str
    name: str
    lead_account_id: str
    permission_scheme_id: int
    security_scheme_id: int | None = None
    project_type_key: str = "software"
    description: str = ""
    #: role id -> actors of that role in this project
    role_actors: dict[int, RoleActors] = field(default_factory=dict)


@dataclass(slots=True)
class CustomField:
    """A custom field; user and group pickers can be referenced by ``userCustomField``/``groupCustomField``."""

    id: str  # "customfield_10050"
    name: str
    kind: Literal["user", "group", "string"]
    multi: bool = False


@dataclass(slots=True)
class Visibility:
    """A comment's or worklog's restriction: to a group (by id) or to a project role (by name)."""

    type: Literal["group", "role"]
    #: group id for ``group``, role name for ``role`` (Jira's ``identifier``)
    identifier: str


@dataclass(slots=True)
class Comment:
    id: int
    issue_id: int
    author_account_id: str
    body: dict[str, Any]  # ADF document
    created: datetime
    updated: datetime
    update_author_account_id: str | None = None
    visibility: Visibility | None = None
    jsd_public: bool = True


@dataclass(slots=True)
class Worklog:
    id: int
    issue_id: int
    author_account_id: str
    started: datetime
    time_spent_seconds: int
    created: datetime
    updated: datetime
    comment: dict[str, Any] | None = None  # ADF document
    update_author_account_id: str | None = None
    visibility: Visibility | None = None


@dataclass(slots=True)
class DeletedWorklog:
    id: int
    issue_id: int
    deleted: datetime
    #: the restriction the worklog had, so the deleted feed can be filtered like the updated one
    visibility: Visibility | None = None


@dataclass(slots=True)
class ChangeItem:
    field: str
    fieldtype: str
    field_id: str | None = None
    from_value: str | None = None
    from_string: str | None = None
    to_value: str | None = None
    to_string: str | None = None


@dataclass(slots=True)
class ChangelogHistory:
    id: int
    issue_id: int
    author_account_id: str
    created: datetime
    items: list[ChangeItem] = field(default_factory=list)


@dataclass(slots=True)
class Issue:
    id: int
    key: str
    project_id: int
    summary: str
    issue_type: str
    status: str
    created: datetime
    updated: datetime
    reporter_account_id: str | None
    assignee_account_id: str | None = None
    security_level_id: int | None = None
    description: dict[str, Any] | None = None  # ADF document
    #: custom field id -> value: an account id / group id, or a list of them when the field is multi-valued
    custom_fields: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    worklogs: list[Worklog] = field(default_factory=list)
    changelog: list[ChangelogHistory] = field(default_factory=list)


@dataclass(slots=True)
class AuditItem:
    """Jira's ``AssociatedItemBean``: the object a record is about, or one associated with it."""

    id: str
    name: str
    type_name: str
    parent_id: str | None = None
    parent_name: str | None = None


@dataclass(slots=True)
class AuditChange:
    field_name: str
    changed_from: str | None = None
    changed_to: str | None = None


@dataclass(slots=True)
class AuditRecord:
    id: int
    summary: str
    category: str
    event_source: str
    created: datetime
    author_account_id: str
    object_item: AuditItem
    remote_address: str = "192.0.2.10"
    description: str = ""
    changed_values: list[AuditChange] = field(default_factory=list)
    associated_items: list[AuditItem] = field(default_factory=list)


@dataclass(slots=True)
class Site:
    """One simulated Jira Cloud site: its data and permission model.

    Mappings are keyed by id and keep insertion order, which is the order the API lists them in unless Jira
    documents another one.
    """

    name: str  # "demo" -> https://demo.atlassian.net
    cloud_id: str
    title: str = "Jira"
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    #: group id -> member account ids
    group_members: dict[str, set[str]] = field(default_factory=dict)
    application_roles: dict[str, ApplicationRole] = field(default_factory=dict)
    #: global permission key -> group ids holding it (Cloud grants global permissions to groups only)
    global_permissions: dict[str, set[str]] = field(default_factory=dict)
    project_roles: dict[int, ProjectRole] = field(default_factory=dict)
    permission_schemes: dict[int, PermissionScheme] = field(default_factory=dict)
    security_schemes: dict[int, SecurityScheme] = field(default_factory=dict)
    custom_fields: dict[str, CustomField] = field(default_factory=dict)
    projects: dict[int, Project] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    deleted_worklogs: list[DeletedWorklog] = field(default_factory=list)
    audit_records: list[AuditRecord] = field(default_factory=list)
    #: free text describing the site (the demo's story), shown by ``jira-lab sim``
    story: str = ""
    #: well-known accounts by the part they play, e.g. ``{"analyst": id, "technical_user": id}``
    accounts: dict[str, str] = field(default_factory=dict)
    # indexes kept by the add_* methods; entities are only ever added through them
    _issue_ids_by_key: dict[str, int] = field(default_factory=dict, repr=False)
    _comments: dict[int, Comment] = field(default_factory=dict, repr=False)
    _worklogs: dict[int, Worklog] = field(default_factory=dict, repr=False)
    #: id kind -> highest id handed out at run time (jira_lab.sim.mutations), so a deleted entity's id is never reused
    _highest_ids: dict[str, int] = field(default_factory=dict, repr=False)
    #: views derived from the data by API handlers, each checking itself against the data before it is reused
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- building ---------------------------------------------------------------------------------------------
    def add_issue(self, issue: Issue) -> Issue:
        self.issues[issue.id] = issue
        self._issue_ids_by_key[issue.key.upper()] = issue.id
        for comment in issue.comments:
            self._comments[comment.id] = comment
        for worklog in issue.worklogs:
            self._worklogs[worklog.id] = worklog
        return issue

    def add_comment(self, comment: Comment) -> Comment:
        self.issues[comment.issue_id].comments.append(comment)
        self._comments[comment.id] = comment
        return comment

    def add_worklog(self, worklog: Worklog) -> Worklog:
        self.issues[worklog.issue_id].worklogs.append(worklog)
        self._worklogs[worklog.id] = worklog
        return worklog

    def delete_worklog(self, worklog_id: int, when: datetime) -> None:
        worklog = self._worklogs.pop(worklog_id)
        self.issues[worklog.issue_id].worklogs.remove(worklog)
        self.deleted_worklogs.append(DeletedWorklog(worklog.id, worklog.issue_id, when, worklog.visibility))

    def delete_comment(self, comment_id: int) -> Comment:
        comment = self._comments.pop(comment_id)
        self.issues[comment.issue_id].comments.remove(comment)
        return comment

    def delete_issue(self, issue_id: int, when: datetime, *, record_worklogs: bool = True) -> Issue:
        """Remove an issue with its comments and worklogs; ``record_worklogs`` lists its worklogs as deleted."""
        issue = self.issues.pop(issue_id)
        self._issue_ids_by_key.pop(issue.key.upper(), None)
        for comment in issue.comments:
            self._comments.pop(comment.id, None)
        for worklog in issue.worklogs:
            self._worklogs.pop(worklog.id, None)
            if record_worklogs:
                self.deleted_worklogs.append(DeletedWorklog(worklog.id, issue.id, when, worklog.visibility))
        return issue

    # -- lookups shared by the engine, the API and the generator -------------------------------------------
    def project_by_key(self, key: str) -> Project | None:
        for project in self.projects.values():
            if project.key.upper() == key.upper():
                return project
        return None

    def issue_by_key(self, key: str) -> Issue | None:
        issue_id = self._issue_ids_by_key.get(key.upper())
        return None if issue_id is None else self.issues.get(issue_id)

    def comment(self, comment_id: int) -> Comment | None:
        return self._comments.get(comment_id)

    def worklog(self, worklog_id: int) -> Worklog | None:
        return self._worklogs.get(worklog_id)

    def security_level(self, level_id: int) -> tuple[SecurityScheme, SecurityLevel] | None:
        for scheme in self.security_schemes.values():
            for level in scheme.levels:
                if level.id == level_id:
                    return scheme, level
        return None

    def role_by_name(self, name: str) -> ProjectRole | None:
        for role in self.project_roles.values():
            if role.name == name:
                return role
        return None

    def group_by_name(self, name: str) -> Group | None:
        for group in self.groups.values():
            if group.name == name:
                return group
        return None
