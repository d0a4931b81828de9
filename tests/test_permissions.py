"""The permission engine, holder type by holder type, on small hand-made sites.

Each table row reads like a sentence of Atlassian's documentation: *this holder* includes *this person* (or not).
The expected values come from how the site below is built and from Jira's documented rules, never from the engine.

The site (``world`` fixture):

* ENG (lead cat) and OPS (lead cat); each has its own, initially empty, permission scheme, so each test grants
  exactly what it is about. ENG uses the issue security scheme "Standard".
* Product access: group sw-users → jira-software; group jsm-agents → jira-servicedesk.
* ann: devs, sw-users; reported ENG-1.       bob: sw-users, user-browsers; assignee of ENG-1.
* cat: sw-users; lead of ENG and OPS.        dan: sw-users; actor of Developers in ENG (directly).
* eve: sw-users, contractors (contractors is an actor of Developers in ENG).
* fay: sw-users; actor of Developers in OPS only.
* gus: named in ENG-1's "Approver" (single user picker).   hal: in ENG-1's "Reviewers" (multi, with cat).
* ivy: legal (ENG-1's "Legal group" group picker holds legal).
* kim: jsm-agents only.   lou: no group at all; reported ENG-2.   adm: jira-admins (ADMINISTER), sw-users.
* joe: inactive; in devs, sw-users, contractors, jira-admins; actor of Developers in ENG.
* ENG-1: reporter ann, assignee bob, Approver gus, Reviewers [hal, cat], Legal group legal.
* ENG-2: reporter lou, nobody assigned, no custom field values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from jira_lab.sim import Holder, PermissionEngine, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.model import Issue, Project
from jira_lab.sim.permissions import PermissionSnapshot

ANONYMOUS = "anonymous"
NEW_DEVS_ID = "0f6d3d8e-2b1c-4e55-9d3a-5a1e6f7c8b90"
PEOPLE = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "kim", "lou", "adm", "joe")


@dataclass
class World:
    b: SiteBuilder
    people: dict[str, str]
    groups: dict[str, str]
    roles: dict[str, int]
    fields: dict[str, str]
    eng: int
    ops: int
    eng_scheme: int
    ops_scheme: int
    security_scheme: int
    eng_1: int
    eng_2: int

    @property
    def engine(self) -> PermissionEngine:
        return PermissionEngine(self.b.site)

    def who(self, name: str) -> str | None:
        return None if name == ANONYMOUS else self.people[name]

    def project(self, project_id: int) -> Project:
        return self.b.site.projects[project_id]

    def issue(self, issue_id: int) -> Issue:
        return self.b.site.issues[issue_id]

    def holder(self, spec: tuple[str, ...]) -> Holder:
        """``("group", "devs")`` → ``Holder("group", <devs id>)``: names in the tables, ids in the site."""
        kind, *rest = spec
        name = rest[0] if rest else None
        if name is None:
            return Holder(kind)
        parameter = {
            "group": lambda: self.groups[name],
            "groupCustomField": lambda: self.fields[name],
            "userCustomField": lambda: self.fields[name],
            "projectRole": lambda: str(self.roles[name]),
            "user": lambda: self.people[name],
        }.get(kind, lambda: name)()
        return Holder(kind, parameter)

    def visibility(self, spec: tuple[str, str] | None) -> Visibility | None:
        if spec is None:
            return None
        kind, name = spec
        if kind == "group":
            return Visibility("group", self.groups.get(name, name))
        return Visibility("role", name)


@pytest.fixture
def world() -> World:
    b = SiteBuilder("perm")
    people = {name: b.user(name.title(), api_token=f"token-{name}") for name in PEOPLE}
    b.site.users[people["joe"]].active = False
    p = people
    groups = {
        "devs": b.group("devs", members=[p["ann"], p["joe"]]),
        "sw-users": b.group(
            "sw-users", members=[p[n] for n in ("ann", "bob", "cat", "dan", "eve", "fay", "adm", "joe")]
        ),
        "jsm-agents": b.group("jsm-agents", members=[p["kim"]]),
        "contractors": b.group("contractors", members=[p["eve"], p["joe"]]),
        "legal": b.group("legal", members=[p["ivy"]]),
        "jira-admins": b.group("jira-admins", members=[p["adm"], p["joe"]]),
        "user-browsers": b.group("user-browsers", members=[p["bob"]]),
    }
    b.application_role("jira-software", "Jira", [groups["sw-users"]])
    b.application_role("jira-servicedesk", "Jira Service Management", [groups["jsm-agents"]])
    b.global_permission("ADMINISTER", groups["jira-admins"])
    b.global_permission("USER_PICKER", groups["user-browsers"])
    roles = {"Developers": b.role("Developers"), "Administrators": b.role("Administrators")}
    fields = {
        "Approver": b.custom_field("Approver", "user"),
        "Reviewers": b.custom_field("Reviewers", "user", multi=True),
        "Legal group": b.custom_field("Legal group", "group"),
    }
    security_scheme = b.security_scheme("Standard")
    eng_scheme = b.permission_scheme("ENG scheme")
    ops_scheme = b.permission_scheme("OPS scheme")
    eng = b.project("ENG", "Engineering", lead=p["cat"], permission_scheme=eng_scheme, security_scheme=security_scheme)
    ops = b.project("OPS", "Operations", lead=p["cat"], permission_scheme=ops_scheme)
    b.role_actor(eng, roles["Developers"], users=[p["dan"], p["joe"]], groups=[groups["contractors"]])
    b.role_actor(ops, roles["Developers"], users=[p["fay"]])
    eng_1 = b.issue(eng, "First", reporter=p["ann"], assignee=p["bob"], custom_fields=eng_1_fields(fields, p, groups))
    eng_2 = b.issue(eng, "Second", reporter=p["lou"])
    return World(b, people, groups, roles, fields, eng, ops, eng_scheme, ops_scheme, security_scheme, eng_1, eng_2)


def eng_1_fields(fields: dict[str, str], people: dict[str, str], groups: dict[str, str]) -> dict[str, Any]:
    return {
        fields["Approver"]: people["gus"],
        fields["Reviewers"]: [people["hal"], people["cat"]],
        fields["Legal group"]: groups["legal"],
    }


def grant(world: World, permission: str, *specs: tuple[str, ...], project: str = "ENG") -> None:
    scheme = world.eng_scheme if project == "ENG" else world.ops_scheme
    for spec in specs:
        world.b.grant(scheme, permission, world.holder(spec))


# -- project permission grants ---------------------------------------------------------------------------------
GRANT_TABLE = [
    # holder, who, on ENG-1, on ENG-2, for the project ("any issue", as mypermissions reads it)
    (("anyone",), ANONYMOUS, True, True, True),
    (("anyone",), "lou", True, True, True),
    (("applicationRole", "jira-software"), "ann", True, True, True),
    (("applicationRole", "jira-software"), "kim", False, False, False),
    (("applicationRole", "jira-software"), "lou", False, False, False),
    (("applicationRole", "jira-software"), ANONYMOUS, False, False, False),
    (("applicationRole",), "kim", True, True, True),  # "any logged in user": access to any product
    (("applicationRole",), "ann", True, True, True),
    (("applicationRole",), "lou", False, False, False),
    (("applicationRole",), ANONYMOUS, False, False, False),
    (("group", "devs"), "ann", True, True, True),
    (("group", "devs"), "bob", False, False, False),
    (("group", "devs"), ANONYMOUS, False, False, False),
    (("user", "ann"), "ann", True, True, True),
    (("user", "ann"), "bob", False, False, False),
    (("user", "ann"), ANONYMOUS, False, False, False),
    (("projectRole", "Developers"), "dan", True, True, True),  # user actor
    (("projectRole", "Developers"), "eve", True, True, True),  # through the contractors group actor
    (("projectRole", "Developers"), "fay", False, False, False),  # an actor in OPS, not in ENG
    (("projectRole", "Developers"), "ann", False, False, False),
    (("projectRole", "Administrators"), "dan", False, False, False),  # a role with no actors in ENG
    (("reporter",), "ann", True, False, True),
    (("reporter",), "lou", False, True, True),
    (("reporter",), "bob", False, False, False),
    (("reporter",), ANONYMOUS, False, False, False),
    (("assignee",), "bob", True, False, True),
    (("assignee",), "ann", False, False, False),
    (("projectLead",), "cat", True, True, True),
    (("projectLead",), "ann", False, False, False),
    (("userCustomField", "Approver"), "gus", True, False, True),
    (("userCustomField", "Approver"), "hal", False, False, False),
    (("userCustomField", "Reviewers"), "hal", True, False, True),
    (("userCustomField", "Reviewers"), "cat", True, False, True),
    (("userCustomField", "Reviewers"), "gus", False, False, False),
    (("groupCustomField", "Legal group"), "ivy", True, False, True),
    (("groupCustomField", "Legal group"), "ann", False, False, False),
    (("sd.customer.portal.only",), "kim", False, False, False),
    (("sd.customer.portal.only",), "lou", False, False, False),
]


@pytest.mark.parametrize(("holder", "who", "on_eng_1", "on_eng_2", "on_project"), GRANT_TABLE)
def test_project_permission_grant(
    world: World, holder: tuple[str, ...], who: str, on_eng_1: bool, on_eng_2: bool, on_project: bool
) -> None:
    grant(world, "EDIT_ISSUES", holder)
    engine, eng, account = world.engine, world.project(world.eng), world.who(who)

    assert engine.has_project_permission(account, "EDIT_ISSUES", eng, world.issue(world.eng_1)) is on_eng_1
    assert engine.has_project_permission(account, "EDIT_ISSUES", eng, world.issue(world.eng_2)) is on_eng_2
    assert engine.has_project_permission(account, "EDIT_ISSUES", eng) is on_project
    assert engine.has_project_permission(account, "EDIT_ISSUES", eng) is engine.holder_matches_any_issue(
        account, world.holder(holder), eng
    )
    # the grant is for EDIT_ISSUES only, and for ENG only
    assert not engine.has_project_permission(account, "BROWSE_PROJECTS", eng)
    assert not engine.has_project_permission(account, "EDIT_ISSUES", world.project(world.ops))


def test_a_renamed_group_keeps_its_grants_because_grants_hold_the_group_id(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("group", "devs"))
    world.b.site.groups[world.groups["devs"]].name = "developers-old"
    impostor = world.b.group("devs", members=[world.people["bob"]], group_id=NEW_DEVS_ID)  # a new group, the old name
    engine, eng = world.engine, world.project(world.eng)

    assert impostor != world.groups["devs"]
    assert engine.can_browse_project(world.people["ann"], eng)
    assert not engine.can_browse_project(world.people["bob"], eng)


def test_membership_changes_are_seen_by_the_next_question(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("group", "devs"), ("projectRole", "Developers"))
    engine, eng, site = world.engine, world.project(world.eng), world.b.site
    ann, eve = world.people["ann"], world.people["eve"]
    assert engine.can_browse_project(ann, eng) and engine.can_browse_project(eve, eng)

    site.group_members[world.groups["devs"]].discard(ann)
    eng.role_actors[world.roles["Developers"]].group_ids.discard(world.groups["contractors"])

    assert not engine.can_browse_project(ann, eng)
    assert not engine.can_browse_project(eve, eng)


def test_a_project_permission_for_an_issue_of_another_project_is_a_usage_error(world: World) -> None:
    with pytest.raises(ValueError, match="not in project"):
        world.engine.has_project_permission(None, "BROWSE_PROJECTS", world.project(world.ops), world.issue(world.eng_1))


def test_a_malformed_project_role_parameter_names_no_role(world: World) -> None:
    world.b.grant(world.eng_scheme, "BROWSE_PROJECTS", Holder("projectRole", "Developers"))  # a name, not an id
    assert not world.engine.can_browse_project(world.people["dan"], world.project(world.eng))


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("ann", True),  # reported ENG-1: "meets the permission's criteria for any issue"
        ("lou", True),  # reported ENG-2
        ("bob", False),  # reported nothing anywhere
        (ANONYMOUS, False),
    ],
)
def test_the_global_context_reads_a_project_permission_in_any_project(world: World, who: str, expected: bool) -> None:
    grant(world, "EDIT_ISSUES", ("reporter",), project="OPS")  # OPS has no issues: nobody is a reporter there
    grant(world, "EDIT_ISSUES", ("reporter",), project="ENG")
    assert world.engine.has_permission_in_any_project(world.who(who), "EDIT_ISSUES") is expected


# -- inactive accounts -----------------------------------------------------------------------------------------
INACTIVE_TABLE = [
    # holder, who (matches while active, on ENG-1)
    (("anyone",), "ann"),
    (("applicationRole", "jira-software"), "ann"),
    (("applicationRole",), "ann"),
    (("group", "devs"), "ann"),
    (("user", "ann"), "ann"),
    (("projectRole", "Developers"), "dan"),
    (("projectRole", "Developers"), "eve"),
    (("reporter",), "ann"),
    (("assignee",), "bob"),
    (("projectLead",), "cat"),
    (("userCustomField", "Approver"), "gus"),
    (("userCustomField", "Reviewers"), "hal"),
    (("groupCustomField", "Legal group"), "ivy"),
]


@pytest.mark.parametrize(("holder", "who"), INACTIVE_TABLE)
def test_an_inactive_account_matches_no_holder_not_even_anyone(world: World, holder: tuple[str, ...], who: str) -> None:
    grant(world, "EDIT_ISSUES", holder)
    engine, eng, issue, account = world.engine, world.project(world.eng), world.issue(world.eng_1), world.people[who]
    assert engine.has_project_permission(account, "EDIT_ISSUES", eng, issue)

    world.b.site.users[account].active = False

    assert not engine.has_project_permission(account, "EDIT_ISSUES", eng, issue)
    assert not engine.has_project_permission(account, "EDIT_ISSUES", eng)
    assert not engine.holder_matches(account, world.holder(holder), eng, issue)


def test_an_inactive_account_keeps_its_memberships_as_data_but_they_grant_nothing(world: World) -> None:
    engine, eng, joe = world.engine, world.project(world.eng), world.people["joe"]
    assert world.groups["devs"] in engine.groups_of(joe)
    assert joe in engine.role_members(eng, world.roles["Developers"])
    assert not engine.is_active(joe)
    assert not engine.has_application_access(joe)
    assert not engine.can_access_jira(joe)
    assert not engine.is_admin(joe)  # joe is in jira-admins
    assert not engine.satisfies_visibility(joe, Visibility("group", world.groups["devs"]), world.issue(world.eng_1))
    assert not engine.satisfies_visibility(joe, Visibility("role", "Developers"), world.issue(world.eng_1))


def test_an_account_the_site_does_not_know_is_treated_like_an_inactive_one(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("anyone",))
    assert not world.engine.can_browse_project("557058:no-such-account", world.project(world.eng))
    assert world.engine.can_browse_project(None, world.project(world.eng))


# -- application access and global permissions -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "application", "expected"),
    [
        ("ann", "jira-software", True),
        ("ann", None, True),
        ("ann", "jira-servicedesk", False),
        ("kim", "jira-servicedesk", True),
        ("kim", "jira-software", False),
        ("kim", None, True),
        ("lou", None, False),
        ("ann", "jira-product-discovery", False),  # an application the site does not have
        (ANONYMOUS, None, False),
        ("joe", "jira-software", False),  # inactive, although in sw-users
        ("joe", None, False),
    ],
)
def test_application_access(world: World, who: str, application: str | None, expected: bool) -> None:
    assert world.engine.has_application_access(world.who(who), application) is expected
    if application is None:
        assert world.engine.can_access_jira(world.who(who)) is expected


@pytest.mark.parametrize(
    ("permission", "who", "expected"),
    [
        ("ADMINISTER", "adm", True),
        ("ADMINISTER", "ann", False),
        ("ADMINISTER", "joe", False),  # inactive member of jira-admins
        ("ADMINISTER", ANONYMOUS, False),
        ("ADMINISTER", "cat", False),  # a project lead is no Jira administrator
        ("USER_PICKER", "bob", True),
        ("USER_PICKER", "adm", False),  # ADMINISTER does not imply the USER_PICKER grant itself
        ("BULK_CHANGE", "adm", False),
    ],
)
def test_global_permissions_are_held_through_groups(world: World, permission: str, who: str, expected: bool) -> None:
    assert world.engine.has_global(world.who(who), permission) is expected


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("bob", True),  # USER_PICKER
        ("adm", True),  # ADMINISTER
        ("ann", False),
        ("joe", False),  # inactive Jira administrator
        (ANONYMOUS, False),
    ],
)
def test_browse_users_and_groups_is_user_picker_or_administer(world: World, who: str, expected: bool) -> None:
    assert world.engine.can_browse_users(world.who(who)) is expected


def test_global_permissions_follow_group_membership(world: World) -> None:
    engine, ann = world.engine, world.people["ann"]
    world.b.add_members(world.groups["jira-admins"], ann)
    assert engine.is_admin(ann)
    world.b.site.group_members[world.groups["jira-admins"]].discard(ann)
    assert not engine.is_admin(ann)


def test_jira_administrators_do_not_get_browse_projects(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("group", "devs"))
    engine, eng, adm = world.engine, world.project(world.eng), world.people["adm"]
    assert engine.is_admin(adm)
    assert not engine.can_browse_project(adm, eng)
    assert not engine.can_browse_issue(adm, world.issue(world.eng_1))
    assert not engine.has_project_permission(adm, "ADMINISTER_PROJECTS", eng)
    assert not engine.can_see_item(adm, world.issue(world.eng_1), None)


# -- issue security levels -------------------------------------------------------------------------------------
SECURITY_TABLE = [
    # level member, who, can browse an ENG issue in that level (ENG-1's data: reporter ann, assignee bob ...)
    (("anyone",), ANONYMOUS, True),
    (("anyone",), "lou", True),
    (("applicationRole", "jira-software"), "ann", True),
    (("applicationRole", "jira-software"), "kim", False),
    (("applicationRole",), "kim", True),
    (("applicationRole",), "lou", False),
    (("applicationRole",), ANONYMOUS, False),
    (("group", "devs"), "ann", True),
    (("group", "devs"), "bob", False),
    (("user", "ann"), "ann", True),
    (("user", "ann"), "bob", False),
    (("projectRole", "Developers"), "dan", True),
    (("projectRole", "Developers"), "eve", True),
    (("projectRole", "Developers"), "fay", False),
    (("reporter",), "ann", True),
    (("reporter",), "bob", False),
    (("assignee",), "bob", True),
    (("assignee",), "ann", False),
    (("projectLead",), "cat", True),
    (("projectLead",), "ann", False),
    (("userCustomField", "Approver"), "gus", True),
    (("userCustomField", "Approver"), "hal", False),
    (("userCustomField", "Reviewers"), "hal", True),
    (("userCustomField", "Reviewers"), "gus", False),
    (("groupCustomField", "Legal group"), "ivy", True),
    (("groupCustomField", "Legal group"), "ann", False),
    (("group", "devs"), "adm", False),  # Jira administrators are not level members by office
    (("group", "devs"), "joe", False),  # inactive member
]


def secured_issue(world: World, member: tuple[str, ...]) -> Issue:
    """An ENG issue with ENG-1's data, in a level whose only member is ``member``; everyone may browse ENG."""
    grant(world, "BROWSE_PROJECTS", ("anyone",))
    level = world.b.security_level(world.security_scheme, f"only {member}", [world.holder(member)])
    p = world.people
    issue_id = world.b.issue(
        world.eng,
        "Secured",
        reporter=p["ann"],
        assignee=p["bob"],
        security_level=level,
        custom_fields=eng_1_fields(world.fields, p, world.groups),
    )
    return world.issue(issue_id)


