"""Changes to a simulated site between (or during) loads: content and permission model, made the way Jira makes them.

::

    clock = FakeClock(start)
    cloud = SimCloud(site, clock=clock)
    change = SiteMutator.for_cloud(cloud, actor=admin)          # or SiteMutator(site, clock, actor=admin)
    issue = change.create_issue("ENG", "Printer on fire", reporter=ann)
    comment = change.add_comment(issue, "Still burning", author=ann, visibility=Visibility("role", "Developers"))
    clock.advance(120)
    change.edit_comment(comment, "Out now")
    change.remove_role_actor("ENG", "Developers", user=tech)     # audit record "Project roles changed"

This is a Python API, not an HTTP one: the loaders only read, so tests change the site directly between loads.

What each change does, following Jira Cloud:

* **Time.** Every change is stamped with the clock's reading (seconds since the Unix epoch, the clock
  :class:`~jira_lab.sim.cloud.SimCloud` reads for rate limits and the ``worklog/updated`` quiet minute), stored as a
  UTC datetime in whole milliseconds (:func:`~jira_lab.sim.clock.clock_time`). A clock reading earlier than the
  thing it changes raises :class:`ValueError`: Jira's timestamps never go back, and an incremental loader relies on
  that.
* **Issues.** ``updated`` moves to now on a field edit and on every comment or worklog added, edited or deleted. A
  field edit writes one changelog history with an item per changed field, shaped like the generated histories:
  status (with the status id ``GET /status`` gives), assignee and reporter (account id and display name), labels
  (space-separated), security level (level id and name), summary, and description (as plain text). Comment and
  worklog changes write no history (the generated sites hold none either). A new issue gets the project's security
  scheme's default level unless told otherwise, as Jira's create screen does.
* **Comments and worklogs.** Edits move ``updated`` and set the update author; a deleted worklog is listed by
  ``worklog/deleted`` (through :meth:`~jira_lab.sim.model.Site.delete_worklog`), a deleted comment just disappears.
* **Deleting an issue** removes its comments and worklogs with it. Its worklogs are listed by ``worklog/deleted``:
  the spec describes that feed as the worklogs deleted since a time, and a worklog of a deleted issue is deleted;
  Atlassian documents no exception (``record_worklogs=False`` simulates the other reading, so a loader can be
  tested against both).
* **Ids** are fresh: above every id of the same kind the site holds, and above every id handed out here before,
  so the id of something deleted is never reused (Jira's ids come from sequences). Issue numbers of a project
  likewise: after ``ENG-7`` is deleted the next issue is ``ENG-8``.
* **Audit records** are written for changes of the permission model only (memberships, group renames, role
  actors, grants, global permissions, security level members, deactivations), by the same code that writes a
  generated site's history (:mod:`jira_lab.sim.auditlog`), so the categories, summaries and values match.
* **Consistency.** A mutator made by :meth:`SiteMutator.for_cloud` holds the cloud's lock during each change, so a
  request served at the same time (over loopback) sees the site before or after a change, never half of it.

Misuse (an unknown issue, a member added twice, a level of another scheme) raises :class:`ValueError` and leaves the
site unchanged.
"""

from __future__ import annotations

import enum
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from jira_lab.sim.api.fields import status_identity
from jira_lab.sim.auditlog import LiveAuditLog
from jira_lab.sim.builder import adf
from jira_lab.sim.clock import clock_time
from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.model import (
    GLOBAL_PERMISSIONS,
    HOLDER_TYPES,
    PROJECT_PERMISSIONS,
    ChangeItem,
    ChangelogHistory,
    Comment,
    Holder,
    Issue,
    PermissionGrant,
    Project,
    ProjectRole,
    RoleActors,
    SecurityLevel,
    SecurityLevelMember,
    Site,
    Visibility,
    Worklog,
)

__all__ = ["SCHEME_DEFAULT", "UNCHANGED", "SiteMutator"]

P = ParamSpec("P")
R = TypeVar("R")

#: The first id Jira hands out for numeric ids, as the builder does.
FIRST_ID = 10000


class _Marker(enum.Enum):
    UNCHANGED = "unchanged"
    SCHEME_DEFAULT = "scheme default"


#: An edit argument left as it is.
UNCHANGED: Literal[_Marker.UNCHANGED] = _Marker.UNCHANGED
#: A new issue's security level: the default level of the project's issue security scheme (``None`` if it has none).
SCHEME_DEFAULT: Literal[_Marker.SCHEME_DEFAULT] = _Marker.SCHEME_DEFAULT

