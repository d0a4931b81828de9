"""Permission changes from the audit log (jira_lab.audits.changes).

The records are the simulator's: a hand-built site is changed through :class:`~jira_lab.sim.mutations.SiteMutator`,
which writes each change's audit record the way Jira does, and the records are read back through
``GET /rest/api/3/auditing/record`` and turned into frames by :mod:`jira_lab.resources.audit`. The permission
model's frames are written from the site by hand (a few rows). Every expectation comes from the changes the test
made, in the order it made them. At the bottom, the demo site (loaded by both principals) is checked against its
story's ``[[history]]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import polars as pl
import pytest
from test_audits_preflight import LoadedDemo, loaded_demo

from jira_lab.audits import model
from jira_lab.audits.changes import (
    EXCLUDED,
    GAINED,
    LOST,
    RENAMED,
    audit_changes,
    gap_explanations,
    gaps_from_findings,
    global_permission_groups,
    group_name_resolution,
    permission_changes,
)
from jira_lab.audits.preflight import preflight_findings
from jira_lab.resources.audit import audit_frames
from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.builder import EPOCH
from jira_lab.sim.clock import FakeClock
from jira_lab.sim.model import Holder, Site
from jira_lab.sim.mutations import SiteMutator

DAY = 86400.0


def audit_json(site: Site, admin: str) -> list[dict[str, Any]]:
    """Every audit record as the simulated API sends it (one page is enough for these sites)."""
    user = site.users[admin]
    assert user.email is not None and user.api_token is not None
    with httpx.Client(
        transport=SimCloud(site).transport(),
        base_url=f"https://{site.name}.atlassian.net",
        auth=(user.email, user.api_token),
    ) as client:
        response = client.get("/rest/api/3/auditing/record", params={"limit": 1000})
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()["records"]
    assert len(records) == len(site.audit_records)
    return records


def site_tables(site: Site, admin: str) -> model.SiteTables:
    """The site's permission model and audit log as loaded tables (only the columns the audits read)."""
    sid = site.cloud_id
    frames = audit_frames(audit_json(site, admin), site_id=sid)
    projects = site.projects.values()
    holder_rows = []
    for scheme in site.permission_schemes.values():
        for grant in scheme.grants:
            holder_rows.append(
                {
                    "scheme_id": scheme.id,
                    "id": grant.id,
                    "permission": grant.permission,
                    "holder_type": grant.holder.type,
                    "holder_value": grant.holder.parameter,
                }
            )
    level_rows = [
        {"level_id": level.id, "id": member.id, "scheme_id": scheme.id, "holder_type": member.holder.type}
        | {"holder_value": member.holder.parameter}
        for scheme in site.security_schemes.values()
        for level in scheme.levels
        for member in level.members
    ]
    return model.from_frames(
        sid,
        audit_records=frames.records,
        audit_changed_values=frames.changed_values,
        audit_associated_items=frames.associated_items,
        users=pl.DataFrame(
            [
                {"account_id": u.account_id, "display_name": u.display_name, "active": u.active}
                for u in site.users.values()
            ]
        ),
        groups=pl.DataFrame([{"group_id": g.group_id, "name": g.name} for g in site.groups.values()]),
        group_members=pl.DataFrame(
            [{"group_id": g, "account_id": a} for g, members in site.group_members.items() for a in sorted(members)],
            schema={"group_id": pl.String, "account_id": pl.String},
        ),
        application_roles=pl.DataFrame([{"key": r.key, "name": r.name} for r in site.application_roles.values()]),
        application_role_groups=pl.DataFrame(
            [{"application_key": r.key, "group_id": g} for r in site.application_roles.values() for g in r.group_ids]
        ),
        projects=pl.DataFrame([{"id": p.id, "key": p.key, "lead_account_id": p.lead_account_id} for p in projects]),
        project_roles=pl.DataFrame([{"id": r.id, "name": r.name} for r in site.project_roles.values()]),
        role_actors=pl.DataFrame(
            [
                {"project_id": p.id, "role_id": role_id, "actor_type": kind, "actor_id": actor}
                for p in projects
                for role_id, actors in p.role_actors.items()
                for kind, ids in (("user", actors.account_ids), ("group", actors.group_ids))
                for actor in sorted(ids)
            ],
            schema={"project_id": pl.Int64, "role_id": pl.Int64, "actor_type": pl.String, "actor_id": pl.String},
        ),
        permission_schemes=pl.DataFrame([{"id": s.id, "name": s.name} for s in site.permission_schemes.values()]),
        permission_grants=pl.DataFrame(holder_rows),
        project_permission_schemes=pl.DataFrame(
            [{"project_id": p.id, "scheme_id": p.permission_scheme_id} for p in projects]
        ),
        security_levels=pl.DataFrame(
            [
                {"id": level.id, "scheme_id": scheme.id, "name": level.name}
                for scheme in site.security_schemes.values()
                for level in scheme.levels
            ]
        ),
        security_level_members=pl.DataFrame(level_rows),
        project_security_schemes=pl.DataFrame(
            [{"project_id": p.id, "scheme_id": p.security_scheme_id} for p in projects if p.security_scheme_id]
        ),
    )


