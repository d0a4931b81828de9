"""How long the permission engine takes to decide every comment of a large site for one user.

Builds a synthetic site with :class:`~jira_lab.sim.builder.SiteBuilder` (10,000 issues in 20 projects, 100,000
comments; grants to groups, roles, product access and reporters; a fifth of the issues in security levels; comments
restricted to a group, a role or nobody) and decides the visibility of all comments for one user twice in the same
process: with the stateless :class:`~jira_lab.sim.permissions.PermissionEngine` (the baseline) and with one
:class:`~jira_lab.sim.permissions.PermissionSnapshot` (what a request handler gets). Both must agree. It then
asks Browse Projects for every user and project (the "any issue" reading, which reads the issue data of a whole
project).

Run: ``uv run python bench/engine_visibility.py [--issues N] [--comments-per-issue N] [--seed N]``
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import TypeVar

from jira_lab.sim import Holder, PermissionEngine, SiteBuilder, Visibility
from jira_lab.sim.model import Site

T = TypeVar("T")


def build_site(issues: int, comments_per_issue: int, seed: int) -> tuple[Site, str]:
    """The synthetic site and the account whose view is measured."""
    rng = random.Random(seed)
    b = SiteBuilder("bench")
    users = [b.user(f"User {n}") for n in range(200)]
    groups = [b.group(f"team-{n}", members=rng.sample(users, 25)) for n in range(30)]
    b.application_role("jira-software", "Jira", groups[:20])
    roles = [b.role(name) for name in ("Developers", "Testers", "Managers", "Observers")]
    security = b.security_scheme("Confidential")
    levels = [
        b.security_level(security, "Team", [Holder("group", rng.choice(groups)), Holder("reporter")]),
        b.security_level(security, "Managers", [Holder("projectRole", str(roles[2])), Holder("assignee")]),
        b.security_level(security, "Leads", [Holder("projectLead")]),
    ]
    projects = []
    for n in range(20):
        grants = [
            ("BROWSE_PROJECTS", Holder("projectRole", str(roles[0]))),
            ("BROWSE_PROJECTS", Holder("group", rng.choice(groups))),
            ("BROWSE_PROJECTS", Holder("reporter")),
            ("BROWSE_PROJECTS", Holder("applicationRole", "jira-software") if n % 2 else Holder("projectLead")),
        ]
        scheme = b.permission_scheme(f"Scheme {n}", grants)
        project = b.project(f"P{n}", f"Project {n}", lead=rng.choice(users), permission_scheme=scheme)
        b.site.projects[project].security_scheme_id = security
        for role in roles:
            b.role_actor(project, role, users=rng.sample(users, 5), groups=rng.sample(groups, 2))
        projects.append(project)
    role_names = [b.site.project_roles[role].name for role in roles]
    for n in range(issues):
        issue = b.issue(
            projects[n % len(projects)],
            f"Issue {n}",
            reporter=rng.choice(users),
            assignee=rng.choice(users),
            security_level=rng.choice(levels) if rng.random() < 0.2 else None,
        )
        for _ in range(comments_per_issue):
            roll = rng.random()
            restriction = (
                None
                if roll < 0.6
                else Visibility("group", rng.choice(groups))
                if roll < 0.85
                else Visibility("role", rng.choice(role_names))
            )
            b.comment(issue, rng.choice(users), "text", visibility=restriction)
    return b.site, users[0]


def visible_comments(engine: PermissionEngine, site: Site, account_id: str) -> int:
    """How many comments of the site the account can see, asked one comment at a time as the API does."""
    return sum(
        engine.can_see_item(account_id, issue, comment.visibility)
        for issue in site.issues.values()
        for comment in issue.comments
    )


def browsable_projects(engine: PermissionEngine, site: Site) -> int:
    """(user, project) pairs with Browse Projects, the "any issue" reading that scans a project's issue data."""
    return sum(engine.can_browse_project(user, project) for user in site.users for project in site.projects.values())


def timed(run: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--comments-per-issue", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    build_seconds, (site, account_id) = timed(lambda: build_site(args.issues, args.comments_per_issue, args.seed))
    comments = sum(len(issue.comments) for issue in site.issues.values())
    print(f"site: {len(site.issues):,} issues, {comments:,} comments, built in {build_seconds:.1f} s")

    engine = PermissionEngine(site)
    baseline_seconds, baseline_visible = timed(lambda: visible_comments(engine, site, account_id))
    snapshot_seconds, snapshot_visible = timed(lambda: visible_comments(engine.snapshot(), site, account_id))
    if baseline_visible != snapshot_visible:
        raise SystemExit(f"engine and snapshot disagree: {baseline_visible} != {snapshot_visible}")

    print(f"visible to {account_id}: {baseline_visible:,} of {comments:,} comments")
    print(
        f"baseline (stateless engine):   {baseline_seconds:8.3f} s  {baseline_seconds / comments * 1e6:6.2f} µs/comment"
    )
    print(
        f"snapshot (one per request):    {snapshot_seconds:8.3f} s  {snapshot_seconds / comments * 1e6:6.2f} µs/comment"
    )
    print(f"speed-up: {baseline_seconds / snapshot_seconds:.1f}x")

    pairs = len(site.users) * len(site.projects)
    baseline_seconds, baseline_count = timed(lambda: browsable_projects(engine, site))
    snapshot_seconds, snapshot_count = timed(lambda: browsable_projects(engine.snapshot(), site))
    if baseline_count != snapshot_count:
        raise SystemExit(f"engine and snapshot disagree: {baseline_count} != {snapshot_count}")
    print(f"Browse Projects for every user and project: {baseline_count:,} of {pairs:,} pairs")
    print(f"baseline (stateless engine):   {baseline_seconds:8.3f} s")
    print(f"snapshot (one per request):    {snapshot_seconds:8.3f} s")
    print(f"speed-up: {baseline_seconds / snapshot_seconds:.1f}x")


if __name__ == "__main__":
    main()
