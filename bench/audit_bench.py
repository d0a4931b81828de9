"""How long the full restriction-gap audit takes on a large site, against a plain Python loop in the same run.

The site: ``generate_site(SiteSize(...))`` with 100,000 issues, 1,000,000 comments, 300,000 worklogs, 5,000 users
and 1,000 groups (40 projects; ``--scale`` shrinks every count for a quick run). Loading that through the simulated
HTTP API would take far too long for a benchmark, so the loaded tables are **built directly from the generated
site's data** by :func:`loaded_tables`: one row per entity in exactly the shape the loader writes (the declared
columns of :mod:`jira_lab.schema`; holders as the API renders them: a group holder's parameter is the group's name
and its value the group id, an application role without a key has neither; visibilities carry the group id or role
name as ``identifier`` and the current name as ``value``; a user/group picker custom field becomes
``issue_field_values`` rows). The analyst is recorded as having seen everything. The columns the audit does not read
(bodies, raw JSON) are left null: they cost memory, not audit time.

Then, in the same process, for the site's technical user:

* **polars**: :func:`jira_lab.audits.visibility.restriction_gaps` (every hidden issue, comment and worklog with
  its layer and missing grant, plus the fix summary), timed and with its peak memory (``tracemalloc`` does not see
  polars' Rust allocations, so the peak is the process's resident set size sampled by a thread, minus the resident
  size before the audit);
* **baseline**: the same question (is each issue, comment and worklog hidden, and by which layer) answered by a
  plain Python loop over the rows of the same tables, with dicts and sets built from them (its time includes
  reading the rows out of the frames, ``to_dicts``, as a loop over rows must). It answers less than the audit: no
  descriptions, no fixes.

Both must name the same hidden items by layer, or the benchmark fails. It prints both times and the ratio.

Run: ``uv run python bench/audit_bench.py [--scale 0.1] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import polars as pl

from jira_lab import schema
from jira_lab.audits import model
from jira_lab.audits.visibility import restriction_gaps
from jira_lab.sim.generator import SiteSize, generate_site
from jira_lab.sim.model import Comment, Holder, Site, Visibility, Worklog

T = TypeVar("T")


# -- the loaded tables, built from a site's data -------------------------------------------------------------------
def _holder_columns(site: Site, holder: Holder) -> tuple[str, str | None, str | None]:
    """``holder_type``, ``holder_parameter``, ``holder_value`` as the API renders them (jira-endpoints.md §14)."""
    if holder.type == "group" and holder.parameter is not None:
        group = site.groups.get(holder.parameter)
        return holder.type, group.name if group is not None else holder.parameter, holder.parameter
    return holder.type, holder.parameter, holder.parameter


def _visibility_columns(site: Site, visibility: Visibility | None) -> tuple[str | None, str | None, str | None]:
    if visibility is None:
        return None, None, None
    if visibility.type == "group":
        group = site.groups.get(visibility.identifier)
        return "group", group.name if group is not None else None, visibility.identifier
    return "role", visibility.identifier, visibility.identifier


def loaded_tables(site: Site, site_id: str | None = None, *, analyst: str | None = None) -> dict[str, pl.DataFrame]:
    """The tables a load of ``site`` by a principal that sees everything would write, built straight from its data.

    Args:
        site: the simulated site.
        site_id: the ``site_id`` of every row (default: the site's cloud id).
        analyst: the account recorded as the loading principal, with a sighting of every issue, comment and worklog
            (default: ``site.accounts["analyst"]``); ``None`` if the site names none.

    Returns:
        Table name -> frame with the declared columns (unread ones null), ready for :func:`model.from_frames`.
    """
    sid = site_id or site.cloud_id
    analyst = analyst or site.accounts.get("analyst")
    issues = list(site.issues.values())
    comments = [comment for issue in issues for comment in issue.comments]
    worklogs = [worklog for issue in issues for worklog in issue.worklogs]
    frames: dict[str, list[dict[str, Any]] | dict[str, list[Any]]] = {}

    def columns_of(rows: list[Any], **getters: Callable[[Any], Any]) -> dict[str, list[Any]]:
        return {name: [get(row) for row in rows] for name, get in getters.items()}

    projects = site.projects
    frames["issues"] = columns_of(
        issues,
        site_id=lambda _: sid,
        id=lambda i: i.id,
        key=lambda i: i.key,
        project_id=lambda i: i.project_id,
        project_key=lambda i: projects[i.project_id].key,
        summary=lambda i: i.summary,
        security_level_id=lambda i: i.security_level_id,
        reporter_account_id=lambda i: i.reporter_account_id,
        assignee_account_id=lambda i: i.assignee_account_id,
        created=lambda i: i.created,
        updated=lambda i: i.updated,
    )
    entries: list[Comment] | list[Worklog]
    for name, entries in (("comments", comments), ("worklogs", worklogs)):
        restriction = [_visibility_columns(site, entry.visibility) for entry in entries]
        frames[name] = {
            "site_id": [sid] * len(entries),
            "id": [entry.id for entry in entries],
            "issue_id": [entry.issue_id for entry in entries],
            "author_account_id": [entry.author_account_id for entry in entries],
            "created": [entry.created for entry in entries],
            "visibility_type": [r[0] for r in restriction],
            "visibility_value": [r[1] for r in restriction],
            "visibility_identifier": [r[2] for r in restriction],
        }
    frames["issue_field_values"] = [
        {
            "site_id": sid,
            "issue_id": issue.id,
            "field_id": field_id,
            "position": position,
            "value_type": site.custom_fields[field_id].kind if field_id in site.custom_fields else None,
            "value_id": str(value),
        }
        for issue in issues
        for field_id, raw in issue.custom_fields.items()
        if field_id not in site.custom_fields or site.custom_fields[field_id].kind in ("user", "group")
        for position, value in enumerate(raw if isinstance(raw, list | tuple) else [raw])
        if value is not None
    ]
    frames["users"] = [
        {
            "site_id": sid,
            "account_id": u.account_id,
            "account_type": u.account_type,
            "active": u.active,
            "display_name": u.display_name,
            "email_address": u.email,
        }
        for u in site.users.values()
    ]
    frames["groups"] = [{"site_id": sid, "group_id": g.group_id, "name": g.name} for g in site.groups.values()]
    frames["group_members"] = [
        {"site_id": sid, "group_id": gid, "account_id": aid}
        for gid, members in site.group_members.items()
        for aid in sorted(members)
    ]
    frames["application_roles"] = [
        {"site_id": sid, "key": r.key, "name": r.name} for r in site.application_roles.values()
    ]
    frames["application_role_groups"] = [
        {
            "site_id": sid,
            "application_key": r.key,
            "group_id": gid,
            "group_name": site.groups[gid].name if gid in site.groups else None,
            "is_default": gid in r.default_group_ids,
        }
        for r in site.application_roles.values()
        for gid in r.group_ids
    ]
    frames["projects"] = [
        {"site_id": sid, "id": p.id, "key": p.key, "name": p.name, "lead_account_id": p.lead_account_id}
        for p in projects.values()
    ]
    frames["project_roles"] = [{"site_id": sid, "id": r.id, "name": r.name} for r in site.project_roles.values()]
    frames["role_actors"] = [
        {"site_id": sid, "project_id": p.id, "role_id": role_id, "actor_type": kind, "actor_id": actor}
        for p in projects.values()
        for role_id, actors in p.role_actors.items()
        for kind, ids in (("user", actors.account_ids), ("group", actors.group_ids))
        for actor in sorted(ids)
    ]
    frames["permission_schemes"] = [
        {"site_id": sid, "id": s.id, "name": s.name} for s in site.permission_schemes.values()
    ]
    frames["permission_grants"] = [
        dict(
            zip(
                ("site_id", "scheme_id", "id", "permission", "holder_type", "holder_parameter", "holder_value"),
                (sid, s.id, g.id, g.permission, *_holder_columns(site, g.holder)),
                strict=True,
            )
        )
        for s in site.permission_schemes.values()
        for g in s.grants
    ]
    frames["project_permission_schemes"] = [
        {"site_id": sid, "project_id": p.id, "scheme_id": p.permission_scheme_id} for p in projects.values()
    ]
    frames["security_schemes"] = [
        {"site_id": sid, "id": s.id, "name": s.name, "default_security_level_id": s.default_level_id}
        for s in site.security_schemes.values()
    ]
    frames["security_levels"] = [
        {"site_id": sid, "id": level.id, "scheme_id": s.id, "name": level.name, "is_default": False}
        for s in site.security_schemes.values()
        for level in s.levels
    ]
    frames["security_level_members"] = [
        dict(
            zip(
                ("site_id", "level_id", "id", "scheme_id", "holder_type", "holder_parameter", "holder_value"),
                (sid, level.id, member.id, s.id, *_holder_columns(site, member.holder)),
                strict=True,
            )
        )
        for s in site.security_schemes.values()
        for level in s.levels
        for member in level.members
    ]
    frames["project_security_schemes"] = [
        {"site_id": sid, "project_id": p.id, "scheme_id": p.security_scheme_id}
        for p in projects.values()
        if p.security_scheme_id is not None
    ]
    frames["_jira_lab_sites"] = [{"site_id": sid, "url": f"https://{site.name}.atlassian.net"}]
    result: dict[str, pl.DataFrame] = {}
    for name, rows in frames.items():
        declared = schema.table(name)
        frame = pl.DataFrame(rows) if isinstance(rows, dict) else declared.frame(rows)
        result[name] = model.from_frames(sid, {name: frame}).table(name).collect()
    if analyst is not None:
        result.update(_analyst_load(sid, analyst, result))
    return result


def _analyst_load(sid: str, analyst: str, tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """One succeeded full load by ``analyst`` that sighted every issue, comment and worklog."""
    loads = schema.table("_jira_lab_loads").frame(
        [{"load_id": 1, "site_id": sid, "principal_id": analyst, "status": "succeeded", "full_load": True}]
    )
    principals = schema.table("_jira_lab_principals").frame(
        [{"site_id": sid, "principal_id": analyst, "display_name": "analyst", "auth_kind": "basic"}]
    )
    sightings = pl.concat(
        [
            tables[table].select(
                pl.lit(sid).alias("site_id"),
                pl.lit(analyst).alias("principal_id"),
                pl.lit(kind).alias("entity_kind"),
                pl.col("id").cast(pl.String).alias("entity_id"),
                pl.lit(1, dtype=pl.Int64).alias("first_seen_load"),
                pl.lit(1, dtype=pl.Int64).alias("last_seen_load"),
            )
            for table, kind in (("issues", "issue"), ("comments", "comment"), ("worklogs", "worklog"))
        ]
    )
    return {"_jira_lab_loads": loads, "_jira_lab_principals": principals, "_jira_lab_sightings": sightings}


# -- the baseline: a plain Python loop over the rows ---------------------------------------------------------------
def python_loop_hidden(tables: dict[str, pl.DataFrame], account_id: str) -> dict[tuple[str, int], str]:
    """(item kind, item id) -> the outermost layer hiding it from the account, by looping over rows.

    The same rules as :mod:`jira_lab.audits.model` (holders, levels, restrictions), with dicts and sets.
    """
    rows = {name: frame.to_dicts() for name, frame in tables.items()}
    active = {u["account_id"] for u in rows["users"] if u["active"]}
    is_active = account_id in active
    my_groups = {m["group_id"] for m in rows["group_members"] if m["account_id"] == account_id} if is_active else set()
    role_groups: dict[str | None, set[str]] = defaultdict(set)
    for rg in rows["application_role_groups"]:
        role_groups[rg["application_key"]].add(rg["group_id"])
    group_by_name = {g["name"]: g["group_id"] for g in rows["groups"]}
    my_roles: set[tuple[int, int]] = set()
    for actor in rows["role_actors"]:
        if not is_active:
            continue
        if (actor["actor_type"] == "user" and actor["actor_id"] == account_id) or (
            actor["actor_type"] == "group" and actor["actor_id"] in my_groups
        ):
            my_roles.add((actor["project_id"], actor["role_id"]))
    lead = {p["id"]: p["lead_account_id"] for p in rows["projects"]}
    fields: dict[tuple[int, str], set[str]] = defaultdict(set)
    for value in rows["issue_field_values"]:
        fields[(value["issue_id"], value["field_id"])].add(value["value_id"])
    role_by_name: dict[str, int] = {}
    for role in sorted(rows["project_roles"], key=lambda r: r["id"]):
        role_by_name.setdefault(role["name"], role["id"])

    def holder_matches(holder: dict[str, Any], issue: dict[str, Any]) -> bool:
        if not is_active:
            return False
        kind = (holder["holder_type"] or "").lower()
        value = holder["holder_value"] or holder["holder_parameter"]
        if kind == "group":
            value = holder["holder_value"] or group_by_name.get(holder["holder_parameter"])
        if kind == "anyone":
            return True
        if kind == "applicationrole":
            keys = [value] if value is not None else list(role_groups)
            return any(my_groups & role_groups.get(key, set()) for key in keys)
        if kind == "group":
            return value in my_groups
        if kind == "user":
            return bool(value == account_id)
        if kind == "projectrole":
            return value is not None and value.strip().isdigit() and (issue["project_id"], int(value)) in my_roles
        if kind == "projectlead":
            return bool(lead.get(issue["project_id"]) == account_id)
        if kind == "reporter":
            return bool(issue["reporter_account_id"] == account_id)
        if kind == "assignee":
            return bool(issue["assignee_account_id"] == account_id)
        if kind == "usercustomfield":
            return account_id in fields.get((issue["id"], value), set())
        if kind == "groupcustomfield":
            return bool(my_groups & fields.get((issue["id"], value), set()))
        return False

    scheme_of = {p["project_id"]: p["scheme_id"] for p in rows["project_permission_schemes"]}
    browse_grants: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for grant in rows["permission_grants"]:
        if grant["permission"] == model.BROWSE_PROJECTS:
            browse_grants[grant["scheme_id"]].append(grant)
    level_members: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for member in rows["security_level_members"]:
        level_members[member["level_id"]].append(member)
    known_levels = {level["id"] for level in rows["security_levels"]}

    hidden: dict[tuple[str, int], str] = {}
    issue_layer: dict[int, str | None] = {}
    issue_by_id: dict[int, dict[str, Any]] = {}
    for issue in rows["issues"]:
        issue_by_id[issue["id"]] = issue
        grants = browse_grants.get(scheme_of.get(issue["project_id"], -1), [])
        layer: str | None = None
        if not any(holder_matches(grant, issue) for grant in grants):
            layer = "browse"
        elif issue["security_level_id"] is not None and (
            issue["security_level_id"] not in known_levels
            or not any(holder_matches(m, issue) for m in level_members.get(issue["security_level_id"], []))
        ):
            layer = "security_level"
        issue_layer[issue["id"]] = layer
        if layer is not None:
            hidden[("issue", issue["id"])] = layer
    for kind, table in (("comment", "comments"), ("worklog", "worklogs")):
        for item in rows[table]:
            issue = issue_by_id[item["issue_id"]]
            layer = issue_layer[item["issue_id"]]
            if layer is None and item["visibility_type"] is not None:
                key = item["visibility_identifier"] or item["visibility_value"]
                if item["visibility_type"] == "group":
                    satisfied = key in my_groups
                else:
                    role_id = role_by_name.get(key)
                    satisfied = role_id is not None and (issue["project_id"], role_id) in my_roles
                layer = None if satisfied else "visibility"
            if layer is not None:
                hidden[(kind, item["id"])] = layer
    return hidden


# -- measuring -----------------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Sample the resident set size every millisecond; yields a dict that gets ``before`` and ``peak``."""
    figures = {"before": _rss_bytes(), "peak": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            figures["peak"] = max(figures["peak"], _rss_bytes())
            done.wait(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield figures
    finally:
        done.set()
        thread.join()
        figures["peak"] = max(figures["peak"], _rss_bytes())


def timed(what: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = what()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every volume by this (default 1.0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scale = args.scale
    size = SiteSize(
        projects=40,
        issues=int(100_000 * scale),
        comments=int(1_000_000 * scale),
        worklogs=int(300_000 * scale),
        changelog_items=0,
        users=max(16, int(5_000 * scale)),
        groups=max(12, int(1_000 * scale)),
    )
    site, seconds = timed(lambda: generate_site(size, args.seed))
    print(
        f"site: {len(site.issues):,} issues, {sum(len(i.comments) for i in site.issues.values()):,} comments, "
        f"{sum(len(i.worklogs) for i in site.issues.values()):,} worklogs, {len(site.users):,} users, "
        f"{len(site.groups):,} groups; generated in {seconds:.1f} s"
    )
    start = time.perf_counter()
    tables = loaded_tables(site)
    seconds = time.perf_counter() - start
    technical_user = site.accounts["technical_user"]
    print(f"loaded tables built from the site's data in {seconds:.1f} s; technical user {technical_user}")
    del site  # the audit reads the tables only
    site_tables = model.from_frames(next(iter(tables.values()))["site_id"][0], tables)

    with peak_rss() as memory:
        audit, audit_seconds = timed(lambda: restriction_gaps(site_tables, technical_user))
    peak_mb = (memory["peak"] - memory["before"]) / 2**20
    baseline, loop_seconds = timed(lambda: python_loop_hidden(tables, technical_user))

    by_audit = {(row[0], row[1]): row[2] for row in audit.gaps.select("item_kind", "item_id", "layer").iter_rows()}
    if by_audit != baseline:
        differ = sorted(set(by_audit.items()) ^ set(baseline.items()))[:10]
        raise SystemExit(f"the audit and the Python loop disagree on {len(differ)}+ items, e.g. {differ}")
    counts = audit.gaps.group_by("item_kind", "layer").len().sort("item_kind", "layer")
    print(f"hidden items (both agree): {len(baseline):,}")
    print(json.dumps({f"{k} / {layer}": n for k, layer, n in counts.iter_rows()}, indent=2, ensure_ascii=False))
    print(f"fixes suggested: {audit.fixes.height} ({audit.method})")
    print()
    print(f"{'answer':44} {'seconds':>8}")
    print(f"{'restriction_gaps (polars, full audit)':44} {audit_seconds:8.2f}   peak +{peak_mb:,.0f} MB resident")
    print(f"{'plain Python loop over the rows (layers only)':44} {loop_seconds:8.2f}")
    print(f"ratio (loop seconds / audit seconds): {loop_seconds / audit_seconds:.1f}x; target: audit < 5 s")


if __name__ == "__main__":
    main()