class Story:
    """A small site and a year of changes to it, one a day, in this order:

    day 1  tech added to "devs"                      (tech's group; BROWSE in P through it)
    day 2  group "devs" renamed "eng"
    day 3  group "ops" renamed "devs"               (the old name now means another group)
    day 4  tech added to the new "devs" (ops)
    day 5  BROWSE granted to group "fin" in the scheme (tech not yet in fin: no effect on it)
    day 6  tech added to "fin"                      (gains fin's BROWSE grant)
    day 7  tech removed from "fin"
    day 8  group "eng" removed from role Developers in P
    day 9  Developers re-added: group "eng" as actor again
    day 10 group "eng" removed from role Administrators in P   (never re-added)
    day 11 ADMINISTER granted to group "bots" (tech's group)
    day 12 "Any logged in user" removed from BROWSE in scheme S2 (project Q): tech loses Browse in Q
    day 13 level "Secret" gets its first member: group "fin"    (tech is not in it)
    day 14 ann (not tech) added to "eng"
    """

    def __init__(self) -> None:
        b = SiteBuilder("changes")
        self.admin = b.user("Grace Admin", api_token="admin-token")
        self.tech = b.user("Search Bot")
        self.ann = b.user("Ann Analyst")
        self.devs = b.group("devs")
        self.ops = b.group("ops")
        self.fin = b.group("fin", members=[self.ann])
        self.bots = b.group("bots", members=[self.tech])
        self.admins = b.group("jira-administrators", members=[self.admin])
        self.everyone = b.group("jira-users", members=[self.admin, self.tech, self.ann])
        b.application_role("jira-software", "Jira Software", [self.everyone])
        b.global_permission("ADMINISTER", self.admins)
        self.developers = b.role("Developers")
        self.administrators = b.role("Administrators")
        self.scheme = b.permission_scheme("Main scheme", [("BROWSE_PROJECTS", Holder("group", self.devs))])
        self.open_scheme = b.permission_scheme("Open scheme")
        self.open_grant = b.grant(self.open_scheme, "BROWSE_PROJECTS", Holder("applicationRole"))
        security = b.security_scheme("Security")
        self.project = b.project(
            "P", "Project P", lead=self.admin, permission_scheme=self.scheme, security_scheme=security
        )
        self.other = b.project("Q", "Project Q", lead=self.admin, permission_scheme=self.open_scheme)
        b.role_actor(self.project, self.developers, groups=[self.devs])
        b.role_actor(self.project, self.administrators, groups=[self.devs])
        self.level = b.security_level(security, "Secret")
        b.site.accounts["admin"] = self.admin
        self.site = b.site
        clock = FakeClock(EPOCH + timedelta(days=1))
        change = SiteMutator(self.site, clock, actor=self.admin)
        self.moments: dict[int, datetime] = {}

        def day(number: int) -> None:
            clock.now = (EPOCH + timedelta(days=number)).timestamp()
            self.moments[number] = clock.time()

        day(1)
        change.add_group_member(self.devs, self.tech)
        day(2)
        change.rename_group(self.devs, "eng")
        day(3)
        change.rename_group(self.ops, "devs")
        day(4)
        change.add_group_member(self.ops, self.tech)
        day(5)
        self.fin_grant = change.add_grant(self.scheme, "BROWSE_PROJECTS", Holder("group", self.fin))
        day(6)
        change.add_group_member(self.fin, self.tech)
        day(7)
        change.remove_group_member(self.fin, self.tech)
        day(8)
        change.remove_role_actor(self.project, self.developers, group=self.devs)
        day(9)
        change.add_role_actor(self.project, self.developers, group=self.devs)
        day(10)
        change.remove_role_actor(self.project, self.administrators, group=self.devs)
        day(11)
        change.grant_global_permission("ADMINISTER", self.bots)
        day(12)
        change.remove_grant(self.open_scheme, self.open_grant)
        day(13)
        change.add_security_level_member(self.level, Holder("group", self.fin))
        day(14)
        change.add_group_member(self.devs, self.ann)
        self.tables = site_tables(self.site, self.admin)


