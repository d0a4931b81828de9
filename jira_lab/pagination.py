"""Walking Jira's paginated endpoints: one async generator per pagination style, each going until Jira says done.

The styles are those of ``shared/reference/jira-endpoints.md`` §1. A walk never assumes a page size: Jira lowers
``maxResults`` when it likes, privacy filtering drops rows from a page, and heavy field sets shrink search pages.

================  =================================================  ===============================================
style             endpoints                                          done when
================  =================================================  ===============================================
OFS-PageBean      ``group/bulk``, ``project/search``, ``group/        ``isLast``, or an empty page; the next
                  member``, ``issue/{id}/changelog`` ...              ``startAt`` moves by the values received
OFS-legacy        ``issue/{id}/comment``, ``issue/{id}/worklog``      ``startAt + len >= total``, or an empty page
OFS-array         ``users/search``, ``user/permission/search``        an empty page (a short one proves nothing)
TOKEN             ``search/jql`` (token in the query for GET, in the  no ``nextPageToken`` (``isLast`` where sent)
                  body for POST), ``changelog/bulkfetch`` (body)
OFFSET-LIMIT      ``auditing/record``                                 ``offset + len >= total``, or an empty page
SINCE             ``worklog/updated``, ``worklog/deleted``            ``lastPage``; else ``nextPage`` (re-based on the
                                                                      client's URL), or ``since = until``
IDS               ``comment/list``, ``worklog/list`` (1000 ids),      every chunk sent; chunks go out concurrently,
                  ``changelog/bulkfetch`` (1000), ``issue/bulkfetch``  pages come back in order
                  (100)
================  =================================================  ===============================================

Every generator yields :class:`Page` objects: the items and the raw JSON body (for cursors such as ``until``). A
page that does not advance (the same items, token or ``until`` again) raises
:class:`~jira_lab.errors.PaginationError` instead of looping forever.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

import httpx

from jira_lab.client import Decoder, JiraClient, mask_url
from jira_lab.errors import PaginationError

T = TypeVar("T")
Params = Mapping[str, Any]

#: Ids per request Jira accepts on the bulk endpoints.
COMMENT_LIST_MAX_IDS = 1000
WORKLOG_LIST_MAX_IDS = 1000
CHANGELOG_BULKFETCH_MAX_ISSUES = 1000
ISSUE_BULKFETCH_MAX_IDS = 100


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its ``items`` and the raw JSON ``body`` it came in (the same list for a bare-array page)."""

    items: list[Any]
    body: Any


async def iter_items(pages: AsyncIterable[Page]) -> AsyncIterator[Any]:
    """The items of every page, in order."""
    async for page in pages:
        for item in page.items:
            yield item


# -- guards --------------------------------------------------------------------------------------------------------


