"""What ``jira-lab demo`` measures on a running site: how much each account can see, project by project.

This is a deliberately small, real measurement taken over HTTP with each account's own credentials: it walks
``/rest/api/3/search/jql`` and counts the issues, comments and worklogs Jira returns to that account. Jira never says
what it leaves out, so the only way to see the gap is to ask as both accounts and compare.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

#: Bounded JQL that matches every issue (Jira rejects a search without a restriction).
ALL_ISSUES_JQL = 'created >= "1970-01-01" ORDER BY id ASC'


@dataclass(slots=True)
class VisibleCounts:
    """Issues, comments and worklogs one account can see, per project key."""

    issues: Counter[str] = field(default_factory=Counter)
    comments: Counter[str] = field(default_factory=Counter)
    worklogs: Counter[str] = field(default_factory=Counter)

    def total(self, kind: Literal["issues", "comments", "worklogs"]) -> int:
        counter: Counter[str] = getattr(self, kind)
        return counter.total()


def search_pages(client: httpx.Client, jql: str, fields: list[str], page_size: int = 100) -> Iterator[dict[str, Any]]:
    """Every issue the client's account can see for ``jql``, walking ``nextPageToken`` until Jira says ``isLast``."""
    token: str | None = None
    while True:
        body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": page_size}
        if token is not None:
            body["nextPageToken"] = token
        response = client.post("/rest/api/3/search/jql", json=body)
        response.raise_for_status()
        page = response.json()
        yield from page["issues"]
        token = page.get("nextPageToken")
        if page.get("isLast", token is None) or token is None:
            return


def visible_counts(client: httpx.Client) -> VisibleCounts:
    """Count what the client's account sees; comment and worklog totals are the ones Jira reports to it."""
    counts = VisibleCounts()
    for issue in search_pages(client, ALL_ISSUES_JQL, ["project", "comment", "worklog"]):
        fields = issue["fields"]
        project = fields["project"]["key"]
        counts.issues[project] += 1
        counts.comments[project] += fields["comment"]["total"]
        counts.worklogs[project] += fields["worklog"]["total"]
    return counts


def comparison_rows(analyst: VisibleCounts, technical: VisibleCounts) -> list[tuple[str, int, int, int, int, int, int]]:
    """(project, issues seen by analyst / technical user, comments ..., worklogs ...) for every project either sees."""
    projects = sorted(set(analyst.issues) | set(technical.issues))
    return [
        (
            key,
            analyst.issues[key],
            technical.issues[key],
            analyst.comments[key],
            technical.comments[key],
            analyst.worklogs[key],
            technical.worklogs[key],
        )
        for key in projects
    ]
