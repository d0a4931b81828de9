"""A small, real JQL parser for the simulated site: a tokenizer, a recursive-descent parser and an evaluator.

It reads the subset of Jira Query Language a loader needs and refuses the rest with a 400 in Jira's wording, never
a silent match-all:

* clauses on ``project`` (key, name or id), the issue-key clause (``key``, ``issuekey``, ``issue``, ``id``: a key or
  a numeric id) and the dates ``created``/``createdDate`` and ``updated``/``updatedDate``;
* operators ``=``, ``!=``, ``in``, ``not in`` (project, key) and ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (dates);
* date values ``"yyyy-MM-dd HH:mm"``, ``"yyyy/MM/dd HH:mm"``, ``yyyy-MM-dd``, ``yyyy/MM/dd`` (in the caller's time
  zone, as Jira reads them), periods relative to now (``-5d``, ``-1h``, ``"4w 2d"``, ``-30m``) and ``now()``;
* ``AND``/``&&``/``&``, ``OR``/``||``/``|``, ``NOT``/``!``, parentheses, and ``ORDER BY`` on ``key``, ``id``,
  ``created``, ``updated`` with ``ASC``/``DESC`` (at most 7 fields);
* JQL's string rules: single or double quotes, backslash escapes, unquoted words for values without spaces or
  reserved characters, keywords in any case.

Three kinds of refusal, all :class:`JqlError`:

* Jira's own messages for what Jira itself rejects (syntax errors, unknown fields, an operator a field does not
  support, a malformed date, an unknown project or issue key);
* ``Error in the JQL Query: ... is not supported by the simulated site's JQL`` for valid JQL the simulator does
  not implement (``assignee = currentUser()``, ``status = Done`` ...);
* nothing is ever matched by default.

:func:`parse` is pure syntax. :func:`compile_query` binds a parsed query to a :class:`Context` (the clock, the
caller's time zone, and lookups of the projects and issues the caller may see) and returns a predicate on
:class:`~jira_lab.sim.model.Issue`; :func:`sort_key` gives the ordering.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Literal

from jira_lab.sim.model import Issue

#: Jira allows at most this many fields in ``ORDER BY`` on ``search/jql``.
MAX_ORDER_BY_FIELDS = 7

JQL_ERROR_PREFIX = "Error in the JQL Query: "
DATE_FORMATS_HINT = (
    "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
    "or a period format e.g. '-5d', '4w 2d'."
)

#: Clause names the simulator evaluates, lower-cased, with the field they search.
SUPPORTED_CLAUSES: dict[str, str] = {
    "project": "project",
    "key": "issuekey",
    "issuekey": "issuekey",
    "issue": "issuekey",
    "id": "issuekey",
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
}

#: Fields ``ORDER BY`` accepts here, lower-cased, with the sort they give.
SUPPORTED_SORTS: dict[str, str] = {
    "key": "key",
    "issuekey": "key",
    "issue": "key",
    "id": "id",
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
}


def _words(text: str) -> list[str]:
    return text.split()


#: Clause names Jira Cloud knows that the simulator does not evaluate: refused as unsupported, not as unknown.
JIRA_CLAUSES = frozenset(
    _words(
        """
    affectedversion approvals assignee attachments category comment component created creator description due
    duedate environment epiclink filter fixversion issuelinktype issuetype labels lastviewed level originalestimate
    parent parentepic priority project projecttype remainingestimate reporter request-channel-type resolution
    resolutiondate resolved sprint status statuscategory statuscategorychangeddate subtasks summary team text
    timeestimate timeoriginalestimate timespent type votes voter watcher watchers worklogauthor worklogcomment
    worklogdate
    """
    )
)

_OPERATORS_BY_FIELD: dict[str, tuple[str, ...]] = {
    "project": ("=", "!=", "in", "not in"),
    "issuekey": ("=", "!=", "in", "not in"),
    "created": ("=", "!=", "<", "<=", ">", ">="),
    "updated": ("=", "!=", "<", "<=", ">", ">="),
}
#: Operators Jira accepts on the field that the simulator does not evaluate.
_JIRA_ONLY_OPERATORS: dict[str, tuple[str, ...]] = {
    "project": ("is", "is not"),
    "issuekey": ("<", "<=", ">", ">="),
    "created": ("in", "not in", "is", "is not"),
    "updated": ("in", "not in", "is", "is not"),
}
_LIST_OPERATORS = ("in", "not in")

_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "was", "changed", "empty", "null", "order", "by", "asc", "desc"})
_WORD_STOP = set(" \t\r\n()\"',=!<>~&|")
_ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")
_ABSOLUTE_DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$")
_PERIOD = re.compile(r"^([-+]?)\s*((?:\d+\s*(?:w|d|h|m)\s*)+)$", re.IGNORECASE)
_PERIOD_PART = re.compile(r"(\d+)\s*(w|d|h|m)", re.IGNORECASE)
_PERIOD_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JqlError(ValueError):
    """A query Jira would refuse with a 400; ``messages`` are the ``errorMessages`` of that answer."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


