"""Changes to a served site (jira_lab.sim.mutations), checked through the REST API the loaders read.

The site is built by hand below; expected values come from it and from Jira's rules (who may see what, which
timestamps move, what an audit record says), never from the mutator's own output.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jira_lab.sim import Holder, SimCloud, SiteBuilder, Visibility
from jira_lab.sim.api.audit import audit_record_json
from jira_lab.sim.clock import FakeClock, clock_time
from jira_lab.sim.generator import generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import AuditRecord, Site
from jira_lab.sim.mutations import SiteMutator

SITE_URL = "https://mutlab.atlassian.net"
BASE = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-01T12:00:00.000+0000"


def ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


@dataclass
class Lab:
    """A small site: Ada administers it; Ann, Tom (the technical user) and Dee are developers.

    ENG has the Developers role (Ann and Tom), the Users role (the developers group), a security scheme with the
    levels Staff (developers) and Secret (Ann only). ENG-1 has a public comment, one restricted to the Developers
    role, one to the auditors group (Ann), and two worklogs; ENG-2 is empty.
    """

    site: Site
    cloud: SimCloud
    clock: FakeClock
    mutator: SiteMutator
    users: dict[str, str]
    groups: dict[str, str]
    ids: dict[str, int]

    def client(self, name: str) -> httpx.Client:
        email = self.site.users[self.users[name]].email or ""
        return httpx.Client(transport=self.cloud.transport(), base_url=SITE_URL, auth=(email, f"token-{name}"))

    def get(self, name: str, path: str, **params: Any) -> httpx.Response:
        with self.client(name) as client:
            return client.get(path, params=params)

    def post(self, name: str, path: str, body: Any) -> httpx.Response:
        with self.client(name) as client:
            return client.post(path, json=body)

    def comment_ids(self, name: str, issue: str = "ENG-1") -> list[int]:
        response = self.get(name, f"/rest/api/3/issue/{issue}/comment")
        assert response.status_code == 200, response.text
        return [int(c["id"]) for c in response.json()["comments"]]

    def updated(self, issue: str, name: str = "ann") -> str:
        response = self.get(name, f"/rest/api/3/issue/{issue}", fields="updated")
        assert response.status_code == 200, response.text
        updated: str = response.json()["fields"]["updated"]
        return updated

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("ada", "/rest/api/3/auditing/record", **params)
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    def newest_audit_record(self) -> dict[str, Any]:
        return self.audit(limit=1)[0]


def build_lab() -> Lab:
    b = SiteBuilder("mutlab")
    names = ["ada", "ann", "tom", "dee"]
    users = {name: b.user(f"{name.title()} Example", api_token=f"token-{name}") for name in names}
    groups = {
        "everyone": b.group("jira-software-users", members=users.values()),
        "admins": b.group("jira-administrators", members=[users["ada"]]),
        "developers": b.group("developers", members=[users["ann"], users["tom"], users["dee"]]),
        "auditors": b.group("auditors", members=[users["ann"]]),
    }
    b.application_role("jira-software", "Jira Software", [groups["everyone"]])
    b.global_permission("ADMINISTER", groups["admins"])
    developers_role, users_role = b.role("Developers"), b.role("Users")
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("projectRole", str(users_role)))])
    security = b.security_scheme("Confidentiality")
    staff = b.security_level(security, "Staff", [Holder("group", groups["developers"])])
    secret = b.security_level(security, "Secret", [Holder("user", users["ann"])])
    eng = b.project("ENG", "Engineering", lead=users["ann"], permission_scheme=scheme, security_scheme=security)
    b.role_actor(eng, developers_role, users=[users["ann"], users["tom"]])
    b.role_actor(eng, users_role, groups=[groups["developers"]])
    first = b.issue(eng, "Printer on fire", reporter=users["ann"], created=BASE)
    second = b.issue(eng, "Coffee machine", reporter=users["dee"], created=BASE + timedelta(hours=1))
    ids = {
        "scheme": scheme,
        "staff": staff,
        "secret": secret,
        "eng": eng,
        "developers_role": developers_role,
        "users_role": users_role,
        "first": first,
        "second": second,
        "public": b.comment(first, users["ann"], "Smoke seen", created=BASE + timedelta(minutes=5)),
        "role_only": b.comment(
            first,
            users["ann"],
            "Call facilities",
            visibility=Visibility("role", "Developers"),
            created=BASE + timedelta(minutes=6),
        ),
        "auditors_only": b.comment(
            first,
            users["ann"],
            "Insurance note",
            visibility=Visibility("group", groups["auditors"]),
            created=BASE + timedelta(minutes=7),
        ),
        "worklog": b.worklog(first, users["dee"], 3600, created=BASE + timedelta(minutes=8)),
        "other_worklog": b.worklog(first, users["tom"], 1800, created=BASE + timedelta(minutes=9)),
        "security": security,
        "browse_grant": b.site.permission_schemes[scheme].grants[0].id,
        "staff_member": b.site.security_schemes[security].levels[0].members[0].id,
    }
    b.site.accounts["admin"] = users["ada"]
    clock = FakeClock(NOW)
    cloud = SimCloud(b.site, clock=clock)
    return Lab(b.site, cloud, clock, SiteMutator.for_cloud(cloud), users, groups, ids)


@pytest.fixture
def lab() -> Lab:
    return build_lab()


# -- comments ----------------------------------------------------------------------------------------------------


def test_an_added_comment_is_listed_and_moves_the_issue_updated_time(lab: Lab) -> None:
    assert lab.updated("ENG-1") == "2026-02-02T09:09:00.000+0000"  # the last worklog
    comment_id = lab.mutator.add_comment("ENG-1", "Fire is out", author=lab.users["tom"])
    assert lab.comment_ids("ann")[-1] == comment_id
    shown = lab.get("dee", f"/rest/api/3/issue/ENG-1/comment/{comment_id}").json()
    assert shown["author"]["accountId"] == lab.users["tom"]
    assert shown["body"]["content"][0]["content"][0]["text"] == "Fire is out"
    assert shown["created"] == shown["updated"] == NOW_TEXT
    assert "visibility" not in shown
    assert lab.updated("ENG-1") == NOW_TEXT


def test_a_restricted_comment_is_added_for_its_role_only(lab: Lab) -> None:
    comment_id = lab.mutator.add_comment("ENG-2", "Role only", visibility=Visibility("role", "Developers"))
    assert comment_id in lab.comment_ids("tom", "ENG-2")
    assert comment_id not in lab.comment_ids("dee", "ENG-2")  # a developer, but not in the Developers role


def test_an_edited_comment_keeps_its_creation_time_and_shows_the_editor(lab: Lab) -> None:
    public = lab.ids["public"]
    lab.clock.advance(90)
    lab.mutator.edit_comment(public, "Smoke seen twice", editor=lab.users["dee"])
    shown = lab.get("tom", f"/rest/api/3/issue/ENG-1/comment/{public}").json()
    assert shown["created"] == "2026-02-02T09:05:00.000+0000"
    assert shown["updated"] == "2026-03-01T12:01:30.000+0000"
    assert shown["updateAuthor"]["accountId"] == lab.users["dee"]
    assert shown["author"]["accountId"] == lab.users["ann"]
    assert shown["body"]["content"][0]["content"][0]["text"] == "Smoke seen twice"
    assert lab.updated("ENG-1") == "2026-03-01T12:01:30.000+0000"


def test_restricting_a_comment_later_hides_it_from_everyone_outside_the_group(lab: Lab) -> None:
    public = lab.ids["public"]
    assert public in lab.comment_ids("dee")
    lab.mutator.edit_comment(public, visibility=Visibility("group", lab.groups["auditors"]))
    assert public not in lab.comment_ids("dee")
    assert public in lab.comment_ids("ann")


def test_a_deleted_comment_disappears_everywhere(lab: Lab) -> None:
    public = lab.ids["public"]
    lab.mutator.delete_comment(public)
    assert public not in lab.comment_ids("ann")
    assert lab.get("ann", f"/rest/api/3/issue/ENG-1/comment/{public}").status_code == 404
    listed = lab.post("ann", "/rest/api/3/comment/list", {"ids": [public, lab.ids["role_only"]]}).json()
    assert [int(c["id"]) for c in listed["values"]] == [lab.ids["role_only"]]
    assert lab.updated("ENG-1") == NOW_TEXT


# -- worklogs ----------------------------------------------------------------------------------------------------


def worklog_feed(lab: Lab, kind: str, since: datetime) -> dict[int, int]:
    response = lab.get("ann", f"/rest/api/3/worklog/{kind}", since=ms(since))
    assert response.status_code == 200, response.text
    return {value["worklogId"]: value["updatedTime"] for value in response.json()["values"]}


def test_an_edited_worklog_reaches_the_updated_feed_once_a_minute_has_passed(lab: Lab) -> None:
    worklog_id = lab.ids["worklog"]
    lab.mutator.edit_worklog(worklog_id, seconds=7200)
    assert worklog_feed(lab, "updated", NOW) == {}
    lab.clock.advance(59)
    assert worklog_feed(lab, "updated", NOW) == {}  # Jira holds back the last minute
    lab.clock.advance(1)
    assert worklog_feed(lab, "updated", NOW) == {worklog_id: ms(NOW)}
    shown = lab.get("ann", f"/rest/api/3/issue/ENG-1/worklog/{worklog_id}").json()
    assert shown["timeSpentSeconds"] == 7200
    assert shown["created"] == "2026-02-02T09:08:00.000+0000"
    assert shown["updated"] == NOW_TEXT
    assert shown["updateAuthor"]["accountId"] == lab.users["ada"]
    assert lab.updated("ENG-1") == NOW_TEXT


def test_an_added_worklog_is_listed_with_the_issue_moved(lab: Lab) -> None:
    started = NOW - timedelta(hours=3)
    worklog_id = lab.mutator.add_worklog("ENG-2", 5400, author=lab.users["dee"], started=started, text="Descaled")
    worklogs = lab.get("tom", "/rest/api/3/issue/ENG-2/worklog").json()["worklogs"]
    assert [(int(w["id"]), w["started"], w["created"]) for w in worklogs] == [
        (worklog_id, "2026-03-01T09:00:00.000+0000", NOW_TEXT)
    ]
    assert lab.updated("ENG-2") == NOW_TEXT
    lab.clock.advance(61)
    assert worklog_feed(lab, "updated", NOW) == {worklog_id: ms(NOW)}


def test_a_deleted_worklog_is_gone_and_listed_by_the_deleted_feed(lab: Lab) -> None:
    worklog_id = lab.ids["worklog"]
    lab.mutator.delete_worklog(worklog_id)
    assert lab.get("ann", f"/rest/api/3/issue/ENG-1/worklog/{worklog_id}").status_code == 404
    assert lab.post("ann", "/rest/api/3/worklog/list", {"ids": [worklog_id]}).json() == []
    lab.clock.advance(60)
    assert worklog_feed(lab, "deleted", NOW) == {worklog_id: ms(NOW)}
    assert worklog_id not in worklog_feed(lab, "updated", BASE)
    assert lab.updated("ENG-1") == NOW_TEXT


# -- issues ------------------------------------------------------------------------------------------------------


def test_a_created_issue_gets_the_next_key_and_is_found_by_search(lab: Lab) -> None:
    issue_id = lab.mutator.create_issue("ENG", "Lift stuck", reporter=lab.users["dee"], labels=["facilities"])
    shown = lab.get("dee", "/rest/api/3/issue/ENG-3", fields="created,updated,reporter,labels,security").json()
    assert int(shown["id"]) == issue_id
    assert shown["fields"]["created"] == shown["fields"]["updated"] == NOW_TEXT
    assert shown["fields"]["reporter"]["accountId"] == lab.users["dee"]
    assert shown["fields"]["labels"] == ["facilities"]
    assert shown["fields"]["security"] is None  # the scheme has no default level
    found = lab.get("dee", "/rest/api/3/search/jql", jql="project = ENG ORDER BY key ASC", fields="key").json()
    assert [issue["key"] for issue in found["issues"]] == ["ENG-1", "ENG-2", "ENG-3"]


def test_a_created_issue_takes_the_schemes_default_level(lab: Lab) -> None:
    lab.site.security_schemes[lab.ids["security"]].default_level_id = lab.ids["secret"]
    lab.mutator.create_issue("ENG", "Salary review", reporter=lab.users["ann"])
    assert lab.get("ann", "/rest/api/3/issue/ENG-3").status_code == 200
    assert lab.get("tom", "/rest/api/3/issue/ENG-3").status_code == 404  # Secret holds Ann only


def test_a_field_edit_writes_one_history_and_moves_updated(lab: Lab) -> None:
    lab.clock.advance(30)
    history_id = lab.mutator.edit_issue(
        "ENG-1", summary="Printer fire", status="In Progress", assignee=lab.users["tom"], labels=["hazard"]
    )
    histories = lab.get("ann", "/rest/api/3/issue/ENG-1/changelog").json()["values"]
    assert [int(h["id"]) for h in histories] == [history_id]
    assert histories[0]["created"] == "2026-03-01T12:00:30.000+0000"
    assert histories[0]["author"]["accountId"] == lab.users["ada"]
    items = {item["field"]: item for item in histories[0]["items"]}
    assert items["summary"]["fromString"] == "Printer on fire"
    assert items["summary"]["toString"] == "Printer fire"
    assert (items["status"]["fromString"], items["status"]["toString"]) == ("To Do", "In Progress")
    statuses = {s["name"]: s["id"] for s in lab.get("ann", "/rest/api/3/status").json()}
    assert (items["status"]["from"], items["status"]["to"]) == (statuses["To Do"], statuses["In Progress"])
    assert items["assignee"]["from"] is None
    assert (items["assignee"]["to"], items["assignee"]["toString"]) == (lab.users["tom"], "Tom Example")
    assert (items["labels"].get("fromString"), items["labels"]["toString"]) == ("", "hazard")
    assert lab.updated("ENG-1") == "2026-03-01T12:00:30.000+0000"


def test_an_edit_that_changes_nothing_writes_no_history(lab: Lab) -> None:
    assert lab.mutator.edit_issue("ENG-1", summary="Printer on fire", status="To Do") is None
    assert lab.get("ann", "/rest/api/3/issue/ENG-1/changelog").json()["values"] == []
    assert lab.updated("ENG-1") == "2026-02-02T09:09:00.000+0000"


def test_moving_an_issue_to_a_level_hides_it_and_its_comments(lab: Lab) -> None:
    public = lab.ids["public"]
    listed = lab.post("tom", "/rest/api/3/comment/list", {"ids": [public]}).json()["values"]
    assert [int(c["id"]) for c in listed] == [public]
    history_id = lab.mutator.set_issue_security_level("ENG-1", lab.ids["secret"])
    assert lab.get("tom", "/rest/api/3/issue/ENG-1").status_code == 404
    assert lab.post("tom", "/rest/api/3/comment/list", {"ids": [public]}).json()["values"] == []
    history = lab.get("ann", "/rest/api/3/issue/ENG-1/changelog").json()["values"][0]
    assert int(history["id"]) == history_id
    item = history["items"][0]
    assert item["field"] == "security"
    assert (item["from"], item["to"], item["toString"]) == (None, str(lab.ids["secret"]), "Secret")


def test_a_level_of_another_scheme_is_refused_and_nothing_changes(lab: Lab) -> None:
    with pytest.raises(ValueError, match="not a level"):
        lab.mutator.edit_issue("ENG-1", summary="Changed", security_level=999)
    assert lab.site.issues[lab.ids["first"]].summary == "Printer on fire"
    assert lab.site.issues[lab.ids["first"]].changelog == []


def test_a_deleted_issue_takes_its_comments_and_lists_its_worklogs_as_deleted(lab: Lab) -> None:
    lab.mutator.delete_issue("ENG-1")
    assert lab.get("ann", "/rest/api/3/issue/ENG-1").status_code == 404
    comments = [lab.ids["public"], lab.ids["role_only"]]
    assert lab.post("ann", "/rest/api/3/comment/list", {"ids": comments}).json()["values"] == []
    lab.clock.advance(60)
    assert worklog_feed(lab, "deleted", NOW) == {lab.ids["worklog"]: ms(NOW), lab.ids["other_worklog"]: ms(NOW)}
    found = lab.get("ann", "/rest/api/3/search/jql", jql="project = ENG", fields="key").json()
    assert [issue["key"] for issue in found["issues"]] == ["ENG-2"]


def test_a_deleted_issue_can_leave_its_worklogs_out_of_the_deleted_feed(lab: Lab) -> None:
    lab.mutator.delete_issue("ENG-1", record_worklogs=False)
    lab.clock.advance(60)
    assert worklog_feed(lab, "deleted", NOW) == {}
    assert lab.site.worklog(lab.ids["worklog"]) is None


# -- ids and time ------------------------------------------------------------------------------------------------


def test_ids_and_keys_of_deleted_things_are_never_handed_out_again(lab: Lab) -> None:
    m = lab.mutator
    m.delete_issue("ENG-2")  # the highest issue id and number
    issue_id = m.create_issue("ENG", "Replacement")
    assert issue_id == lab.ids["second"] + 1
    assert lab.site.issues[issue_id].key == "ENG-3"
    newest_comment = m.add_comment("ENG-1", "newest")
    m.delete_comment(newest_comment)
    assert m.add_comment("ENG-1", "after") == newest_comment + 1
    m.delete_worklog(lab.ids["other_worklog"])
    assert m.add_worklog("ENG-1", 60) == lab.ids["other_worklog"] + 1
    grant = m.add_grant(lab.ids["scheme"], "EDIT_ISSUES", Holder("projectRole", str(lab.ids["developers_role"])))
    m.remove_grant(lab.ids["scheme"], grant)
    assert m.add_grant(lab.ids["scheme"], "EDIT_ISSUES", Holder("reporter")) == grant + 1
    member = m.add_security_level_member(lab.ids["staff"], Holder("user", lab.users["ada"]))
    m.remove_security_level_member(lab.ids["staff"], member)
    assert m.add_security_level_member(lab.ids["staff"], Holder("reporter")) == member + 1


def test_a_second_mutator_on_the_same_site_does_not_reuse_ids_either(lab: Lab) -> None:
    comment = lab.mutator.add_comment("ENG-2", "first")
    lab.mutator.delete_comment(comment)
    other = SiteMutator(lab.site, lab.clock, actor=lab.users["ann"])
    assert other.add_comment("ENG-2", "second") == comment + 1


def test_timestamps_follow_the_fake_clock_and_never_go_back(lab: Lab) -> None:
    seen = []
    for step in range(4):
        lab.mutator.add_comment("ENG-2", f"step {step}")
        seen.append(lab.updated("ENG-2"))
        lab.clock.advance(1.5)
    assert seen == [
        "2026-03-01T12:00:00.000+0000",
        "2026-03-01T12:00:01.500+0000",
        "2026-03-01T12:00:03.000+0000",
        "2026-03-01T12:00:04.500+0000",
    ]
    late = SiteMutator(lab.site, FakeClock(NOW), actor=lab.users["ada"])
    with pytest.raises(ValueError, match="never go back"):
        late.add_comment("ENG-2", "from the past")
    assert len(lab.site.issues[lab.ids["second"]].comments) == 4


def test_the_clock_reading_is_kept_to_the_millisecond() -> None:
    assert clock_time(NOW.timestamp() + 0.0129) == NOW + timedelta(milliseconds=12)


def test_one_clock_drives_changes_the_worklog_feed_and_rate_limits() -> None:
    lab = build_lab()
    limited = SimCloud(
        lab.site, clock=lab.clock, limits=RateLimits(steady_rates={"GET": 1}, endpoint_rates={}, hourly_points=None)
    )
    mutator = SiteMutator.for_cloud(limited, actor=lab.users["ada"])
    with httpx.Client(
        transport=limited.transport(),
        base_url=SITE_URL,
        auth=(lab.site.users[lab.users["ann"]].email or "", "token-ann"),
    ) as client:
        worklog_id = mutator.add_worklog("ENG-2", 60)
        assert client.get("/rest/api/3/worklog/updated", params={"since": ms(NOW)}).json()["values"] == []
        assert client.get("/rest/api/3/worklog/updated", params={"since": ms(NOW)}).status_code == 429
        lab.clock.advance(60)  # refills the one-request bucket and ends the quiet minute
        values = client.get("/rest/api/3/worklog/updated", params={"since": ms(NOW)}).json()["values"]
    assert [(v["worklogId"], v["updatedTime"]) for v in values] == [(worklog_id, ms(NOW))]


def test_a_mutation_waits_for_a_request_being_answered(lab: Lab) -> None:
    done = threading.Event()

    def change() -> None:
        lab.mutator.add_comment("ENG-2", "while serving")
        done.set()

    with lab.cloud.lock:  # as cloud.handle holds it while answering
        worker = threading.Thread(target=change)
        worker.start()
        assert not done.wait(0.2)
        assert lab.site.issues[lab.ids["second"]].comments == []
    worker.join(5)
    assert done.is_set()


# -- permission model and its audit records --------------------------------------------------------------------


def changed(record: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    return {c["fieldName"]: (c.get("changedFrom"), c.get("changedTo")) for c in record["changedValues"]}


def test_a_removed_role_actor_no_longer_sees_comments_restricted_to_the_role(lab: Lab) -> None:
    role_only = lab.ids["role_only"]
    assert role_only in lab.comment_ids("tom")
    lab.mutator.remove_role_actor("ENG", "Developers", user=lab.users["tom"])
    assert role_only not in lab.comment_ids("tom")
    assert role_only in lab.comment_ids("ann")
    record = lab.newest_audit_record()
    assert (record["summary"], record["category"]) == ("Project roles changed", "projects")
    assert record["objectItem"] == {
        "id": str(lab.ids["developers_role"]),
        "name": "Developers",
        "typeName": "PROJECT_ROLE",
    }
    assert record["associatedItems"] == [{"id": str(lab.ids["eng"]), "name": "Engineering", "typeName": "PROJECT"}]
    before = ", ".join(sorted([lab.users["ann"], lab.users["tom"]]))
    assert changed(record) == {"Users": (before, lab.users["ann"])}
    assert record["created"] == NOW_TEXT
    assert record["authorAccountId"] == lab.users["ada"]
    assert [r["id"] for r in lab.audit(filter="roles changed")] == [record["id"]]


def test_an_added_role_actor_group_sees_the_role_restricted_comments(lab: Lab) -> None:
    role_only = lab.ids["role_only"]
    assert role_only not in lab.comment_ids("dee")
    lab.mutator.add_role_actor("ENG", lab.ids["developers_role"], group=lab.groups["developers"])
    assert role_only in lab.comment_ids("dee")
    assert changed(lab.newest_audit_record()) == {"Groups": (None, "developers")}


def test_group_membership_changes_visibility_and_is_audited(lab: Lab) -> None:
    auditors_only = lab.ids["auditors_only"]
    assert auditors_only not in lab.comment_ids("tom")
    lab.mutator.add_group_member(lab.groups["auditors"], lab.users["tom"])
    assert auditors_only in lab.comment_ids("tom")
    added = lab.newest_audit_record()
    assert (added["summary"], added["category"]) == ("User added to group", "group management")
    assert added["objectItem"]["name"] == "auditors"
    assert added["objectItem"]["typeName"] == "GROUP"
    assert [item["id"] for item in added["associatedItems"]] == [lab.users["tom"]]
    lab.clock.advance(5)
    lab.mutator.remove_group_member(lab.groups["auditors"], lab.users["tom"])
    assert auditors_only not in lab.comment_ids("tom")
    removed = lab.newest_audit_record()
    assert removed["summary"] == "User removed from group"
    assert removed["id"] > added["id"]
    assert {r["id"] for r in lab.audit(filter="group man")} >= {added["id"], removed["id"]}


def test_a_renamed_group_shows_its_new_name_on_restrictions_and_in_the_audit_log(lab: Lab) -> None:
    lab.mutator.rename_group(lab.groups["auditors"], "compliance")
    shown = lab.get("ann", f"/rest/api/3/issue/ENG-1/comment/{lab.ids['auditors_only']}").json()
    assert shown["visibility"] == {"type": "group", "value": "compliance", "identifier": lab.groups["auditors"]}
    record = lab.newest_audit_record()
    assert (record["summary"], record["category"]) == ("Group renamed", "group management")
    assert changed(record) == {"Name": ("auditors", "compliance")}
    with pytest.raises(ValueError, match="already exists"):
        lab.mutator.rename_group(lab.groups["developers"], "compliance")


def test_a_global_permission_grant_opens_the_audit_log_and_is_recorded(lab: Lab) -> None:
    assert lab.get("tom", "/rest/api/3/auditing/record").status_code == 403
    lab.mutator.grant_global_permission("ADMINISTER", lab.groups["developers"])
    records = lab.get("tom", "/rest/api/3/auditing/record", limit=1).json()["records"]
    assert records[0]["summary"] == "Global permission added"
    assert records[0]["category"] == "permissions"
    assert changed(records[0]) == {"Permission": ("", "Jira Administrators"), "Group": ("", "developers")}
    lab.mutator.revoke_global_permission("ADMINISTER", lab.groups["developers"])
    assert lab.get("tom", "/rest/api/3/auditing/record").status_code == 403
    revoked = lab.newest_audit_record()
    assert revoked["summary"] == "Global permission deleted"
    assert changed(revoked) == {"Permission": ("Jira Administrators", ""), "Group": ("developers", "")}


def test_grants_change_browsing_and_are_recorded_on_the_scheme(lab: Lab) -> None:
    lab.mutator.remove_grant(lab.ids["scheme"], lab.ids["browse_grant"])
    assert lab.get("ann", "/rest/api/3/issue/ENG-1").status_code == 404
    removed = lab.newest_audit_record()
    assert (removed["summary"], removed["category"]) == ("Permission scheme updated", "permissions")
    assert removed["objectItem"] == {"id": str(lab.ids["scheme"]), "name": "Default", "typeName": "SCHEME"}
    assert changed(removed) == {
        "Permission": ("Browse Projects", ""),
        "Type": ("Project Role", ""),
        "Value": ("Users", ""),
    }
    lab.mutator.add_grant(lab.ids["scheme"], "BROWSE_PROJECTS", Holder("user", lab.users["tom"]))
    assert lab.get("tom", "/rest/api/3/issue/ENG-1").status_code == 200
    assert lab.get("ann", "/rest/api/3/issue/ENG-1").status_code == 404
    assert changed(lab.newest_audit_record())["Value"] == ("", lab.users["tom"])


def test_security_level_members_change_access_and_are_recorded(lab: Lab) -> None:
    lab.mutator.set_issue_security_level("ENG-2", lab.ids["secret"])
    assert lab.get("tom", "/rest/api/3/issue/ENG-2").status_code == 404  # Secret holds Ann only
    member = lab.mutator.add_security_level_member(lab.ids["secret"], Holder("group", lab.groups["developers"]))
    assert lab.get("tom", "/rest/api/3/issue/ENG-2").status_code == 200
    record = lab.newest_audit_record()
    assert (record["summary"], record["category"]) == ("Issue security scheme updated", "permissions")
    assert record["objectItem"] == {"id": str(lab.ids["security"]), "name": "Confidentiality", "typeName": "SCHEME"}
    assert record["associatedItems"] == [
        {
            "id": str(lab.ids["secret"]),
            "name": "Secret",
            "typeName": "SECURITY_LEVEL",
            "parentId": str(lab.ids["security"]),
            "parentName": "Confidentiality",
        }
    ]
    assert changed(record) == {
        "Security level": ("", "Secret"),
        "Type": ("", "Group"),
        "Value": ("", "developers"),
    }
    lab.mutator.remove_security_level_member(lab.ids["secret"], member)
    assert lab.get("tom", "/rest/api/3/issue/ENG-2").status_code == 404
    assert changed(lab.newest_audit_record())["Security level"] == ("Secret", "")


def test_a_deactivated_user_can_no_longer_sign_in_and_is_recorded(lab: Lab) -> None:
    assert lab.get("tom", "/rest/api/3/myself").status_code == 200
    lab.mutator.deactivate_user(lab.users["tom"])
    assert lab.get("tom", "/rest/api/3/myself").status_code == 401
    record = lab.newest_audit_record()
    assert (record["summary"], record["category"]) == ("User updated", "user management")
    assert record["objectItem"]["id"] == lab.users["tom"]
    assert changed(record) == {"Active": ("Active", "Inactive")}
    assert record["id"] in [r["id"] for r in lab.audit(filter=lab.users["tom"])]
    assert lab.users["tom"] in lab.site.group_members[lab.groups["developers"]]  # memberships stay


def test_a_change_that_is_already_so_is_refused_without_a_record(lab: Lab) -> None:
    records = len(lab.site.audit_records)
    with pytest.raises(ValueError, match="already a member"):
        lab.mutator.add_group_member(lab.groups["developers"], lab.users["tom"])
    with pytest.raises(ValueError, match="already an actor"):
        lab.mutator.add_role_actor("ENG", "Developers", user=lab.users["ann"])
    with pytest.raises(ValueError, match="not a member"):
        lab.mutator.remove_group_member(lab.groups["auditors"], lab.users["tom"])
    with pytest.raises(ValueError, match="already grants"):
        lab.mutator.add_grant(lab.ids["scheme"], "BROWSE_PROJECTS", Holder("projectRole", str(lab.ids["users_role"])))
    with pytest.raises(ValueError, match="exactly one"):
        lab.mutator.add_role_actor("ENG", "Developers")
    assert len(lab.site.audit_records) == records


# -- run-time records look like generated ones -----------------------------------------------------------------


def without_identity(record: AuditRecord) -> dict[str, Any]:
    body = audit_record_json(record)
    for key in ("id", "created", "authorAccountId"):
        body.pop(key)
    return body


def first_record(site: Site, summary: str, *, after: int = 0) -> AuditRecord:
    return next(r for r in site.audit_records if r.summary == summary and r.id > after)


def test_records_written_at_run_time_match_the_generated_ones() -> None:
    site = generate_site("tiny", 0)
    mutator = SiteMutator(site, FakeClock())
    last_generated = max(record.id for record in site.audit_records)

    # a membership the site still has, recorded under the group's current name (some groups were renamed since)
    membership, group = next(
        (record, group)
        for record in reversed(site.audit_records)
        if record.summary == "User added to group"
        and (group := site.group_by_name(record.object_item.name)) is not None
        and record.associated_items[0].id in site.group_members[group.group_id]
    )
    account = membership.associated_items[0].id
    mutator.remove_group_member(group.group_id, account)
    mutator.add_group_member(group.group_id, account)
    assert without_identity(first_record(site, "User added to group", after=last_generated)) == without_identity(
        membership
    )

    scheme = next(s for s in site.permission_schemes.values() if s.grants)
    grant = scheme.grants[0]
    generated_grant = next(
        r
        for r in site.audit_records
        if r.summary == "Permission scheme updated"
        and r.object_item.id == str(scheme.id)
        and r.changed_values[0].changed_to == grant.permission.replace("_", " ").title()
        and r.changed_values[2].changed_to == mutator.audit.holder_value(grant.holder, mutator.now())
    )
    mutator.remove_grant(scheme.id, grant.id)
    mutator.add_grant(scheme.id, grant.permission, grant.holder)
    readded = [r for r in site.audit_records if r.id > last_generated and r.summary == "Permission scheme updated"]
    assert without_identity(readded[-1]) == without_identity(generated_grant)
    assert [r.created for r in site.audit_records[-4:]] == [FakeClock().time()] * 4
    assert [r.id for r in site.audit_records[-4:]] == list(range(last_generated + 1, last_generated + 5))
    assert {r.author_account_id for r in site.audit_records[-4:]} == {site.accounts["admin"]}
