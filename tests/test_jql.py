"""The simulator's JQL: parsing, Jira's refusals, evaluation against a context, and ordering.

Everything here is pure: issues are plain :class:`~jira_lab.sim.model.Issue` objects and the lookups of projects and
issues are dictionaries, so each expectation reads off the few objects a test builds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jira_lab.sim import jql
from jira_lab.sim.model import Issue

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PROJECTS = {"ENG": 10000, "OPS": 10001}
PROJECT_NAMES = {"engineering": 10000}


def make_issue(issue_id: int, key: str, *, created: datetime = NOW, updated: datetime | None = None) -> Issue:
    project_id = PROJECTS[key.split("-")[0]]
    return Issue(issue_id, key, project_id, f"summary of {key}", "Task", "To Do", created, updated or created, None)


ISSUES = [
    make_issue(10001, "ENG-1", created=NOW - timedelta(days=10), updated=NOW - timedelta(hours=1)),
    make_issue(10002, "ENG-2", created=NOW - timedelta(days=3), updated=NOW - timedelta(days=2)),
    make_issue(10003, "OPS-1", created=NOW - timedelta(days=1), updated=NOW - timedelta(minutes=10)),
    make_issue(10004, "ENG-10", created=NOW - timedelta(days=30), updated=NOW - timedelta(days=29)),
]
BY_KEY = {issue.key: issue.id for issue in ISSUES}


def project_lookup(value: str, by_id: bool) -> int | None:
    if by_id:
        return int(value) if int(value) in PROJECTS.values() else None
    return PROJECTS.get(value.upper(), PROJECT_NAMES.get(value.lower()))


def issue_lookup(reference: str) -> int | None:
    if reference.isdigit():
        return int(reference) if int(reference) in BY_KEY.values() else None
    return BY_KEY.get(reference.upper())


CONTEXT = jql.Context(now=NOW, time_zone=UTC, project_id=project_lookup, issue_id=issue_lookup)


def matching_keys(text: str, context: jql.Context = CONTEXT) -> set[str]:
    predicate = jql.compile_query(jql.parse(text), context)
    return {issue.key for issue in ISSUES if predicate(issue)}


def refusal(text: str, context: jql.Context = CONTEXT) -> list[str]:
    with pytest.raises(jql.JqlError) as raised:
        jql.compile_query(jql.parse(text), context)
    return raised.value.messages


# -- parsing -------------------------------------------------------------------------------------------------------
def test_a_query_with_a_condition_is_bounded_and_one_without_is_not() -> None:
    assert jql.parse("project = ENG").bounded
    assert jql.parse("created >= -30d ORDER BY key").bounded
    assert not jql.parse("").bounded
    assert not jql.parse("   ").bounded
    assert not jql.parse("order by key desc").bounded


def test_keywords_are_case_insensitive_and_field_names_keep_their_spelling() -> None:
    query = jql.parse("Project IN (eng, Ops) and NOT Key = ENG-1 Order By Updated Desc")
    assert isinstance(query.where, jql.And)
    clause = query.where.parts[0]
    assert isinstance(clause, jql.Clause)
    assert (clause.name, clause.field, clause.operator) == ("Project", "project", "in")
    assert [o.text for o in clause.operands] == ["eng", "Ops"]
    assert isinstance(query.where.parts[1], jql.Not)
    assert query.order_by == (jql.OrderField("Updated", "updated", True),)


def test_quoted_strings_follow_jql_escapes() -> None:
    clause = jql.parse(r'project = "it\"s" OR project = ' + r"'O\'Brien\\' OR project = 'tab\there'").where
    assert isinstance(clause, jql.Or)
    texts = [part.operands[0].text for part in clause.parts if isinstance(part, jql.Clause)]
    assert texts == ['it"s', "O'Brien\\", "tab\there"]
    assert all(part.operands[0].quoted for part in clause.parts if isinstance(part, jql.Clause))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # AND binds tighter than OR
        ("key = ENG-2 OR project = OPS AND created > -2d", {"ENG-2", "OPS-1"}),
        ("(key = ENG-2 OR project = OPS) AND created > -2d", {"OPS-1"}),
        ("project = ENG AND NOT key in (ENG-1, ENG-10)", {"ENG-2"}),
        ("project = ENG && !(key = ENG-1) || key = OPS-1", {"ENG-2", "ENG-10", "OPS-1"}),
        ("project = ENG & key != ENG-2 | project = OPS", {"ENG-1", "ENG-10", "OPS-1"}),
    ],
)
def test_boolean_operators_combine_clauses_with_jql_precedence(text: str, expected: set[str]) -> None:
    assert matching_keys(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "project = ENG x",
            "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'x'. (line 1, character 15)",
        ),
        ("project = ENG AND", "Error in the JQL Query: Expecting a field name but got the end of the query."),
        ("project ENG", "Error in the JQL Query: Expecting operator but got 'ENG'."),
        (
            'project = "ENG',
            "Error in the JQL Query: The quoted string 'ENG' has not been completed. (line 1, character 11)",
        ),
        ("(project = ENG", "Error in the JQL Query: Expecting ')' but got the end of the query."),
        ("project = ENG ORDER key", "Error in the JQL Query: Expecting 'by' but got 'key'. (line 1, character 21)"),
    ],
)
def test_syntax_errors_are_reported_as_jira_does(text: str, message: str) -> None:
    with pytest.raises(jql.JqlError) as raised:
        jql.parse(text)
    assert raised.value.messages[0].startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = red", "Field 'colour' does not exist or you do not have permission to view it."),
        ("project ~ ENG", "The operator '~' is not supported by the 'project' field."),
        ("created ~ -1d", "The operator '~' is not supported by the 'created' field."),
        ("key was ENG-1", "The operator 'WAS' is not supported by the 'key' field."),
        ("project = (ENG, OPS)", "The operator '=' does not support the list value '(ENG, OPS)' for field 'project'."),
        ("project = EMPTY", "The operator '=' does not support the value 'EMPTY' for field 'project'."),
        ("project = ENG ORDER BY colour", "Field 'colour' does not exist or you do not have permission to view it."),
        ("project = ENG ORDER BY key, id, KEY", "The sort field 'KEY' is referenced multiple times in the JQL sort."),
    ],
)
def test_what_jira_itself_refuses_gets_jiras_message(text: str, message: str) -> None:
    with pytest.raises(jql.JqlError) as raised:
        jql.parse(text)
    assert message in raised.value.messages


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("assignee = currentUser()", "The field 'assignee'"),
        ("status = Done", "The field 'status'"),
        ("cf[10050] = x", "The field 'cf[10050]'"),
        ("updated >= startOfDay()", "The function 'startOfDay()'"),
        ("project in projectsWhereUserHasPermission('Browse')", "The function 'projectsWhereUserHasPermission()'"),
        ("updated is EMPTY", "The operator 'IS' on 'updated'"),
        ("key > ENG-1", "The operator '>' on 'key'"),
        ("project = ENG ORDER BY summary", "Sorting by 'summary'"),
    ],
)
def test_valid_jql_the_simulator_does_not_evaluate_is_refused_never_matched(text: str, named: str) -> None:
    with pytest.raises(jql.JqlError) as raised:
        jql.parse(text)
    (message,) = raised.value.messages
    assert message.startswith(f"Error in the JQL Query: {named} is not supported by the simulated site's JQL")


def test_order_by_takes_at_most_seven_fields() -> None:
    assert len(jql.parse("project = ENG ORDER BY key, id, created, updated").order_by) == 4
    with pytest.raises(jql.JqlError) as raised:
        jql.parse("project = ENG ORDER BY " + ", ".join(["key", "id", "created", "updated"] * 2))
    assert any("at most 7 fields" in m for m in raised.value.messages)


def test_a_list_operator_needs_parentheses() -> None:
    with pytest.raises(jql.JqlError, match="put the values in parentheses"):
        jql.parse("project in ENG")


# -- values against the context ------------------------------------------------------------------------------------
def test_projects_match_by_key_name_or_id_in_any_case() -> None:
    assert matching_keys("project = eng") == {"ENG-1", "ENG-2", "ENG-10"}
    assert matching_keys('project = "Engineering"') == {"ENG-1", "ENG-2", "ENG-10"}
    assert matching_keys("project in (10001)") == {"OPS-1"}
    assert matching_keys("project != ENG") == {"OPS-1"}
    assert matching_keys("project not in (ENG, OPS)") == set()


def test_unknown_projects_are_refused_with_every_bad_value_named() -> None:
    assert refusal("project in (ENG, NOPE, 99999)") == [
        "The value 'NOPE' does not exist for the field 'project'.",
        "A value with ID '99999' does not exist for the field 'project'.",
    ]


def test_the_issue_key_clause_takes_keys_and_ids_under_all_its_names() -> None:
    assert matching_keys("key = eng-2") == {"ENG-2"}
    assert matching_keys("issuekey in (ENG-1, 10003)") == {"ENG-1", "OPS-1"}
    assert matching_keys("id = 10004") == {"ENG-10"}
    assert matching_keys("issue != ENG-1 AND project = ENG") == {"ENG-2", "ENG-10"}


def test_missing_and_malformed_issue_keys_are_refused_naming_the_clause_as_written() -> None:
    assert refusal("key in (ENG-99, bogus)") == [
        "An issue with key 'ENG-99' does not exist for field 'key'.",
        "The issue key 'bogus' for field 'key' is invalid.",
    ]
    assert refusal("id = 99999") == ["An issue with key '99999' does not exist for field 'id'."]


def test_relative_dates_count_back_from_the_contexts_clock() -> None:
    assert matching_keys("updated >= -1h") == {"ENG-1", "OPS-1"}
    assert matching_keys("updated > -30m") == {"OPS-1"}
    assert matching_keys('created >= "-1w 2d" AND created < -2d') == {"ENG-2"}
    later = jql.Context(NOW + timedelta(hours=2), UTC, project_lookup, issue_lookup)
    assert matching_keys("updated >= -1h", later) == set()


def test_absolute_dates_are_read_in_the_callers_time_zone() -> None:
    eng_1_updated = NOW - timedelta(hours=1)  # 11:00 UTC
    sydney = ZoneInfo("Australia/Sydney")  # UTC+11 in March
    local = eng_1_updated.astimezone(sydney).strftime("%Y-%m-%d %H:%M")
    in_sydney = jql.Context(NOW, sydney, project_lookup, issue_lookup)
    assert "ENG-1" in matching_keys(f'updated >= "{local}"', in_sydney)
    assert "ENG-1" not in matching_keys(f'updated >= "{local}"', CONTEXT)  # the same wall time in UTC is later
    assert matching_keys("created < 2026/02/10") == {"ENG-10"}
    assert matching_keys(f'updated = "{eng_1_updated:%Y-%m-%d %H:%M}"') == {"ENG-1"}


def test_now_is_the_contexts_clock() -> None:
    assert matching_keys("updated < now()") == {issue.key for issue in ISSUES}
    assert matching_keys("created > now()") == set()


@pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "-53s", "10:00"])
def test_a_malformed_date_is_refused_with_jiras_list_of_formats(value: str) -> None:
    assert refusal(f'updated >= "{value}"') == [
        f"Date value '{value}' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
        "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
    ]


# -- ordering ------------------------------------------------------------------------------------------------------
def ordered(text: str, issues: list[Issue] = ISSUES) -> list[str]:
    key = jql.sort_key(jql.effective_order(jql.parse(text)))
    return [issue.key for issue in sorted(issues, key=key)]


def test_without_order_by_the_newest_keys_come_first_numerically() -> None:
    assert ordered("project in (ENG, OPS)") == ["OPS-1", "ENG-10", "ENG-2", "ENG-1"]


def test_keys_sort_by_project_key_then_number() -> None:
    issues = [make_issue(1, "ENG-2"), make_issue(2, "ENG-10"), make_issue(3, "OPS-1"), make_issue(4, "ENG-9")]
    assert ordered("project = ENG ORDER BY key ASC", issues) == ["ENG-2", "ENG-9", "ENG-10", "OPS-1"]


def test_dates_sort_either_way_and_ties_keep_ascending_id() -> None:
    assert ordered("project = ENG ORDER BY created") == ["ENG-10", "ENG-1", "ENG-2", "OPS-1"]
    assert ordered("project = ENG ORDER BY updated DESC") == ["OPS-1", "ENG-1", "ENG-2", "ENG-10"]
    same_time = [make_issue(30, "ENG-3"), make_issue(20, "ENG-2"), make_issue(10, "ENG-1")]
    assert ordered("project = ENG ORDER BY created DESC", same_time) == ["ENG-1", "ENG-2", "ENG-3"]


def test_a_second_order_field_breaks_ties_of_the_first() -> None:
    issues = [
        make_issue(1, "ENG-1", created=NOW, updated=NOW),
        make_issue(2, "ENG-2", created=NOW, updated=NOW + timedelta(hours=1)),
        make_issue(3, "OPS-1", created=NOW - timedelta(days=1), updated=NOW),
    ]
    assert ordered("project = ENG ORDER BY created DESC, updated DESC", issues) == ["ENG-2", "ENG-1", "OPS-1"]


def test_a_sort_key_survives_a_json_round_trip() -> None:
    key = jql.sort_key(jql.effective_order(jql.parse("project = ENG ORDER BY updated DESC, key")))
    for issue in ISSUES:
        assert jql.key_from_json(list(key(issue))) == key(issue)
    with pytest.raises(TypeError):
        jql.key_from_json(["not", "a", "key"])
    with pytest.raises(TypeError):
        jql.key_from_json({"after": 1})
