"""The simulated site's permission engine: who can see what, decided the way Jira Cloud decides it.

Every read the simulated API answers is filtered through this module, so it is the ground truth the audits are
tested against. It follows Atlassian's documentation (``shared/reference/jira-semantics.md`` §2, the OpenAPI spec's
descriptions of ``getMyPermissions``, ``getBulkPermissions``, ``getComments``, ``getIssueWorklog``, ``getIssue``
and the holder table of ``getAllPermissionSchemes``):

* **Global permissions** are granted to groups only (Cloud has no ``USE``/``SYSTEM_ADMIN``). ``ADMINISTER`` does
  **not** make projects, issues, comments or worklogs visible: the spec's permission text for those reads lists only
  Browse Projects, issue security and visibility membership, with no administrator exemption. *Browse users and
  groups* is ``USER_PICKER`` or ``ADMINISTER``.
* **Project permissions** come from the project's permission scheme; each grant's holder is resolved by type.
  ``group`` holders and group visibilities hold the group *id*, so a renamed group keeps its grants. ``projectRole``
  counts the role's actors *in that project* (users directly, or through a group). ``applicationRole`` with a key
  means product access to that application; without one it is Jira's "Any logged in user" (access to any product).
  Product access is otherwise not part of holder matching: a group grant holds whatever product the member has;
  endpoints documented as needing "Permission to access Jira" ask :meth:`PermissionEngine.can_access_jira`.
* **Issue data holders** (``reporter``, ``assignee``, ``userCustomField``, ``groupCustomField``) need an issue. For a
  specific issue they read that issue's data; for a project (``issue=None``) they follow ``getMyPermissions``: the
  permission is held "if the user meets the permission's criteria for any issue in the project". Issue security is
  not part of a project permission answer (Jira's permission checks report it separately).
* **Issue security**: an issue with a level is visible only to members of that level, which use the same holder
  vocabulary, evaluated in the issue's project and against the issue's data. A level id that no scheme defines
  (a dangling reference) admits nobody: the engine fails closed.
* **Comments and worklogs** with a ``visibility`` are visible only to members of that group (by group id) or to actors
  of that project role (by role name) in the *issue's* project, directly or through a group, and only on an issue
  the account can browse. Nobody bypasses this, Jira administrators included.
* **Anonymous callers** (``None``) match only ``anyone`` grants and members.
* **Inactive accounts match nothing, not even ``anyone``**, and have no product access. Decision: an inactive
  (deactivated) account cannot authenticate, so it is never the caller of a request; when another caller asks about
  it (``permissions/check`` with an ``accountId``, ``user/permission/search``) the account itself holds no
  permission. ``anyone`` is a grant "for anonymous users", i.e. for unauthenticated sessions, not for the account.
  Group membership and role actors of an inactive account remain data (``groups_of``, ``role_members``); they just
  grant nothing.

Performance design: :class:`PermissionEngine` is stateless and reads the site's current state on every call, so a
test may mutate the site (rename a group, change members, role actors, grants, levels, issue data) between any two
calls and the next answer sees it. For the hot paths (deciding every issue, comment and worklog of a large site),
:meth:`PermissionEngine.snapshot` returns a :class:`PermissionSnapshot`: the same rules, memoized per account for
the lifetime of the snapshot. :class:`~jira_lab.sim.cloud.SimCloud` takes one snapshot per request (``call.engine``),
so answers are cached within one request and never across two. A handler that changes the permission model and
then asks again in the same request takes a fresh ``call.engine.snapshot()``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar, cast

from jira_lab.sim.model import Holder, Issue, Project, ProjectRole, SecurityLevel, Site, Visibility

T = TypeVar("T")

#: Holder types whose answer depends on an issue's data rather than on the account and project alone.
ISSUE_DATA_HOLDERS = frozenset({"reporter", "assignee", "userCustomField", "groupCustomField"})


class PermissionEngine:
    """Answers permission questions about one :class:`Site`, reading its current state on every call."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def snapshot(self) -> PermissionSnapshot:
        """A memoizing engine for one request: same answers, computed once per account and question.

        The snapshot does not notice changes made to the site after it answered; take a new one after a change.
        """
        return PermissionSnapshot(self.site)

    # -- identity ----------------------------------------------------------------------------------------------
    def groups_of(self, account_id: str | None) -> set[str]:
        """Group ids the account is a direct member of (Jira Cloud has no nested groups)."""
        return set(self._group_ids(account_id))

    def _group_ids(self, account_id: str | None) -> frozenset[str]:
        if account_id is None:
            return frozenset()
        return frozenset(gid for gid, members in self.site.group_members.items() if account_id in members)

    def is_active(self, account_id: str | None) -> bool:
        """Whether the account exists on the site and is active (anonymous is not an account)."""
        user = self.site.users.get(account_id) if account_id is not None else None
        return user is not None and user.active

    def has_application_access(self, account_id: str | None, application_key: str | None = None) -> bool:
        """Product access through an application role's groups; ``application_key=None``: access to any product.

        Inactive accounts and anonymous callers have none.
        """
        if not self.is_active(account_id):
            return False
        groups = self._group_ids(account_id)
        return any(
            groups.intersection(role.group_ids)
            for role in self.site.application_roles.values()
            if application_key is None or role.key == application_key
        )

    def can_access_jira(self, account_id: str | None) -> bool:
        """The spec's "Permission to access Jira": an active account with access to some Jira product."""
        return self.has_application_access(account_id)

    # -- global permissions ------------------------------------------------------------------------------------
    def has_global(self, account_id: str | None, permission: str) -> bool:
        """A global permission, held through a group (Cloud grants global permissions to groups only)."""
        if not self.is_active(account_id):
            return False
        holders = self.site.global_permissions.get(permission, set())
        return not self._group_ids(account_id).isdisjoint(holders)

    def is_admin(self, account_id: str | None) -> bool:
        """*Administer Jira* (``ADMINISTER``). It grants administration, not visibility of content."""
        return self.has_global(account_id, "ADMINISTER")

    def can_browse_users(self, account_id: str | None) -> bool:
        """*Browse users and groups* (``USER_PICKER``), which Jira administrators also pass."""
        return self.has_global(account_id, "USER_PICKER") or self.is_admin(account_id)

    # -- holders -----------------------------------------------------------------------------------------------
    def role_members(self, project: Project, role_id: int) -> set[str]:
        """Account ids that are actors of the role in the project, directly or through a group (active or not)."""
        return set(self._role_member_ids(project, role_id))

    def _role_member_ids(self, project: Project, role_id: int) -> frozenset[str]:
        actors = project.role_actors.get(role_id)
        if actors is None:
            return frozenset()
        members = set(actors.account_ids)
        for gid in actors.group_ids:
            members |= self.site.group_members.get(gid, set())
        return frozenset(members)

    def is_role_actor(self, account_id: str | None, project: Project, role_id: int) -> bool:
        """Whether the account is an actor of the role in this project (a fact about data, not a permission)."""
        return account_id is not None and account_id in self._role_member_ids(project, role_id)

    def holder_matches(self, account_id: str | None, holder: Holder, project: Project, issue: Issue | None) -> bool:
        """Does the holder include the account, for this project and (where the type needs one) this issue?

        Issue data holders (``reporter``, ``assignee``, custom fields) match nothing without an issue; use
        :meth:`holder_matches_any_issue` for Jira's "for any issue in the project" reading.
        """
        if account_id is None:
            return holder.type == "anyone"
        if not self.is_active(account_id):
            return False
        if holder.type in ISSUE_DATA_HOLDERS:
            return issue is not None and self._issue_data_matches(account_id, holder, issue)
        return self._account_holder_matches(account_id, holder, project)

    def _account_holder_matches(self, account_id: str, holder: Holder, project: Project) -> bool:
        """Holders decided by the (active) account and the project alone."""
        kind, parameter = holder.type, holder.parameter
        if kind == "anyone":
            return True
        if kind == "applicationRole":
            return self.has_application_access(account_id, parameter)
        if kind == "group":
            return parameter is not None and account_id in self.site.group_members.get(parameter, ())
        if kind == "user":
            return parameter == account_id
        if kind == "projectRole":
            role_id = _role_id(parameter)
            return role_id is not None and self.is_role_actor(account_id, project, role_id)
        if kind == "projectLead":
            return project.lead_account_id == account_id
        # sd.customer.portal.only (JSM portal customers, "not Jira") and unknown types grant nothing here
        return False

    def _issue_data_matches(self, account_id: str, holder: Holder, issue: Issue) -> bool:
        if holder.type == "reporter":
            return issue.reporter_account_id == account_id
        if holder.type == "assignee":
            return issue.assignee_account_id == account_id
        values = _custom_field_values(issue, holder.parameter)
        if holder.type == "userCustomField":
            return account_id in values
        return not self._group_ids(account_id).isdisjoint(values)  # groupCustomField

    def holder_matches_any_issue(self, account_id: str | None, holder: Holder, project: Project) -> bool:
        """The holder for the project: issue data holders count if they match some issue of the project."""
        if holder.type not in ISSUE_DATA_HOLDERS:
            return self.holder_matches(account_id, holder, project, None)
        if account_id is None or not self.is_active(account_id):
            return False
        values = self._issue_data_values(project, holder)
        if holder.type == "groupCustomField":
            return not self._group_ids(account_id).isdisjoint(values)
        return account_id in values

    def _issue_data_values(self, project: Project, holder: Holder) -> frozenset[str]:
        """Every account id (or group id, for ``groupCustomField``) the holder names across the project's issues."""
        values: set[str | None] = set()
        for issue in self._issues_of(project):
            if holder.type == "reporter":
                values.add(issue.reporter_account_id)
            elif holder.type == "assignee":
                values.add(issue.assignee_account_id)
            else:
                values.update(_custom_field_values(issue, holder.parameter))
        return frozenset(value for value in values if value is not None)

    def _issues_of(self, project: Project) -> Iterator[Issue]:
        return (issue for issue in self.site.issues.values() if issue.project_id == project.id)

    # -- project permissions -----------------------------------------------------------------------------------
    def grants_for(self, project: Project, permission: str) -> Iterable[Holder]:
        """Holders of the permission in the project's permission scheme."""
        scheme = self.site.permission_schemes[project.permission_scheme_id]
        return (grant.holder for grant in scheme.grants if grant.permission == permission)

    def has_project_permission(
        self, account_id: str | None, permission: str, project: Project, issue: Issue | None = None
    ) -> bool:
        """The permission for this issue, or (``issue=None``) for the project itself, i.e. for *any* issue in it.

        The project reading follows Jira's ``mypermissions``: a reporter grant counts if the account reported
        some issue in the project. For an issue, the issue security level is **not** part of this answer (Jira's
        permission checks report it separately); use :meth:`can_browse_issue` for visibility.

        Raises:
            ValueError: ``issue`` is not in ``project``.
        """
        if issue is not None and issue.project_id != project.id:
            raise ValueError(f"issue {issue.key} is not in project {project.key}")
        if self._holds_without_issue_data(account_id, permission, project):
            return True
        issue_data_holders = [h for h in self.grants_for(project, permission) if h.type in ISSUE_DATA_HOLDERS]
        if issue is None:
            return any(self.holder_matches_any_issue(account_id, h, project) for h in issue_data_holders)
        return any(self.holder_matches(account_id, h, project, issue) for h in issue_data_holders)

    def _holds_without_issue_data(self, account_id: str | None, permission: str, project: Project) -> bool:
        """The permission through a holder that does not depend on issue data (true for every issue, then)."""
        return any(
            self.holder_matches(account_id, holder, project, None)
            for holder in self.grants_for(project, permission)
            if holder.type not in ISSUE_DATA_HOLDERS
        )

    def has_permission_in_any_project(self, account_id: str | None, permission: str) -> bool:
        """``mypermissions`` without a context: the project permission "in any project" (any-issue reading)."""
        return any(
            self.has_project_permission(account_id, permission, project) for project in self.site.projects.values()
        )

    def can_browse_project(self, account_id: str | None, project: Project) -> bool:
        """Browse Projects for the project: without it the project and all its issues do not exist."""
        return self.has_project_permission(account_id, "BROWSE_PROJECTS", project)

    def can_administer_project(self, account_id: str | None, project: Project) -> bool:
        """Administer Jira or Administer Projects in the project: what the project's configuration endpoints
        (its permission scheme, its issue security scheme) require."""
        return self.is_admin(account_id) or self.has_project_permission(account_id, "ADMINISTER_PROJECTS", project)

    def administers_any_project(self, account_id: str | None) -> bool:
        """Administer Jira, or Administer Projects in at least one project (what ``project/{key}/role`` asks)."""
        return self.is_admin(account_id) or self.has_permission_in_any_project(account_id, "ADMINISTER_PROJECTS")

    def can_view_project(self, account_id: str | None, project: Project) -> bool:
        """Whether the project itself is found (not its issues): Browse Projects, or the right to administer it.

        This is Jira's ``VIEW_PROJECT`` project action (Browse Projects, Administer Projects or Administer Jira);
        a project the account cannot view answers 404, one it can view but not administer answers 403 on
        configuration endpoints. Issues, comments and worklogs still need Browse Projects.
        """
        return self.can_browse_project(account_id, project) or self.can_administer_project(account_id, project)

    def has_issue_permission(self, account_id: str | None, permission: str, issue: Issue) -> bool:
        """A project permission for one issue, as Jira's permission checks report it (``permissions/check``,
        ``mypermissions`` with an issue): granted for this issue (issue data holders read against it) **and** the
        issue's security level passed. For ``BROWSE_PROJECTS`` this equals :meth:`can_browse_issue`."""
        project = self.site.projects[issue.project_id]
        if not self.has_project_permission(account_id, permission, project, issue):
            return False
        return issue.security_level_id is None or self.in_security_level(account_id, issue.security_level_id, issue)

    # -- issue security ----------------------------------------------------------------------------------------
    def _level(self, level_id: int) -> SecurityLevel | None:
        found = self.site.security_level(level_id)
        return None if found is None else found[1]

    def in_security_level(self, account_id: str | None, level_id: int, issue: Issue) -> bool:
        """Whether the account is a member of the level, as it applies to this issue (an unknown level: nobody)."""
        level = self._level(level_id)
        if level is None:
            return False
        project = self.site.projects[issue.project_id]
        if self._level_member_without_issue_data(account_id, level, project):
            return True
        return any(
            self.holder_matches(account_id, member.holder, project, issue)
            for member in level.members
            if member.holder.type in ISSUE_DATA_HOLDERS
        )

    def _level_member_without_issue_data(self, account_id: str | None, level: SecurityLevel, project: Project) -> bool:
        return any(
            self.holder_matches(account_id, member.holder, project, None)
            for member in level.members
            if member.holder.type not in ISSUE_DATA_HOLDERS
        )

    def usable_security_levels(self, account_id: str | None, project: Project) -> list[SecurityLevel]:
        """Levels of the project's security scheme the account may put an issue at (``project/{k}/securitylevel``).

        Members are matched with no issue to read, except ``reporter``: the account setting the level is the
        reporter of the issue it creates. Holding *Set Issue Security* is a separate question.
        """
        scheme = self.site.security_schemes.get(project.security_scheme_id or -1)
        if scheme is None or account_id is None or not self.is_active(account_id):
            return []
        return [
            level
            for level in scheme.levels
            if any(m.holder.type == "reporter" for m in level.members)
            or self._level_member_without_issue_data(account_id, level, project)
        ]

    def can_browse_issue(self, account_id: str | None, issue: Issue) -> bool:
        """Browse Projects for this issue and membership of its security level, if it has one."""
        project = self.site.projects[issue.project_id]
        if not self.has_project_permission(account_id, "BROWSE_PROJECTS", project, issue):
            return False
        return issue.security_level_id is None or self.in_security_level(account_id, issue.security_level_id, issue)

    # -- comment and worklog visibility ------------------------------------------------------------------------
    def _role_named(self, name: str) -> ProjectRole | None:
        return self.site.role_by_name(name)

    def satisfies_visibility(self, account_id: str | None, visibility: Visibility | None, issue: Issue) -> bool:
        """Membership of the group (by id) or of the project role (by name, in the issue's project).

        Anonymous callers and inactive accounts satisfy only the absence of a restriction.
        """
        if visibility is None:
            return True
        if account_id is None or not self.is_active(account_id):
            return False
        if visibility.type == "group":
            return account_id in self.site.group_members.get(visibility.identifier, ())
        role = self._role_named(visibility.identifier)
        return role is not None and self.is_role_actor(account_id, self.site.projects[issue.project_id], role.id)

    def can_see_item(self, account_id: str | None, issue: Issue, visibility: Visibility | None) -> bool:
        """Whether a comment or worklog on ``issue`` with this ``visibility`` is returned to the account."""
        return self.can_browse_issue(account_id, issue) and self.satisfies_visibility(account_id, visibility, issue)