@pytest.fixture(scope="module")
def story() -> Story:
    return Story()


@pytest.fixture(scope="module")
def demo() -> LoadedDemo:
    return loaded_demo()


def on_day(story: Story, frame: pl.DataFrame, number: int) -> pl.DataFrame:
    return frame.filter(pl.col("created") == story.moments[number])


def test_group_names_resolve_through_renames_to_the_group_they_meant(story: Story) -> None:
    changes = audit_changes(story.tables)
    memberships = changes.filter(pl.col("change_kind") == "membership")
    # day 1 says "devs" and means the group now called "eng"; day 4 says "devs" and means the former "ops"
    assert on_day(story, memberships, 1).select("group_name_then", "group_id").rows() == [("devs", story.devs)]
    assert on_day(story, memberships, 4).select("group_name_then", "group_id").rows() == [("devs", story.ops)]
    assert on_day(story, memberships, 14).select("group_name_then", "group_id").rows() == [("eng", story.devs)]
    renames = changes.filter(pl.col("change_kind") == "group_renamed").select("group_id", "old_name", "new_name")
    assert renames.rows() == [(story.devs, "devs", "eng"), (story.ops, "ops", "devs")]


def test_group_name_resolution_follows_a_chain_of_renames() -> None:
    records = pl.DataFrame(
        {"id": [1, 2], "summary": ["Group renamed", "Group renamed"], "created": [10, 20]},
        schema={"id": pl.Int64, "summary": pl.String, "created": pl.Int64},
    )
    changed = pl.DataFrame({"audit_record_id": [1, 2], "field_name": ["Name", "Name"], "changed_from": ["a", "b"]})
    changed = changed.with_columns(pl.Series("changed_to", ["b", "c"]))
    groups = pl.DataFrame({"group_id": ["G", "H"], "name": ["c", "a"]})  # a new group took the name "a" later
    references = pl.DataFrame({"name": ["a", "b", "c", "a", "zzz"], "at": [5, 15, 25, 30, 1]})
    resolved = group_name_resolution(
        references, audit_records=records, audit_changed_values=changed, groups=groups
    ).sort("at")
    assert resolved.select("name", "at", "group_id").rows() == [
        ("zzz", 1, None),
        ("a", 5, "G"),
        ("b", 15, "G"),
        ("c", 25, "G"),
        ("a", 30, "H"),
    ]


