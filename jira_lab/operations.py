"""What the OpenAPI spec says about each Jira operation jira_lab uses: its id and the OAuth scopes it needs.

The simulator enforces these scopes; the client names them when the gateway answers "scope does not match". The table
lives in ``operations.json`` beside this module so that neither needs the 2.4 MB spec at run time; it is regenerated
from the spec with ``python -m jira_lab.operations PATH/TO/jira-platform-v3.json`` (one entry per simulated route,
which are exactly the operations jira_lab calls) and a contract test checks it still equals the spec.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("operations.json")


@dataclass(frozen=True, slots=True)
class Operation:
    operation_id: str
    #: classic scopes (``state: Current``); a token holding all of them may call the operation
    classic_scopes: frozenset[str]
    #: granular scopes (``state: Beta``); holding all of these is the other way in
    granular_scopes: frozenset[str]
    #: ``{}`` in the operation's ``security``: callable without credentials
    anonymous: bool

    def allows(self, scopes: frozenset[str] | set[str]) -> bool:
        """Jira's gateway check: every classic scope, or every granular scope, of the operation is granted.

        An operation listing granular scopes but no classic one (``POST /permissions/check``) has no classic way
        in: a token needs its granular set. Only an operation listing no scope at all takes any token.
        """
        classic_way = bool(self.classic_scopes) or not self.granular_scopes
        return (classic_way and self.classic_scopes <= scopes) or (
            bool(self.granular_scopes) and self.granular_scopes <= scopes
        )


def operation_from_spec(op: dict[str, Any]) -> dict[str, Any]:
    """The table entry for one spec operation object."""
    classic: list[str] = []
    granular: list[str] = []
    for entry in op.get("x-atlassian-oauth2-scopes", []):
        if entry.get("state") == "Current":
            classic = sorted(entry.get("scopes", []))
        elif entry.get("state") == "Beta":
            granular = sorted(entry.get("scopes", []))
    if not op.get("x-atlassian-oauth2-scopes"):
        # a few operations only list their classic scopes under `security`
        for requirement in op.get("security", []):
            classic = sorted(requirement.get("OAuth2", classic))
    return {
        "operationId": op["operationId"],
        "classic": classic,
        "granular": granular,
        "anonymous": {} in op.get("security", []),
    }


@cache
def _table() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(TABLE.read_text())
    return loaded


def operation(method: str, template: str) -> Operation:
    """The spec's facts for ``METHOD template``; a route missing from the table is a programming error."""
    entry = _table()[f"{method.upper()} {template}"]
    return Operation(
        entry["operationId"],
        frozenset(entry["classic"]),
        frozenset(entry["granular"]),
        bool(entry["anonymous"]),
    )


@cache
def _patterns() -> list[tuple[int, str, re.Pattern[str], str]]:
    patterns = []
    for key in _table():
        method, template = key.split(" ", 1)
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        # literal templates win over parameterised ones (/issue/bulkfetch is not /issue/{issueIdOrKey})
        patterns.append((template.count("{"), method, re.compile(f"^{regex}$"), template))
    return sorted(patterns, key=lambda p: p[0])


def find_operation(method: str, path: str) -> Operation | None:
    """The operation a request path (``/rest/api/3/...``, without any gateway prefix) calls, if jira_lab knows it."""
    for _, op_method, pattern, template in _patterns():
        if op_method == method.upper() and pattern.match(path):
            return operation(op_method, template)
    return None


def generate(spec: dict[str, Any], keys: list[str]) -> dict[str, dict[str, Any]]:
    """Table entries for ``"METHOD /path"`` keys, read from the spec."""
    table: dict[str, dict[str, Any]] = {}
    for key in sorted(keys):
        method, template = key.split(" ", 1)
        table[key] = operation_from_spec(spec["paths"][template][method.lower()])
    return table


def main(argv: list[str]) -> None:
    from jira_lab.sim.app import api_routes

    spec = json.loads(Path(argv[0]).read_text())
    keys = [f"{r.method} {r.template}" for r in api_routes()]
    TABLE.write_text(json.dumps(generate(spec, keys), indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(keys)} operations to {TABLE}")


if __name__ == "__main__":
    main(sys.argv[1:])
