"""The API gateway checks every route's OAuth scopes exactly as the OpenAPI spec lists them.

For each route (the scope sets are read from the spec here, not from ``operations.json``): a token without scopes
gets the gateway's 401 ``scope does not match`` with ``X-Failure-Category: FAILURE_CLIENT_SCOPE_CHECK`` (unless the
spec lists no scope at all); a token holding exactly the classic scopes, or exactly the granular ones, gets through
to the operation; a token missing any one of them is stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from spec import ContractWorld, assert_response_matches_spec, fill_template, spec_scopes
from test_contract import NOW, Req, requests_for, route_keys

from jira_lab.sim import SimCloud

SCOPE_MISMATCH = {"code": 401, "message": "Unauthorized; scope does not match"}
ROUTES = route_keys()


def _scopes(key: str) -> tuple[frozenset[str], frozenset[str]]:
    found = spec_scopes(*key.split(" ", 1))
    return found.classic, found.granular


SCOPED = [key for key in ROUTES if any(_scopes(key))]
UNSCOPED = [key for key in ROUTES if not any(_scopes(key))]
CLASSIC = [key for key in ROUTES if _scopes(key)[0]]
GRANULAR = [key for key in ROUTES if _scopes(key)[1]]
MISSING_CLASSIC = [(key, scope) for key in CLASSIC for scope in sorted(_scopes(key)[0])]
MISSING_GRANULAR = [(key, scope) for key in GRANULAR for scope in sorted(_scopes(key)[1])]

Send = Callable[[str, frozenset[str]], httpx.Response]


@pytest.fixture(scope="module")
def send(contract_world: ContractWorld) -> Iterator[Send]:
    """Call a route's first contract request through the gateway as the analyst, with a token of exactly ``scopes``."""
    cloud = SimCloud(contract_world.site, clock=NOW.timestamp)
    client = httpx.Client(transport=cloud.transport(), base_url=cloud.gateway_url(contract_world.site))

    def call(key: str, scopes: frozenset[str]) -> httpx.Response:
        method, template = key.split(" ", 1)
        req = first_request(key, contract_world)
        token = cloud.mint_access_token(contract_world.analyst.account_id, scopes)
        return client.request(
            method,
            fill_template(template, req.path),
            params=req.params or None,
            json=req.body,
            headers={"Authorization": f"Bearer {token}"},
        )

    yield call
    client.close()


def first_request(key: str, world: ContractWorld) -> Req:
    """The contract table's first (successful, for the analyst) request for the route."""
    return requests_for(key, world)[0]


def assert_scope_mismatch(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == SCOPE_MISMATCH
    assert response.headers["X-Failure-Category"] == "FAILURE_CLIENT_SCOPE_CHECK"


def assert_passed_scope_check(key: str, response: httpx.Response, world: ContractWorld) -> None:
    """The operation itself answered, as it answers the analyst: the scope check let the request through."""
    method, template = key.split(" ", 1)
    assert "X-Failure-Category" not in response.headers
    assert response.status_code == first_request(key, world).status, response.text[:300]
    assert_response_matches_spec(method, template, response)


def test_every_route_is_checked() -> None:
    assert sorted(SCOPED + UNSCOPED) == sorted(ROUTES)
    assert UNSCOPED, "serverInfo lists no scope at all; it should be served"


@pytest.mark.parametrize("key", SCOPED)
def test_a_token_without_scopes_is_refused(key: str, send: Send) -> None:
    assert_scope_mismatch(send(key, frozenset()))


@pytest.mark.parametrize("key", UNSCOPED)
def test_routes_listing_no_scope_take_a_token_without_scopes(
    key: str, send: Send, contract_world: ContractWorld
) -> None:
    assert_passed_scope_check(key, send(key, frozenset()), contract_world)


@pytest.mark.parametrize("key", CLASSIC)
def test_exactly_the_classic_scopes_pass(key: str, send: Send, contract_world: ContractWorld) -> None:
    assert_passed_scope_check(key, send(key, _scopes(key)[0]), contract_world)


@pytest.mark.parametrize("key", GRANULAR)
def test_exactly_the_granular_scopes_pass(key: str, send: Send, contract_world: ContractWorld) -> None:
    assert_passed_scope_check(key, send(key, _scopes(key)[1]), contract_world)


@pytest.mark.parametrize(("key", "dropped"), MISSING_CLASSIC)
def test_missing_one_classic_scope_is_refused(key: str, dropped: str, send: Send) -> None:
    classic, _ = _scopes(key)
    assert_scope_mismatch(send(key, classic - {dropped}))


@pytest.mark.parametrize(("key", "dropped"), MISSING_GRANULAR)
def test_missing_one_granular_scope_is_refused(key: str, dropped: str, send: Send) -> None:
    classic, granular = _scopes(key)
    # classic scopes are never granular ones, so the remaining granular scopes cannot stand in for the classic set
    # (an operation listing no classic scope, like POST /permissions/check, has no classic way in at all)
    assert classic.isdisjoint(granular)
    assert_scope_mismatch(send(key, granular - {dropped}))


@pytest.mark.parametrize("key", CLASSIC)
def test_classic_scopes_with_a_partial_granular_set_pass(key: str, send: Send, contract_world: ContractWorld) -> None:
    classic, granular = _scopes(key)
    assert_passed_scope_check(key, send(key, classic | set(sorted(granular)[:1])), contract_world)