@pytest.mark.parametrize(("member", "who", "expected"), SECURITY_TABLE)
def test_issue_security_level_member(world: World, member: tuple[str, ...], who: str, expected: bool) -> None:
    issue = secured_issue(world, member)
    engine, account = world.engine, world.who(who)
    assert issue.security_level_id is not None
    assert engine.in_security_level(account, issue.security_level_id, issue) is expected
    assert engine.can_browse_issue(account, issue) is expected
    if account is not None and world.b.site.users[account].active:
        assert engine.can_browse_issue(account, world.issue(world.eng_2))  # no level: Browse Projects is enough


@pytest.mark.parametrize(
    ("level", "who", "expected"),
    [
        ("Board only", "cat", True),
        ("Board only", "ivy", False),
        ("Legal", "ivy", True),
        ("Legal", "cat", False),
        ("Board only", "dan", False),  # dan has no member slot anywhere in the Board scheme
        ("Legal", "dan", False),
        ("Legal", "adm", False),
        ("Legal", ANONYMOUS, False),
    ],
)
def test_an_issue_is_hidden_from_everyone_outside_its_level(world: World, level: str, who: str, expected: bool) -> None:
    b = world.b
    board = b.security_scheme("Board")
    levels = {
        "Board only": b.security_level(board, "Board only", [world.holder(("user", "cat"))]),
        "Legal": b.security_level(board, "Legal", [world.holder(("group", "legal"))]),
    }
    scheme = b.permission_scheme("BRD scheme", grants=[("BROWSE_PROJECTS", Holder("anyone"))])
    brd = b.project("BRD", "Board", lead=world.people["cat"], permission_scheme=scheme, security_scheme=board)
    secured = world.issue(b.issue(brd, "Minutes", reporter=world.people["cat"], security_level=levels[level]))
    open_issue = world.issue(b.issue(brd, "Agenda", reporter=world.people["cat"]))

    assert world.engine.can_browse_issue(world.who(who), secured) is expected
    assert world.engine.can_browse_issue(world.who(who), open_issue)


