"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
from spec import ContractWorld
from spec import contract_world as build_contract_world


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def contract_world() -> ContractWorld:
    """The site every route is exercised on, with an all-seeing analyst and a restricted user (see spec.py).

    Shared by the whole session: read it, never change it (build your own site for a test that mutates one).
    """
    return build_contract_world()
