"""Audit records of permission-model changes, shaped the way Jira Cloud writes them.

:class:`AuditEvents` knows, for each kind of change (a user created or deactivated, a group created or renamed, a
membership, a project's role actors, a permission grant, a global permission, an issue security level member), the
record Jira writes: its summary, category, object item, changed values and associated items. Two writers share it,
so the records of a generated site's history and those of a change made while the site is served look the same:

* the site generator's :class:`~jira_lab.sim.generator.AuditTrail` collects records at moments relative to its
  epoch and writes them at the end, ordered by time, naming groups as they were called at each moment;
* :class:`LiveAuditLog` (used by :mod:`jira_lab.sim.mutations`) appends each record as the change happens, at the
  clock's time, with the next free id; the site's current names are the names at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Generic, TypeVar

from jira_lab.sim.model import AuditChange, AuditItem, AuditRecord, Holder, Project, Site

#: The user directory Jira names in audit records (the OpenAPI spec's example).
DIRECTORY = ("1", "Jira Internal Directory")
HOLDER_AUDIT_NAMES = {
    "anyone": "Anyone",
    "applicationRole": "Application access",
    "group": "Group",
    "projectRole": "Project Role",
    "user": "Single User",
    "reporter": "Reporter",
    "assignee": "Current Assignee",
    "projectLead": "Project Lead",
    "userCustomField": "User Custom Field Value",
    "groupCustomField": "Group Custom Field Value",
}
GLOBAL_PERMISSION_NAMES = {
    "ADMINISTER": "Jira Administrators",
    "USER_PICKER": "Browse Users",
    "CREATE_SHARED_OBJECTS": "Create Shared Objects",
    "MANAGE_GROUP_FILTER_SUBSCRIPTIONS": "Manage Group Filter Subscriptions",
    "BULK_CHANGE": "Bulk Change",
}

#: How a writer tells time: seconds relative to an epoch (the generator) or a datetime (live changes).
Moment = TypeVar("Moment")


def permission_name(key: str) -> str:
    """The display name of a project permission key, as audit records show it (``Browse Projects``)."""
    return key.replace("_", " ").title()


class AuditEvents(Generic[Moment]):
    """Jira's audit record for each kind of permission-model change; subclasses decide where records go.

    Subclasses implement :meth:`created_at` (the record's timestamp for a moment) and :meth:`emit` (keep the
    record), and may override :meth:`group_name_at` and :meth:`note_rename` when records are written out of time
    order. Every event method describes a change that has already happened on the site.
    """

    def __init__(self, site: Site, author: str) -> None:
        self.site = site
        #: who the records are attributed to unless an event names someone else
        self.author = author

    # -- what subclasses decide --------------------------------------------------------------------------------
    def created_at(self, moment: Moment) -> datetime:
        """The record's ``created`` time for ``moment``."""
        raise NotImplementedError

    def emit(self, moment: Moment, record: AuditRecord) -> None:
        """Keep ``record`` (its id is still 0)."""
        raise NotImplementedError

    def group_name_at(self, group_id: str, moment: Moment) -> str:
        """The group's name at ``moment``; records are never rewritten when a group is renamed later."""
        return self.site.groups[group_id].name

    def note_rename(self, moment: Moment, group_id: str, old_name: str) -> None:
        """Remember a rename, for writers that name groups at moments before it."""

    # -- values and items --------------------------------------------------------------------------------------
    def holder_value(self, holder: Holder, moment: Moment) -> str:
        """The holder's value as the admin UI shows it."""
        site = self.site
        parameter = holder.parameter
        if holder.type == "group" and parameter is not None:
            return self.group_name_at(parameter, moment)
        if holder.type == "projectRole" and parameter is not None:
            return site.project_roles[int(parameter)].name
        if holder.type == "applicationRole":
            if parameter is None:
                return "Any logged in user"
            role = site.application_roles.get(parameter)
            return role.name if role is not None else parameter
        if holder.type in ("userCustomField", "groupCustomField") and parameter is not None:
            return site.custom_fields[parameter].name
        return parameter or ""

    def user_item(self, account_id: str) -> AuditItem:
        return AuditItem(account_id, account_id, "USER", *DIRECTORY)

    def group_item(self, group_id: str, moment: Moment) -> AuditItem:
        name = self.group_name_at(group_id, moment)
        return AuditItem(name, name, "GROUP", *DIRECTORY)

    def project_item(self, project: Project) -> AuditItem:
        return AuditItem(str(project.id), project.name, "PROJECT")

    # -- events ------------------------------------------------------------------------------------------------
    def add(
        self,
        moment: Moment,
        summary: str,
        category: str,
        object_item: AuditItem,
        changed: Iterable[AuditChange] = (),
        associated: Iterable[AuditItem] = (),
        *,
        author: str | None = None,
    ) -> None:
        """Write one record (``author`` defaults to :attr:`author`)."""
        record = AuditRecord(
            id=0,
            summary=summary,
            category=category,
            event_source="",
            created=self.created_at(moment),
            author_account_id=author or self.author,
            object_item=object_item,
            changed_values=list(changed),
            associated_items=list(associated),
        )
        self.emit(moment, record)

    def user_created(self, moment: Moment, account_id: str) -> None:
        user = self.site.users[account_id]
        changed = [AuditChange("Display name", None, user.display_name)]
        if user.email:
            changed.append(AuditChange("Email", None, user.email))
        self.add(moment, "User created", "user management", self.user_item(account_id), changed)

    def user_deactivated(self, moment: Moment, account_id: str) -> None:
        self.add(
            moment,
            "User updated",
            "user management",
            self.user_item(account_id),
            [AuditChange("Active", "Active", "Inactive")],
        )

    def group_created(self, moment: Moment, group_id: str) -> None:
        self.add(moment, "Group created", "group management", self.group_item(group_id, moment))

    def group_renamed(self, moment: Moment, group_id: str, old_name: str) -> None:
        """Record a rename that already happened on the site (the group holds the new name)."""
        self.note_rename(moment, group_id, old_name)
        new_name = self.group_name_at(group_id, moment)
        self.add(
            moment,
            "Group renamed",
            "group management",
            self.group_item(group_id, moment),
            [AuditChange("Name", old_name, new_name)],
        )

    def membership(self, moment: Moment, group_id: str, account_id: str, *, added: bool) -> None:
        self.add(
            moment,
            "User added to group" if added else "User removed from group",
            "group management",
            self.group_item(group_id, moment),
            associated=[self.user_item(account_id)],
        )

    def project_created(self, moment: Moment, project: Project) -> None:
        self.add(
            moment,
            "Project created",
            "projects",
            self.project_item(project),
            [
                AuditChange("Name", None, project.name),
                AuditChange("Key", None, project.key),
                AuditChange("Project lead", None, project.lead_account_id),
            ],
        )

    def role_actors(
        self,
        moment: Moment,
        project: Project,
        role_id: int,
        *,
        users: tuple[Iterable[str], Iterable[str]] | None = None,
        groups: tuple[Iterable[str], Iterable[str]] | None = None,
    ) -> None:
        """``Project roles changed``: actor lists before and after (account ids; group names at the moment)."""
        role = self.site.project_roles[role_id]
        changed = []
        if users is not None:
            before, after = (", ".join(sorted(ids)) for ids in users)
            changed.append(AuditChange("Users", before or None, after))
        if groups is not None:
            before, after = (", ".join(sorted(self.group_name_at(g, moment) for g in ids)) for ids in groups)
            changed.append(AuditChange("Groups", before or None, after))
        self.add(
            moment,
            "Project roles changed",
            "projects",
            AuditItem(str(role.id), role.name, "PROJECT_ROLE"),
            changed,
            [self.project_item(project)],
        )

    def scheme_created(self, moment: Moment, scheme_id: int) -> None:
        scheme = self.site.permission_schemes[scheme_id]
        self.add(
            moment,
            "Permission scheme created",
            "permissions",
            AuditItem(str(scheme.id), scheme.name, "SCHEME"),
            [AuditChange("Name", None, scheme.name)],
        )

    def grant(self, moment: Moment, scheme_id: int, permission: str, holder: Holder, *, added: bool) -> None:
        """``Permission scheme updated``: a grant added (values in ``changedTo``) or removed (in ``changedFrom``)."""
        scheme = self.site.permission_schemes[scheme_id]
        values = (permission_name(permission), HOLDER_AUDIT_NAMES[holder.type], self.holder_value(holder, moment))
        changed = [
            AuditChange(name, "" if added else value, value if added else "")
            for name, value in zip(("Permission", "Type", "Value"), values, strict=True)
        ]
        self.add(
            moment,
            "Permission scheme updated",
            "permissions",
            AuditItem(str(scheme.id), scheme.name, "SCHEME"),
            changed,
        )

    def global_permission(self, moment: Moment, permission: str, group_id: str, *, added: bool) -> None:
        values = (GLOBAL_PERMISSION_NAMES[permission], self.group_name_at(group_id, moment))
        changed = [
            AuditChange(name, "" if added else value, value if added else "")
            for name, value in zip(("Permission", "Group"), values, strict=True)
        ]
        self.add(
            moment,
            "Global permission added" if added else "Global permission deleted",
            "permissions",
            AuditItem("Global Permissions", "Global Permissions", "PERMISSIONS"),
            changed,
        )

    def level_member(self, moment: Moment, level_id: int, holder: Holder, *, added: bool) -> None:
        """``Issue security scheme updated``: a level member added or removed (same shape as a grant change)."""
        found = self.site.security_level(level_id)
        assert found is not None
        scheme, level = found
        values = (level.name, HOLDER_AUDIT_NAMES[holder.type], self.holder_value(holder, moment))
        changed = [
            AuditChange(name, "" if added else value, value if added else "")
            for name, value in zip(("Security level", "Type", "Value"), values, strict=True)
        ]
        self.add(
            moment,
            "Issue security scheme updated",
            "permissions",
            AuditItem(str(scheme.id), scheme.name, "SCHEME"),
            changed,
            [AuditItem(str(level.id), level.name, "SECURITY_LEVEL", str(scheme.id), scheme.name)],
        )


class LiveAuditLog(AuditEvents[datetime]):
    """Appends each record to the site as the change happens, with the id ``next_id`` hands out."""

    def __init__(self, site: Site, author: str, next_id: Callable[[], int]) -> None:
        super().__init__(site, author)
        self._next_id = next_id

    def created_at(self, moment: datetime) -> datetime:
        return moment

    def emit(self, moment: datetime, record: AuditRecord) -> None:
        record.id = self._next_id()
        self.site.audit_records.append(record)