def test_an_issue_whose_level_no_scheme_defines_is_visible_to_nobody(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("anyone",))
    issue = world.issue(world.b.issue(world.eng, "Orphan", reporter=world.people["ann"], security_level=99999))
    for name in (*PEOPLE, ANONYMOUS):
        assert not world.engine.can_browse_issue(world.who(name), issue), name


def test_issue_security_is_checked_even_for_holders_of_browse_projects(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("group", "sw-users"))
    issue = secured_issue(world, ("user", "cat"))  # secured_issue also grants Browse to anyone
    engine, eng = world.engine, world.project(world.eng)
    assert engine.has_project_permission(world.people["ann"], "BROWSE_PROJECTS", eng, issue)
    assert not engine.can_browse_issue(world.people["ann"], issue)
    assert engine.can_browse_issue(world.people["cat"], issue)


# -- comment and worklog visibility ----------------------------------------------------------------------------
VISIBILITY_TABLE = [
    # visibility, who, sees a comment/worklog on ENG-1 (Browse Projects: any logged-in user)
    (None, "kim", True),
    (None, "ann", True),
    (None, "lou", False),  # no product access, so no Browse Projects
    (None, ANONYMOUS, False),
    (("group", "devs"), "ann", True),
    (("group", "devs"), "bob", False),
    (("group", "devs"), "adm", False),  # Jira administrators do not bypass restrictions
    (("group", "devs"), "joe", False),  # inactive member
    (("group", "no-such-group-id"), "ann", False),
    (("role", "Developers"), "dan", True),  # actor in ENG
    (("role", "Developers"), "eve", True),  # actor in ENG through the contractors group
    (("role", "Developers"), "fay", False),  # actor in OPS, but the item is on an ENG issue
    (("role", "Developers"), "ann", False),
    (("role", "Developers"), "adm", False),
    (("role", "Administrators"), "dan", False),
    (("role", "Ghosts"), "dan", False),  # no such role
]


