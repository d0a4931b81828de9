"""The refusal every administrators-only endpoint gives: 403 unless the caller holds *Administer Jira*.

The message is Jira's for a missing global permission (``shared/reference/jira-semantics.md`` §1.5); the audit log,
the application roles, the global roles and the issue security schemes all answer it.
"""

from __future__ import annotations

from jira_lab.sim.routing import Call, JiraError

ADMIN_REQUIRED = "You are not authorized to perform this action. Administrator privileges are required."


def require_admin(call: Call) -> None:
    """Jira's 403 :data:`ADMIN_REQUIRED` unless the caller is a Jira administrator."""
    if not call.engine.is_admin(call.caller):
        raise JiraError(403, ADMIN_REQUIRED)
