"""jira_lab."""