class PermissionSnapshot(PermissionEngine):
    """The engine's rules, memoized per account and question for the lifetime of one request.

    Only the lookups are cached (an account's groups, a role's members, a level by id, a role by name, the issue
    data of a project) and the answers built from them; every rule is :class:`PermissionEngine`'s. Changes to the
    site after a snapshot answered are not seen by it: take a new snapshot.
    """

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self._memo: dict[Hashable, object] = {}
        self._levels: dict[int, SecurityLevel] | None = None
        self._roles_by_name: dict[str, ProjectRole] | None = None
        self._browse_issue: dict[tuple[str | None, int], bool] = {}
        self._visibility: dict[tuple[str | None, str, str, int], bool] = {}
        self._browse_users: dict[str | None, bool] = {}

    def _remember(self, key: Hashable, compute: Callable[..., T], *args: object) -> T:
        """``compute(*args)``, computed once per ``key`` in this snapshot."""
        if key in self._memo:
            return cast(T, self._memo[key])
        value = self._memo[key] = compute(*args)
        return value

    def _group_ids(self, account_id: str | None) -> frozenset[str]:
        return self._remember(("groups", account_id), super()._group_ids, account_id)

    def has_application_access(self, account_id: str | None, application_key: str | None = None) -> bool:
        return self._remember(
            ("application", account_id, application_key), super().has_application_access, account_id, application_key
        )

    def has_global(self, account_id: str | None, permission: str) -> bool:
        return self._remember(("global", account_id, permission), super().has_global, account_id, permission)

    def can_browse_users(self, account_id: str | None) -> bool:
        # asked for every user object rendered (to show or hide email addresses): one dictionary lookup
        known = self._browse_users.get(account_id)
        if known is None:
            known = self._browse_users[account_id] = super().can_browse_users(account_id)
        return known

    def _role_member_ids(self, project: Project, role_id: int) -> frozenset[str]:
        return self._remember(("role", project.id, role_id), super()._role_member_ids, project, role_id)

    def _issue_data_values(self, project: Project, holder: Holder) -> frozenset[str]:
        return self._remember(
            ("issue data", project.id, holder.type, holder.parameter), super()._issue_data_values, project, holder
        )

    def _holds_without_issue_data(self, account_id: str | None, permission: str, project: Project) -> bool:
        return self._remember(
            ("holds", account_id, permission, project.id),
            super()._holds_without_issue_data,
            account_id,
            permission,
            project,
        )

    def _level(self, level_id: int) -> SecurityLevel | None:
        if self._levels is None:
            self._levels = {
                level.id: level for scheme in self.site.security_schemes.values() for level in scheme.levels
            }
        return self._levels.get(level_id)

    def _level_member_without_issue_data(self, account_id: str | None, level: SecurityLevel, project: Project) -> bool:
        return self._remember(
            ("level", account_id, level.id, project.id),
            super()._level_member_without_issue_data,
            account_id,
            level,
            project,
        )

    def _role_named(self, name: str) -> ProjectRole | None:
        if self._roles_by_name is None:
            self._roles_by_name = {}
            for role in self.site.project_roles.values():
                self._roles_by_name.setdefault(role.name, role)  # the first wins, as in Site.role_by_name
        return self._roles_by_name.get(name)

    def can_browse_issue(self, account_id: str | None, issue: Issue) -> bool:
        key = (account_id, issue.id)
        found = self._browse_issue.get(key)
        if found is None:
            found = self._browse_issue[key] = super().can_browse_issue(account_id, issue)
        return found

    def satisfies_visibility(self, account_id: str | None, visibility: Visibility | None, issue: Issue) -> bool:
        if visibility is None:
            return True
        key = (account_id, visibility.type, visibility.identifier, issue.project_id)
        found = self._visibility.get(key)
        if found is None:
            found = self._visibility[key] = super().satisfies_visibility(account_id, visibility, issue)
        return found


def _role_id(parameter: str | None) -> int | None:
    """A ``projectRole`` holder's role id; a missing or non-numeric parameter names no role."""
    if parameter is None or not parameter.strip().isdigit():
        return None
    return int(parameter)


def _custom_field_values(issue: Issue, field_id: str | None) -> list[str]:
    """The account or group ids a user/group picker field holds on the issue (single- or multi-valued)."""
    if field_id is None:
        return []
    value = issue.custom_fields.get(field_id)
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [str(item) for item in value if item is not None]
    return [str(value)]
