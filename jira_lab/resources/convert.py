"""Small pure conversions of the values Jira's JSON holds, shared by the resource modules.

Jira is loose about types: ids come as strings in one endpoint and numbers in another, times as
``2021-01-17T12:34:00.000+0000`` strings almost everywhere but as epoch numbers in a few places (the
``changelog/bulkfetch`` example, the worklog change feeds), users as ``UserDetails`` objects that privacy may thin
out. These helpers turn each into the one type its column declares, and fail loudly on a value that cannot be one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson

#: Epoch numbers at or above this are milliseconds: as seconds they would be after the year 5000, as milliseconds
#: they are after March 1973 (and Jira Cloud holds nothing older).
EPOCH_MS_THRESHOLD = 100_000_000_000

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_ISSUE_IN_SELF_URL = re.compile(r"/issue/(\d+)/")


def is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, with decoded JSON's ``dict`` first: the ABC check costs ten times more, and a
    frame of a large load asks it millions of times."""
    return type(value) is dict or isinstance(value, Mapping)


def to_int(value: Any) -> int | None:
    """An id or count as an ``int``: Jira sends some ids as strings (``"10001"``); ``None``/``""`` are ``None``.

    Raises:
        ValueError: a value that is not a whole number (a boolean, a non-numeric string ...).
    """
    # the common cases first: a frame of a large load converts hundreds of thousands of ids
    if type(value) is str and value.isdecimal():
        return int(value)
    if type(value) is int:
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an id")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{value!r} is not an id")


def jira_time(value: Any) -> datetime | None:
    """A time Jira sent, as an aware UTC datetime; ``None`` when absent.

    Accepts Jira's strings (``2021-01-17T12:34:00.000+0000``, with ``Z`` or ``+00:00`` offsets too, or a bare
    date), naive strings (read as UTC), and epoch numbers or numeric strings: seconds below
    :data:`EPOCH_MS_THRESHOLD`, milliseconds from it on.

    Raises:
        ValueError: a value that is no such time.
    """
    if type(value) is str and value[4:5] == "-":
        # Jira's own strings (the common case): a date first, so no epoch number
        moment = _from_iso(value.strip())
    elif value is None or value == "":
        return None
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip()
        moment = _from_epoch(float(text)) if _NUMBER.match(text) else _from_iso(text)
    else:
        raise ValueError(f"{value!r} is not a time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_epoch(number: float) -> datetime:
    seconds = number / 1000 if abs(number) >= EPOCH_MS_THRESHOLD else number
    return datetime.fromtimestamp(seconds, UTC)


def _from_iso(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time Jira writes") from None


def format_jira_time(moment: datetime) -> str:
    """A time the way Jira writes it (``2026-01-05T09:00:00.000+0000``), for query parameters such as ``from``.

    Raises:
        ValueError: a naive datetime (its instant is unknown).
    """
    if moment.tzinfo is None:
        raise ValueError("give the time a time zone (e.g. UTC); a naive datetime names no instant")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds (the ``since`` of the worklog change feeds)."""
    if moment.tzinfo is None:
        raise ValueError("give the time a time zone (e.g. UTC); a naive datetime names no instant")
    return int(moment.timestamp() * 1000)


def account_id(user: Any) -> str | None:
    """The ``accountId`` of an embedded user (``UserDetails``); ``None`` when there is no user."""
    if not is_mapping(user):
        return None
    value = user.get("accountId")
    return str(value) if value is not None else None


def json_text(value: Any) -> str | None:
    """``value`` as compact JSON text (unicode kept as is) for a ``JSON`` column; ``None`` stays ``None``."""
    if value is None:
        return None
    # orjson: the same compact text as json.dumps(ensure_ascii=False, separators=(",", ":")), several times faster
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of ``mapping`` without ``keys`` (what a ``raw`` column keeps when parts live in other columns)."""
    return {key: value for key, value in mapping.items() if key not in keys}


#: Where comments, worklogs and changelog histories embed a ``UserDetails`` object.
USER_KEYS = ("author", "updateAuthor")


def raw_item(item: Mapping[str, Any], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the ``raw`` column of a comment, worklog or changelog history keeps: the item without ``drop`` (kept in
    other columns), each ``UserDetails`` at :data:`USER_KEYS` reduced to its ``accountId``.

    The whole objects go to ``user_details`` once per account (:func:`embedded_users`): on a large site the same
    few hundred of them (self link, four avatar URLs ...) were two thirds of these rows' text.
    """
    kept: dict[str, Any] = {}
    for key, value in item.items():
        if key in drop:
            continue
        if key in USER_KEYS and is_mapping(value) and value.get("accountId") is not None:
            value = {"accountId": value["accountId"]}
        kept[key] = value
    return kept


def embedded_users(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The ``UserDetails`` objects at :data:`USER_KEYS` of ``items``, by account id (the last one of each wins)."""
    found: dict[str, Mapping[str, Any]] = {}
    for item in items:
        for key in USER_KEYS:
            user = item.get(key)
            if is_mapping(user) and user.get("accountId") is not None:
                found[str(user["accountId"])] = user
    return found


def visibility_columns(visibility: Any) -> dict[str, str | None]:
    """``visibility_type``/``visibility_value``/``visibility_identifier`` of a comment's or worklog's restriction.

    ``identifier`` is the group id for a group (its name, ``value``, can change) and the role name for a role. Jira
    may leave ``identifier`` out: for a role it is then the role's name, for a group it stays unknown (``None``),
    since a group name cannot be trusted to identify the group.
    """
    if not is_mapping(visibility) or not visibility.get("type"):
        return {"visibility_type": None, "visibility_value": None, "visibility_identifier": None}
    kind = str(visibility["type"])
    value = visibility.get("value")
    identifier = visibility.get("identifier")
    if identifier is None and kind == "role":
        identifier = value
    return {
        "visibility_type": kind,
        "visibility_value": str(value) if value is not None else None,
        "visibility_identifier": str(identifier) if identifier is not None else None,
    }


def issue_id_from_self(item: Mapping[str, Any]) -> int | None:
    """The issue id in an item's ``self`` URL (``.../rest/api/3/issue/10010/comment/10000``), or ``None``.

    The ``Comment`` schema has no ``issueId``; its ``self`` link is where Jira says which issue it is on.
    """
    link = item.get("self")
    if not isinstance(link, str):
        return None
    found = _ISSUE_IN_SELF_URL.search(link)
    return int(found.group(1)) if found else None
