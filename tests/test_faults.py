"""Transient faults in the simulator: scripted and seeded 5xx, dropped connections, cut bodies, slow answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.faults import (
    DELAY_EXTENSION,
    Fault,
    Faults,
    RandomFault,
    ScriptedFault,
    answer_asgi,
    api_path,
)
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Site
from jira_lab.sim.server import bind

EMAIL, API_TOKEN = "ann.admin@faultlab.example", "ann-token"


def faultlab() -> tuple[Site, str]:
    b = SiteBuilder("faultlab")
    ann = b.user("Ann Admin", api_token=API_TOKEN)
    return b.site, ann


def client_for(cloud: SimCloud, **kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=cloud.transport(), base_url=cloud.site_url(cloud.default_site), **kwargs)


def clean_answer(path: str) -> httpx.Response:
    """The same request answered by a cloud without faults, to compare against."""
    site, _ = faultlab()
    with client_for(SimCloud(site, clock=lambda: 1_780_000_000.0), auth=(EMAIL, API_TOKEN)) as client:
        return client.get(path)


def cloud_with(*scripted: ScriptedFault, **kwargs: Any) -> SimCloud:
    site, _ = faultlab()
    return SimCloud(site, clock=lambda: 1_780_000_000.0, faults=Faults(scripted=scripted), **kwargs)


# -- scripts ---------------------------------------------------------------------------------------------------------


def test_a_scripted_fault_hits_exactly_the_request_it_names() -> None:
    cloud = cloud_with(ScriptedFault("GET", "/rest/api/3/serverInfo", 3, Fault.server_error(503)))
    with client_for(cloud, auth=(EMAIL, API_TOKEN)) as client:
        statuses = [
            client.get("/rest/api/3/serverInfo").status_code,  # 1st serverInfo
            client.get("/rest/api/3/myself").status_code,  # other paths do not count
            client.post("/rest/api/3/serverInfo").status_code,  # nor other methods
            client.get("/rest/api/3/serverInfo").status_code,  # 2nd
            client.get("/rest/api/3/serverInfo").status_code,  # 3rd: fails
            client.get("/rest/api/3/serverInfo").status_code,  # 4th: a script fires once
        ]
    assert statuses == [200, 200, 405, 200, 503, 200]
    assert cloud.fault_injector is not None
    (injected,) = cloud.fault_injector.injected
    assert (injected.sequence, injected.method, injected.path) == (5, "GET", "/rest/api/3/serverInfo")


def test_scripts_match_spec_templates_through_any_prefix() -> None:
    site, ann = faultlab()
    template = "/rest/api/3/issue/{issueIdOrKey}/comment"
    cloud = SimCloud(site, faults=Faults(scripted=(ScriptedFault("*", template, 2, Fault.server_error(502)),)))
    token = cloud.mint_access_token(ann, ["read:jira-work"])
    with httpx.Client(transport=cloud.transport(), headers={"Authorization": f"Bearer {token}"}) as client:
        first = client.get(f"{cloud.gateway_url(site)}/rest/api/3/issue/ENG-1/comment")
        second = client.get(f"https://api.atlassian.com/site/{site.name}/rest/api/3/issue/10001/comment")
        third = client.get(f"{cloud.gateway_url(site)}/rest/api/3/issue/ENG-1/comment")
    assert second.status_code == 502
    assert first.status_code != 502 and third.status_code != 502
    assert second.json() == {"code": 502, "message": "Bad Gateway"}  # the gateway's error shape


def test_api_path_strips_the_gateway_and_site_prefixes() -> None:
    assert api_path("/ex/jira/abc-123/rest/api/3/myself") == "/rest/api/3/myself"
    assert api_path("/site/demo/rest/api/3/myself") == "/rest/api/3/myself"
    assert api_path("/rest/api/3/myself") == "/rest/api/3/myself"


def test_server_errors_look_like_jira_and_some_503s_say_when_to_retry() -> None:
    cloud = cloud_with(
        ScriptedFault("GET", "/rest/api/3/serverInfo", 1, Fault.server_error(503, retry_after=7)),
        ScriptedFault("GET", "/rest/api/3/serverInfo", 2, Fault.server_error(500)),
        ScriptedFault("GET", "/rest/api/3/serverInfo", 3, Fault.server_error(503)),
    )
    with client_for(cloud) as client:
        unavailable, internal, bare = (client.get("/rest/api/3/serverInfo") for _ in range(3))
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "7"
    assert unavailable.json() == {"code": 503, "message": "Service Unavailable"}
    assert internal.status_code == 500
    assert internal.json()["errorMessages"] == ["Internal server error"]
    assert bare.status_code == 503 and "Retry-After" not in bare.headers


def test_fault_values_are_checked() -> None:
    with pytest.raises(ValueError):
        Fault.server_error(429)
    with pytest.raises(ValueError):
        Fault.truncated_body(1.0)
    with pytest.raises(ValueError):
        ScriptedFault("GET", "/rest/api/3/myself", 0, Fault.disconnect())
    with pytest.raises(ValueError):
        RandomFault(1.2, Fault.disconnect())


# -- dropped connections -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.connection_reset(), httpx.ReadError), (Fault.disconnect(), httpx.RemoteProtocolError)],
)
def test_sync_clients_see_dropped_connections_as_transport_errors(fault: Fault, error: type[Exception]) -> None:
    cloud = cloud_with(ScriptedFault("GET", "/rest/api/3/myself", 1, fault))
    with client_for(cloud, auth=(EMAIL, API_TOKEN)) as client:
        with pytest.raises(error) as raised:
            client.get("/rest/api/3/myself")
        assert isinstance(raised.value, httpx.TransportError)
        assert raised.value.request.url.path == "/rest/api/3/myself"
        assert client.get("/rest/api/3/myself").status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.connection_reset(), httpx.ReadError), (Fault.disconnect(), httpx.RemoteProtocolError)],
)
async def test_async_clients_see_dropped_connections_as_transport_errors(fault: Fault, error: type[Exception]) -> None:
    cloud = cloud_with(ScriptedFault("GET", "/rest/api/3/myself", 1, fault))
    async with httpx.AsyncClient(
        transport=cloud.transport(), base_url=cloud.site_url(cloud.default_site), auth=(EMAIL, API_TOKEN)
    ) as client:
        with pytest.raises(error):
            await client.get("/rest/api/3/myself")
        assert (await client.get("/rest/api/3/myself")).status_code == 200


def test_a_drop_before_the_handler_leaves_no_trace_and_one_after_it_was_handled() -> None:
    site, ann = faultlab()
    plan = Faults(
        scripted=(
            ScriptedFault("GET", "/rest/api/3/myself", 1, Fault.connection_reset()),
            ScriptedFault("GET", "/rest/api/3/myself", 2, Fault.server_error(503)),
            ScriptedFault("GET", "/rest/api/3/myself", 3, Fault.connection_reset(after_handler=True)),
        )
    )
    # the quota's ledger shows which requests reached Jira: a handled one was charged its points
    cloud = SimCloud(site, clock=lambda: 1_780_000_000.0, limits=RateLimits(), faults=plan)
    limiter = cloud.rate_limiter
    assert limiter is not None
    token = cloud.mint_access_token(ann, ["read:jira-user"])
    with httpx.Client(
        transport=cloud.transport(), base_url=cloud.gateway_url(site), headers={"Authorization": f"Bearer {token}"}
    ) as gateway:
        with pytest.raises(httpx.ReadError):
            gateway.get("/rest/api/3/myself")
        assert limiter.points_used() == 0
        assert gateway.get("/rest/api/3/myself").status_code == 503
        assert limiter.points_used() == 0
        with pytest.raises(httpx.ReadError):
            gateway.get("/rest/api/3/myself")
        assert limiter.points_used() == 1 + 2  # the user was returned, then the connection went


# -- cut bodies ------------------------------------------------------------------------------------------------------


def test_a_cut_body_with_the_full_length_declared_fails_to_read() -> None:
    whole = clean_answer("/rest/api/3/myself").content
    cloud = cloud_with(ScriptedFault("GET", "/rest/api/3/myself", 1, Fault.truncated_body(0.5)))
    with client_for(cloud, auth=(EMAIL, API_TOKEN)) as client:
        with pytest.raises(httpx.RemoteProtocolError, match=f"expected {len(whole)}"):
            client.get("/rest/api/3/myself")
        with client.stream("GET", "/rest/api/3/myself") as intact:
            assert intact.read() == whole


@pytest.mark.anyio
async def test_async_clients_fail_to_read_a_cut_body_too() -> None:
    cloud = cloud_with(ScriptedFault("GET", "/rest/api/3/myself", 1, Fault.truncated_body(0.3)))
    async with httpx.AsyncClient(
        transport=cloud.transport(), base_url=cloud.site_url(cloud.default_site), auth=(EMAIL, API_TOKEN)
    ) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/rest/api/3/myself")


def test_a_cut_body_with_a_matching_length_is_broken_json() -> None:
    whole = clean_answer("/rest/api/3/myself").content
    fault = Fault.truncated_body(0.5, declared_length=False)
    cloud = cloud_with(ScriptedFault("GET", "/rest/api/3/myself", 1, fault))
    with client_for(cloud, auth=(EMAIL, API_TOKEN)) as client:
        cut = client.get("/rest/api/3/myself")
    assert cut.status_code == 200
    assert 0 < len(cut.content) < len(whole)
    assert whole.startswith(cut.content)
    assert cut.headers["content-length"] == str(len(cut.content))
    with pytest.raises(json.JSONDecodeError):
        cut.json()


# -- slow answers ----------------------------------------------------------------------------------------------------


def test_a_slow_answer_times_out_a_client_with_a_shorter_read_timeout() -> None:
    cloud = cloud_with(
        ScriptedFault("GET", "/rest/api/3/serverInfo", 1, Fault.slow(30.0)),
        ScriptedFault("GET", "/rest/api/3/serverInfo", 2, Fault.slow(0.5)),
    )
    with client_for(cloud, timeout=httpx.Timeout(5.0)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/rest/api/3/serverInfo")
        patient = client.get("/rest/api/3/serverInfo")
    assert patient.status_code == 200
    assert patient.extensions[DELAY_EXTENSION] == 0.5


# -- random faults ---------------------------------------------------------------------------------------------------


def sequence_of_faults(seed: int, paths: list[str]) -> list[int]:
    site, _ = faultlab()
    plan = Faults(random=(RandomFault(0.3, Fault.server_error(502)),), seed=seed)
    cloud = SimCloud(site, faults=plan)
    with client_for(cloud) as client:
        statuses = [client.get(path).status_code for path in paths]
    assert cloud.fault_injector is not None
    assert [i.sequence for i in cloud.fault_injector.injected] == [n for n, s in enumerate(statuses, 1) if s == 502]
    return [i.sequence for i in cloud.fault_injector.injected]


def test_random_faults_are_replayed_by_their_seed() -> None:
    paths = ["/rest/api/3/serverInfo"] * 100
    first = sequence_of_faults(11, paths)
    assert first == sequence_of_faults(11, paths)
    assert 0 < len(first) < 100
    assert first != sequence_of_faults(12, paths)


def test_random_faults_without_a_path_only_touch_the_rest_api() -> None:
    site, ann = faultlab()
    cloud = SimCloud(site, faults=Faults(random=(RandomFault(1.0, Fault.server_error(503)),)))
    token = cloud.mint_access_token(ann, ["read:jira-user"])
    with client_for(cloud, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("https://api.atlassian.com/oauth/token/accessible-resources").status_code == 200
        assert client.get("/rest/api/3/serverInfo").status_code == 503


def test_a_random_rule_can_be_narrowed_to_one_endpoint() -> None:
    site, _ = faultlab()
    rule = RandomFault(1.0, Fault.server_error(500), method="GET", path="/rest/api/3/myself")
    cloud = SimCloud(site, faults=Faults(random=(rule,)))
    with client_for(cloud, auth=(EMAIL, API_TOKEN)) as client:
        assert client.get("/rest/api/3/serverInfo").status_code == 200
        assert client.get("/rest/api/3/myself").status_code == 500


# -- over loopback -------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


@pytest.mark.anyio
async def test_answer_asgi_leaves_a_dropped_or_cut_answer_unfinished() -> None:
    cloud = cloud_with(
        ScriptedFault("GET", "/rest/api/3/serverInfo", 1, Fault.disconnect()),
        ScriptedFault("GET", "/rest/api/3/serverInfo", 2, Fault.truncated_body(0.5)),
    )
    request = httpx.Request("GET", "https://faultlab.atlassian.net/rest/api/3/serverInfo")
    dropped, cut, clean = Recorder(), Recorder(), Recorder()
    await answer_asgi(cloud.handle, request, dropped)
    await answer_asgi(cloud.handle, request, cut)
    await answer_asgi(cloud.handle, request, clean)
    # a start announcing a body that never comes: the server closes the connection
    assert [m["type"] for m in dropped.messages] == ["http.response.start"]
    assert (b"content-length", b"1") in dropped.messages[0]["headers"]
    whole = clean.messages[1]["body"]
    assert cut.messages[1]["more_body"] is True
    assert whole.startswith(cut.messages[1]["body"]) and len(cut.messages[1]["body"]) < len(whole)
    assert (b"content-length", str(len(whole)).encode()) in cut.messages[0]["headers"]
    assert clean.messages[0]["status"] == 200 and not clean.messages[1].get("more_body", False)


class ReadyServer(uvicorn.Server):
    """Says when it listens, so the test waits on an event instead of polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def loopback(cloud: SimCloud) -> Iterator[str]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        url = f"https://faultlab.atlassian.net{scope['path']}"
        await answer_asgi(cloud.handle, httpx.Request(scope["method"], url, headers=scope["headers"]), send)

    sock = bind("127.0.0.1", 0)
    server = ReadyServer(uvicorn.Config(app, lifespan="off", access_log=False, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(10)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_over_loopback_a_dropped_connection_is_a_transport_error() -> None:
    cloud = cloud_with(
        ScriptedFault("GET", "/rest/api/3/serverInfo", 1, Fault.connection_reset()),
        ScriptedFault("GET", "/rest/api/3/serverInfo", 2, Fault.truncated_body(0.5)),
    )
    with loopback(cloud) as base:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{base}/rest/api/3/serverInfo")
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{base}/rest/api/3/serverInfo")
        assert httpx.get(f"{base}/rest/api/3/serverInfo").json()["deploymentType"] == "Cloud"