def unsupported(what: str) -> JqlError:
    """The refusal for valid JQL the simulated site does not evaluate."""
    return JqlError(
        f"{JQL_ERROR_PREFIX}{what} is not supported by the simulated site's JQL "
        "(it supports project, key/issuekey/id, created and updated; AND, OR, NOT; ORDER BY key, id, created, "
        "updated)."
    )


# -- tokens ----------------------------------------------------------------------------------------------------
TokenKind = Literal["word", "string", "op", "lparen", "rparen", "comma", "and", "or", "not", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    #: 1-based character position, as Jira reports it
    position: int

    def describe(self) -> str:
        return "the end of the query" if self.kind == "end" else f"'{self.text}'"


def _syntax_error(message: str, token: Token | None = None, position: int | None = None) -> JqlError:
    where = position if position is not None else (token.position if token is not None else None)
    suffix = f" (line 1, character {where})" if where is not None and (token is None or token.kind != "end") else ""
    return JqlError(f"{JQL_ERROR_PREFIX}{message}{suffix}")


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", " ": " "}


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(chars), i + 1
        if char == "\\":
            escape = text[i + 1 : i + 2]
            if escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                chars.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            if escape not in _ESCAPES:
                raise _syntax_error(
                    f"The escape sequence '\\{escape}' in the string '{text[start + 1 : i]}' is illegal.",
                    position=i + 1,
                )
            chars.append(_ESCAPES[escape])
            i += 2
            continue
        chars.append(char)
        i += 1
    raise _syntax_error(f"The quoted string '{text[start + 1 :]}' has not been completed.", position=start + 1)


def tokenize(text: str) -> list[Token]:
    """The tokens of a JQL string, ending with an ``end`` token."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        position = i + 1
        if char.isspace():
            i += 1
        elif char in "\"'":
            value, i = _read_string(text, i)
            tokens.append(Token("string", value, position))
        elif char == "(":
            tokens.append(Token("lparen", char, position))
            i += 1
        elif char == ")":
            tokens.append(Token("rparen", char, position))
            i += 1
        elif char == ",":
            tokens.append(Token("comma", char, position))
            i += 1
        elif text.startswith(("&&", "||"), i):
            tokens.append(Token("and" if char == "&" else "or", text[i : i + 2], position))
            i += 2
        elif char in "&|":
            tokens.append(Token("and" if char == "&" else "or", char, position))
            i += 1
        elif text.startswith(("!=", "!~", ">=", "<="), i):
            tokens.append(Token("op", text[i : i + 2], position))
            i += 2
        elif char in "=<>~":
            tokens.append(Token("op", char, position))
            i += 1
        elif char == "!":
            tokens.append(Token("not", char, position))
            i += 1
        else:
            end = i
            while end < len(text) and text[end] not in _WORD_STOP:
                end += 1
            word = text[i:end]
            lowered = word.lower()
            kind: TokenKind = "word"
            if lowered in ("and", "or", "not"):
                kind = lowered  # type: ignore[assignment]
            tokens.append(Token(kind, word, position))
            i = end
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# -- syntax tree -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Operand:
    """One value of a clause: a word, a quoted string, a function call, or ``EMPTY``/``NULL``."""

    kind: Literal["value", "function", "empty"]
    text: str
    quoted: bool = False
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Clause:
    """``field operator operand(s)``; ``name`` is the field as written, ``field`` the searched field."""

    name: str
    field: str
    operator: str
    operands: tuple[Operand, ...]
    position: int
    #: the operands were written as a parenthesised list
    listed: bool = False


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition


Condition = Clause | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderField:
    name: str
    sort: str
    descending: bool


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed JQL query: its condition (``None`` for none) and its ``ORDER BY`` fields."""

    where: Condition | None
    order_by: tuple[OrderField, ...]

    @property
    def bounded(self) -> bool:
        """Jira's "bounded query": one with a search restriction, not just an ordering."""
        return self.where is not None


# -- parser ----------------------------------------------------------------------------------------------------
_VALID_OPERATORS_TEXT = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.current()
        return token.kind in ("word", "not") and token.text.lower() in words

    def query(self) -> Query:
        where: Condition | None = None
        if not self.at_order_by() and self.current().kind != "end":
            where = self.or_condition()
        order_by: tuple[OrderField, ...] = ()
        if self.at_order_by():
            order_by = self.order_by()
        if self.current().kind != "end":
            expected = "either 'OR' or 'AND'" if where is not None else "a field name"
            raise _syntax_error(f"Expecting {expected} but got {self.current().describe()}.", self.current())
        return Query(where, order_by)

    def at_order_by(self) -> bool:
        return self.at_word("order")

    def or_condition(self) -> Condition:
        parts = [self.and_condition()]
        while self.current().kind == "or":
            self.advance()
            parts.append(self.and_condition())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_condition(self) -> Condition:
        parts = [self.not_condition()]
        while self.current().kind == "and":
            self.advance()
            parts.append(self.not_condition())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_condition(self) -> Condition:
        token = self.current()
        if token.kind == "not":
            self.advance()
            return Not(self.not_condition())
        if token.kind == "lparen":
            self.advance()
            inner = self.or_condition()
            if self.current().kind != "rparen":
                raise _syntax_error(f"Expecting ')' but got {self.current().describe()}.", self.current())
            self.advance()
            return inner
        return self.clause()

    def field_name(self) -> Token:
        token = self.current()
        if token.kind not in ("word", "string") or (token.kind == "word" and token.text.lower() in _KEYWORDS):
            raise _syntax_error(f"Expecting a field name but got {token.describe()}.", token)
        return self.advance()

    def operator(self) -> str:
        token = self.current()
        if token.kind == "op":
            self.advance()
            return token.text
        lowered = token.text.lower() if token.kind in ("word", "not") else ""
        if lowered == "in":
            self.advance()
            return "in"
        if lowered == "not":
            self.advance()
            if self.at_word("in"):
                self.advance()
                return "not in"
            raise _syntax_error(f"Expecting 'IN' but got {self.current().describe()}.", self.current())
        if lowered == "is":
            self.advance()
            if self.at_word("not"):
                self.advance()
                return "is not"
            return "is"
        if lowered == "was":
            self.advance()
            negated = self.at_word("not")
            if negated:
                self.advance()
            listed = self.at_word("in")
            if listed:
                self.advance()
            return "was" + (" not" if negated else "") + (" in" if listed else "")
        if lowered == "changed":
            self.advance()
            return "changed"
        raise _syntax_error(f"Expecting operator but got {token.describe()}. {_VALID_OPERATORS_TEXT}", token)

    def operand(self) -> Operand:
        token = self.current()
        if token.kind == "string":
            self.advance()
            return Operand("value", token.text, quoted=True)
        if token.kind == "word" and token.text.lower() not in _KEYWORDS - {"empty", "null"}:
            self.advance()
            if token.text.lower() in ("empty", "null"):
                return Operand("empty", token.text)
            if self.current().kind == "lparen":
                return Operand("function", token.text, arguments=self.function_arguments())
            return Operand("value", token.text)
        raise _syntax_error(f"Expecting either a value, list or function but got {token.describe()}.", token)

    def function_arguments(self) -> tuple[str, ...]:
        self.advance()  # (
        arguments: list[str] = []
        while self.current().kind != "rparen":
            token = self.current()
            if token.kind not in ("word", "string"):
                raise _syntax_error(f"Expecting ')' but got {token.describe()}.", token)
            arguments.append(self.advance().text)
            if self.current().kind == "comma":
                self.advance()
        self.advance()  # )
        return tuple(arguments)

    def operands(self) -> tuple[tuple[Operand, ...], bool]:
        if self.current().kind != "lparen":
            return (self.operand(),), False
        self.advance()
        values = [self.operand()]
        while self.current().kind == "comma":
            self.advance()
            values.append(self.operand())
        if self.current().kind != "rparen":
            raise _syntax_error(f"Expecting ')' but got {self.current().describe()}.", self.current())
        self.advance()
        return tuple(values), True

    def clause(self) -> Clause:
        name_token = self.field_name()
        operator = self.operator()
        if operator == "changed":
            raise unsupported("The operator 'changed'")
        operands, listed = self.operands()
        return Clause(name_token.text, _clause_field(name_token.text), operator, operands, name_token.position, listed)

    def order_by(self) -> tuple[OrderField, ...]:
        self.advance()  # ORDER
        if not self.at_word("by"):
            raise _syntax_error(f"Expecting 'by' but got {self.current().describe()}.", self.current())
        self.advance()
        fields = [self.order_field()]
        while self.current().kind == "comma":
            self.advance()
            fields.append(self.order_field())
        return tuple(fields)

    def order_field(self) -> OrderField:
        token = self.field_name()
        descending = False
        if self.at_word("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        return OrderField(token.text, SUPPORTED_SORTS.get(token.text.lower(), ""), descending)


def _clause_field(name: str) -> str:
    lowered = name.lower()
    return SUPPORTED_CLAUSES.get(lowered, "")


def _is_jira_field(name: str) -> bool:
    lowered = name.lower()
    return lowered in JIRA_CLAUSES or lowered.startswith(("cf[", "customfield_"))


def parse(text: str) -> Query:
    """Parse a JQL string; :class:`JqlError` for anything this module does not read.

    Checks the syntax, the fields, the operators each field takes, the shape of their values and ``ORDER BY``. It
    does not look values up (projects, issue keys, dates): :func:`compile_query` does, against a :class:`Context`.
    """
    query = _Parser(text).query()
    errors: list[str] = []
    if query.where is not None:
        _check_condition(query.where, errors)
    _check_order_by(query.order_by, errors)
    if errors:
        raise JqlError(*dict.fromkeys(errors))
    return query


def _check_condition(condition: Condition, errors: list[str]) -> None:
    if isinstance(condition, And | Or):
        for part in condition.parts:
            _check_condition(part, errors)
    elif isinstance(condition, Not):
        _check_condition(condition.part, errors)
    else:
        problem = _clause_problem(condition)
        if problem is not None:
            errors.extend(problem.messages)


def _shown(operator: str) -> str:
    return operator.upper() if operator[0].isalpha() else operator


def _clause_problem(clause: Clause) -> JqlError | None:
    if not clause.field:
        if _is_jira_field(clause.name):
            return unsupported(f"The field '{clause.name}'")
        return JqlError(f"Field '{clause.name}' does not exist or you do not have permission to view it.")
    operator = clause.operator
    if operator in _JIRA_ONLY_OPERATORS[clause.field]:
        return unsupported(
            f"The operator '{operator.upper() if operator[0].isalpha() else operator}' on '{clause.name}'"
        )
    if operator not in _OPERATORS_BY_FIELD[clause.field]:
        return JqlError(f"The operator '{_shown(operator)}' is not supported by the '{clause.name}' field.")
    listed = operator in _LIST_OPERATORS
    if listed and not clause.listed and clause.operands[0].kind != "function":
        return JqlError(
            f"The operator '{operator.upper()}' is not supported with a single value for the field "
            f"'{clause.name}'; put the values in parentheses, e.g. ({clause.operands[0].text})."
        )
    if not listed and clause.listed:
        values = ", ".join(o.text for o in clause.operands)
        return JqlError(
            f"The operator '{operator}' does not support the list value '({values})' for field '{clause.name}'."
        )
    for operand in clause.operands:
        if operand.kind == "empty":
            return JqlError(
                f"The operator '{_shown(operator)}' does not support the "
                f"value '{operand.text.upper()}' for field '{clause.name}'."
            )
        if operand.kind == "function" and not (clause.field in ("created", "updated") and operand.text == "now"):
            return unsupported(f"The function '{operand.text}()'")
    return None


def _check_order_by(order_by: tuple[OrderField, ...], errors: list[str]) -> None:
    if len(order_by) > MAX_ORDER_BY_FIELDS:
        errors.append(
            f"{JQL_ERROR_PREFIX}The ORDER BY clause can contain at most {MAX_ORDER_BY_FIELDS} fields; "
            f"this one has {len(order_by)}."
        )
    seen: set[str] = set()
    for field in order_by:
        if not field.sort:
            if _is_jira_field(field.name):
                errors.extend(unsupported(f"Sorting by '{field.name}'").messages)
                continue
            errors.append(f"Field '{field.name}' does not exist or you do not have permission to view it.")
            continue
        if field.sort in seen:
            errors.append(f"The sort field '{field.name}' is referenced multiple times in the JQL sort.")
        seen.add(field.sort)


# -- evaluation ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Context:
    """What evaluating a query needs besides the query.

    ``project_id`` finds a project the caller may browse by key or name (``by_id=False``) or by id (``by_id=True``);
    ``issue_id`` finds an issue the caller may browse by key or numeric id. Both answer ``None`` for what does not
    exist *or* is hidden, so a query's error cannot reveal hidden projects or issues.
    """

    now: datetime
    time_zone: tzinfo
    project_id: Callable[[str, bool], int | None]
    issue_id: Callable[[str], int | None]


Predicate = Callable[[Issue], bool]


def compile_query(query: Query, context: Context) -> Predicate:
    """A predicate on issues for the query's condition; :class:`JqlError` with every value Jira would reject."""
    errors: list[str] = []
    predicate = _compile(query.where, context, errors) if query.where is not None else _always
    if errors:
        raise JqlError(*dict.fromkeys(errors))
    return predicate


def _always(issue: Issue) -> bool:
    return True


def _compile(condition: Condition, context: Context, errors: list[str]) -> Predicate:
    if isinstance(condition, And):
        parts = [_compile(part, context, errors) for part in condition.parts]
        return lambda issue: all(part(issue) for part in parts)
    if isinstance(condition, Or):
        parts = [_compile(part, context, errors) for part in condition.parts]
        return lambda issue: any(part(issue) for part in parts)
    if isinstance(condition, Not):
        inner = _compile(condition.part, context, errors)
        return lambda issue: not inner(issue)
    if condition.field == "project":
        return _membership(condition, _project_ids(condition, context, errors), lambda issue: issue.project_id)
    if condition.field == "issuekey":
        return _membership(condition, _issue_ids(condition, context, errors), lambda issue: issue.id)
    return _date_comparison(condition, context, errors)


def _membership(clause: Clause, ids: frozenset[int], attribute: Callable[[Issue], int]) -> Predicate:
    if clause.operator in ("=", "in"):
        return lambda issue: attribute(issue) in ids
    return lambda issue: attribute(issue) not in ids


def _project_ids(clause: Clause, context: Context, errors: list[str]) -> frozenset[int]:
    found: set[int] = set()
    for operand in clause.operands:
        by_id = operand.text.isdigit()
        project_id = context.project_id(operand.text, by_id)
        if project_id is None and by_id:
            errors.append(f"A value with ID '{operand.text}' does not exist for the field '{clause.name}'.")
        elif project_id is None:
            errors.append(f"The value '{operand.text}' does not exist for the field '{clause.name}'.")
        else:
            found.add(project_id)
    return frozenset(found)


def _issue_ids(clause: Clause, context: Context, errors: list[str]) -> frozenset[int]:
    found: set[int] = set()
    for operand in clause.operands:
        reference = operand.text.strip()
        if not reference.isdigit() and not _ISSUE_KEY.match(reference):
            errors.append(f"The issue key '{operand.text}' for field '{clause.name}' is invalid.")
            continue
        issue_id = context.issue_id(reference)
        if issue_id is None:
            errors.append(f"An issue with key '{operand.text}' does not exist for field '{clause.name}'.")
        else:
            found.add(issue_id)
    return frozenset(found)


def parse_date(value: str, now: datetime, time_zone: tzinfo) -> datetime | None:
    """A JQL date value as a moment: absolute (in ``time_zone``) or a period relative to ``now``; else ``None``."""
    text = value.strip()
    absolute = _ABSOLUTE_DATE.match(text)
    if absolute:
        year, month, day, hour, minute = absolute.groups()
        try:
            return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=time_zone)
        except ValueError:
            return None
    period = _PERIOD.match(text)
    if period:
        sign = -1 if period.group(1) == "-" else 1
        delta = timedelta()
        for amount, unit in _PERIOD_PART.findall(period.group(2)):
            delta += timedelta(**{_PERIOD_UNITS[unit.lower()]: int(amount)})
        return now + sign * delta
    return None


_COMPARATORS: dict[str, Callable[[datetime, datetime], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _date_comparison(clause: Clause, context: Context, errors: list[str]) -> Predicate:
    operand = clause.operands[0]
    moment = context.now if operand.kind == "function" else parse_date(operand.text, context.now, context.time_zone)
    if moment is None:
        errors.append(f"Date value '{operand.text}' for field '{clause.name}' is invalid. {DATE_FORMATS_HINT}")
        return _always
    compare = _COMPARATORS[clause.operator]
    bound = moment
    if clause.field == "created":
        return lambda issue: compare(issue.created, bound)
    return lambda issue: compare(issue.updated, bound)


# -- ordering --------------------------------------------------------------------------------------------------
#: The order of a query without ``ORDER BY``: Jira lists the newest keys first.
DEFAULT_ORDER = (OrderField("key", "key", True),)

#: A sort key: one int per ``ORDER BY`` field, then the issue id. Flat ints survive a JSON round trip unchanged.
SortKey = tuple[int, ...]

_KEY_PREFIX_CHARS = 12
_KEY_CHAR_BASE = 0x110000
_ONE_MICROSECOND = timedelta(microseconds=1)


@lru_cache(maxsize=1024)
def _project_key_rank(project_key: str) -> int:
    """An int that orders project keys as strings do (a prefix first), from their first 12 characters."""
    padded = [ord(char) for char in project_key.upper()[:_KEY_PREFIX_CHARS]]
    padded += [0] * (_KEY_PREFIX_CHARS - len(padded))
    rank = 0
    for code in padded:
        rank = rank * _KEY_CHAR_BASE + code
    return rank


@lru_cache(maxsize=1 << 16)
def issue_key_rank(key: str) -> int:
    """An int that orders issue keys as Jira sorts them: by project key, then by issue number."""
    project, _, number = key.rpartition("-")
    return (_project_key_rank(project) << 48) + (int(number) if number.isdigit() else 0)


def _moment_rank(moment: datetime) -> int:
    return (moment - _UNIX_EPOCH) // _ONE_MICROSECOND


def _extractor(sort: str) -> Callable[[Issue], int]:
    if sort == "key":
        return lambda issue: issue_key_rank(issue.key)
    if sort == "id":
        return lambda issue: issue.id
    if sort == "created":
        return lambda issue: _moment_rank(issue.created)
    return lambda issue: _moment_rank(issue.updated)


def effective_order(query: Query) -> tuple[OrderField, ...]:
    """The ``ORDER BY`` fields, or Jira's default order when there are none."""
    return query.order_by or DEFAULT_ORDER


def sort_key(order_by: tuple[OrderField, ...]) -> Callable[[Issue], SortKey]:
    """A total order on issues: the ``ORDER BY`` fields, then ascending id so that ties never reorder."""
    parts = [(_extractor(field.sort), -1 if field.descending else 1) for field in order_by]
    if len(parts) == 1:
        ((extract, sign),) = parts
        return lambda issue: (sign * extract(issue), issue.id)

    def key(issue: Issue) -> SortKey:
        return (*(sign * extract(issue) for extract, sign in parts), issue.id)

    return key


def key_from_json(value: Any) -> SortKey:
    """A sort key read back from JSON; ``TypeError`` unless it is a list of ints."""
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError("not a sort key")
    return tuple(value)
