"""Pseudonymization: people's account ids, names and emails replaced by keyed, consistent pseudonyms.

A person's pseudonym is a *code*: the first :data:`CODE_DIGITS` hex digits of HMAC-SHA256, keyed with a salt the
exporter chooses, of the person's account id (``account:<id>``). The code is written in the shape of the value it
replaces, so a column keeps its meaning:

* an account id becomes ``person-<code>``;
* a display name becomes ``Person <code>``;
* an email address becomes ``person-<code>@pseudonym.invalid``.

The same person gets the same code wherever they appear: in an id column, a name column, an email column, or in
free text (an audit's evidence, a fix, a change's description), because every name and email known from the loaded
tables is tied to its account id first. A name or email with no known account is coded from itself
(``name:<name>``, ``email:<email>``); so is a display name two accounts share (it cannot tell them apart).

Without the salt the pseudonyms cannot be traced back, and two exports made with different salts share no
pseudonym, so they cannot be linked. Anyone who knows the salt and a list of account ids *can* recompute the codes:
keep the salt secret, and long and random.

Where the values are found (:meth:`Pseudonymizer.frame`):

* columns that hold a person: ``account_id``, ``principal_id``, ``*_account_id`` (ids); ``display_name``,
  ``*_display_name``, ``author_name``, ``principal_name``, ``account_name`` (names); ``email_address`` (emails); and
  columns that hold a person when their row says so (``holder_value`` when ``holder_type`` is ``user``,
  ``actor_id``/``actor_name`` of a user actor, ``value_id``/``value_name`` of a user field value, an audit item of
  type ``USER``). Every value there is replaced, known or not.
* every other text column is scrubbed: each known id, name and email inside it is replaced (longest first; names
  shorter than three characters only as whole words, so that "Al" does not eat "Alaska").
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Literal

import polars as pl

from jira_lab.audits.model import SiteTables
from jira_lab.audits.preflight import AuditResults

__all__ = ["CODE_DIGITS", "EMAIL_DOMAIN", "MIN_SALT_LENGTH", "Pseudonymizer", "describe_method"]

Kind = Literal["id", "name", "email"]

#: Hex digits of the HMAC kept in a pseudonym: 48 bits, no collision to fear among a site's accounts.
CODE_DIGITS = 12
#: A salt shorter than this is refused: a short salt can be guessed, and every pseudonym recomputed.
MIN_SALT_LENGTH = 8
#: The domain of pseudonymous email addresses (``.invalid`` is reserved: it never delivers mail).
EMAIL_DOMAIN = "pseudonym.invalid"
#: Names shorter than this are replaced in free text only as whole words.
_SHORT_NAME = 3

_ID_COLUMNS = frozenset({"account_id", "principal_id", "analyst_id"})
_NAME_COLUMNS = frozenset({"display_name", "author_name", "principal_name", "account_name", "analyst_name"})
_EMAIL_COLUMNS = frozenset({"email_address", "email"})
#: column -> (the column saying what the row holds, the value meaning a person, the kind of the column)
_CONDITIONAL_COLUMNS: Mapping[str, tuple[str, str, Kind]] = {
    "holder_value": ("holder_type", "user", "id"),
    "holder_parameter": ("holder_type", "user", "id"),
    "holder_name_then": ("holder_type", "user", "name"),
    "actor_id": ("actor_type", "user", "id"),
    "actor_name": ("actor_type", "user", "name"),
    "value_id": ("value_type", "user", "id"),
    "value_name": ("value_type", "user", "name"),
    "item_id": ("type_name", "user", "id"),
    "item_name": ("type_name", "user", "name"),
    "object_item_id": ("object_item_type_name", "user", "id"),
    "object_item_name": ("object_item_type_name", "user", "name"),
}


def describe_method() -> str:
    """How pseudonyms are made, in words (for the note that goes with an export; it never names the salt)."""
    return (
        f"Each person's pseudonym is a code: the first {CODE_DIGITS} hex digits of HMAC-SHA256, keyed with a salt "
        "chosen by whoever made the export (the salt is not included), of the person's account id. It is written as "
        f"person-<code> in place of an account id, Person <code> in place of a display name and "
        f"person-<code>@{EMAIL_DOMAIN} in place of an email address, so the same person has the same code in every "
        "table and in the report. A name or email whose account is unknown (or a display name two accounts share) "
        "is coded from the name or email itself. Without the salt the codes cannot be traced back to anyone, and "
        "exports made with different salts share no pseudonym."
    )


def _column_kind(name: str) -> Kind | None:
    if name in _ID_COLUMNS or name.endswith("_account_id"):
        return "id"
    if name in _NAME_COLUMNS or name.endswith("_display_name"):
        return "name"
    if name in _EMAIL_COLUMNS or name.endswith("_email"):
        return "email"
    return None


class Pseudonymizer:
    """Replaces people's account ids, names and emails by salted pseudonyms, consistently.

    Build it with :meth:`for_tables` (every person the loaded site names) or from ``(account id, name, email)``
    triples; then :meth:`frame`, :meth:`text` and :meth:`results` apply it.

    Args:
        salt: the HMAC key; at least :data:`MIN_SALT_LENGTH` characters. Never shown, never written.
        people: ``(account_id, display_name, email)`` triples; any part may be ``None``.

    Raises:
        ValueError: the salt is too short.
    """

    def __init__(self, salt: str | bytes, people: Iterable[tuple[str | None, str | None, str | None]] = ()) -> None:
        key = salt.encode() if isinstance(salt, str) else bytes(salt)
        if len(key) < MIN_SALT_LENGTH:
            raise ValueError(f"the salt must be at least {MIN_SALT_LENGTH} characters (long and random is best)")
        self._key = key
        self._known: dict[str, str] = {}
        self._kinds: dict[str, Kind] = {}
        self._index(list(people))
        self._patterns, self._replacements, self._word_patterns = self._scrub_plan()

    def __repr__(self) -> str:
        return f"Pseudonymizer({len(self._known)} known values, salt=***)"

    __str__ = __repr__

    # -- building ----------------------------------------------------------------------------------------------
    @classmethod
    def for_tables(cls, tables: SiteTables, salt: str | bytes) -> Pseudonymizer:
        """A pseudonymizer that knows every person the loaded site names: users, loading principals, user role
        actors, user field values, audit log items and changelog user values, and every account id in an id column.
        """
        return cls(salt, _people(tables))

    def _index(self, people: list[tuple[str | None, str | None, str | None]]) -> None:
        owners: dict[str, set[str]] = {}
        for account_id, name, _email in people:
            if account_id and name:
                owners.setdefault(name, set()).add(account_id)
        for account_id, name, email in people:
            if account_id:
                self._remember(account_id, "id", self.account(account_id))
            if name:
                shared = len(owners.get(name, ())) > 1
                owner = None if shared or not account_id else account_id
                self._remember(name, "name", self._shaped("name", self._person_code(owner, "name", name)))
            if email:
                code = self._person_code(account_id, "email", email.lower())
                for variant in (email, email.lower()):
                    self._remember(variant, "email", self._shaped("email", code))

    def _remember(self, original: str, kind: Kind, pseudonym: str) -> None:
        # an id outranks a name or email that happens to be spelled the same
        if original in self._known and self._kinds[original] == "id":
            return
        self._known[original] = pseudonym
        self._kinds[original] = kind

    def _scrub_plan(self) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        long_first = sorted(self._known, key=lambda value: (-len(value), value))
        patterns, replacements, words = [], [], []
        for value in long_first:
            if self._kinds[value] == "name" and len(value) < _SHORT_NAME and re.fullmatch(r"\w+", value):
                words.append((rf"\b{re.escape(value)}\b", self._known[value]))
            else:
                patterns.append(value)
                replacements.append(self._known[value])
        return patterns, replacements, words

    # -- single values -----------------------------------------------------------------------------------------
    def _code(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()[:CODE_DIGITS]

    def _person_code(self, account_id: str | None, kind: str, value: str) -> str:
        return self._code(f"account:{account_id}") if account_id else self._code(f"{kind}:{value}")

    @staticmethod
    def _shaped(kind: Kind, code: str) -> str:
        if kind == "id":
            return f"person-{code}"
        if kind == "name":
            return f"Person {code}"
        return f"person-{code}@{EMAIL_DOMAIN}"

    def account(self, account_id: str) -> str:
        """The pseudonym of an account id."""
        return self._shaped("id", self._code(f"account:{account_id}"))

    def value(self, original: str, kind: Kind) -> str:
        """The pseudonym of a value known to hold a person: by what it is known as, else coded as ``kind``."""
        known = self._known.get(original)
        if known is not None:
            return known
        if kind == "id":
            return self.account(original)
        return self._shaped(kind, self._code(f"{kind}:{original.lower() if kind == 'email' else original}"))

    def text(self, text: str) -> str:
        """``text`` with every known id, name and email in it replaced."""
        scrubbed = pl.Series([text], dtype=pl.String).to_frame("text").select(self.scrubbed(pl.col("text")))
        return str(scrubbed.item())

    @property
    def pseudonyms(self) -> frozenset[str]:
        """Every pseudonym of a known value (tests and checks compare exports with it)."""
        return frozenset(self._known.values())

    # -- frames ------------------------------------------------------------------------------------------------
    def scrubbed(self, expr: pl.Expr) -> pl.Expr:
        """``expr`` (text) with every known id, name and email inside it replaced."""
        if self._patterns:
            expr = expr.str.replace_many(self._patterns, self._replacements, leftmost=True)
        for pattern, replacement in self._word_patterns:
            expr = expr.str.replace_all(pattern, replacement.replace("$", "$$"))
        return expr

    def _mapping(self, values: pl.Series, kind: Kind) -> dict[str, str]:
        return {value: self.value(value, kind) for value in values.drop_nulls().unique().to_list()}

    def frame(self, frame: pl.DataFrame, *, drop: Iterable[str] = ()) -> pl.DataFrame:
        """``frame`` with people replaced (see the module's docstring) and the columns ``drop`` left out.

        Only text columns change; numbers, times and booleans are kept as they are.
        """
        dropped = set(drop)
        kept = frame.drop([column for column in frame.columns if column in dropped])
        schema = kept.schema
        lowered = {
            column: pl.col(column).cast(pl.String).str.to_lowercase()
            for column in {rule[0] for rule in _CONDITIONAL_COLUMNS.values()}
            if column in schema
        }
        expressions = []
        for column, dtype in schema.items():
            if dtype != pl.String:
                continue
            kind = _column_kind(column)
            rule = _CONDITIONAL_COLUMNS.get(column)
            if kind is not None:
                mapping = self._mapping(kept.get_column(column), kind)
                expressions.append(pl.col(column).replace(mapping))
            elif rule is not None and rule[0] in lowered:
                type_column, person_type, person_kind = rule
                holds_person = lowered[type_column] == person_type
                mapping = self._mapping(kept.filter(holds_person).get_column(column), person_kind)
                expressions.append(
                    pl.when(holds_person)
                    .then(pl.col(column).replace(mapping))
                    .otherwise(self.scrubbed(pl.col(column)))
                    .alias(column)
                )
            else:
                expressions.append(self.scrubbed(pl.col(column)).alias(column))
        return kept.with_columns(expressions) if expressions else kept

    def results(self, results: AuditResults) -> AuditResults:
        """The audit results with people replaced in every frame, note and name (the report is rendered from it)."""
        gaps = results.gaps
        pseudonymous_gaps = dataclasses.replace(
            gaps,
            account_id=self.value(gaps.account_id, "id"),
            gaps=self.frame(gaps.gaps),
            fixes=self.frame(gaps.fixes),
            out_of_reach=self.frame(gaps.out_of_reach),
            cannot_tell=self.frame(gaps.cannot_tell),
            notes=tuple(self.text(note) for note in gaps.notes),
        )
        return dataclasses.replace(
            results,
            account_id=self.value(results.account_id, "id"),
            account_name=self._name_or_id(results.account_name, results.account_id),
            analyst_id=None if results.analyst_id is None else self.value(results.analyst_id, "id"),
            analyst_name=None
            if results.analyst_name is None or results.analyst_id is None
            else self._name_or_id(results.analyst_name, results.analyst_id),
            checks=self.frame(results.checks),
            findings=self.frame(results.findings),
            gaps=pseudonymous_gaps,
            disagreements=None if results.disagreements is None else self.frame(results.disagreements),
            coverage=self.frame(results.coverage),
            sync=self.frame(results.sync),
            changes=self.frame(results.changes),
            explanations=self.frame(results.explanations),
        )

    def _name_or_id(self, name: str, account_id: str) -> str:
        """A display name falls back to the account id when the account has none: keep that id's pseudonym."""
        return self.value(name, "id") if name == account_id else self.value(name, "name")


# -- who the site names --------------------------------------------------------------------------------------------
def _triples(frame: pl.LazyFrame, account: str | None, name: str | None, email: str | None) -> pl.LazyFrame:
    def column(source: str | None, alias: str) -> pl.Expr:
        return (pl.col(source) if source else pl.lit(None)).cast(pl.String).alias(alias)

    return frame.select(column(account, "account_id"), column(name, "name"), column(email, "email"))


def _people(tables: SiteTables) -> list[tuple[str | None, str | None, str | None]]:
    """``(account_id, name, email)`` of every person any loaded table names, users first."""
    user_type = pl.col("type_name").str.to_lowercase() == "user"
    sources = [
        _triples(tables.users, "account_id", "display_name", "email_address"),
        _triples(tables.jira_lab_principals, "principal_id", "display_name", None),
        _triples(tables.role_actors.filter(pl.col("actor_type") == "user"), "actor_id", "actor_name", None),
        _triples(tables.issue_field_values.filter(pl.col("value_type") == "user"), "value_id", "value_name", None),
        _triples(tables.audit_associated_items.filter(user_type), "item_id", "item_name", None),
        _triples(
            tables.audit_records.filter(pl.col("object_item_type_name").str.to_lowercase() == "user"),
            "object_item_id",
            "object_item_name",
            None,
        ),
    ]
    for holders in (tables.permission_grants, tables.security_level_members):
        sources.append(
            _triples(holders.filter(pl.col("holder_type").str.to_lowercase() == "user"), "holder_value", None, None)
        )
    user_fields = ["assignee", "reporter", "creator"]
    people_fields = pl.col("field_id").is_in(user_fields) | pl.col("field").str.to_lowercase().is_in(user_fields)
    for side in ("from", "to"):
        sources.append(_triples(tables.changelog_items.filter(people_fields), f"{side}_value", f"{side}_string", None))
    for name in ("issues", "comments", "worklogs", "changelog_histories", "audit_records", "projects"):
        lazy = tables.table(name)
        for column in lazy.collect_schema().names():
            if column.endswith("_account_id"):
                sources.append(_triples(lazy, column, None, None))
    for name in ("group_members", "permission_checks", "issue_totals", "my_permissions", "_jira_lab_loads"):
        lazy = tables.table(name)
        for column in ("account_id", "principal_id"):
            if column in lazy.collect_schema().names():
                sources.append(_triples(lazy, column, None, None))
    every = pl.concat(sources).unique(maintain_order=True).collect()
    return [(row[0] or None, row[1] or None, row[2] or None) for row in every.iter_rows() if any(part for part in row)]
