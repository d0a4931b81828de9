"""Jira Cloud's built-in permission keys, as the OpenAPI spec lists them: facts shared by the client and the simulator.

Apps can add project permission keys of their own; a site's ``GET /rest/api/3/permissions`` lists them all.
"""

from __future__ import annotations

#: Global permission keys of Jira Cloud (``USE`` and ``SYSTEM_ADMIN`` do not exist there).
GLOBAL_PERMISSIONS = (
    "ADMINISTER",
    "USER_PICKER",
    "CREATE_SHARED_OBJECTS",
    "MANAGE_GROUP_FILTER_SUBSCRIPTIONS",
    "BULK_CHANGE",
)

#: Built-in project permission keys listed in the OpenAPI spec.
PROJECT_PERMISSIONS = (
    "ADMINISTER_PROJECTS",
    "EDIT_WORKFLOW",
    "EDIT_ISSUE_LAYOUT",
    "BROWSE_PROJECTS",
    "MANAGE_SPRINTS_PERMISSION",
    "SERVICEDESK_AGENT",
    "VIEW_DEV_TOOLS",
    "VIEW_READONLY_WORKFLOW",
    "ASSIGNABLE_USER",
    "ASSIGN_ISSUES",
    "CLOSE_ISSUES",
    "CREATE_ISSUES",
    "DELETE_ISSUES",
    "EDIT_ISSUES",
    "LINK_ISSUES",
    "MODIFY_REPORTER",
    "MOVE_ISSUES",
    "RESOLVE_ISSUES",
    "SCHEDULE_ISSUES",
    "SET_ISSUE_SECURITY",
    "TRANSITION_ISSUES",
    "MANAGE_WATCHERS",
    "VIEW_VOTERS_AND_WATCHERS",
    "ADD_COMMENTS",
    "DELETE_ALL_COMMENTS",
    "DELETE_OWN_COMMENTS",
    "EDIT_ALL_COMMENTS",
    "EDIT_OWN_COMMENTS",
    "CREATE_ATTACHMENTS",
    "DELETE_ALL_ATTACHMENTS",
    "DELETE_OWN_ATTACHMENTS",
    "DELETE_ALL_WORKLOGS",
    "DELETE_OWN_WORKLOGS",
    "EDIT_ALL_WORKLOGS",
    "EDIT_OWN_WORKLOGS",
    "WORK_ON_ISSUES",
)