@pytest.mark.parametrize(("visibility", "who", "expected"), VISIBILITY_TABLE)
def test_comment_and_worklog_visibility(
    world: World, visibility: tuple[str, str] | None, who: str, expected: bool
) -> None:
    grant(world, "BROWSE_PROJECTS", ("applicationRole",))
    restriction = world.visibility(visibility)
    issue = world.issue(world.eng_1)
    comment = world.b.site.comment(world.b.comment(issue.id, world.people["ann"], "note", visibility=restriction))
    worklog = world.b.site.worklog(world.b.worklog(issue.id, world.people["ann"], 600, visibility=restriction))
    assert comment is not None and worklog is not None

    assert world.engine.can_see_item(world.who(who), issue, comment.visibility) is expected
    assert world.engine.can_see_item(world.who(who), issue, worklog.visibility) is expected


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("fay", True),  # actor of Developers in OPS
        ("dan", False),  # actor of Developers in ENG only
        ("eve", False),  # contractors is an actor in ENG only
    ],
)
def test_a_role_restriction_is_checked_in_the_issues_project(world: World, who: str, expected: bool) -> None:
    grant(world, "BROWSE_PROJECTS", ("applicationRole",), project="OPS")
    issue = world.issue(world.b.issue(world.ops, "Outage", reporter=world.people["cat"]))
    assert world.engine.can_see_item(world.people[who], issue, Visibility("role", "Developers")) is expected


