"""The simulated audit log: ``GET /rest/api/3/auditing/record``.

Records are added by hand with distinct creation times (not in id order), so every expectation (order, filter
matches, date bounds) is read off the records below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from site_clients import HandBuiltSite, add_accounts
from spec import assert_response_matches_spec

from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.model import AuditChange, AuditItem, AuditRecord

RECORDS = "/rest/api/3/auditing/record"
BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class AuditSite(HandBuiltSite):
    def record(self, record_id: int) -> AuditRecord:
        return next(r for r in self.builder.site.audit_records if r.id == record_id)


def build_site() -> AuditSite:
    """Ann is a Jira administrator, bob is not. Seven records; their hours after BASE are not in id order."""
    b = SiteBuilder("tiny")
    users = add_accounts(b, ("ann", "bob"))
    everyone = b.group("jira-users", members=users.values())
    admins = b.group("jira-administrators", members=[users["ann"]])
    b.application_role("jira-software", "Jira Software", [everyone])
    b.global_permission("ADMINISTER", admins)
    ann, bob = users["ann"], users["bob"]

    def at(hours: int) -> datetime:
        return BASE + timedelta(hours=hours)

    b.site.audit_records.extend(
        [
            AuditRecord(
                1,
                "User added to group",
                "group management",
                "Jira",
                at(1),
                ann,
                AuditItem("developers-id", "developers", "GROUP"),
                associated_items=[AuditItem(bob, bob, "USER", "1", "Jira Internal Directory")],
            ),
            AuditRecord(
                2,
                "User created",
                "user management",
                "Jira",
                at(0),
                ann,
                AuditItem(bob, "Bob", "USER", "1", "Jira Internal Directory"),
            ),
            AuditRecord(
                3,
                "Permission scheme updated",
                "permissions",
                "Jira",
                at(5),
                ann,
                AuditItem("10000", "Default Permission Scheme", "PERMISSION_SCHEME"),
                changed_values=[AuditChange("Browse Projects", "Group: jira-users", "Group: contractors")],
            ),
            AuditRecord(
                4,
                "Project created",
                "projects",
                "Jira",
                at(3),
                ann,
                AuditItem("10000", "Engineering", "PROJECT"),
                remote_address="203.0.113.7",
            ),
            AuditRecord(
                5,
                "Global permission added",
                "permissions",
                "Jira",
                at(2),
                ann,
                AuditItem("ADMINISTER", "Administer Jira", "GLOBAL_PERMISSION"),
                changed_values=[AuditChange("Group", None, "jira-administrators")],
            ),
            AuditRecord(
                6,
                "Group created",
                "group management",
                "Jira",
                at(6),
                ann,
                AuditItem("contractors-id", "contractors", "GROUP"),
            ),
            AuditRecord(
                7,
                "Issue security level member added",
                "permissions",
                "Jira",
                at(4),
                ann,
                AuditItem("10001", "Secret", "SECURITY_LEVEL"),
                description="Member: user Ann",
            ),
        ]
    )
    return AuditSite(b, SimCloud(b.site), users)


@pytest.fixture
def tiny() -> AuditSite:
    return build_site()


#: record ids from the newest to the oldest (hours 6, 5, 4, 3, 2, 1, 0)
NEWEST_FIRST = [6, 3, 7, 4, 5, 1, 2]


def check_against_spec(response: httpx.Response) -> dict[str, Any]:
    """Validate against ``AuditRecords`` (the spec helper adds the ``authorAccountId`` its schema forgets)."""
    body: dict[str, Any] = assert_response_matches_spec("GET", RECORDS, response)
    assert all(isinstance(record["authorAccountId"], str) for record in body["records"])
    return body


def walk(client: httpx.Client, limit: int, **params: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = client.get(RECORDS, params={"offset": offset, "limit": limit, **params})
        assert response.status_code == 200, response.text
        page = check_against_spec(response)
        assert (page["offset"], page["limit"]) == (offset, limit)
        pages.append(page)
        offset += len(page["records"])
        if not page["records"] or offset >= page["total"]:
            return pages


def ids(pages: list[dict[str, Any]]) -> list[int]:
    return [record["id"] for page in pages for record in page["records"]]


def test_an_administrator_pages_through_every_record_newest_first(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        pages = walk(ann, limit=2)

    assert len(pages) == 4
    assert {page["total"] for page in pages} == {7}
    assert ids(pages) == NEWEST_FIRST


def test_a_record_is_rendered_with_its_items_and_changes(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        records = ann.get(RECORDS).json()["records"]

    record = next(r for r in records if r["id"] == 3)
    assert record == {
        "id": 3,
        "summary": "Permission scheme updated",
        "remoteAddress": "192.0.2.10",
        "authorAccountId": tiny.users["ann"],
        "created": "2026-01-05T14:00:00.000+0000",
        "category": "permissions",
        "eventSource": "Jira",
        "objectItem": {"id": "10000", "name": "Default Permission Scheme", "typeName": "PERMISSION_SCHEME"},
        "changedValues": [
            {"fieldName": "Browse Projects", "changedFrom": "Group: jira-users", "changedTo": "Group: contractors"}
        ],
        "associatedItems": [],
    }
    user_added = next(r for r in records if r["id"] == 1)
    assert user_added["associatedItems"] == [
        {
            "id": tiny.users["bob"],
            "name": tiny.users["bob"],
            "typeName": "USER",
            "parentId": "1",
            "parentName": "Jira Internal Directory",
        }
    ]


def test_limit_defaults_to_and_is_capped_at_1000(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        default = ann.get(RECORDS).json()
        capped = ann.get(RECORDS, params={"limit": 5000}).json()

    assert default["limit"] == capped["limit"] == 1000
    assert default["offset"] == 0
    assert [r["id"] for r in capped["records"]] == NEWEST_FIRST


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("man ed", [6, 1, 2]),  # the spec's example: every string matches some field
        ("GROUP MANAGEMENT", [6, 1]),  # case does not matter; both strings must match
        ("contractors", [6, 3]),  # objectItem.name, changedValues.changedTo
        ("jira-users", [3]),  # changedValues.changedFrom
        ("203.0.113", [4]),  # remoteAddress
        ("directory", [2]),  # objectItem.parentName (associated items are not searched)
        ("permission_scheme", [3]),  # objectItem.typeName
        ("permissions administer", [5]),  # category and objectItem.name
        ("  security   level ", [7]),  # extra spaces separate nothing
        ("member: user", []),  # the description is not searched
        ("zzz", []),
    ],
)
def test_filter_needs_every_string_to_match_some_field(tiny: AuditSite, text: str, expected: list[int]) -> None:
    with tiny.client("ann") as ann:
        response = ann.get(RECORDS, params={"filter": text})

    body = check_against_spec(response)
    assert [r["id"] for r in body["records"]] == expected
    assert body["total"] == len(expected)


def test_filter_finds_a_user_record_by_account_id(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        body = ann.get(RECORDS, params={"filter": tiny.users["bob"]}).json()

    assert [r["id"] for r in body["records"]] == [2]


def test_filtered_results_page_by_the_filtered_total(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        pages = walk(ann, limit=1, filter="man ed")

    assert len(pages) == 3
    assert ids(pages) == [6, 1, 2]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-01-05T11:00:00.000+0000", "2026-01-05T13:00:00.000+0000", [7, 4, 5]),  # both bounds inclusive
        ("2026-01-05T11:00:00Z", None, [6, 3, 7, 4, 5]),
        (None, "2026-01-05T10:00:00+00:00", [1, 2]),
        ("2026-01-05T17:00:00.000+0700", "2026-01-05T11:00", [5, 1]),  # 10:00 UTC; no offset is UTC
        ("2026-01-06", None, []),  # a date is midnight
        ("2026-01-05", "2026-01-06", NEWEST_FIRST),
    ],
)
def test_from_and_to_bound_the_creation_time(
    tiny: AuditSite, start: str | None, end: str | None, expected: list[int]
) -> None:
    params = {name: value for name, value in (("from", start), ("to", end)) if value is not None}
    with tiny.client("ann") as ann:
        body = check_against_spec(ann.get(RECORDS, params=params))

    assert [r["id"] for r in body["records"]] == expected
    assert body["total"] == len(expected)


def test_from_after_to_is_an_empty_list_not_an_error(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        response = ann.get(RECORDS, params={"from": "2026-01-05T15:00:00.000+0000", "to": "2026-01-05T10:00:00Z"})

    assert response.status_code == 200
    assert response.json()["records"] == []
    assert response.json()["total"] == 0


def test_a_date_that_is_not_iso_8601_is_a_400(tiny: AuditSite) -> None:
    with tiny.client("ann") as ann:
        response = ann.get(RECORDS, params={"from": "last tuesday"})

    assert response.status_code == 400
    assert_response_matches_spec("GET", RECORDS, response)


def test_a_caller_without_administer_jira_gets_jiras_403(tiny: AuditSite) -> None:
    with tiny.client("bob") as bob:
        response = bob.get(RECORDS)

    assert response.status_code == 403
    assert response.json()["errorMessages"] == [
        "You are not authorized to perform this action. Administrator privileges are required."
    ]
    assert_response_matches_spec("GET", RECORDS, response)


def test_losing_the_administrators_group_loses_the_audit_log(tiny: AuditSite) -> None:
    site = tiny.builder.site
    admins = next(gid for gid, group in site.groups.items() if group.name == "jira-administrators")
    with tiny.client("ann") as ann:
        before = ann.get(RECORDS).status_code
        site.group_members[admins].discard(tiny.users["ann"])
        after = ann.get(RECORDS).status_code

    assert (before, after) == (200, 403)


@pytest.mark.parametrize(("name", "status"), [("ann", 200), ("bob", 403)])
def test_the_gateway_needs_manage_jira_configuration_and_administer_jira(
    tiny: AuditSite, name: str, status: int
) -> None:
    with tiny.gateway(name, ["manage:jira-configuration"]) as good, tiny.gateway(name, ["read:jira-work"]) as narrow:
        granted = good.get(RECORDS)
        scoped_out = narrow.get(RECORDS)

    assert granted.status_code == status
    assert scoped_out.status_code == 401
    assert scoped_out.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