def test_each_kind_of_record_becomes_elementary_changes(story: Story) -> None:
    changes = audit_changes(story.tables)
    grant = on_day(story, changes, 5).row(0, named=True)
    assert (grant["change_kind"], grant["action"], grant["scheme_id"], grant["permission"]) == (
        "grant",
        "added",
        story.scheme,
        "BROWSE_PROJECTS",
    )
    assert (grant["holder_type"], grant["holder_value"], grant["holder_name_then"]) == ("group", story.fin, "fin")
    actor = on_day(story, changes, 8).row(0, named=True)
    assert (actor["change_kind"], actor["action"], actor["project_id"], actor["role_id"]) == (
        "role_actor",
        "removed",
        story.project,
        story.developers,
    )
    assert (actor["holder_type"], actor["holder_value"], actor["holder_name_then"]) == ("group", story.devs, "eng")
    admin = on_day(story, changes, 11).row(0, named=True)
    assert (admin["change_kind"], admin["permission"], admin["holder_value"]) == (
        "global_permission",
        "ADMINISTER",
        story.bots,
    )
    removed = on_day(story, changes, 12).row(0, named=True)
    # "Any logged in user" is an applicationRole holder without an application
    assert (removed["action"], removed["holder_type"], removed["holder_value"]) == ("removed", "applicationRole", None)
    level = on_day(story, changes, 13).row(0, named=True)
    assert (level["change_kind"], level["level_id"], level["level_name"], level["holder_value"]) == (
        "level_member",
        story.level,
        "Secret",
        story.fin,
    )


def test_global_permission_holders_are_replayed_from_the_log(story: Story) -> None:
    holders = global_permission_groups(story.tables).collect()
    # the builder's own ADMINISTER grant to jira-administrators was never recorded: only what the log holds counts
    assert holders.select("permission", "group_id").rows() == [("ADMINISTER", story.bots)]
    assert holders["granted_at"].to_list() == [story.moments[11]]


def gaps_frame(story: Story) -> pl.DataFrame:
    """The gaps the story leaves the technical user with, by construction."""
    return pl.DataFrame(
        [
            {"gap_kind": "role", "gap": "role Administrators in P", "project_id": story.project},
            {"gap_kind": "browse", "gap": "Q", "project_id": story.other},
            {"gap_kind": "level", "gap": "Secret in P", "project_id": story.project, "level_id": story.level},
            {"gap_kind": "group", "gap": "group fin", "group_id": story.fin},
            {"gap_kind": "group", "gap": "group never", "group_id": "no-such-group"},
        ]
    ).with_columns(
        pl.when(pl.col("gap_kind") == "role").then(pl.lit(story.administrators)).cast(pl.Int64).alias("role_id")
    )


def test_the_timeline_keeps_what_concerns_the_technical_user(story: Story) -> None:
    timeline = permission_changes(story.tables, story.tech, gaps=gaps_frame(story))
    effects = {number: on_day(story, timeline, number)["effect"].to_list() for number in story.moments}
    assert effects == {
        1: [GAINED],
        2: [RENAMED],
        3: [RENAMED],
        4: [GAINED],
        5: [],  # fin's grant came before tech joined fin
        6: [GAINED],
        7: [LOST],
        8: [LOST],
        9: [GAINED],
        10: [LOST],
        11: [GAINED],
        12: [LOST],
        13: [EXCLUDED],
        14: [],  # someone else's membership
    }
    assert on_day(story, timeline, 7)["description"].to_list() == ["Search Bot removed from group fin"]
    assert on_day(story, timeline, 12)["author_name"].to_list() == ["Grace Admin"]


def test_each_gap_is_explained_by_the_latest_loss_on_its_ways_in(story: Story) -> None:
    gaps = gaps_frame(story)
    timeline = permission_changes(story.tables, story.tech, gaps=gaps)
    explained = gap_explanations(timeline, gaps)
    by_gap = {row["gap"]: row["created"] for row in explained.iter_rows(named=True)}
    assert by_gap == {
        "role Administrators in P": story.moments[10],
        "Q": story.moments[12],
        "Secret in P": story.moments[13],
        "group fin": story.moments[7],
        "group never": None,  # no change took it away: it never had it
    }
    # the Developers removal (day 8) was undone on day 9: it explains nothing
    assert on_day(story, timeline, 8)["explains"].to_list() == [None]
    assert on_day(story, timeline, 7)["explains"].to_list() == ["group fin"]


