"""The conversions of Jira's loosely typed JSON values into the declared column types."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jira_lab.resources.convert import (
    account_id,
    embedded_users,
    epoch_ms,
    format_jira_time,
    issue_id_from_self,
    jira_time,
    json_text,
    raw_item,
    to_int,
    visibility_columns,
    without,
)

MOMENT = datetime(2021, 1, 17, 12, 34, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2021-01-17T12:34:00.000+0000",  # how Jira writes it
        "2021-01-17T12:34:00Z",
        "2021-01-17T14:34:00.000+0200",
        "2021-01-17T07:34:00-05:00",
        "2021-01-17T12:34:00",  # naive: UTC
        " 2021-01-17T12:34:00.000+0000 ",
        1610886840,  # epoch seconds (the changelog/bulkfetch example)
        1610886840000,  # epoch milliseconds (the worklog feeds)
        "1610886840",
        1610886840.0,
        MOMENT.astimezone(timezone(timedelta(hours=9))),
    ],
)
def test_every_way_jira_writes_a_time_reads_as_the_same_utc_instant(value: object) -> None:
    parsed = jira_time(value)
    assert parsed == MOMENT
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_a_bare_date_is_its_utc_midnight_and_absent_times_are_none() -> None:
    assert jira_time("2021-01-17") == datetime(2021, 1, 17, tzinfo=UTC)
    assert jira_time(None) is None
    assert jira_time("") is None


@pytest.mark.parametrize("value", ["yesterday", True, [2021], "2021-13-45T00:00:00", "2021-", "1234-5"])
def test_what_is_no_time_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        jira_time(value)


def test_jira_writes_back_what_it_reads() -> None:
    written = format_jira_time(MOMENT.astimezone(timezone(timedelta(hours=-3))))
    assert written == "2021-01-17T12:34:00.000+0000"
    assert jira_time(written) == MOMENT
    assert epoch_ms(MOMENT) == 1610886840000
    with pytest.raises(ValueError, match="time zone"):
        format_jira_time(datetime(2021, 1, 17))
    with pytest.raises(ValueError, match="time zone"):
        epoch_ms(datetime(2021, 1, 17))


def test_ids_come_as_numbers_or_strings() -> None:
    assert to_int("10001") == 10001
    assert to_int(10001) == 10001
    assert to_int(10001.0) == 10001
    assert to_int(None) is None
    assert to_int("") is None
    assert to_int(" 42 ") == 42 and to_int("-7") == -7 and to_int("007") == 7
    for bad in (True, "abc", 1.5, {"id": 1}, "²", "1 2", "+-3"):
        with pytest.raises(ValueError):
            to_int(bad)


def test_users_and_json() -> None:
    assert account_id({"accountId": "5b10a", "displayName": "Ann"}) == "5b10a"
    assert account_id(None) is None
    assert account_id({"displayName": "no account id"}) is None
    assert json_text(None) is None
    text = json_text({"name": "Zoë 概要", "n": [1, 2]})
    assert text is not None and "Zoë 概要" in text  # unicode kept, not escaped
    assert json.loads(text) == {"name": "Zoë 概要", "n": [1, 2]}
    assert without({"a": 1, "body": 2, "c": 3}, "body") == {"a": 1, "c": 3}


def test_visibility_keeps_the_group_id_and_the_name_as_loaded() -> None:
    group = {"type": "group", "value": "jira-developers", "identifier": "276f955c-63d7-42c8-9520-92d01dca0625"}
    assert visibility_columns(group) == {
        "visibility_type": "group",
        "visibility_value": "jira-developers",
        "visibility_identifier": "276f955c-63d7-42c8-9520-92d01dca0625",
    }


def test_a_visibility_without_identifier_is_its_role_name_but_an_unknown_group() -> None:
    assert visibility_columns({"type": "role", "value": "Administrators"})["visibility_identifier"] == "Administrators"
    assert visibility_columns({"type": "group", "value": "renamable"})["visibility_identifier"] is None
    assert visibility_columns({"type": "group", "identifier": "g-1"})["visibility_value"] is None
    unrestricted = {"visibility_type": None, "visibility_value": None, "visibility_identifier": None}
    assert visibility_columns(None) == unrestricted
    assert visibility_columns({}) == unrestricted


def test_the_issue_of_a_comment_is_in_its_self_url() -> None:
    assert issue_id_from_self({"self": "https://x.atlassian.net/rest/api/3/issue/10010/comment/10000"}) == 10010
    assert issue_id_from_self({"self": "https://x.atlassian.net/rest/api/3/comment/10000"}) is None
    assert issue_id_from_self({}) is None


def test_raw_item_keeps_everything_but_dropped_keys_and_the_authors_details() -> None:
    author = {"self": "https://x.atlassian.net/rest/api/3/user?accountId=a-1", "accountId": "a-1", "displayName": "Ann"}
    comment = {
        "self": "https://x.atlassian.net/rest/api/3/issue/3/comment/7",
        "id": "7",
        "author": author,
        "updateAuthor": {"displayName": "Former user"},  # no account id: kept whole, nothing else would hold it
        "body": {"type": "doc"},
        "visibility": {"type": "group", "value": "staff"},
    }
    raw = raw_item(comment, drop=("body",))
    assert raw == {
        "self": comment["self"],
        "id": "7",
        "author": {"accountId": "a-1"},
        "updateAuthor": {"displayName": "Former user"},
        "visibility": {"type": "group", "value": "staff"},
    }
    assert comment["author"] is author and comment["body"] == {"type": "doc"}  # the item itself is left alone
    assert embedded_users([comment, {"author": None}]) == {"a-1": author}