def test_a_group_restriction_survives_a_rename_of_the_group(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("applicationRole",))
    restriction = Visibility("group", world.groups["devs"])
    world.b.site.groups[world.groups["devs"]].name = "developers-old"
    world.b.group("devs", members=[world.people["bob"]], group_id=NEW_DEVS_ID)  # a new group, the old name
    issue = world.issue(world.eng_1)
    assert world.engine.can_see_item(world.people["ann"], issue, restriction)
    assert not world.engine.can_see_item(world.people["bob"], issue, restriction)


@pytest.mark.parametrize(
    ("why_hidden", "who"),
    [
        ("issue security level the member is not in", "ann"),
        ("no Browse Projects (no product access)", "lou"),
    ],
)
def test_an_item_on_an_issue_the_account_cannot_browse_is_invisible_even_to_group_members(
    world: World, why_hidden: str, who: str
) -> None:
    world.b.add_members(world.groups["devs"], world.people["lou"])
    grant(world, "BROWSE_PROJECTS", ("applicationRole",))
    level = world.b.security_level(world.security_scheme, "Lead only", [Holder("projectLead")])
    issue = world.issue(world.eng_1)
    if why_hidden.startswith("issue security"):
        issue.security_level_id = level
    restriction = Visibility("group", world.groups["devs"])
    account = world.people[who]

    assert world.engine.satisfies_visibility(account, restriction, issue)
    assert not world.engine.can_see_item(account, issue, restriction)