def test_the_technical_user_can_be_named_by_email(story: Story) -> None:
    email = story.site.users[story.tech].email
    assert email is not None
    by_email = permission_changes(
        model.from_frames(
            story.tables.site_id,
            {
                name: getattr(story.tables, name)
                for name in ("audit_records", "audit_changed_values", "audit_associated_items", "groups")
            },
            users=pl.DataFrame([{"account_id": story.tech, "email_address": email, "active": True}]),
        ),
        email,
        gaps=gaps_frame(story).head(0),
    )
    memberships = by_email.filter(pl.col("change_kind") == "membership")
    assert memberships["effect"].to_list() == [GAINED, GAINED, GAINED, LOST]


# -- the demo site ---------------------------------------------------------------------------------------------------
def history_entry(definition: dict[str, Any], change: str, **match: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        entry
        for entry in definition["history"]
        if entry["change"] == change and all(entry.get(key) == value for key, value in match.items())
    ]
    assert len(entries) == 1, (change, match)
    return entries[0]


def test_demo_gaps_are_explained_by_the_story_s_history(demo: LoadedDemo) -> None:
    definition, site = demo.definition, demo.site
    findings = preflight_findings(demo.tables, demo.tech, checks=[1, 2, 3, 4])
    gaps = gaps_from_findings(findings)
    timeline = permission_changes(demo.tables, demo.tech, gaps=gaps)
    explained = gap_explanations(timeline, gaps)
    story = definition["story"]
    people = {key: person["name"] for key, person in definition["people"].items()}
    expected = {
        story["no_browse"][0]: history_entry(definition, "grant removed", scheme="hr"),
        f"role {story['missing_roles'][0]['role']} in {story['missing_roles'][0]['project']}": history_entry(
            definition, "role actor removed"
        ),
        f"{story['not_in_levels'][0]} in SEC": history_entry(definition, "level member added"),
        f"group {story['missing_groups'][0]}": history_entry(definition, "member removed"),
    }
    assert set(expected) <= set(explained["gap"])
    for gap, entry in expected.items():
        row = explained.filter(pl.col("gap") == gap).row(0, named=True)
        assert row["created"].date() == (EPOCH - timedelta(days=entry["days_ago"])).date(), gap
        assert row["author_name"] == people[entry.get("by", "grace")], gap
        assert row["effect"] in (LOST, EXCLUDED), gap
    # every removal in the history took something from the technical user, and nothing else did
    removals = [entry for entry in definition["history"] if entry["change"].endswith("removed")]
    lost = timeline.filter(pl.col("effect") == LOST)
    assert sorted(lost["created"].dt.date().to_list()) == sorted(
        (EPOCH - timedelta(days=entry["days_ago"])).date() for entry in removals
    )
    removed_from = lost.filter(pl.col("change_kind") == "membership")["description"].to_list()
    assert removed_from == [f"{site.users[demo.tech].display_name} removed from group {story['missing_groups'][0]}"]


def test_demo_records_before_the_rename_name_the_group_by_its_old_name(demo: LoadedDemo) -> None:
    renamed = demo.story["renamed_groups"][0]
    group = demo.site.group_by_name(renamed["group"])
    assert group is not None
    timeline = permission_changes(demo.tables, demo.tech, gaps=pl.DataFrame(schema={"gap_kind": pl.String}))
    joined = timeline.filter((pl.col("change_kind") == "membership") & (pl.col("group_id") == group.group_id))
    entry = history_entry(demo.definition, "member added", group=renamed["group"], user="connector")
    assert joined.select("group_name_then", "effect").rows() == [(renamed["formerly"], GAINED)]
    assert joined["created"][0].date() == (EPOCH - timedelta(days=entry["days_ago"])).date()
    rename = timeline.filter(pl.col("change_kind") == "group_renamed")
    assert rename.select("group_id", "old_name", "new_name").rows() == [
        (group.group_id, renamed["formerly"], renamed["group"])
    ]