Unchanged = Literal[_Marker.UNCHANGED]
Text = str | dict[str, Any]


def _locked(method: Callable[Concatenate[SiteMutator, P], R]) -> Callable[Concatenate[SiteMutator, P], R]:
    """Run a change under the mutator's lock, so concurrent requests never see half of it."""

    def locked(self: SiteMutator, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            return method(self, *args, **kwargs)

    return functools.wraps(method)(locked)


def _document(text: Text) -> dict[str, Any]:
    """A body given as plain text or as an ADF document, as an ADF document."""
    return adf(text) if isinstance(text, str) else text


def plain_text(document: dict[str, Any] | None) -> str | None:
    """The text of an ADF document, paragraphs on their own lines (how a changelog shows a description)."""
    if document is None:
        return None

    def texts(node: dict[str, Any]) -> Iterator[str]:
        if node.get("type") == "text":
            yield str(node.get("text", ""))
        for child in node.get("content", []):
            yield from texts(child)

    blocks = document.get("content", [])
    return "\n".join("".join(texts(block)) for block in blocks)


class SiteMutator:
    """Makes Jira-like changes to one site, stamped by ``clock`` and attributed to ``actor``.

    Args:
        site: the site to change.
        clock: seconds since the Unix epoch; pass the cloud's clock so changes, rate limits and the worklog feeds
            agree on the time (:meth:`for_cloud` does).
        actor: the account that makes the changes (the audit records' author, and the default author of content);
            default: the site's ``admin`` account.
        lock: held during each change; :meth:`for_cloud` passes the cloud's.
    """

    def __init__(
        self,
        site: Site,
        clock: Callable[[], float] = time.time,
        *,
        actor: str | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        actor = actor if actor is not None else site.accounts.get("admin")
        if actor is None:
            raise ValueError("name the account that makes the changes (actor=...): the site has no 'admin' account")
        if actor not in site.users:
            raise ValueError(f"the actor {actor!r} is not a user of site {site.name!r}")
        self.site = site
        self.clock = clock
        self.actor = actor
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        self.audit = LiveAuditLog(site, actor, lambda: self._fresh_id("audit_record", self._audit_ids()))

    @classmethod
    def for_cloud(cls, cloud: SimCloud, site: Site | None = None, *, actor: str | None = None) -> SiteMutator:
        """A mutator of one of the cloud's sites (default: its first), on the cloud's clock and lock."""
        chosen = site if site is not None else cloud.default_site
        if chosen.cloud_id not in cloud.sites:
            raise ValueError(f"site {chosen.name!r} is not hosted by this cloud")
        return cls(chosen, cloud.clock, actor=actor, lock=cloud.lock)

    # -- time and ids ------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The clock's reading as the site stores times."""
        return clock_time(self.clock())

    def _now_after(self, *moments: datetime) -> datetime:
        now = self.now()
        latest = max(moments, default=now)
        if now < latest:
            raise ValueError(
                f"the clock reads {now.isoformat()}, before {latest.isoformat()} of the data it would change: "
                "start the clock after the site's data (Jira's timestamps never go back)"
            )
        return now

    def _fresh_id(self, kind: str, existing: Iterable[int], first: int = FIRST_ID) -> int:
        highest = max(existing, default=first - 1)
        value = max(highest, self.site._highest_ids.get(kind, first - 1)) + 1
        self.site._highest_ids[kind] = value
        return value

    def _audit_time(self) -> datetime:
        """Now, checked against the audit log's latest record: records are never written in the past."""
        records = self.site.audit_records
        return self._now_after(records[-1].created) if records else self.now()

    def _audit_ids(self) -> Iterator[int]:
        return (record.id for record in self.site.audit_records)

    def _worklog_ids(self) -> Iterator[int]:
        yield from self.site._worklogs
        yield from (deleted.id for deleted in self.site.deleted_worklogs)

    def _history_ids(self) -> Iterator[int]:
        return (history.id for issue in self.site.issues.values() for history in issue.changelog)

    # -- lookups -----------------------------------------------------------------------------------------------
    def _issue(self, reference: int | str) -> Issue:
        issue = self.site.issue_by_key(reference) if isinstance(reference, str) else self.site.issues.get(reference)
        if issue is None:
            raise ValueError(f"site {self.site.name!r} has no issue {reference!r}")
        return issue

    def _project(self, reference: int | str) -> Project:
        project = (
            self.site.project_by_key(reference) if isinstance(reference, str) else self.site.projects.get(reference)
        )
        if project is None:
            raise ValueError(f"site {self.site.name!r} has no project {reference!r}")
        return project

    def _role(self, reference: int | str) -> ProjectRole:
        role = (
            self.site.role_by_name(reference) if isinstance(reference, str) else self.site.project_roles.get(reference)
        )
        if role is None:
            raise ValueError(f"site {self.site.name!r} has no project role {reference!r}")
        return role

    def _comment(self, comment_id: int) -> Comment:
        comment = self.site.comment(comment_id)
        if comment is None:
            raise ValueError(f"site {self.site.name!r} has no comment {comment_id}")
        return comment

    def _worklog(self, worklog_id: int) -> Worklog:
        worklog = self.site.worklog(worklog_id)
        if worklog is None:
            raise ValueError(f"site {self.site.name!r} has no worklog {worklog_id}")
        return worklog

    def _user(self, account_id: str) -> str:
        if account_id not in self.site.users:
            raise ValueError(f"site {self.site.name!r} has no user {account_id!r}")
        return account_id

    def _group(self, group_id: str) -> str:
        if group_id not in self.site.groups:
            raise ValueError(f"site {self.site.name!r} has no group with id {group_id!r}")
        return group_id

    def _level(self, level_id: int) -> SecurityLevel:
        found = self.site.security_level(level_id)
        if found is None:
            raise ValueError(f"site {self.site.name!r} has no issue security level {level_id}")
        return found[1]

    def _visibility(self, visibility: Visibility | None) -> Visibility | None:
        if visibility is None:
            return None
        if visibility.type == "group":
            self._group(visibility.identifier)
        elif self.site.role_by_name(visibility.identifier) is None:
            raise ValueError(f"site {self.site.name!r} has no project role named {visibility.identifier!r}")
        return visibility

    def _holder(self, holder: Holder) -> Holder:
        if holder.type not in HOLDER_TYPES:
            raise ValueError(f"unknown holder type {holder.type!r}; Jira's are {', '.join(HOLDER_TYPES)}")
        if holder.type == "group" and holder.parameter is not None:
            self._group(holder.parameter)
        if holder.type == "user" and holder.parameter is not None:
            self._user(holder.parameter)
        if holder.type == "projectRole" and holder.parameter is not None:
            self._role(int(holder.parameter))
        return holder

    def _level_of_project(self, project: Project, level_id: int | None) -> int | None:
        if level_id is None:
            return None
        scheme = self.site.security_schemes.get(project.security_scheme_id or -1)
        if scheme is None or all(level.id != level_id for level in scheme.levels):
            raise ValueError(f"security level {level_id} is not a level of project {project.key}'s security scheme")
        return level_id

    # -- issues ------------------------------------------------------------------------------------------------
    @_locked
    def create_issue(
        self,
        project: int | str,
        summary: str,
        *,
        reporter: str | None = None,
        assignee: str | None = None,
        issue_type: str = "Task",
        status: str = "To Do",
        security_level: int | Literal[_Marker.SCHEME_DEFAULT] | None = SCHEME_DEFAULT,
        description: Text | None = None,
        labels: Iterable[str] = (),
    ) -> int:
        """Create an issue (reporter: the actor by default) and return its id; its key is the project's next."""
        target = self._project(project)
        reporter = self._user(reporter if reporter is not None else self.actor)
        if assignee is not None:
            self._user(assignee)
        if security_level is SCHEME_DEFAULT:
            scheme = self.site.security_schemes.get(target.security_scheme_id or -1)
            level_id = scheme.default_level_id if scheme is not None else None
        else:
            level_id = self._level_of_project(target, security_level)
        now = self.now()
        issue_id = self._fresh_id("issue", self.site.issues)
        numbers = (
            int(issue.key.rpartition("-")[2]) for issue in self.site.issues.values() if issue.project_id == target.id
        )
        number = self._fresh_id(f"issue_number:{target.id}", numbers, first=1)
        self.site.add_issue(
            Issue(
                id=issue_id,
                key=f"{target.key}-{number}",
                project_id=target.id,
                summary=summary,
                issue_type=issue_type,
                status=status,
                created=now,
                updated=now,
                reporter_account_id=reporter,
                assignee_account_id=assignee,
                security_level_id=level_id,
                description=_document(description) if description is not None else None,
                labels=list(labels),
            )
        )
        return issue_id

    @_locked
    def edit_issue(
        self,
        issue: int | str,
        *,
        summary: str | Unchanged = UNCHANGED,
        status: str | Unchanged = UNCHANGED,
        assignee: str | Unchanged | None = UNCHANGED,
        reporter: str | Unchanged | None = UNCHANGED,
        labels: Iterable[str] | Unchanged = UNCHANGED,
        description: Text | Unchanged | None = UNCHANGED,
        security_level: int | Unchanged | None = UNCHANGED,
        editor: str | None = None,
    ) -> int | None:
        """Edit fields of an issue; return the id of the changelog history written (``None`` if nothing changed)."""
        target = self._issue(issue)
        author = self._user(editor if editor is not None else self.actor)
        items: list[ChangeItem] = []
        if summary is not UNCHANGED and summary != target.summary:
            items.append(ChangeItem("summary", "jira", "summary", None, target.summary, None, summary))
        if status is not UNCHANGED and status != target.status:
            items.append(self._status_item(target.status, status))
        if assignee is not UNCHANGED and assignee != target.assignee_account_id:
            items.append(self._person_item("assignee", target.assignee_account_id, assignee))
        if reporter is not UNCHANGED and reporter != target.reporter_account_id:
            items.append(self._person_item("reporter", target.reporter_account_id, reporter))
        new_labels = None if labels is UNCHANGED else list(labels)
        if new_labels is not None and new_labels != target.labels:
            items.append(
                ChangeItem("labels", "jira", "labels", None, " ".join(target.labels), None, " ".join(new_labels))
            )
        new_description = None if description is UNCHANGED or description is None else _document(description)
        if description is not UNCHANGED and new_description != target.description:
            before, after = plain_text(target.description), plain_text(new_description)
            items.append(ChangeItem("description", "jira", "description", None, before, None, after))
        if security_level is not UNCHANGED and security_level != target.security_level_id:
            project = self.site.projects[target.project_id]
            items.append(self._security_item(target.security_level_id, self._level_of_project(project, security_level)))
        if not items:
            return None
        now = self._now_after(target.updated)
        # every argument is valid: apply them all at once
        if summary is not UNCHANGED:
            target.summary = summary
        if status is not UNCHANGED:
            target.status = status
        if assignee is not UNCHANGED:
            target.assignee_account_id = assignee
        if reporter is not UNCHANGED:
            target.reporter_account_id = reporter
        if new_labels is not None:
            target.labels = new_labels
        if description is not UNCHANGED:
            target.description = new_description
        if security_level is not UNCHANGED:
            target.security_level_id = security_level
        history_id = self._fresh_id("changelog", self._history_ids())
        target.changelog.append(ChangelogHistory(history_id, target.id, author, now, items))
        target.updated = now
        return history_id

    def set_issue_security_level(self, issue: int | str, level_id: int | None, *, editor: str | None = None) -> int:
        """Move an issue to another security level (``None``: none); return the changelog history's id."""
        history_id = self.edit_issue(issue, security_level=level_id, editor=editor)
        if history_id is None:
            raise ValueError(f"issue {issue!r} already has security level {level_id}")
        return history_id

    def _status_item(self, before: str, after: str) -> ChangeItem:
        before_id, after_id = (str(status_identity(name)[0]) for name in (before, after))
        return ChangeItem("status", "jira", "status", before_id, before, after_id, after)

    def _person_item(self, field: str, before: str | None, after: str | None) -> ChangeItem:
        if after is not None:
            self._user(after)
        return ChangeItem(field, "jira", field, before, self._display(before), after, self._display(after))

    def _display(self, account_id: str | None) -> str | None:
        user = self.site.users.get(account_id) if account_id is not None else None
        return None if user is None else user.display_name

    def _security_item(self, before: int | None, after: int | None) -> ChangeItem:
        def name(level_id: int | None) -> str | None:
            return None if level_id is None else self._level(level_id).name

        return ChangeItem(
            "security",
            "jira",
            "security",
            None if before is None else str(before),
            name(before),
            None if after is None else str(after),
            name(after),
        )

    @_locked
    def delete_issue(self, issue: int | str, *, record_worklogs: bool = True) -> None:
        """Delete an issue with its comments and worklogs (listed by ``worklog/deleted`` unless told otherwise)."""
        target = self._issue(issue)
        now = self._now_after(target.updated)
        self.site.delete_issue(target.id, now, record_worklogs=record_worklogs)
        # an id above the deleted ones stays reserved even when the deleted issue held the highest
        self._reserve("issue", target.id)
        self._reserve(f"issue_number:{target.project_id}", int(target.key.rpartition("-")[2]))
        self._reserve("comment", *(comment.id for comment in target.comments))
        self._reserve("worklog", *(worklog.id for worklog in target.worklogs))
        self._reserve("changelog", *(history.id for history in target.changelog))

    def _reserve(self, kind: str, *ids: int) -> None:
        if ids:
            self.site._highest_ids[kind] = max(self.site._highest_ids.get(kind, 0), *ids)

    # -- comments ----------------------------------------------------------------------------------------------
    @_locked
    def add_comment(
        self,
        issue: int | str,
        body: Text,
        *,
        author: str | None = None,
        visibility: Visibility | None = None,
        jsd_public: bool = True,
    ) -> int:
        """Add a comment (author: the actor by default) and return its id; the issue's ``updated`` moves."""
        target = self._issue(issue)
        author = self._user(author if author is not None else self.actor)
        visibility = self._visibility(visibility)
        now = self._now_after(target.updated)
        comment_id = self._fresh_id("comment", self.site._comments)
        document = _document(body)
        self.site.add_comment(
            Comment(comment_id, target.id, author, document, now, now, author, visibility, jsd_public)
        )
        target.updated = now
        return comment_id

    @_locked
    def edit_comment(
        self,
        comment_id: int,
        body: Text | Unchanged = UNCHANGED,
        *,
        visibility: Visibility | Unchanged | None = UNCHANGED,
        editor: str | None = None,
    ) -> None:
        """Change a comment's body and/or restriction; its ``updated`` and the issue's move, ``updateAuthor`` is set."""
        comment = self._comment(comment_id)
        issue = self.site.issues[comment.issue_id]
        editor = self._user(editor if editor is not None else self.actor)
        if visibility is not UNCHANGED:
            self._visibility(visibility)
        now = self._now_after(comment.updated, issue.updated)
        if body is not UNCHANGED:
            comment.body = _document(body)
        if visibility is not UNCHANGED:
            comment.visibility = visibility
        comment.updated = now
        comment.update_author_account_id = editor
        issue.updated = now

    @_locked
    def delete_comment(self, comment_id: int) -> None:
        """Delete a comment: it is simply gone (Jira has no feed of deleted comments); the issue's ``updated`` moves."""
        comment = self._comment(comment_id)
        issue = self.site.issues[comment.issue_id]
        now = self._now_after(issue.updated)
        self.site.delete_comment(comment_id)
        self._reserve("comment", comment_id)
        issue.updated = now

    # -- worklogs ----------------------------------------------------------------------------------------------
    @_locked
    def add_worklog(
        self,
        issue: int | str,
        seconds: int,
        *,
        author: str | None = None,
        started: datetime | None = None,
        text: Text | None = None,
        visibility: Visibility | None = None,
    ) -> int:
        """Log ``seconds`` of work (started now unless told); return the worklog's id. The issue's ``updated`` moves."""
        target = self._issue(issue)
        author = self._user(author if author is not None else self.actor)
        visibility = self._visibility(visibility)
        _check_time_spent(seconds)
        now = self._now_after(target.updated)
        worklog_id = self._fresh_id("worklog", self._worklog_ids())
        self.site.add_worklog(
            Worklog(
                worklog_id,
                target.id,
                author,
                started if started is not None else now,
                seconds,
                now,
                now,
                _document(text) if text is not None else None,
                author,
                visibility,
            )
        )
        target.updated = now
        return worklog_id

    @_locked
    def edit_worklog(
        self,
        worklog_id: int,
        *,
        seconds: int | Unchanged = UNCHANGED,
        started: datetime | Unchanged = UNCHANGED,
        text: Text | Unchanged | None = UNCHANGED,
        visibility: Visibility | Unchanged | None = UNCHANGED,
        editor: str | None = None,
    ) -> None:
        """Change a worklog; its ``updated`` (what ``worklog/updated`` lists it by) and the issue's move."""
        worklog = self._worklog(worklog_id)
        issue = self.site.issues[worklog.issue_id]
        editor = self._user(editor if editor is not None else self.actor)
        if seconds is not UNCHANGED:
            _check_time_spent(seconds)
        if visibility is not UNCHANGED:
            self._visibility(visibility)
        now = self._now_after(worklog.updated, issue.updated)
        if seconds is not UNCHANGED:
            worklog.time_spent_seconds = seconds
        if started is not UNCHANGED:
            worklog.started = started
        if text is not UNCHANGED:
            worklog.comment = _document(text) if text is not None else None
        if visibility is not UNCHANGED:
            worklog.visibility = visibility
        worklog.updated = now
        worklog.update_author_account_id = editor
        issue.updated = now

    @_locked
    def delete_worklog(self, worklog_id: int) -> None:
        """Delete a worklog: ``worklog/deleted`` lists it from now on; the issue's ``updated`` moves."""
        worklog = self._worklog(worklog_id)
        issue = self.site.issues[worklog.issue_id]
        now = self._now_after(issue.updated)
        self.site.delete_worklog(worklog_id, now)
        issue.updated = now

    # -- users and groups --------------------------------------------------------------------------------------
    @_locked
    def deactivate_user(self, account_id: str) -> None:
        """Deactivate an account (it keeps its group memberships, as in Jira); audit record "User updated"."""
        user = self.site.users[self._user(account_id)]
        if not user.active:
            raise ValueError(f"user {account_id!r} is already inactive")
        now = self._audit_time()
        user.active = False
        self.audit.user_deactivated(now, account_id)

    @_locked
    def add_group_member(self, group_id: str, account_id: str) -> None:
        """Add a user to a group; audit record "User added to group"."""
        members = self.site.group_members.setdefault(self._group(group_id), set())
        if self._user(account_id) in members:
            raise ValueError(f"{account_id!r} is already a member of group {self.site.groups[group_id].name!r}")
        now = self._audit_time()
        members.add(account_id)
        self.audit.membership(now, group_id, account_id, added=True)

    @_locked
    def remove_group_member(self, group_id: str, account_id: str) -> None:
        """Remove a user from a group; audit record "User removed from group"."""
        members = self.site.group_members.get(self._group(group_id), set())
        if account_id not in members:
            raise ValueError(f"{account_id!r} is not a member of group {self.site.groups[group_id].name!r}")
        now = self._audit_time()
        members.discard(account_id)
        self.audit.membership(now, group_id, account_id, added=False)

    @_locked
    def rename_group(self, group_id: str, new_name: str) -> None:
        """Rename a group (restrictions keep its id and show the new name); audit record "Group renamed"."""
        group = self.site.groups[self._group(group_id)]
        if new_name == group.name:
            raise ValueError(f"group {group_id!r} is already called {new_name!r}")
        if self.site.group_by_name(new_name) is not None:
            raise ValueError(f"a group called {new_name!r} already exists")
        now = self._audit_time()
        old_name, group.name = group.name, new_name
        self.audit.group_renamed(now, group_id, old_name)

    @_locked
    def grant_global_permission(self, permission: str, group_id: str) -> None:
        """Grant a global permission to a group; audit record "Global permission added"."""
        holders = self.site.global_permissions.setdefault(_global_permission(permission), set())
        if self._group(group_id) in holders:
            raise ValueError(f"group {group_id!r} already holds {permission}")
        now = self._audit_time()
        holders.add(group_id)
        self.audit.global_permission(now, permission, group_id, added=True)

    @_locked
    def revoke_global_permission(self, permission: str, group_id: str) -> None:
        """Take a global permission from a group; audit record "Global permission deleted"."""
        holders = self.site.global_permissions.get(_global_permission(permission), set())
        if group_id not in holders:
            raise ValueError(f"group {group_id!r} does not hold {permission}")
        now = self._audit_time()
        holders.discard(group_id)
        self.audit.global_permission(now, permission, group_id, added=False)

    # -- project roles -----------------------------------------------------------------------------------------
    @_locked
    def add_role_actor(
        self, project: int | str, role: int | str, *, user: str | None = None, group: str | None = None
    ) -> None:
        """Make a user or a group (by id) an actor of a role in a project; audit record "Project roles changed"."""
        self._change_role_actor(project, role, user, group, added=True)

    @_locked
    def remove_role_actor(
        self, project: int | str, role: int | str, *, user: str | None = None, group: str | None = None
    ) -> None:
        """Remove a user or a group (by id) from a role in a project; audit record "Project roles changed"."""
        self._change_role_actor(project, role, user, group, added=False)

    def _change_role_actor(
        self, project: int | str, role: int | str, user: str | None, group: str | None, *, added: bool
    ) -> None:
        if (user is None) == (group is None):
            raise ValueError("name exactly one actor: user=... or group=...")
        target, project_role = self._project(project), self._role(role)
        actors = target.role_actors.get(project_role.id, RoleActors())
        if user is not None:
            actor, current = self._user(user), actors.account_ids
        else:
            assert group is not None
            actor, current = self._group(group), actors.group_ids
        if (actor in current) == added:
            state = "already" if added else "not"
            raise ValueError(f"{actor!r} is {state} an actor of role {project_role.name!r} in project {target.key}")
        now = self._audit_time()
        before = set(current)
        target.role_actors[project_role.id] = actors
        (current.add if added else current.discard)(actor)
        change = (before, set(current))
        if user is not None:
            self.audit.role_actors(now, target, project_role.id, users=change)
        else:
            self.audit.role_actors(now, target, project_role.id, groups=change)

    # -- permission schemes ------------------------------------------------------------------------------------
    @_locked
    def add_grant(self, scheme_id: int, permission: str, holder: Holder) -> int:
        """Grant a project permission in a scheme; return the grant's id. Audit record "Permission scheme updated"."""
        scheme = self.site.permission_schemes.get(scheme_id)
        if scheme is None:
            raise ValueError(f"site {self.site.name!r} has no permission scheme {scheme_id}")
        if permission not in PROJECT_PERMISSIONS:
            raise ValueError(f"{permission!r} is not a project permission")
        self._holder(holder)
        if any(g.permission == permission and g.holder == holder for g in scheme.grants):
            raise ValueError(f"scheme {scheme.name!r} already grants {permission} to {holder}")
        now = self._audit_time()
        grants = (grant.id for s in self.site.permission_schemes.values() for grant in s.grants)
        grant_id = self._fresh_id("grant", grants)
        scheme.grants.append(PermissionGrant(grant_id, permission, Holder(holder.type, holder.parameter)))
        self.audit.grant(now, scheme_id, permission, holder, added=True)
        return grant_id

    @_locked
    def remove_grant(self, scheme_id: int, grant_id: int) -> None:
        """Remove a grant (by id) from a permission scheme; audit record "Permission scheme updated"."""
        scheme = self.site.permission_schemes.get(scheme_id)
        grant = next((g for g in scheme.grants if g.id == grant_id), None) if scheme is not None else None
        if scheme is None or grant is None:
            raise ValueError(f"permission scheme {scheme_id} has no grant {grant_id}")
        now = self._audit_time()
        scheme.grants.remove(grant)
        self._reserve("grant", grant_id)
        self.audit.grant(now, scheme_id, grant.permission, grant.holder, added=False)

    # -- issue security ----------------------------------------------------------------------------------------
    @_locked
    def add_security_level_member(self, level_id: int, holder: Holder) -> int:
        """Add a member to a security level; return its id. Audit record "Issue security scheme updated"."""
        level = self._level(level_id)
        self._holder(holder)
        if any(member.holder == holder for member in level.members):
            raise ValueError(f"security level {level.name!r} already has member {holder}")
        now = self._audit_time()
        members = (m.id for scheme in self.site.security_schemes.values() for lv in scheme.levels for m in lv.members)
        member_id = self._fresh_id("level_member", members)
        level.members.append(SecurityLevelMember(member_id, Holder(holder.type, holder.parameter)))
        self.audit.level_member(now, level_id, holder, added=True)
        return member_id

    @_locked
    def remove_security_level_member(self, level_id: int, member_id: int) -> None:
        """Remove a member (by id) from an issue security level; audit record "Issue security scheme updated"."""
        level = self._level(level_id)
        member = next((m for m in level.members if m.id == member_id), None)
        if member is None:
            raise ValueError(f"security level {level.name!r} has no member {member_id}")
        now = self._audit_time()
        level.members.remove(member)
        self._reserve("level_member", member_id)
        self.audit.level_member(now, level_id, member.holder, added=False)


def _check_time_spent(seconds: int) -> None:
    if seconds <= 0:
        raise ValueError(f"time spent must be positive, not {seconds} s")


def _global_permission(permission: str) -> str:
    if permission not in GLOBAL_PERMISSIONS:
        raise ValueError(f"{permission!r} is not a global permission of Jira Cloud ({', '.join(GLOBAL_PERMISSIONS)})")
    return permission
