"""A faithful simulated Jira Cloud site: data model, permission engine, REST API, served in process or on loopback."""

from __future__ import annotations

from jira_lab.sim.builder import SiteBuilder
from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.model import Holder, Site, Visibility
from jira_lab.sim.permissions import PermissionEngine

__all__ = ["Holder", "PermissionEngine", "SimCloud", "Site", "SiteBuilder", "Visibility"]
