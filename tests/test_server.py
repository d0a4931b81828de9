"""The simulated cloud over real HTTP on loopback."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from jira_lab.sim import Holder, SimCloud, SiteBuilder
from jira_lab.sim.server import bind, serve


@pytest.fixture
def cloud() -> SimCloud:
    b = SiteBuilder("looptest")
    ann = b.user("Ann Analyst", api_token="ann-token")
    devs = b.group("developers", members=[ann])
    scheme = b.permission_scheme("Default", grants=[("BROWSE_PROJECTS", Holder("group", devs))])
    eng = b.project("ENG", "Engineering", lead=ann, permission_scheme=scheme)
    b.issue(eng, "Über-issue ✓", reporter=ann)
    b.site.accounts["analyst"] = ann
    return SimCloud(b.site)


def test_serves_site_url_and_gateway_over_loopback(cloud: SimCloud) -> None:
    site = cloud.default_site
    ann = site.accounts["analyst"]
    with serve(cloud) as urls:
        assert urls.base.startswith("http://127.0.0.1:")
        basic = httpx.get(f"{urls.site_url()}/rest/api/3/myself", auth=("ann.analyst@looptest.example", "ann-token"))
        assert basic.status_code == 200
        assert basic.json()["accountId"] == ann
        # self links point at the served site, so a client can follow them
        assert basic.json()["self"].startswith(urls.site_url())

        token = cloud.mint_access_token(ann, ["read:jira-user"])
        gateway = httpx.get(f"{urls.gateway_url()}/rest/api/3/myself", headers={"Authorization": f"Bearer {token}"})
        assert gateway.status_code == 200
        resources = httpx.get(
            f"{urls.api_url}/oauth/token/accessible-resources", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert [r["id"] for r in resources] == [site.cloud_id]
        assert resources[0]["url"] == urls.site_url()
    # once stopped, the cloud links to Atlassian's hosts again
    assert cloud.site_url(site) == "https://looptest.atlassian.net"


def test_unicode_and_errors_survive_the_wire(cloud: SimCloud) -> None:
    with serve(cloud) as urls:
        missing = httpx.get(f"{urls.site_url()}/rest/api/3/myself", auth=("nobody@x", "wrong"))
        assert missing.status_code == 401
        assert missing.json()["errorMessages"]
        info = httpx.get(f"{urls.site_url()}/rest/api/3/serverInfo")
        assert info.headers["content-type"].startswith("application/json")


@pytest.mark.anyio
async def test_async_client_over_loopback(cloud: SimCloud) -> None:
    with serve(cloud) as urls:
        async with httpx.AsyncClient(base_url=urls.site_url()) as client:
            response = await client.get("/rest/api/3/serverInfo")
    assert response.json()["deploymentType"] == "Cloud"


def test_port_in_use_is_named_with_what_to_do() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*another port"):
            bind("127.0.0.1", port)
    finally:
        taken.close()


def test_refuses_non_loopback_hosts(cloud: SimCloud) -> None:
    with pytest.raises(ValueError, match="loopback"), serve(cloud, host="0.0.0.0"):
        pass


def test_settle_heap_puts_the_built_site_out_of_the_collectors_way() -> None:
    # in a child process: frozen objects are never freed, which this test session must not suffer
    script = (
        "import gc\n"
        "from jira_lab.sim.generator import generate_site\n"
        "from jira_lab.sim.server import settle_heap\n"
        "site = generate_site('demo', 0)\n"
        "tracked = len(gc.get_objects())\n"
        "settle_heap()\n"
        "print(tracked, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    tracked, frozen, left = map(int, done.stdout.split())
    assert tracked > 50_000  # the demo site alone is tens of thousands of objects the collector would walk
    assert frozen >= tracked * 0.9  # now frozen: never walked again
    assert left < tracked / 100
