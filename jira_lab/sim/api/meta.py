"""Instance metadata: server information and the caller's own profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jira_lab.sim.render import jira_time, user_json
from jira_lab.sim.routing import Call, JiraError, route


@route("GET", "/rest/api/3/serverInfo")
def server_info(call: Call) -> dict[str, Any]:
    now = datetime.fromtimestamp(call.cloud.clock(), UTC)
    return {
        "baseUrl": call.site_url,
        "displayUrl": call.site_url,
        "version": "1001.0.0-SNAPSHOT",
        "versionNumbers": [1001, 0, 0],
        "deploymentType": "Cloud",
        "buildNumber": 100280,
        "buildDate": "2026-06-10T00:00:00.000+0000",
        "serverTime": jira_time(now),
        "scmInfo": "32b43b28d3f0c3ee7f2535b395e90b205ac3bc6f",
        "serverTitle": call.site.title,
        "serverTimeZone": "Etc/UTC",
    }


@route("GET", "/rest/api/3/myself")
def myself(call: Call) -> dict[str, Any]:
    if call.caller is None:
        raise JiraError(401, "You are not authenticated. Authentication required to perform this operation.")
    return user_json(call, call.site.users[call.caller])
