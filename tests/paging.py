"""Walkers of the simulated site's paged answers: each follows the pages to the end, checking every page.

Every page must match the spec; the paging rules each walker checks besides are in its docstring.
"""

from __future__ import annotations

from typing import Any

import httpx
from spec import assert_response_matches_spec


def walk_array(client: httpx.Client, template: str, page_size: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of an offset-paged bare array (``users/search``), requesting ``page_size`` at a time.

    Stops at the first empty page, as clients must; each page is checked against the spec.
    """
    items: list[dict[str, Any]] = []
    while True:
        response = client.get(template, params={**params, "startAt": len(items), "maxResults": page_size})
        page = assert_response_matches_spec("GET", template, response)
        assert response.status_code == 200, response.text
        assert len(page) <= page_size
        if not page:
            return items
        items.extend(page)


def walk_pages(
    client: httpx.Client, template: str, page_size: int, path: str | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every value of a ``PageBean`` endpoint, following ``nextPage`` links until ``isLast``.

    Checks each page against the spec and against the paging contract: ``startAt`` advances by the values received,
    ``total`` stays the same, ``nextPage`` is given exactly when the page is not the last.
    """
    values: list[dict[str, Any]] = []
    url: str = path or template
    request_params: dict[str, Any] | None = {**params, "maxResults": page_size}
    total: int | None = None
    while True:
        response = client.get(url, params=request_params)
        assert response.status_code == 200, response.text
        page = assert_response_matches_spec("GET", template, response)
        assert page["startAt"] == len(values)
        assert len(page["values"]) <= page_size
        total = page["total"] if total is None else total
        assert page["total"] == total
        values.extend(page["values"])
        if page["isLast"]:
            assert "nextPage" not in page
            assert len(values) == total
            return values
        assert page["values"], "a page that is not the last must not be empty"
        url, request_params = page["nextPage"], None


def walk_issue_items(
    client: httpx.Client, kind: str, issue: str, page_size: int, *, check_max_results: bool = False, **params: Any
) -> list[dict[str, Any]]:
    """Every page of an issue's comments or worklogs (``kind``: ``comment`` or ``worklog``), ``page_size`` at a time.

    Each page must match the spec and start where the items received so far end; with ``check_max_results``, its
    ``maxResults`` must be the size asked for. Stops at an empty page or once ``total`` items have come.
    """
    template = f"/rest/api/3/issue/{{issueIdOrKey}}/{kind}"
    pages: list[dict[str, Any]] = []
    start_at = 0
    while True:
        response = client.get(
            f"/rest/api/3/issue/{issue}/{kind}", params={"startAt": start_at, "maxResults": page_size, **params}
        )
        assert response.status_code == 200, response.text
        page = assert_response_matches_spec("GET", template, response)
        assert page["startAt"] == start_at
        if check_max_results:
            assert page["maxResults"] == page_size
        pages.append(page)
        items = page[f"{kind}s"]
        start_at += len(items)
        if not items or start_at >= page["total"]:
            return pages
