"""Required scopes, the scope check, and naming the scopes behind a gateway 401 "scope does not match"."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from jira_lab.auth.scopes import (
    OFFLINE_ACCESS,
    REQUIRED_SCOPES,
    api_path,
    check_scopes,
    require_scopes,
    scope_error,
)
from jira_lab.errors import MissingScopeError
from jira_lab.sim import SimCloud, SiteBuilder

SCOPES_DOC = Path("/work/shared/scopes.md")


def documented_scopes() -> list[str]:
    """The classic bullets, then the granular list, of shared/scopes.md, in the file's order."""
    text = SCOPES_DOC.read_text()
    classic_part, granular_part = text.split("Granular scopes", 1)
    classic = re.findall(r"^- (\S+) —", classic_part, flags=re.MULTILINE)
    granular_block = granular_part.split("\n\n", 2)[1]
    granular = [s.strip() for s in granular_block.replace("\n", " ").split(",")]
    return classic + granular


def test_required_scopes_are_the_documented_ones_in_order() -> None:
    expected = documented_scopes()

    assert len(expected) == 34  # 3 classic + 31 granular, as the document says
    assert list(REQUIRED_SCOPES) == expected
    assert OFFLINE_ACCESS == "offline_access"
    assert OFFLINE_ACCESS not in REQUIRED_SCOPES


def test_all_required_scopes_granted_is_ok() -> None:
    check = check_scopes([*REQUIRED_SCOPES, OFFLINE_ACCESS])

    assert check.ok
    assert check.missing == ()
    assert check.required == REQUIRED_SCOPES
    assert "all 34" in check.describe()


def test_missing_scopes_are_named_in_the_documented_order() -> None:
    granted = set(REQUIRED_SCOPES) - {"read:user:jira", "read:jira-user"}

    check = check_scopes(" ".join(sorted(granted)))  # the token endpoint's space-separated form

    assert not check.ok
    assert check.missing == ("read:jira-user", "read:user:jira")
    assert check.granted == frozenset(granted)
    assert "read:jira-user, read:user:jira" in check.describe()


def test_require_scopes_raises_with_exactly_the_absent_scopes() -> None:
    granted = {"read:jira-work", "offline_access"}

    with pytest.raises(MissingScopeError) as raised:
        require_scopes(granted, required=["read:jira-work", "manage:jira-configuration", "read:audit-log:jira"])

    assert set(raised.value.missing) == {"manage:jira-configuration", "read:audit-log:jira"}
    assert "manage:jira-configuration" in str(raised.value)
    assert "read:audit-log:jira" in str(raised.value)
    assert "jira-lab token" in str(raised.value)


def test_require_scopes_passes_when_everything_is_granted() -> None:
    assert require_scopes(["a", "b", "c"], required=["a", "c"]).ok


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/ex/jira/1c4f-aa/rest/api/3/myself", "/rest/api/3/myself"),
        (
            "https://api.atlassian.com/ex/jira/1c4f-aa/rest/api/3/issue/ENG-1/comment?startAt=5",
            "/rest/api/3/issue/ENG-1/comment",
        ),
        ("/rest/api/3/myself", "/rest/api/3/myself"),
        ("http://127.0.0.1:8080/site/tiny/rest/api/3/myself", "/rest/api/3/myself"),
    ],
)
def test_api_path_strips_gateway_and_site_prefixes(given: str, expected: str) -> None:
    assert api_path(given) == expected


def test_scope_error_names_the_classic_scope_an_operation_lacks() -> None:
    # spec: getComments needs classic read:jira-work, or seven granular scopes
    error = scope_error("GET", "/ex/jira/abc-123/rest/api/3/issue/ENG-1/comment", {"read:jira-user", "offline_access"})

    assert error.missing == ("read:jira-work",)
    assert "GET /rest/api/3/issue/ENG-1/comment" in str(error)
    assert "read:jira-work" in str(error)
    assert "read:comment:jira" in str(error)  # the granular way in is mentioned too


def test_scope_error_prefers_the_classic_scope_on_a_tie_and_mentions_the_granular_way() -> None:
    # spec: getAuditRecords needs manage:jira-configuration, or read:audit-log:jira + read:user:jira
    granted = {"read:audit-log:jira", "read:jira-work"}

    error = scope_error("GET", "https://api.atlassian.com/ex/jira/abc/rest/api/3/auditing/record", granted)

    assert error.missing == ("manage:jira-configuration",)
    assert "or the granular scopes read:user:jira" in str(error)


def test_scope_error_for_an_operation_with_only_granular_scopes() -> None:
    # spec: getBulkPermissions lists no classic scope, only read:permission:jira
    error = scope_error(
        "POST", "/ex/jira/abc/rest/api/3/permissions/check", set(REQUIRED_SCOPES) - {"read:permission:jira"}
    )

    assert error.missing == ("read:permission:jira",)


def test_scope_error_for_an_unknown_operation_names_nothing_but_says_so() -> None:
    error = scope_error("GET", "/ex/jira/abc/rest/api/3/nothing/here", {"read:jira-work"})

    assert error.missing == ()
    assert "does not know" in str(error)


def test_scope_error_names_what_the_simulated_gateway_refused() -> None:
    b = SiteBuilder("tiny")
    ann = b.user("Ann")
    cloud = SimCloud(b.site)
    granted = {"read:jira-work"}
    token = cloud.mint_access_token(ann, granted)
    with httpx.Client(
        transport=cloud.transport(),
        base_url=f"https://api.atlassian.com/ex/jira/{b.site.cloud_id}",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        response = client.get("/rest/api/3/myself")

    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized; scope does not match"
    error = scope_error(response.request.method, str(response.request.url), granted)
    # spec: getCurrentUser needs classic read:jira-user (granular: four scopes)
    assert error.missing == ("read:jira-user",)
