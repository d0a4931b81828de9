"""Refusals: what a principal could not read, kept as data instead of raised, so one refusal never ends a load.

A technical user without *Administer Jira*, an analyst without *Browse users and groups*, an OAuth token without
``manage:jira-configuration``: each gets refusals from some endpoints of the permission model and full answers from
the rest. Jira refuses in three ways, and each becomes one :class:`Refusal`:

* an error status: **403** (a missing global or project permission), **401** (the project-role endpoints' "You
  cannot edit the configuration of this project."), or 401 ``scope does not match`` from the API gateway
  (:class:`~jira_lab.errors.MissingScopeError`, outcome ``missing_scope``);
* a **404** where the spec says "not found or the user does not have permission" (only where a resource says so);
* **silent emptiness**: ``users/search`` answers an empty list, not an error, to a caller without *Browse users and
  groups*. A resource that can prove its answer is such a refusal (the caller is a user of the site, so "no users
  at all" cannot be true) reports it with ``http_status`` ``None``.

A fetch function yields a :class:`Refusal` in place of the pages it could not get; the loader records it in
``_jira_lab_access`` (:func:`jira_lab.store.record_access` with :meth:`Refusal.access_fields`), so an audit reading
that table answers "cannot tell" instead of counting a refused read as "nothing there". Resource names are table
names (``group_members``, ``role_actors`` ...); a refusal limited to one project or one group adds it after a colon
(``role_actors:10002``, see :func:`scoped`). A resource with no refusal of its own name was read: record it ``ok``.

A 401 is read as a refusal because the project-role endpoints refuse that way; credentials that do not work at all
also answer 401, so a load checks them first (``GET /myself`` raises) before reading anything that may be refused.
Rate limits (429), server errors and lost connections are not refusals: the client retries them and raises what
is left, and the load stops (resumably) as it should. Fan-outs (one request per group, project or role) run through
:func:`gather_all`, which raises such an error as itself, not wrapped in an ``ExceptionGroup``, so the loader can
catch :class:`~jira_lab.errors.QuotaExhaustedError` and the like by their own types.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from jira_lab.errors import JiraApiError, JiraLabError, MissingScopeError, RateLimitedError
from jira_lab.pagination import Page

T = TypeVar("T")

#: The outcomes ``_jira_lab_access.outcome`` records for a refusal (``ok`` is recorded for resources read whole).
RefusalOutcome = Literal["forbidden", "unauthorized", "missing_scope", "not_found"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Jira refused to let the principal read ``resource``; the reason, as Jira gave it.

    Attributes:
        resource: the ``_jira_lab_access`` resource: a table name, or ``table:scope`` when limited to one project
            or group.
        outcome: ``forbidden`` (403, or a silently empty answer), ``unauthorized`` (401), ``missing_scope`` (the
            token lacks an OAuth scope) or ``not_found`` (a 404 that stands for "no permission").
        http_status: the status Jira answered; ``None`` for a silently empty answer.
        message: Jira's own message(s), or what the empty answer means.
        request: ``METHOD URL`` of the refused request (credentials masked), when there was one.
    """

    resource: str
    outcome: RefusalOutcome
    http_status: int | None
    message: str
    request: str = ""

    def __str__(self) -> str:
        status = "empty answer" if self.http_status is None else str(self.http_status)
        return f"could not read {self.resource} ({status}: {self.message})"

    def for_resource(self, resource: str) -> Refusal:
        """The same refusal, recorded for another resource that the refused request also stood for."""
        return dataclasses.replace(self, resource=resource)

    def access_fields(self) -> dict[str, Any]:
        """The keyword arguments of :func:`jira_lab.store.record_access` (besides ``load_id``) for this refusal."""
        return {
            "resource": self.resource,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "message": self.message,
        }


def scoped(resource: str, scope: object) -> str:
    """The access resource for the part of ``resource`` about one project or group: ``role_actors:10002``."""
    return f"{resource}:{scope}"


def refusal_of(resource: str, error: JiraLabError, *, not_found_refuses: bool = False) -> Refusal | None:
    """The :class:`Refusal` an error stands for, or ``None`` when it is no refusal (and must be raised).

    Args:
        resource: the access resource the request was reading.
        error: what the client raised.
        not_found_refuses: a 404 is this endpoint's way to refuse (the spec's "not found or the user does not have
            permission"); by default a 404 is not a refusal.
    """
    if isinstance(error, MissingScopeError):
        return Refusal(resource, "missing_scope", 401, str(error))
    if not isinstance(error, JiraApiError) or isinstance(error, RateLimitedError):
        return None
    outcome: RefusalOutcome
    if error.status == 403:
        outcome = "forbidden"
    elif error.status == 401:
        outcome = "unauthorized"
    elif error.status == 404 and not_found_refuses:
        outcome = "not_found"
    else:
        return None
    return Refusal(resource, outcome, error.status, jira_message(error), error.request)


def jira_message(error: JiraApiError) -> str:
    """Jira's ``errorMessages`` and field ``errors`` of an error, joined; ``no details`` when it sent none."""
    parts = [*error.messages, *(f"{field}: {text}" for field, text in error.errors.items())]
    return "; ".join(parts) or "no details"


def silently_empty(resource: str, message: str, request: str = "") -> Refusal:
    """A refusal Jira gave as an empty answer (``users/search`` without *Browse users and groups*)."""
    return Refusal(resource, "forbidden", None, message, request)


async def refusable_pages(
    resource: str, pages: AsyncIterable[Page], *, not_found_refuses: bool = False
) -> AsyncIterator[Page | Refusal]:
    """The pages of a walk, then a :class:`Refusal` instead of the rest if Jira refuses a page.

    Errors that are no refusal (see :func:`refusal_of`) are raised.
    """
    try:
        async for page in pages:
            yield page
    except JiraLabError as error:
        refusal = refusal_of(resource, error, not_found_refuses=not_found_refuses)
        if refusal is None:
            raise
        yield refusal


async def refusable(resource: str, answer: Awaitable[T], *, not_found_refuses: bool = False) -> T | Refusal:
    """The awaited answer of one request, or the :class:`Refusal` Jira gave instead (other errors are raised)."""
    try:
        return await answer
    except JiraLabError as error:
        refusal = refusal_of(resource, error, not_found_refuses=not_found_refuses)
        if refusal is None:
            raise
        return refusal


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await every awaitable concurrently and return their results in order.

    The client caps the requests in flight, so there is no window here. The first error cancels the others and is
    raised as itself (``asyncio.TaskGroup`` would wrap it in an ``ExceptionGroup``, hiding its type from callers).
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
