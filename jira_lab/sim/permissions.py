"""The simulated site's permission engine: who can see what, decided the way Jira Cloud decides it.

Every read the simulated API answers is filtered through this module, so it is the ground truth the audits are
tested against. It is written plainly, one rule per function, following Atlassian's documentation
(``shared/reference/jira-semantics.md`` §2):

* Global permissions are granted to groups. ``ADMINISTER`` does **not** make issues, comments or worklogs visible.
* Project permissions come from the project's permission scheme; a grant's holder is resolved by type.
* An issue with a security level is visible only to members of that level (members use the same holder types).
* A comment or worklog with a ``visibility`` is visible only to members of that group (by group id) or to actors of
  that project role in the issue's project (directly or through a group). Nobody bypasses this.
* Inactive users hold no product access and cannot log in; anonymous callers (``None``) only match ``anyone``.
"""

from __future__ import annotations

from collections.abc import Iterable

from jira_lab.sim.model import Holder, Issue, Project, Site, Visibility


class PermissionEngine:
    """Answers permission questions about one :class:`Site`, reading its current state on every call."""

    def __init__(self, site: Site) -> None:
        self.site = site

    # -- identity ----------------------------------------------------------------------------------------------
    def groups_of(self, account_id: str | None) -> set[str]:
        """Group ids the account is a direct member of (Jira Cloud has no nested groups)."""
        if account_id is None:
            return set()
        return {gid for gid, members in self.site.group_members.items() if account_id in members}

    def is_active(self, account_id: str | None) -> bool:
        user = self.site.users.get(account_id) if account_id is not None else None
        return user is not None and user.active

    def has_application_access(self, account_id: str | None, application_key: str | None = None) -> bool:
        """Product access through an application role's groups; ``application_key=None``: any product."""
        if not self.is_active(account_id):
            return False
        groups = self.groups_of(account_id)
        for role in self.site.application_roles.values():
            if application_key is not None and role.key != application_key:
                continue
            if groups.intersection(role.group_ids):
                return True
        return False

    # -- global permissions ------------------------------------------------------------------------------------
    def has_global(self, account_id: str | None, permission: str) -> bool:
        if not self.is_active(account_id):
            return False
        holders = self.site.global_permissions.get(permission, set())
        return bool(self.groups_of(account_id) & holders)

    def is_admin(self, account_id: str | None) -> bool:
        return self.has_global(account_id, "ADMINISTER")

    def can_browse_users(self, account_id: str | None) -> bool:
        """*Browse users and groups* (``USER_PICKER``), which Jira administrators also pass."""
        return self.has_global(account_id, "USER_PICKER") or self.is_admin(account_id)

    # -- holders -----------------------------------------------------------------------------------------------
    def role_members(self, project: Project, role_id: int) -> set[str]:
        """Account ids that are actors of the role in the project, directly or through a group."""
        actors = project.role_actors.get(role_id)
        if actors is None:
            return set()
        members = set(actors.account_ids)
        for gid in actors.group_ids:
            members |= self.site.group_members.get(gid, set())
        return members

    def is_role_actor(self, account_id: str | None, project: Project, role_id: int) -> bool:
        return account_id is not None and account_id in self.role_members(project, role_id)

    def _custom_field_values(self, issue: Issue, field_id: str | None) -> list[str]:
        if field_id is None:
            return []
        value = issue.custom_fields.get(field_id)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [str(value)]

    def holder_matches(self, account_id: str | None, holder: Holder, project: Project, issue: Issue | None) -> bool:
        """Does the holder include the account, for this project and (where the type needs one) this issue?

        Issue-dependent holders (``reporter``, ``assignee``, custom fields) match nothing without an issue; use
        :meth:`holder_matches_any_issue` for Jira's "for any issue in the project" reading.
        """
        kind = holder.type
        if kind == "anyone":
            return True
        if account_id is None or not self.is_active(account_id):
            return False
        if kind == "applicationRole":
            return self.has_application_access(account_id, holder.parameter)
        if kind == "group":
            return holder.parameter is not None and account_id in self.site.group_members.get(holder.parameter, ())
        if kind == "user":
            return holder.parameter == account_id
        if kind == "projectRole":
            return holder.parameter is not None and self.is_role_actor(account_id, project, int(holder.parameter))
        if kind == "projectLead":
            return project.lead_account_id == account_id
        if issue is None:
            return False
        if kind == "reporter":
            return issue.reporter_account_id == account_id
        if kind == "assignee":
            return issue.assignee_account_id == account_id
        if kind == "userCustomField":
            return account_id in self._custom_field_values(issue, holder.parameter)
        if kind == "groupCustomField":
            groups = self.groups_of(account_id)
            return any(gid in groups for gid in self._custom_field_values(issue, holder.parameter))
        # sd.customer.portal.only and unknown holder types grant nothing to an ordinary account
        return False

    def holder_matches_any_issue(self, account_id: str | None, holder: Holder, project: Project) -> bool:
        if self.holder_matches(account_id, holder, project, None):
            return True
        if holder.type in {"reporter", "assignee", "userCustomField", "groupCustomField"}:
            return any(
                self.holder_matches(account_id, holder, project, issue)
                for issue in self.site.issues.values()
                if issue.project_id == project.id
            )
        return False

    # -- project permissions -----------------------------------------------------------------------------------
    def grants_for(self, project: Project, permission: str) -> Iterable[Holder]:
        scheme = self.site.permission_schemes[project.permission_scheme_id]
        return (grant.holder for grant in scheme.grants if grant.permission == permission)

    def has_project_permission(
        self, account_id: str | None, permission: str, project: Project, issue: Issue | None = None
    ) -> bool:
        """The permission for this issue, or (``issue=None``) for the project itself, i.e. for *any* issue in it.

        The project reading follows Jira's ``mypermissions``: a reporter grant counts if the account reported
        some issue in the project. For an issue, the issue security level is **not** part of this answer (Jira's
        permission checks report it separately); use :meth:`can_browse_issue` for visibility.
        """
        for holder in self.grants_for(project, permission):
            if issue is not None:
                if self.holder_matches(account_id, holder, project, issue):
                    return True
            elif self.holder_matches_any_issue(account_id, holder, project):
                return True
        return False

    def can_browse_project(self, account_id: str | None, project: Project) -> bool:
        """Browse Projects for the project: without it the project and all its issues do not exist."""
        return self.has_project_permission(account_id, "BROWSE_PROJECTS", project)

    # -- issue security ----------------------------------------------------------------------------------------
    def in_security_level(self, account_id: str | None, level_id: int, issue: Issue) -> bool:
        found = self.site.security_level(level_id)
        if found is None:
            return False
        _, level = found
        project = self.site.projects[issue.project_id]
        return any(self.holder_matches(account_id, member.holder, project, issue) for member in level.members)

    def can_browse_issue(self, account_id: str | None, issue: Issue) -> bool:
        """Browse Projects for this issue and membership of its security level, if it has one."""
        project = self.site.projects[issue.project_id]
        if not self.has_project_permission(account_id, "BROWSE_PROJECTS", project, issue):
            return False
        return issue.security_level_id is None or self.in_security_level(account_id, issue.security_level_id, issue)

    # -- comment and worklog visibility ------------------------------------------------------------------------
    def satisfies_visibility(self, account_id: str | None, visibility: Visibility | None, issue: Issue) -> bool:
        """Membership of the group (by id) or of the project role (by name, in the issue's project)."""
        if visibility is None:
            return True
        if account_id is None:
            return False
        if visibility.type == "group":
            return account_id in self.site.group_members.get(visibility.identifier, set())
        role = self.site.role_by_name(visibility.identifier)
        if role is None:
            return False
        return self.is_role_actor(account_id, self.site.projects[issue.project_id], role.id)

    def can_see_item(self, account_id: str | None, issue: Issue, visibility: Visibility | None) -> bool:
        """Whether a comment or worklog on ``issue`` with this ``visibility`` is returned to the account."""
        return self.can_browse_issue(account_id, issue) and self.satisfies_visibility(account_id, visibility, issue)
