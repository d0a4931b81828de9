"""The simulated REST API's route table: importing the modules of :mod:`jira_lab.sim.api` registers their routes."""

from __future__ import annotations

import importlib
import pkgutil

from jira_lab.sim import api
from jira_lab.sim.routing import ROUTES, Route


def load_routes() -> None:
    for module in pkgutil.iter_modules(api.__path__):
        importlib.import_module(f"{api.__name__}.{module.name}")


def api_routes() -> list[Route]:
    """Every route the simulator serves, in registration order."""
    load_routes()
    return list(ROUTES)