def test_the_project_lead_sees_an_unrestricted_comment_on_the_lead_only_issue(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("applicationRole",))
    level = world.b.security_level(world.security_scheme, "Lead only", [Holder("projectLead")])
    issue = world.issue(world.eng_1)
    issue.security_level_id = level
    assert world.engine.can_see_item(world.people["cat"], issue, None)
    assert not world.engine.can_see_item(world.people["cat"], issue, Visibility("group", world.groups["devs"]))


# -- snapshots: memoized, per request, never stale across requests -------------------------------------------------
def test_a_snapshot_answers_like_the_engine_on_a_mixed_site() -> None:
    b, accounts = random_site(seed=7)
    engine, snapshot = PermissionEngine(b.site), PermissionEngine(b.site).snapshot()
    outcomes: set[bool] = set()
    for account in accounts:
        for project in b.site.projects.values():
            for permission in ("BROWSE_PROJECTS", "EDIT_ISSUES"):
                expected = engine.has_project_permission(account, permission, project)
                assert snapshot.has_project_permission(account, permission, project) is expected
        for issue in b.site.issues.values():
            assert snapshot.can_browse_issue(account, issue) is engine.can_browse_issue(account, issue)
            restrictions = [c.visibility for c in issue.comments] + [w.visibility for w in issue.worklogs]
            for restriction in restrictions:
                expected = engine.can_see_item(account, issue, restriction)
                assert snapshot.can_see_item(account, issue, restriction) is expected
                outcomes.add(expected)
    assert outcomes == {True, False}


