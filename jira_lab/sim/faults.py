"""Transient faults of Jira Cloud for the simulator: 5xx answers, dropped connections, cut bodies, slow answers.

A :class:`Faults` plan says which requests go wrong, either by script ("the 3rd ``GET /rest/api/3/search/jql``
gets a 503") or by rate ("2 % of requests get a 502", drawn from a seed), so a loader test can kill a load at an exact
point and a soak test can be replayed. :class:`FaultInjector` applies it in front of the whole cloud, like the network
and Atlassian's edge: a request is counted when it arrives, before authentication or rate limits, and a request that
fails before reaching Jira consumes no burst token and no quota points.

What a client sees, in process (:meth:`SimCloud.transport`, sync and async alike) and over loopback
(:func:`answer_asgi`):

* ``server_error``: a 500 in Jira's ``ErrorCollection`` shape, or a 502/503/504 in the gateway's
  ``{"code", "message"}`` shape; a 503 may carry ``Retry-After`` as Atlassian documents for resource limits;
* ``connection_reset`` / ``disconnect``: in process, :class:`httpx.ReadError` ("connection reset by peer") or
  :class:`httpx.RemoteProtocolError` ("server disconnected without sending a response") raised from the transport;
  over loopback the connection is closed after the status line, which httpx reports as
  :class:`httpx.RemoteProtocolError`;
* ``truncated_body``: the body is cut. With ``declared_length`` the ``Content-Length`` still announces the whole
  body, and reading it fails with :class:`httpx.RemoteProtocolError` as on a real connection; without it the cut
  body arrives as a complete 2xx answer whose JSON does not parse;
* ``slow``: the answer takes ``delay`` seconds. In process nothing sleeps: a client whose read timeout is shorter
  gets :class:`httpx.ReadTimeout`, any other gets the answer at once (the delay is in ``response.extensions``);
  over loopback the server really waits.

Faults never corrupt the site: a fault either stops the request before any handler runs, or lets the handler finish
and then spoils only the answer (``after_handler`` drops, cut bodies, slow answers), so a write either happened
completely or not at all, exactly as with a real lost response.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from jira_lab.sim.routing import _compile

FaultKind = Literal["server_error", "connection_reset", "disconnect", "truncated_body", "slow"]

#: ``response.extensions`` key holding the delay of a ``slow`` answer, in seconds
DELAY_EXTENSION = "jira_lab.sim.delay"

_DROPS = ("connection_reset", "disconnect")
_GATEWAY_MESSAGES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True, slots=True)
class Fault:
    """One way a request goes wrong; build it with the class methods."""

    kind: FaultKind
    status: int = 503
    retry_after: int | None = None
    #: drops only: the server handled the request (a write took effect) before the connection went
    after_handler: bool = False
    #: truncated bodies: the share of the body delivered
    fraction: float = 0.5
    #: truncated bodies: ``Content-Length`` announces the whole body (a transport error) or only the cut one
    declared_length: bool = True
    #: slow answers: seconds the answer takes
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "server_error" and not 500 <= self.status <= 599:
            raise ValueError(f"a server error has a 5xx status, not {self.status}")
        if not 0 <= self.fraction < 1:
            raise ValueError("a truncated body keeps a share of it in [0, 1)")
        if self.delay < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("delays and Retry-After are non-negative seconds")

    @classmethod
    def server_error(cls, status: int = 503, *, retry_after: int | None = None) -> Fault:
        """A 5xx answer; ``retry_after`` adds the ``Retry-After`` header some 503s carry."""
        return cls("server_error", status=status, retry_after=retry_after)

    @classmethod
    def connection_reset(cls, *, after_handler: bool = False) -> Fault:
        """The connection is reset (``httpx.ReadError``); ``after_handler``: once the request was handled."""
        return cls("connection_reset", after_handler=after_handler)

    @classmethod
    def disconnect(cls, *, after_handler: bool = False) -> Fault:
        """The server closes the connection without answering (``httpx.RemoteProtocolError``)."""
        return cls("disconnect", after_handler=after_handler)

    @classmethod
    def truncated_body(cls, fraction: float = 0.5, *, declared_length: bool = True) -> Fault:
        """Only ``fraction`` of the answer's body arrives."""
        return cls("truncated_body", fraction=fraction, declared_length=declared_length)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """The answer takes ``delay`` seconds (never slept on in process)."""
        return cls("slow", delay=delay)


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    """The ``nth`` request (counting from 1) for ``method`` and ``path`` gets ``fault``.

    ``path`` is an API path without the gateway or site prefix, literal (``/rest/api/3/search/jql``) or a spec
    template (``/rest/api/3/issue/{issueIdOrKey}/comment``); ``method`` ``"*"`` matches any method.
    """

    method: str
    path: str
    nth: int
    fault: Fault

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise ValueError("requests are counted from 1")


@dataclass(frozen=True, slots=True)
class RandomFault:
    """Each matching request gets ``fault`` with ``probability``; ``path=None`` matches any ``/rest/`` request."""

    probability: float
    fault: Fault
    method: str = "*"
    path: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise ValueError("a probability is between 0 and 1")


