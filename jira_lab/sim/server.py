"""Serve a :class:`~jira_lab.sim.cloud.SimCloud` over real HTTP on loopback, in a background thread.

::

    with serve(cloud) as urls:            # port 0: the OS picks a free port
        httpx.get(urls.site_url() + "/rest/api/3/serverInfo")

One uvicorn server answers for all three Atlassian hosts (site URL, API gateway, authorization server): their paths
do not overlap, so a client only needs its base URLs pointed at :attr:`SimURLs.base`.

``serve(cloud, latency=0.05)`` (or a seeded, jittered :class:`Latency`) makes every request wait as it would on its
way to a remote Jira: the wait is an ``await`` before the request reaches the cloud, outside the cloud's lock, so
concurrent requests wait at the same time, as on a real network, and a client with many requests in flight pays the
latency about once rather than once per request. In process (:meth:`SimCloud.transport`) nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.faults import answer_asgi
from jira_lab.sim.model import Site

Scope = dict[str, Any]
Message = dict[str, Any]


Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Latency:
    """The time each request takes to reach the simulated Jira: ``seconds``, give or take up to ``jitter``.

    With jitter, the delays are drawn from a generator seeded with ``seed``, in the order requests arrive, so a run
    with the same requests in the same order waits the same way.
    """

    seconds: float
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.jitter < 0:
            raise ValueError(f"latency and jitter must not be negative (got {self.seconds} s ± {self.jitter} s)")
        if self.jitter > self.seconds:
            raise ValueError(f"jitter ({self.jitter} s) must not exceed the latency ({self.seconds} s)")

    def delays(self) -> Iterator[float]:
        """The delays of successive requests."""
        rng = random.Random(self.seed)
        while True:
            yield self.seconds + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)


def as_latency(latency: Latency | float | None) -> Latency | None:
    """A latency given as seconds, as a :class:`Latency`; ``None`` and 0 mean none."""
    if isinstance(latency, int | float):
        latency = Latency(float(latency))
    return latency if latency is not None and latency.seconds > 0 else None


class ASGIAdapter:
    """The ASGI face of a :class:`SimCloud`: each request becomes an :class:`httpx.Request` for ``cloud.handle``.

    Args:
        cloud: the cloud that answers.
        latency: how long each request waits before the cloud sees it (seconds or a :class:`Latency`).
        sleep: how to wait; tests inject one that records the waits.
    """

    def __init__(
        self, cloud: SimCloud, *, latency: Latency | float | None = None, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.cloud = cloud
        self.latency = as_latency(latency)
        self._delays = self.latency.delays() if self.latency is not None else None
        self._sleep = sleep

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan is switched off; websockets are not part of Jira's API
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "127.0.0.1")
        raw_path = scope.get("raw_path") or scope["path"].encode()
        url = f"{scope['scheme']}://{host}{raw_path.decode('latin-1')}"
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        request = httpx.Request(scope["method"], url, headers=scope["headers"], content=bytes(body))
        if self._delays is not None:
            # awaited before cloud.handle takes the cloud's lock, so concurrent requests wait together
            await self._sleep(next(self._delays))
        # faults injected in process (resets, cut bodies) become real ones on the wire
        await answer_asgi(self.cloud.handle, request, send)


@dataclass(frozen=True, slots=True)
class SimURLs:
    """Where a served cloud answers."""

    base: str
    cloud: SimCloud

    def site_url(self, site: Site | None = None) -> str:
        """Base URL of the site's own REST API (Basic auth), like ``https://<name>.atlassian.net``."""
        return self.cloud.site_url(site or self.cloud.default_site)

    def gateway_url(self, site: Site | None = None) -> str:
        """Base URL for 3LO calls to the site, like ``https://api.atlassian.com/ex/jira/<cloudId>``."""
        return self.cloud.gateway_url(site or self.cloud.default_site)

    @property
    def api_url(self) -> str:
        """The API gateway's origin (``https://api.atlassian.com``): accessible-resources lives here."""
        return self.base

    @property
    def auth_url(self) -> str:
        """The authorization server's origin (``https://auth.atlassian.com``)."""
        return self.base


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening, so callers wait on an event rather than poll."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or an error that says what to do when the port is taken."""
    # proto must say TCP: asyncio only disables Nagle (TCP_NODELAY) on sockets whose proto is IPPROTO_TCP, and
    # without it each answer (headers, then body) waits ~40 ms for the client's delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        hint = "choose another port, or 0 for any free one"
        raise OSError(error.errno, f"cannot listen on {host}:{port} ({error.strerror}); {hint}") from error
    sock.listen(128)
    return sock


def settle_heap() -> None:
    """For a process that serves one site until it ends: put what is built so far (the site) out of the collector's way.

    A large site is millions of objects that live as long as the process. CPython's full collections walk every one
    of them, again and again while requests allocate their answers; frozen, they are never walked (a fifth of the
    server's CPU on the ``large`` site). Not for a process that goes on to build other things and drop them: frozen
    objects are never freed.
    """
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def serve(
    cloud: SimCloud,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 10.0,
    latency: Latency | float | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Iterator[SimURLs]:
    """Serve ``cloud`` on ``host:port`` until the block ends; ``self`` links and site URLs point at the server.

    Args:
        latency: added to every request (seconds, or a seeded, jittered :class:`Latency`); default none.
        sleep: how the server waits out the latency (tests inject a recording one).
    """
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("the simulated cloud is served on loopback only")
    adapter = ASGIAdapter(cloud, latency=latency, sleep=sleep)
    sock = bind(host, port)
    base = f"http://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(adapter, lifespan="off", access_log=False, log_level="warning")
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="jira-lab-sim", daemon=True)
    previous_base, cloud.public_base = cloud.public_base, base
    thread.start()
    try:
        if not server.ready.wait(timeout):
            raise RuntimeError(f"the simulated cloud did not start listening on {base} within {timeout} s")
        yield SimURLs(base, cloud)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        cloud.public_base = previous_base