def test_a_new_snapshot_sees_a_change_made_after_the_previous_one(world: World) -> None:
    grant(world, "BROWSE_PROJECTS", ("applicationRole",))
    issue, ann, devs = world.issue(world.eng_1), world.people["ann"], world.groups["devs"]
    restriction = Visibility("group", devs)
    first = world.engine.snapshot()
    assert first.can_see_item(ann, issue, restriction)

    world.b.site.group_members[devs].discard(ann)

    assert first.can_see_item(ann, issue, restriction)  # one request sees one consistent state
    assert not world.engine.snapshot().can_see_item(ann, issue, restriction)
    assert not world.engine.can_see_item(ann, issue, restriction)


def test_each_request_to_the_simulated_cloud_sees_the_site_as_it_is_now(world: World) -> None:
    cloud = SimCloud(world.b.site)
    ann = world.b.site.users[world.people["ann"]]
    client = httpx.Client(
        transport=cloud.transport(), base_url="https://perm.atlassian.net", auth=(ann.email or "", "token-ann")
    )

    def shows_emails() -> bool:
        response = client.get("/rest/api/3/myself")
        assert response.status_code == 200
        return "emailAddress" in response.json()

    assert not shows_emails()
    world.b.add_members(world.groups["user-browsers"], ann.account_id)  # Browse users and groups
    assert shows_emails()
    world.b.site.group_members[world.groups["user-browsers"]].discard(ann.account_id)
    assert not shows_emails()


