"""jira_lab: audit what a Jira Cloud technical user can and cannot see.

The public API, one import away (the heavier parts have their own packages: :mod:`jira_lab.report` for the HTML
report and export bundle, :mod:`jira_lab.notebook` for the connect widget, :mod:`jira_lab.sim` for the simulated
site)::

    from jira_lab import JiraClient, load, run_audit, from_db
"""

from __future__ import annotations

from jira_lab.audits.model import SiteTables, from_db
from jira_lab.audits.preflight import AuditResults, preflight, run_audit
from jira_lab.audits.visibility import restriction_gaps
from jira_lab.client import JiraClient, SyncJiraClient
from jira_lab.errors import (
    AuthError,
    ConsentRequiredError,
    JiraApiError,
    JiraLabError,
    MissingScopeError,
)
from jira_lab.load import LoadSummary, aload, load

__all__ = [
    "AuditResults",
    "AuthError",
    "ConsentRequiredError",
    "JiraApiError",
    "JiraClient",
    "JiraLabError",
    "LoadSummary",
    "MissingScopeError",
    "SiteTables",
    "SyncJiraClient",
    "aload",
    "from_db",
    "load",
    "preflight",
    "restriction_gaps",
    "run_audit",
]