@dataclass(frozen=True, slots=True)
class Faults:
    """A fault plan: scripted faults first, then random ones; the first that applies to a request wins.

    Args:
        scripted: faults for exact requests.
        random: faults drawn per request from ``seed``; every matching rule draws on every matching request, so
            the same requests in the same order always meet the same faults.
        seed: seeds the draws.
    """

    scripted: tuple[ScriptedFault, ...] = ()
    random: tuple[RandomFault, ...] = ()
    seed: int = 0


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault that was applied: to the ``sequence``-th request the cloud received (from 1)."""

    sequence: int
    method: str
    path: str
    fault: Fault


def api_path(path: str) -> str:
    """A request path without its gateway (``/ex/jira/{cloudId}``) or site (``/site/{name}``) prefix."""
    for prefix in ("/ex/jira/", "/site/"):
        if path.startswith(prefix):
            return "/" + path[len(prefix) :].partition("/")[2]
    return path


def _path_pattern(template: str) -> re.Pattern[str]:
    # the router's own compiler, so a script matches a path exactly as the route it names does
    return _compile(template)


def _matches(pattern: re.Pattern[str] | None, wanted_method: str, method: str, path: str) -> bool:
    if wanted_method != "*" and wanted_method.upper() != method:
        return False
    return path.startswith("/rest/") if pattern is None else bool(pattern.match(path))


class FaultInjector:
    """The live state of a :class:`Faults` plan for one simulated cloud; :attr:`injected` logs what it did.

    Not thread-safe on its own: :class:`SimCloud` calls it under its lock.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.injected: list[InjectedFault] = []
        self._received = 0
        self._scripted_seen = [0] * len(faults.scripted)
        self._random = random.Random(faults.seed)
        self._scripted_patterns = [_path_pattern(rule.path) for rule in faults.scripted]
        self._random_patterns = [None if rule.path is None else _path_pattern(rule.path) for rule in faults.random]

    def intercept(self, request: httpx.Request, answer: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
        """Answer ``request`` through ``answer``, or fail it as the plan says.

        Raises:
            httpx.TransportError: for dropped connections and timed-out slow answers, as a real transport would.
        """
        fault = self._choose(request)
        if fault is None:
            return answer(request)
        if fault.kind == "server_error":
            return _server_error(fault)
        if fault.kind in _DROPS and not fault.after_handler:
            raise _dropped(fault, request)
        response = answer(request)
        if fault.kind in _DROPS:
            raise _dropped(fault, request)
        if fault.kind == "truncated_body":
            return _truncated(response, fault)
        return _slowed(request, response, fault)

    def _choose(self, request: httpx.Request) -> Fault | None:
        self._received += 1
        method, path = request.method, api_path(request.url.path)
        chosen: Fault | None = None
        for index, rule in enumerate(self.faults.scripted):
            if _matches(self._scripted_patterns[index], rule.method, method, path):
                self._scripted_seen[index] += 1
                if chosen is None and self._scripted_seen[index] == rule.nth:
                    chosen = rule.fault
        for pattern, random_rule in zip(self._random_patterns, self.faults.random, strict=True):
            if _matches(pattern, random_rule.method, method, path):
                hit = self._random.random() < random_rule.probability
                if chosen is None and hit:
                    chosen = random_rule.fault
        if chosen is not None:
            self.injected.append(InjectedFault(self._received, method, path, chosen))
        return chosen


# -- what each fault does to the answer -----------------------------------------------------------------------------


def _server_error(fault: Fault) -> httpx.Response:
    body: dict[str, Any]
    if fault.status in _GATEWAY_MESSAGES:
        body = {"code": fault.status, "message": _GATEWAY_MESSAGES[fault.status]}
    else:
        body = {"errorMessages": ["Internal server error"], "errors": {}}
    headers = {"content-type": "application/json;charset=UTF-8"}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    return httpx.Response(fault.status, headers=headers, content=json.dumps(body).encode())


def _dropped(fault: Fault, request: httpx.Request) -> httpx.TransportError:
    if fault.kind == "connection_reset":
        return httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
    return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)


class CutBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body stream that ends early, the way a connection dropped mid-body does."""

    def __init__(self, delivered: bytes, declared: int) -> None:
        self.delivered = delivered
        self.declared = declared

    def _failure(self) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {len(self.delivered)} bytes, expected {self.declared})"
        )

    def __iter__(self) -> Iterator[bytes]:
        if self.delivered:
            yield self.delivered
        raise self._failure()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.delivered:
            yield self.delivered
        raise self._failure()


def _truncated(response: httpx.Response, fault: Fault) -> httpx.Response:
    body = response.content
    if not body:
        return response
    cut = body[: min(len(body) - 1, int(len(body) * fault.fraction))]
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
    if not fault.declared_length:
        return httpx.Response(response.status_code, headers=headers, content=cut)
    headers.append(("content-length", str(len(body))))
    return httpx.Response(response.status_code, headers=headers, stream=CutBody(cut, len(body)))


def _slowed(request: httpx.Request, response: httpx.Response, fault: Fault) -> httpx.Response:
    timeouts = request.extensions.get("timeout") or {}
    read_timeout = timeouts.get("read")
    if read_timeout is not None and fault.delay >= read_timeout:
        raise httpx.ReadTimeout("The read operation timed out", request=request)
    response.extensions[DELAY_EXTENSION] = fault.delay
    return response


# -- over loopback -------------------------------------------------------------------------------------------------

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


async def answer_asgi(
    handle: Callable[[httpx.Request], httpx.Response], request: httpx.Request, send: ASGISend
) -> None:
    """Send ``handle(request)`` over ASGI, turning simulated transport faults into real ones on the wire.

    A dropped connection sends a status line announcing a body and then closes without it: ASGI cannot reset a
    socket, and an unfinished response is the nearest thing (uvicorn closes the connection and logs that the app
    returned without completing it). A cut body is sent up to the cut, then closed the same way; a slow answer
    waits before it is sent.
    """
    try:
        response = handle(request)
    except httpx.TransportError:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        return
    delay = response.extensions.get(DELAY_EXTENSION)
    if delay:
        await asyncio.sleep(delay)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    if isinstance(response.stream, CutBody):
        await send({"type": "http.response.body", "body": response.stream.delivered, "more_body": True})
        return
    await send({"type": "http.response.body", "body": response.content})
