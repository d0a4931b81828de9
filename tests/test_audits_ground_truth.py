"""The ground truth: the static prediction of restriction gaps equals the simulator's permission engine and the
empirical two-principal difference, id for id, for issues, comments and worklogs.

Each site is loaded through the real loader (``jira_lab.load``, in process through ``SimCloud.transport()``) by the
analyst and by the technical user into one DuckDB database; the audits then read only that database. Three kinds of
site:

* the ``demo`` story site;
* generated sites with random permission models, one per seed (hypothesis picks the seeds), kept small so that
  each example loads in about a second;
* a hand-built site with one project per Browse Projects holder type, one security level per member type and one
  comment or worklog per restriction type, including a group renamed between the two loads, a group granted
  through a project role, an inactive account, reporter/assignee/custom-field grants and a Jira administrator who
  is not exempt from restrictions. Its expected answers are written down while building it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jira_lab import store
from jira_lab.audits import model
from jira_lab.audits.visibility import RestrictionGaps, compare_prediction, empirical_gaps, restriction_gaps
from jira_lab.auth.httpauth import basic_auth
from jira_lab.client import JiraClient
from jira_lab.load import load
from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.generator import SiteSize, generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

Item = tuple[str, int]
#: a generated site small enough to load twice in about a second, with every part of a random permission model
SMALL_SITE = SiteSize(projects=4, issues=16, comments=80, worklogs=30, changelog_items=10, users=14, groups=10)


# -- loading and the three answers -------------------------------------------------------------------------------
def load_as(conn: store.Connection, cloud: SimCloud, site: Site, account_id: str) -> None:
    user = site.users[account_id]
    assert user.email is not None and user.api_token is not None
    client = JiraClient(
        f"https://{site.name}.atlassian.net", auth=basic_auth(user.email, user.api_token), transport=cloud.transport()
    )
    summary = load(conn, client, progress=False)
    assert summary.status == "succeeded"


def load_both(
    site: Site, analyst: str, technical_user: str, *, between: Callable[[], None] | None = None
) -> model.SiteTables:
    """The analyst loads the site, ``between`` changes it, then the technical user loads it."""
    cloud = SimCloud(site)
    conn = store.connect(":memory:")
    load_as(conn, cloud, site, analyst)
    if between is not None:
        between()
    load_as(conn, cloud, site, technical_user)
    return model.from_db(conn)


def engine_hidden(site: Site, account_id: str) -> set[Item]:
    """Every issue, comment and worklog of the site the permission engine hides from the account."""
    engine = PermissionEngine(site).snapshot()
    hidden: set[Item] = set()
    for issue in site.issues.values():
        if not engine.can_browse_issue(account_id, issue):
            hidden.add(("issue", issue.id))
        for kind, entries in (("comment", issue.comments), ("worklog", issue.worklogs)):
            hidden.update((kind, e.id) for e in entries if not engine.can_see_item(account_id, issue, e.visibility))
    return hidden


def all_items(site: Site) -> set[Item]:
    every: set[Item] = set()
    for issue in site.issues.values():
        every.add(("issue", issue.id))
        every.update(("comment", c.id) for c in issue.comments)
        every.update(("worklog", w.id) for w in issue.worklogs)
    return every


def items_of(frame: pl.DataFrame) -> set[Item]:
    return set(frame.select("item_kind", "item_id").iter_rows())


def assert_ground_truth(site: Site, tables: model.SiteTables, analyst: str, technical_user: str) -> RestrictionGaps:
    """Prediction == engine == empirical difference, item for item, and the comparison finds no disagreement."""
    assert engine_hidden(site, analyst) == set(), "the analyst must see everything for the comparison to be complete"
    audit = restriction_gaps(tables, technical_user)
    predicted = items_of(audit.gaps)
    assert len(predicted) == audit.gaps.height
    assert predicted == engine_hidden(site, technical_user)
    assert items_of(empirical_gaps(tables, analyst, technical_user)) == predicted
    assert compare_prediction(tables, analyst, technical_user, audit).is_empty()
    # everything the site holds was loaded, so everything is judged
    loaded = items_of(model.items(tables).collect()) | {("issue", i) for i in tables.issues.collect()["id"]}
    assert loaded == all_items(site)
    return audit


# -- the demo site and random sites ------------------------------------------------------------------------------
def test_the_demo_site() -> None:
    site = generate_site("demo")
    analyst, technical_user = site.accounts["analyst"], site.accounts["technical_user"]
    tables = load_both(site, analyst, technical_user)
    audit = assert_ground_truth(site, tables, analyst, technical_user)
    assert set(audit.gaps["layer"]) >= {"browse", "security_level", "visibility"}
    # the demo's model is complete: applied in order, the fixes unlock every hidden item
    assert audit.fixes["step"].null_count() == 0
    assert audit.fixes["items_unlocked"].sum() == audit.gaps.height


@settings(max_examples=4, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=1, max_value=100_000))
def test_random_permission_models(seed: int) -> None:
    site = generate_site(SMALL_SITE, seed)
    analyst, technical_user = site.accounts["analyst"], site.accounts["technical_user"]
    tables = load_both(site, analyst, technical_user)
    assert_ground_truth(site, tables, analyst, technical_user)


# -- the hand-built site -----------------------------------------------------------------------------------------
@dataclass
class TruthSite:
    """The hand-built site and what its technical user is expected to see, written down while building it."""

    builder: SiteBuilder
    accounts: dict[str, str]
    groups: dict[str, str]
    #: project key -> its issues, and which of them the technical user may browse
    issues: dict[str, dict[int, bool]] = field(default_factory=dict)
    #: item -> visible to the technical user (issues, comments, worklogs)
    expected: dict[Item, bool] = field(default_factory=dict)
    #: level name -> the issues at it and whether the technical user is a member for that issue
    levels: dict[str, dict[int, bool]] = field(default_factory=dict)
    #: restriction label -> (item, visible)
    restrictions: dict[str, Item] = field(default_factory=dict)

    @property
    def site(self) -> Site:
        return self.builder.site


BROWSE_CASES = {
    # project key: (holder, what the technical user sees)
    "ANY": "anyone",
    "APP": "applicationRole with the key of a product it has",
    "APX": "applicationRole with the key of a product it lacks",
    "APN": "applicationRole without a key: any logged-in user with product access",
    "GRP": "group it is in (renamed between the two loads)",
    "GRX": "group it is not in",
    "RLU": "projectRole it is a user actor of in the project",
    "RLG": "projectRole granted to a group it is in",
    "RLX": "projectRole it acts in elsewhere only",
    "USR": "user: itself",
    "USX": "user: an inactive account",
    "LED": "projectLead: itself",
    "LEX": "projectLead: someone else",
    "REP": "reporter: the issues it reported",
    "ASG": "assignee: the issues assigned to it",
    "UCF": "userCustomField: the issues whose field names it",
    "GCF": "groupCustomField: the issues whose field names one of its groups",
}


def build_truth_site() -> TruthSite:
    b = SiteBuilder("truth")
    ana = b.user("Ana Analyst", api_token="token-ana")
    tec = b.user("Tec Connector", api_token="token-tec")
    oli = b.user("Oli Other", api_token="token-oli")
    ina = b.user("Ina Inactive", active=False)
    jsw = b.group("jira-software-users", members=[ana, tec, oli, ina])
    jsm = b.group("jira-servicemanagement-users", members=[oli])
    admins = b.group("jira-administrators", members=[ana, tec])
    b.application_role("jira-software", "Jira", [jsw])
    b.application_role("jira-servicedesk", "Jira Service Management", [jsm])
    b.global_permission("ADMINISTER", admins)
    seeing = b.group("all-seeing", members=[ana])
    # the analyst is in every group a comment or worklog is restricted to
    team_a = b.group("team-a", members=[ana, tec, ina])
    connectors = b.group("connectors", members=[tec])
    others = b.group("others", members=[ana, oli, ina])
    dev, adm, obs = b.role("Developers"), b.role("Administrators"), b.role("Observers")
    approver = b.custom_field("Approver", "user")
    owners = b.custom_field("Owning groups", "group", multi=True)
    truth = TruthSite(
        b,
        {"analyst": ana, "technical_user": tec, "other": oli, "inactive": ina},
        {"team_a": team_a, "connectors": connectors, "others": others, "all_seeing": seeing},
    )

    def project(key: str, holder: Holder, *, lead: str = oli, security_scheme: int | None = None) -> int:
        grants = [("BROWSE_PROJECTS", Holder("group", seeing)), ("BROWSE_PROJECTS", holder)]
        scheme = b.permission_scheme(f"{key} permissions", grants)
        pid = b.project(key, key, lead=lead, permission_scheme=scheme, security_scheme=security_scheme)
        for role in (dev, adm, obs):
            b.role_actor(pid, role, groups=[seeing])
        return pid

    def issue(key: str, pid: int, visible: bool, **options: object) -> int:
        options.setdefault("reporter", ana)
        issue_id = b.issue(pid, f"{key} issue", **options)  # type: ignore[arg-type]
        truth.issues.setdefault(key, {})[issue_id] = visible
        truth.expected[("issue", issue_id)] = visible
        # an unrestricted comment and worklog share their issue's fate
        truth.expected[("comment", b.comment(issue_id, ana, "note"))] = visible
        truth.expected[("worklog", b.worklog(issue_id, ana, 600))] = visible
        return issue_id

    # Browse Projects, one project per holder type
    for key, holder, visible in (
        ("ANY", Holder("anyone"), True),
        ("APP", Holder("applicationRole", "jira-software"), True),
        ("APX", Holder("applicationRole", "jira-servicedesk"), False),
        ("APN", Holder("applicationRole", None), True),
        ("GRP", Holder("group", team_a), True),
        ("GRX", Holder("group", others), False),
        ("USR", Holder("user", tec), True),
        ("USX", Holder("user", ina), False),
    ):
        issue(key, project(key, holder), visible)
    rlu = project("RLU", Holder("projectRole", str(dev)))
    b.role_actor(rlu, dev, users=[tec])
    b.role_actor(rlu, obs, users=[tec])
    issue("RLU", rlu, True)
    rlg = project("RLG", Holder("projectRole", str(dev)))
    b.role_actor(rlg, dev, groups=[connectors])
    issue("RLG", rlg, True)
    issue("RLX", project("RLX", Holder("projectRole", str(obs))), False)
    issue("LED", project("LED", Holder("projectLead"), lead=tec), True)
    issue("LEX", project("LEX", Holder("projectLead")), False)
    rep = project("REP", Holder("reporter"))
    issue("REP", rep, True, reporter=tec)
    issue("REP", rep, False, reporter=oli)
    asg = project("ASG", Holder("assignee"))
    issue("ASG", asg, True, assignee=tec)
    issue("ASG", asg, False, assignee=oli)
    issue("ASG", asg, False)
    ucf = project("UCF", Holder("userCustomField", approver))
    issue("UCF", ucf, True, custom_fields={approver: tec})
    issue("UCF", ucf, False, custom_fields={approver: oli})
    gcf = project("GCF", Holder("groupCustomField", owners))
    issue("GCF", gcf, True, custom_fields={owners: [others, connectors]})
    issue("GCF", gcf, False, custom_fields={owners: [others]})

    # issue security: one level per member type, in a project everyone active may browse
    scheme = b.security_scheme("Sensitive")
    sec = project("SEC", Holder("anyone"), security_scheme=scheme)
    b.role_actor(sec, dev, groups=[connectors])
    for name, member, visible, options in (
        ("group", Holder("group", team_a), True, {}),
        ("role", Holder("projectRole", str(dev)), True, {}),
        ("reporter", Holder("reporter"), True, {"reporter": tec}),
        ("reporter, someone else", Holder("reporter"), False, {"reporter": oli}),
        ("assignee", Holder("assignee"), True, {"assignee": tec}),
        ("assignee, nobody", Holder("assignee"), False, {}),
        ("user", Holder("user", tec), True, {}),
        ("lead, someone else", Holder("projectLead"), False, {}),
        ("product access", Holder("applicationRole", "jira-software"), True, {}),
        ("user field", Holder("userCustomField", approver), True, {"custom_fields": {approver: tec}}),
        ("group field", Holder("groupCustomField", owners), True, {"custom_fields": {owners: [connectors]}}),
        ("group it is not in", Holder("group", others), False, {}),
        ("anyone", Holder("anyone"), True, {}),
    ):
        level = b.security_level(scheme, name, [Holder("group", seeing), member])
        issue_id = issue("SEC", sec, visible, security_level=level, **options)
        truth.levels[name] = {issue_id: visible}

    # comment and worklog restrictions, on one issue everyone active may see
    vis = project("VIS", Holder("anyone"))
    b.role_actor(vis, dev, users=[tec])
    b.role_actor(vis, adm, groups=[connectors])
    target = issue("VIS", vis, True)
    for label, restriction, visible in (
        ("group it is in (renamed)", Visibility("group", team_a), True),
        ("group it is not in", Visibility("group", others), False),
        ("role it acts in as a user", Visibility("role", "Developers"), True),
        ("role granted to its group", Visibility("role", "Administrators"), True),
        ("role it acts in elsewhere only", Visibility("role", "Observers"), False),
    ):
        comment = ("comment", b.comment(target, ana, label, visibility=restriction))
        worklog = ("worklog", b.worklog(target, ana, 60, text=label, visibility=restriction))
        truth.expected[comment] = truth.expected[worklog] = visible
        truth.restrictions[label] = comment
    # a restricted comment on an issue it cannot browse stays hidden whatever the restriction
    grx = next(iter(truth.issues["GRX"]))
    truth.expected[("comment", b.comment(grx, ana, "team", visibility=Visibility("group", team_a)))] = False
    return truth


@pytest.fixture(scope="module")
def truth() -> tuple[TruthSite, model.SiteTables, RestrictionGaps]:
    built = build_truth_site()
    site = built.site

    def rename_team_a() -> None:
        site.groups[built.groups["team_a"]].name = "team-a-renamed"

    tables = load_both(site, built.accounts["analyst"], built.accounts["technical_user"], between=rename_team_a)
    audit = assert_ground_truth(site, tables, built.accounts["analyst"], built.accounts["technical_user"])
    return built, tables, audit


def test_the_hand_built_site_agrees_with_what_was_written_down(
    truth: tuple[TruthSite, model.SiteTables, RestrictionGaps],
) -> None:
    built, _tables, audit = truth
    hidden = {item for item, visible in built.expected.items() if not visible}
    assert items_of(audit.gaps) == hidden
    assert set(built.expected) == all_items(built.site)


@pytest.mark.parametrize("key", list(BROWSE_CASES), ids=list(BROWSE_CASES.values()))
def test_browse_projects_through_each_holder_type(
    truth: tuple[TruthSite, model.SiteTables, RestrictionGaps], key: str
) -> None:
    built, tables, audit = truth
    tec = built.accounts["technical_user"]
    browsable = set(model.issue_browsers(tables, [tec]).collect()["issue_id"])
    for issue_id, visible in built.issues[key].items():
        assert (issue_id in browsable) is visible
        row = audit.gaps.filter((pl.col("item_kind") == "issue") & (pl.col("item_id") == issue_id))
        assert row.height == (0 if visible else 1)
        if not visible:
            assert row["layer"].item() == "browse"
            assert row["browse_grants"].item() is not None


@pytest.mark.parametrize(
    "name",
    [
        "group",
        "role",
        "reporter",
        "reporter, someone else",
        "assignee",
        "assignee, nobody",
        "user",
        "lead, someone else",
        "product access",
        "user field",
        "group field",
        "group it is not in",
        "anyone",
    ],
)
def test_security_level_membership_through_each_member_type(
    truth: tuple[TruthSite, model.SiteTables, RestrictionGaps], name: str
) -> None:
    built, tables, audit = truth
    members = set(model.issue_level_members(tables, [built.accounts["technical_user"]]).collect()["issue_id"])
    for issue_id, visible in built.levels[name].items():
        assert (issue_id in members) is visible
        layers = audit.gaps.filter((pl.col("item_kind") == "issue") & (pl.col("item_id") == issue_id))["layer"]
        assert layers.to_list() == ([] if visible else ["security_level"])


@pytest.mark.parametrize(
    ("label", "visible"),
    [
        ("group it is in (renamed)", True),
        ("group it is not in", False),
        ("role it acts in as a user", True),
        ("role granted to its group", True),
        ("role it acts in elsewhere only", False),
    ],
)
def test_comment_visibility_by_group_id_and_by_role_in_the_issues_project(
    truth: tuple[TruthSite, model.SiteTables, RestrictionGaps], label: str, visible: bool
) -> None:
    built, _tables, audit = truth
    kind, item_id = built.restrictions[label]
    row = audit.gaps.filter((pl.col("item_kind") == kind) & (pl.col("item_id") == item_id))
    assert row.height == (0 if visible else 1)
    if not visible:
        assert row["layer"].item() == "visibility"
        # a Jira administrator is not exempt: the technical user holds ADMINISTER and still misses it
        assert row["hidden_by_browse"].item() is False


def test_a_group_restriction_names_the_group_by_id_and_current_name(
    truth: tuple[TruthSite, model.SiteTables, RestrictionGaps],
) -> None:
    built, _tables, audit = truth
    others = built.groups["others"]
    row = audit.gaps.filter(pl.col("visibility_key") == others).row(0, named=True)
    assert row["visibility_name"] == "others"
    assert row["missing"] == f"membership of group 'others' ({others})"
    # the group renamed between the loads still admits the technical user: it is matched by id
    team_a_items = {item for label, item in built.restrictions.items() if "renamed" in label}
    assert not team_a_items & items_of(audit.gaps)


def test_the_fix_summary_of_the_hand_built_site(truth: tuple[TruthSite, model.SiteTables, RestrictionGaps]) -> None:
    built, _tables, audit = truth
    fixes = audit.fixes
    assert audit.method == "exact"
    # "all-seeing" grants Browse everywhere, is a member of every level and a group actor of every role; only the
    # comment and worklog restricted to the group "others" need more
    assert fixes.select("step", "fix_kind", "group_id").rows() == [
        (1, "group_membership", built.groups["all_seeing"]),
        (2, "group_membership", built.groups["others"]),
    ]
    assert fixes["items_unlocked"].sum() == audit.gaps.height
    assert fixes["items_unlocked"].to_list()[1] == 2


def test_an_inactive_account_holds_nothing(truth: tuple[TruthSite, model.SiteTables, RestrictionGaps]) -> None:
    built, tables, _audit = truth
    inactive = built.accounts["inactive"]
    audit = restriction_gaps(tables, inactive)
    assert items_of(audit.gaps) == engine_hidden(built.site, inactive) == all_items(built.site)
    assert set(audit.gaps["layer"]) == {"inactive_account"}
    assert audit.fixes.row(0, named=True)["fix_kind"] == "activate_account"
    # it is a member of team-a and the project USX grants Browse to it by name: once active it would see USX
    usx = next(iter(built.issues["USX"]))
    row = audit.gaps.filter((pl.col("item_kind") == "issue") & (pl.col("item_id") == usx)).row(0, named=True)
    assert row["hidden_by_browse"] is False