def test_the_simulated_cloud_gives_handlers_a_snapshot(world: World) -> None:
    # SimCloud memoizes per request through the engine's snapshot; a plain engine would be correct but slow
    assert isinstance(SimCloud(world.b.site).engines[world.b.site.cloud_id].snapshot(), PermissionSnapshot)


def random_site(seed: int) -> tuple[SiteBuilder, list[str | None]]:
    """A small site mixing every holder type in grants and levels, and every kind of restriction."""
    rng = random.Random(seed)
    b = SiteBuilder("mixed")
    users = [b.user(f"User {n}", active=n % 9 != 8) for n in range(12)]
    groups = [b.group(f"g{n}", members=rng.sample(users, 4)) for n in range(5)]
    b.application_role("jira-software", "Jira", groups[:3])
    roles = [b.role(f"Role {n}") for n in range(3)]
    user_field, group_field = b.custom_field("Approvers", "user", multi=True), b.custom_field("Team", "group")

    def some_holder() -> Holder:
        return rng.choice(
            [
                Holder("anyone"),
                Holder("applicationRole", "jira-software"),
                Holder("applicationRole"),
                Holder("group", rng.choice(groups)),
                Holder("user", rng.choice(users)),
                Holder("projectRole", str(rng.choice(roles))),
                Holder("reporter"),
                Holder("assignee"),
                Holder("projectLead"),
                Holder("userCustomField", user_field),
                Holder("groupCustomField", group_field),
            ]
        )

    security = b.security_scheme("Mixed")
    levels = [b.security_level(security, f"L{n}", [some_holder() for _ in range(2)]) for n in range(3)]
    for key in ("AAA", "BBB", "CCC"):
        grants = [(rng.choice(["BROWSE_PROJECTS", "EDIT_ISSUES"]), some_holder()) for _ in range(3)]
        scheme = b.permission_scheme(f"{key} scheme", grants)
        project = b.project(key, key, lead=rng.choice(users), permission_scheme=scheme, security_scheme=security)
        for role in roles:
            b.role_actor(project, role, users=rng.sample(users, 2), groups=rng.sample(groups, 1))
        for n in range(8):
            issue = b.issue(
                project,
                f"{key} {n}",
                reporter=rng.choice(users),
                assignee=rng.choice([None, *users]),
                security_level=rng.choice([None, None, *levels]),
                custom_fields={user_field: rng.sample(users, 2), group_field: rng.choice(groups)},
            )
            for m in range(4):
                restriction = rng.choice(
                    [
                        None,
                        Visibility("group", rng.choice(groups)),
                        Visibility("role", f"Role {rng.randrange(4)}"),  # Role 3 does not exist
                    ]
                )
                b.comment(issue, rng.choice(users), f"c{m}", visibility=restriction)
                b.worklog(issue, rng.choice(users), 60, visibility=restriction)
    return b, [None, *users]