class _Progress:
    """Refuses a page identical to the one before it: a server ignoring the cursor would otherwise loop forever."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._last: str | None = None

    def check(self, items: list[Any]) -> None:
        if not items:
            return
        mark = json.dumps([len(items), items[0], items[-1]], sort_keys=True, default=str)
        if mark == self._last:
            raise PaginationError(f"{self.what} returned the same page twice; stopped rather than loop forever")
        self._last = mark


def _describe(client: JiraClient, method: str, path: str) -> str:
    return f"{method} {mask_url(client.base_url + client.relative(path))}"


def _items(body: Any, key: str, what: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    if items is None and isinstance(body, dict):
        return []  # Jira leaves empty lists out of some pages
    if not isinstance(items, list):
        raise PaginationError(f"{what} answered {type(body).__name__} without a {key!r} list; not a page")
    return items


def _query(params: Params | None, **paging: Any) -> dict[str, Any]:
    return {**(params or {}), **{k: v for k, v in paging.items() if v is not None}}


# -- offset styles -------------------------------------------------------------------------------------------------


async def page_bean_pages(
    client: JiraClient, path: str, *, params: Params | None = None, max_results: int | None = None
) -> AsyncIterator[Page]:
    """OFS-PageBean: ``startAt``/``maxResults`` in, ``{values, isLast, total?, nextPage?}`` out.

    Args:
        client: the client.
        path: the API path.
        params: other query parameters.
        max_results: the page size to ask for (Jira may give fewer); the endpoint's default when ``None``.

    Yields:
        Each page, its ``values`` as items, until ``isLast`` or an empty page (or, when ``isLast`` is missing,
        ``startAt + len >= total``).
    """
    what = _describe(client, "GET", path)
    progress = _Progress(what)
    start = 0
    while True:
        body = await client.get(path, params=_query(params, startAt=start, maxResults=max_results))
        values = _items(body, "values", what)
        progress.check(values)
        yield Page(values, body)
        is_last = body.get("isLast")
        total = body.get("total")
        if is_last is True or not values:
            return
        if is_last is None and isinstance(total, int) and start + len(values) >= total:
            return
        start += len(values)


async def legacy_offset_pages(
    client: JiraClient,
    path: str,
    items_key: str,
    *,
    params: Params | None = None,
    max_results: int | None = None,
) -> AsyncIterator[Page]:
    """OFS-legacy: ``startAt``/``maxResults`` in, ``{startAt, maxResults, total, <items_key>: []}`` out, no ``isLast``.

    Args:
        client: the client.
        path: the API path.
        items_key: the list's key (``comments``, ``worklogs``, ``histories`` ...).
        params: other query parameters.
        max_results: the page size to ask for (Jira may lower it); the endpoint's default when ``None``.

    Yields:
        Each page until ``startAt + len >= total`` or an empty page.
    """
    what = _describe(client, "GET", path)
    progress = _Progress(what)
    start = 0
    while True:
        body = await client.get(path, params=_query(params, startAt=start, maxResults=max_results))
        items = _items(body, items_key, what)
        progress.check(items)
        yield Page(items, body)
        total = body.get("total")
        if not items or (isinstance(total, int) and start + len(items) >= total):
            return
        start += len(items)


async def array_pages(
    client: JiraClient, path: str, *, params: Params | None = None, max_results: int | None = None
) -> AsyncIterator[Page]:
    """OFS-array: ``startAt``/``maxResults`` in, a bare JSON array out.

    Privacy filtering can drop users from a page, so a short page is not the end: only an empty one is (which
    costs one request more than the data needs).

    Yields:
        Each page, the final empty one included.
    """
    what = _describe(client, "GET", path)
    progress = _Progress(what)
    start = 0
    while True:
        body = await client.get(path, params=_query(params, startAt=start, maxResults=max_results))
        if not isinstance(body, list):
            raise PaginationError(f"{what} answered {type(body).__name__}, not the array this endpoint pages")
        progress.check(body)
        yield Page(body, body)
        if not body:
            return
        start += len(body)


async def offset_limit_pages(
    client: JiraClient,
    path: str,
    items_key: str = "records",
    *,
    params: Params | None = None,
    limit: int | None = None,
) -> AsyncIterator[Page]:
    """OFFSET-LIMIT (``auditing/record``): ``offset``/``limit`` in, ``{offset, limit, total, records}`` out.

    Audit records come newest first, so a record written during the walk shifts later pages by one: an item may
    come twice (callers deduplicate on its id), and none is skipped. Pass ``to`` in ``params`` to pin the window.

    Yields:
        Each page until ``offset + len >= total`` or an empty page.
    """
    what = _describe(client, "GET", path)
    progress = _Progress(what)
    offset = 0
    while True:
        body = await client.get(path, params=_query(params, offset=offset, limit=limit))
        records = _items(body, items_key, what)
        progress.check(records)
        yield Page(records, body)
        total = body.get("total")
        if not records or (isinstance(total, int) and offset + len(records) >= total):
            return
        offset += len(records)


# -- token style ---------------------------------------------------------------------------------------------------


async def token_pages(
    client: JiraClient,
    path: str,
    items_key: str,
    *,
    method: Literal["GET", "POST"] = "GET",
    params: Params | None = None,
    body: Mapping[str, Any] | None = None,
    max_results: int | None = None,
    decode: Decoder | None = None,
) -> AsyncIterator[Page]:
    """TOKEN: ``nextPageToken`` in the query (GET) or the body (POST) until Jira stops sending one.

    Args:
        client: the client.
        path: the API path (``/rest/api/3/search/jql``, ``/rest/api/3/changelog/bulkfetch``).
        items_key: the list's key (``issues``, ``issueChangeLogs``).
        method: ``GET`` (parameters and token in the query) or ``POST`` (in the JSON body).
        params: query parameters (GET) or extra query parameters (POST).
        body: the POST body, without the token.
        max_results: the page size to ask for; Jira may give fewer.
        decode: what to make of each page's body instead of its JSON (:data:`~jira_lab.client.Decoder`); it must
            keep the token, ``isLast`` and an ``items_key`` list.

    Yields:
        Each page until one has no ``nextPageToken`` (or says ``isLast: true``).

    Raises:
        PaginationError: a token came back twice, or a page says ``isLast: false`` but gives no token.
    """
    what = _describe(client, method, path)
    token: str | None = None
    seen: set[str] = set()
    while True:
        if method == "GET":
            query = _query(params, maxResults=max_results, nextPageToken=token)
            answer = await client.get(path, params=query, decode=decode)
        else:
            payload = _query(body, maxResults=max_results, nextPageToken=token)
            answer = await client.post(path, json=payload, params=params, decode=decode)
        items = _items(answer, items_key, what)
        yield Page(items, answer)
        next_token = answer.get("nextPageToken")
        is_last = answer.get("isLast")
        if not next_token:
            if is_last is False:
                raise PaginationError(f"{what} said isLast: false but sent no nextPageToken; the rest is unreachable")
            return
        if is_last is True:
            return
        if next_token in seen:
            raise PaginationError(f"{what} sent the same nextPageToken twice; stopped rather than loop forever")
        seen.add(next_token)
        token = str(next_token)


def search_pages(
    client: JiraClient,
    jql: str,
    *,
    fields: Sequence[str] = ("id",),
    expand: Sequence[str] = (),
    max_results: int | None = None,
    reconcile_issues: Sequence[int] = (),
    decode: Decoder | None = None,
) -> AsyncIterator[Page]:
    """The issues a bounded JQL query finds, through ``POST /rest/api/3/search/jql`` (TOKEN, token in the body).

    Args:
        client: the client.
        jql: a bounded JQL query.
        fields: the fields to return (Jira's default is ``id`` only).
        expand: expansions (``changelog``, ``renderedFields`` ...), sent comma-separated as Jira wants.
        max_results: issues per page to ask for; Jira gives fewer for heavy field sets.
        reconcile_issues: up to 50 issue ids to read after a write (sent on every page).
        decode: what to make of each page's body instead of its JSON (see :func:`token_pages`).
    """
    body: dict[str, Any] = {"jql": jql, "fields": list(fields)}
    if expand:
        body["expand"] = ",".join(expand)
    if reconcile_issues:
        body["reconcileIssues"] = list(reconcile_issues)
    return token_pages(
        client, "/rest/api/3/search/jql", "issues", method="POST", body=body, max_results=max_results, decode=decode
    )


# -- since style ---------------------------------------------------------------------------------------------------


async def since_pages(
    client: JiraClient, path: str, *, since: int = 0, params: Params | None = None
) -> AsyncIterator[Page]:
    """SINCE (``worklog/updated``, ``worklog/deleted``): change feeds paged by time, oldest first.

    ``since`` is inclusive, so the change at a page's ``until`` comes again at the top of the next page: it is left
    out the second time, and every change is yielded once. A page's ``nextPage`` is followed with only its path and
    query, under the client's base URL: Jira may build it on the site URL even for a request made through the
    gateway. Without ``nextPage``, the next request is ``since = until``.

    Args:
        client: the client.
        path: the feed's API path.
        since: epoch milliseconds to start from (inclusive).
        params: other query parameters (``expand=properties``).

    Yields:
        Each page; ``body["until"]`` of the last one is the cursor to resume from.

    Raises:
        PaginationError: a page that is not the last one does not move ``until`` past ``since`` (more changes at
            one millisecond than a page holds, or a server bug), since asking again would return the same page.
    """
    what = _describe(client, "GET", path)
    next_path: str = path
    query: dict[str, Any] | None = _query(params, since=since)
    current = since
    repeated: set[Any] = set()
    while True:
        body = await client.get(next_path, params=query)
        values = _items(body, "values", what)
        fresh = [v for v in values if not (_change_time(v) == current and _change_id(v) in repeated)]
        yield Page(fresh, body)
        if body.get("lastPage") is True or not values:
            return
        until = body.get("until")
        if not isinstance(until, int) or until <= current:
            raise PaginationError(
                f"{what} since={current} is not the last page but its until={until!r} does not move past since; "
                "stopped rather than ask for the same page again"
            )
        next_page = body.get("nextPage")
        if isinstance(next_page, str) and next_page:
            next_path, query = client.relative(next_page), None
            following = _since_of(next_path)
            current = following if following is not None else until
        else:
            next_path, query = path, _query(params, since=until)
            current = until
        repeated = {_change_id(v) for v in values if _change_time(v) == current}


def _change_time(value: Any) -> Any:
    return value.get("updatedTime") if isinstance(value, dict) else None


def _change_id(value: Any) -> Any:
    return value.get("worklogId") if isinstance(value, dict) else None


def _since_of(relative: str) -> int | None:
    raw = httpx.URL(relative).params.get("since")
    return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


# -- id lists ------------------------------------------------------------------------------------------------------


def chunked(ids: Iterable[T], size: int) -> Iterator[list[T]]:
    """``ids`` in lists of at most ``size``, in order, each id once (a repeated id would only waste room)."""
    if size < 1:
        raise ValueError(f"a chunk holds at least one id, not {size}")
    chunk: list[T] = []
    for item in dict.fromkeys(ids):
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def id_chunk_pages(
    client: JiraClient,
    path: str,
    ids: Iterable[Any],
    *,
    chunk_size: int,
    ids_key: str = "ids",
    items_key: str | None = None,
    body: Mapping[str, Any] | None = None,
    params: Params | None = None,
    window: int | None = None,
) -> AsyncIterator[Page]:
    """IDS: ``POST`` the ids in chunks; a chunk whose answer carries a ``nextPageToken`` is followed (in the body).

    Chunks are requested concurrently, up to ``window`` at a time (the client's concurrency cap by default), and
    their pages come out in chunk order.

    Args:
        client: the client.
        path: the bulk endpoint.
        ids: the ids to fetch.
        chunk_size: ids per request (at most what the endpoint accepts).
        ids_key: the body's id list key (``ids``, ``issueIdsOrKeys``).
        items_key: the list's key in an object answer; ``None`` for a bare-array answer.
        body: the rest of the body.
        params: query parameters (``expand``).
        window: chunks in flight at once.
    """
    what = _describe(client, "POST", path)
    chunks = list(chunked(ids, chunk_size))

    async def walk(chunk: list[Any]) -> list[Page]:
        payload: dict[str, Any] = {**(body or {}), ids_key: chunk}
        pages: list[Page] = []
        seen: set[str] = set()
        while True:
            answer = await client.post(path, json=payload, params=params)
            if items_key is None:
                if not isinstance(answer, list):
                    raise PaginationError(f"{what} answered {type(answer).__name__}, not an array")
                pages.append(Page(answer, answer))
                return pages
            pages.append(Page(_items(answer, items_key, what), answer))
            token = answer.get("nextPageToken")
            if not token:
                return pages
            if token in seen:
                raise PaginationError(f"{what} sent the same nextPageToken twice; stopped rather than loop forever")
            seen.add(token)
            payload = {**payload, "nextPageToken": token}

    async for pages in _in_order([partial(walk, chunk) for chunk in chunks], window or client.max_concurrency):
        for page in pages:
            yield page


async def _in_order(jobs: Sequence[Callable[[], Awaitable[T]]], window: int) -> AsyncIterator[T]:
    """Run ``jobs`` with at most ``window`` running at once; yield their results in job order."""
    pending: deque[asyncio.Future[T]] = deque()
    upcoming = iter(jobs)
    try:
        for job in upcoming:
            pending.append(asyncio.ensure_future(job()))
            if len(pending) >= window:
                break
        while pending:
            result = await pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append(asyncio.ensure_future(following()))
            yield result
    finally:
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _checked_chunk(chunk_size: int | None, maximum: int) -> int:
    size = maximum if chunk_size is None else chunk_size
    if not 1 <= size <= maximum:
        raise ValueError(f"chunk_size must be between 1 and {maximum}, the most this endpoint accepts; not {size}")
    return size


def comments_by_ids(
    client: JiraClient, ids: Iterable[int], *, expand: Sequence[str] = (), chunk_size: int | None = None
) -> AsyncIterator[Page]:
    """Comments by id through ``POST /rest/api/3/comment/list`` (1000 ids a request); hidden ones are left out."""
    return id_chunk_pages(
        client,
        "/rest/api/3/comment/list",
        ids,
        chunk_size=_checked_chunk(chunk_size, COMMENT_LIST_MAX_IDS),
        items_key="values",
        params={"expand": ",".join(expand)} if expand else None,
    )


def worklogs_by_ids(
    client: JiraClient, ids: Iterable[int], *, expand: Sequence[str] = (), chunk_size: int | None = None
) -> AsyncIterator[Page]:
    """Worklogs by id through ``POST /rest/api/3/worklog/list`` (1000 ids a request, a bare array answer)."""
    return id_chunk_pages(
        client,
        "/rest/api/3/worklog/list",
        ids,
        chunk_size=_checked_chunk(chunk_size, WORKLOG_LIST_MAX_IDS),
        items_key=None,
        params={"expand": ",".join(expand)} if expand else None,
    )


def issues_by_ids(
    client: JiraClient,
    ids_or_keys: Iterable[int | str],
    *,
    fields: Sequence[str] = ("*navigable",),
    expand: Sequence[str] = (),
    chunk_size: int | None = None,
) -> AsyncIterator[Page]:
    """Issues by id or key through ``POST /rest/api/3/issue/bulkfetch`` (100 a request); ``body["issueErrors"]``
    lists those Jira could not return."""
    body: dict[str, Any] = {"fields": list(fields)}
    if expand:
        body["expand"] = list(expand)
    return id_chunk_pages(
        client,
        "/rest/api/3/issue/bulkfetch",
        ids_or_keys,
        chunk_size=_checked_chunk(chunk_size, ISSUE_BULKFETCH_MAX_IDS),
        ids_key="issueIdsOrKeys",
        items_key="issues",
        body=body,
    )


def changelogs_by_issue_ids(
    client: JiraClient,
    ids_or_keys: Iterable[int | str],
    *,
    field_ids: Sequence[str] = (),
    max_results: int | None = None,
    chunk_size: int | None = None,
) -> AsyncIterator[Page]:
    """Changelog histories of many issues through ``POST /rest/api/3/changelog/bulkfetch``: 1000 issues a chunk,
    each chunk paged by a token in the body. One issue's histories can span pages: merge on ``issueId``."""
    body: dict[str, Any] = {}
    if field_ids:
        body["fieldIds"] = list(field_ids)
    if max_results is not None:
        body["maxResults"] = max_results
    return id_chunk_pages(
        client,
        "/rest/api/3/changelog/bulkfetch",
        ids_or_keys,
        chunk_size=_checked_chunk(chunk_size, CHANGELOG_BULKFETCH_MAX_ISSUES),
        ids_key="issueIdsOrKeys",
        items_key="issueChangeLogs",
        body=body,
    )
