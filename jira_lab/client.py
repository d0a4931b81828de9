"""The Jira Cloud REST client: one async core, plus a blocking facade for scripts, the CLI and notebooks.

:class:`JiraClient` talks to either base URL form:

* the API gateway, ``https://api.atlassian.com/ex/jira/{cloudId}`` with an OAuth 2.0 (3LO) Bearer token
  (:meth:`JiraClient.for_cloud`, with :class:`jira_lab.auth.OAuth2Auth`);
* the site URL, ``https://<name>.atlassian.net`` with Basic auth, an e-mail address and an API token
  (:meth:`JiraClient.for_site`, with :func:`jira_lab.auth.basic_auth`).

Paths are API paths (``/rest/api/3/...``) under that base. A URL Jira hands back (a ``nextPage`` link, which may
name the site URL even through the gateway) is re-based on the client's own base URL, keeping only its path and
query. So credentials only ever go to the base URL the client was given.

The core runs on :class:`httpx.AsyncClient`: HTTP/1.1 with keep-alive, a connection pool as large as the
concurrency cap, and every request going through a :class:`~jira_lab.ratelimit.RateGovernor`. The governor holds
the cap, the retries, the pacing and the quota pause (:mod:`jira_lab.ratelimit`). Errors are raised with Jira's own
messages and the request's ``METHOD URL``, credentials masked (:func:`mask_url`).

**Blocking use, in a notebook too.** :class:`SyncJiraClient` runs the async core on a *private* event loop in a
dedicated daemon thread and blocks the calling thread on each result (``asyncio.run_coroutine_threadsafe``). It
therefore works the same from a plain script and from inside an already running loop, such as a Jupyter kernel's,
where ``asyncio.run`` fails. It needs no ``nest_asyncio``-style patching of anyone's loop. The price: a blocking
call holds up the caller's own loop while it waits, as any blocking call does. In a notebook, ``await`` the async
client instead (top-level ``await`` works there) to keep the kernel's loop free.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import unquote_plus

import httpx
import orjson

from jira_lab.errors import JiraApiError, JiraLabError, MissingScopeError, RateLimitedError
from jira_lab.operations import find_operation
from jira_lab.ratelimit import (
    NO_REASON,
    Answer,
    Clock,
    EventSink,
    RateGovernor,
    RequestStats,
    RetryPolicy,
    Sleep,
    TruncatedBody,
    is_idempotent,
)

T = TypeVar("T")

#: The API gateway that 3LO tokens go through.
GATEWAY_URL = "https://api.atlassian.com"
#: Requests in flight at once by default. Jira's burst limits are per endpoint (about 100/s); with ~100 ms answers,
#: ten in flight already reach that rate.
DEFAULT_CONCURRENCY = 10
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "jira-lab"

Params = Mapping[str, Any]
#: Turns a successful answer's body into the value a request returns, instead of decoding its JSON on the event
#: loop (a loader frames its largest pages elsewhere); it runs once the request's place under the concurrency cap is
#: given back, so other requests go out while it waits. Raises :class:`~jira_lab.ratelimit.TruncatedBody` when the
#: body does not parse, so that the request is sent again.
Decoder = Callable[[bytes], Awaitable[Any]]

_SECRET_PARAM_PARTS = ("token", "secret", "password", "passwd", "signature", "credential")
_SECRET_PARAMS = frozenset({"code", "jwt", "sig", "apikey", "api_key", "auth", "authorization"})
_SCOPE_FAILURE_CATEGORY = "FAILURE_CLIENT_SCOPE_CHECK"
_MASK = "***"
_DIGITS = re.compile(r"\d")


def mask_url(url: str | httpx.URL) -> str:
    """A URL fit for messages and logs: no user info, and the values of credential-like query parameters masked.

    Masked parameters are those whose name contains ``token``, ``secret``, ``password``, ``signature`` or
    ``credential``, and ``code``, ``jwt``, ``sig``, ``apikey``/``api_key`` and ``auth``.
    """
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    origin = f"{parsed.scheme}://{parsed.host}{port}" if parsed.host else ""
    path = parsed.raw_path.decode("ascii").split("?", 1)[0]
    query = parsed.query.decode("ascii")
    if not query:
        return f"{origin}{path}"
    parts = []
    for part in query.split("&"):
        name, sep, _ = part.partition("=")
        parts.append(f"{name}={_MASK}" if sep and _is_secret_param(name) else part)
    return f"{origin}{path}?{'&'.join(parts)}"


def _is_secret_param(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return lowered in _SECRET_PARAMS or any(part in lowered for part in _SECRET_PARAM_PARTS)


def jira_error_details(body: Any) -> tuple[list[str], dict[str, str]]:
    """Jira's ``errorMessages`` and ``errors`` from an error body (or the gateway's ``message``, or plain text)."""
    if isinstance(body, dict):
        messages = [str(m) for m in body.get("errorMessages") or [] if m]
        errors = body.get("errors")
        field_errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
        if not messages and isinstance(body.get("message"), str):
            messages = [body["message"]]
        return messages, field_errors
    if isinstance(body, str) and body.strip():
        return [body.strip()[:500]], {}
    return [], {}


class JiraClient:
    """The async Jira Cloud REST client; every keyword is optional and injectable.

    Args:
        base_url: the gateway URL with its cloud id (``https://api.atlassian.com/ex/jira/{cloudId}``) or the site
            URL (``https://<name>.atlassian.net``).
        auth: an :class:`httpx.Auth`: :class:`jira_lab.auth.OAuth2Auth` for the gateway,
            :func:`jira_lab.auth.basic_auth` for the site URL.
        transport: an httpx async transport (the simulator's ``SimCloud.transport()`` in tests); by default a
            real HTTP/1.1 transport whose connection pool holds ``max_concurrency`` keep-alive connections.
        max_concurrency: requests in flight at once.
        timeout: httpx timeouts (seconds, or an :class:`httpx.Timeout`).
        retry: the retry and pacing policy.
        clock: seconds since the epoch, like :func:`time.time` (rate-limit resets are wall-clock times).
        sleep: the async sleep the client waits with.
        rng: the source of jitter; seed it for reproducible delays.
        on_event: called with each :class:`~jira_lab.ratelimit.FlowEvent` (retries, slow-downs, quota pauses).
        scopes: the token's OAuth scopes, to name the missing ones when the gateway refuses a request; taken from
            ``auth.scopes`` when the auth object has them.
        headers: extra headers for every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_event: EventSink | None = None,
        scopes: Iterable[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if url.query or url.fragment:
            raise ValueError("base_url must not carry a query or a fragment")
        self.base_url = str(url).rstrip("/")
        self.max_concurrency = max_concurrency
        self.limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        self.governor = RateGovernor(
            retry or RetryPolicy(),
            max_concurrency=max_concurrency,
            clock=clock,
            sleep=sleep,
            rng=rng or random.Random(),
            on_event=on_event,
        )
        if transport is None:
            transport = httpx.AsyncHTTPTransport(http1=True, http2=False, limits=self.limits)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            auth=auth,
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
            follow_redirects=False,
        )
        token_scopes = scopes if scopes is not None else getattr(auth, "scopes", None)
        self.scopes: frozenset[str] | None = (
            frozenset(token_scopes.split() if isinstance(token_scopes, str) else token_scopes)
            if token_scopes is not None
            else None
        )

    @classmethod
    def for_cloud(cls, cloud_id: str, *, auth: httpx.Auth, api_url: str = GATEWAY_URL, **options: Any) -> JiraClient:
        """A client for the API gateway: ``{api_url}/ex/jira/{cloud_id}``, for 3LO Bearer tokens."""
        return cls(gateway_base_url(cloud_id, api_url), auth=auth, **options)

    @classmethod
    def for_site(cls, site_url: str, *, auth: httpx.Auth, **options: Any) -> JiraClient:
        """A client for a site URL (``https://<name>.atlassian.net``), for Basic auth with an API token."""
        return cls(site_url, auth=auth, **options)

    def __repr__(self) -> str:
        return f"JiraClient({self.base_url!r}, max_concurrency={self.max_concurrency})"

    # -- requests ------------------------------------------------------------------------------------------------
    async def get(self, path: str, *, params: Params | None = None, decode: Decoder | None = None) -> Any:
        """``GET`` an API path (``/rest/api/3/...``) or a Jira URL; returns the decoded JSON answer (or what
        ``decode`` makes of a successful answer's body).

        Raises:
            JiraApiError: Jira answered with an error (after retries, where allowed).
            MissingScopeError: the gateway refused the token's scopes for this operation.
            QuotaExhaustedError: the rate-limit quota resets later than the policy allows waiting.
            JiraConnectionError: the request kept failing in transport.
        """
        return await self.request("GET", path, params=params, decode=decode)

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        params: Params | None = None,
        idempotent: bool | None = None,
        decode: Decoder | None = None,
    ) -> Any:
        """``POST`` a JSON body; retried on failure only if the endpoint just reads (or ``idempotent=True``).

        Raises:
            The same errors as :meth:`get`.
        """
        return await self.request("POST", path, params=params, json=json, idempotent=idempotent, decode=decode)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        decode: Decoder | None = None,
    ) -> Any:
        """Send one request through the rate governor and return its decoded JSON answer (``None`` when empty).

        Args:
            method: the HTTP method.
            path: an API path (``/rest/api/3/...``, optionally with a query) or a Jira URL to re-base.
            params: query parameters, merged into the path's own query.
            json: the JSON body.
            idempotent: whether a failed attempt may be repeated; by default, for reads only
                (:func:`~jira_lab.ratelimit.is_idempotent`).
            decode: makes the returned value of a successful answer's body (see :data:`Decoder`); error answers
                are decoded as usual, for their messages.

        Raises:
            The same errors as :meth:`get`.
        """
        method = method.upper()
        relative = self.relative(path)
        api_path = relative.split("?", 1)[0]
        build_args: dict[str, Any] = {"params": params}
        if json is not None:
            build_args["json"] = json
        # built once and sent again as it is on a retry (its body is bytes; the auth flow sets its header each time)
        request = self._http.build_request(method, relative, **build_args)
        label = f"{method} {mask_url(request.url)}"

        async def attempt() -> Answer:
            response = await self._http.send(request)
            if decode is not None and 200 <= response.status_code < 300 and response.content.strip():
                return Answer(response.status_code, response.headers, response.content)  # for settle
            return _decode(response)

        answer = await self.governor.run(
            attempt,
            endpoint=_endpoint_key(method, api_path),
            request=label,
            idempotent=is_idempotent(method, api_path) if idempotent is None else idempotent,
            settle=partial(_settled, decode) if decode is not None else None,
        )
        if 200 <= answer.status < 300:
            return answer.body
        raise self._error(answer, method, api_path, label)

    def relative(self, path_or_url: str) -> str:
        """The API path and query (``/rest/api/3/...?...``) of a path or of any Jira URL.

        Jira's ``nextPage`` and ``self`` links may name the site URL even when the client goes through the
        gateway, or the gateway's prefix: only the part from ``/rest/`` on is kept, to be sent under this
        client's base URL.

        Raises:
            ValueError: the URL has no ``/rest/`` path.
        """
        raw = httpx.URL(path_or_url).raw_path.decode("ascii")
        if not raw.startswith("/"):
            raw = "/" + raw
        index = raw.find("/rest/")
        if index < 0:
            raise ValueError(f"{mask_url(path_or_url)} is not a Jira REST API path")
        return raw[index:]

    @property
    def stats(self) -> RequestStats:
        """A snapshot of the request counters: requests, retries, 429s by reason, time waited."""
        return self.governor.stats.snapshot()

    # -- errors --------------------------------------------------------------------------------------------------
    def _error(self, answer: Answer, method: str, api_path: str, label: str) -> JiraLabError:
        if answer.status == 401 and _is_scope_mismatch(answer):
            return self._missing_scopes(method, api_path)
        messages, errors = jira_error_details(answer.body)
        if answer.status == 429:
            reason = (answer.headers.get("RateLimit-Reason") or "").strip() or NO_REASON
            return RateLimitedError(reason, messages, errors, label)
        return JiraApiError(answer.status, messages, errors, label)

    def _missing_scopes(self, method: str, api_path: str) -> MissingScopeError:
        # imported here: jira_lab.auth pulls in the whole OAuth stack, which Basic-auth users never need
        from jira_lab.auth.scopes import scope_error

        error = scope_error(method, api_path, self.scopes or ())
        if self.scopes is not None:
            return error
        return MissingScopeError(
            error.missing,
            f"{error}. (The token's scopes are unknown to the client, so these are every scope the operation "
            "needs; pass scopes= to name only the missing ones.)",
        )

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> JiraClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def gateway_base_url(cloud_id: str, api_url: str = GATEWAY_URL) -> str:
    """The gateway base URL for a site's cloud id: ``https://api.atlassian.com/ex/jira/{cloudId}``."""
    if not cloud_id or "/" in cloud_id:
        raise ValueError(f"not a cloud id: {cloud_id!r}")
    return f"{api_url.rstrip('/')}/ex/jira/{cloud_id}"


def json_body(content: bytes) -> Any:
    """A successful answer's JSON body.

    Raises:
        TruncatedBody: the body does not parse: it was cut on the way, and the request is sent again.
    """
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as error:
        raise TruncatedBody(str(error)) from error


def _decode(response: httpx.Response) -> Answer:
    content = response.content
    if not content.strip():
        return Answer(response.status_code, response.headers, None)
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, response.headers, json_body(content))
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = response.text  # an error page that is not JSON: its text, for the message
    return Answer(response.status_code, response.headers, body)


async def _settled(decode: Decoder, answer: Answer) -> Answer:
    """The settle step of a request with a :data:`Decoder`: the body its attempt left as bytes, decoded."""
    if not isinstance(answer.body, bytes):  # an empty body, already None
        return answer
    return Answer(answer.status, answer.headers, await decode(answer.body))


def _is_scope_mismatch(answer: Answer) -> bool:
    if answer.headers.get("X-Failure-Category") == _SCOPE_FAILURE_CATEGORY:
        return True
    return isinstance(answer.body, dict) and "scope does not match" in str(answer.body.get("message", ""))


def _endpoint_key(method: str, api_path: str) -> str:
    """Jira keeps burst buckets per method and endpoint: the operation when known, else the path without ids."""
    operation = find_operation(method, api_path)
    if operation is not None:
        return f"{method} {operation.operation_id}"
    segments = ["{}" if _DIGITS.search(segment) else segment for segment in api_path.split("/")]
    return f"{method} {'/'.join(segments)}"


# -- blocking facade -----------------------------------------------------------------------------------------------


class _LoopThread:
    """A private event loop running forever in a daemon thread; coroutines are submitted to it and waited on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="jira-lab-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a SyncJiraClient was called from its own loop; await its .aio client there instead")
        if not self.running:
            coroutine.close()
            raise RuntimeError("this SyncJiraClient is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            # an interrupt (Ctrl-C, a notebook's stop button) must not leave the request running behind our back
            future.cancel()
            raise

    def stop(self) -> None:
        if not self.running:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join()


class SyncJiraClient:
    """A blocking :class:`JiraClient` for scripts, the CLI and notebook cells.

    Takes the same arguments as :class:`JiraClient`. The async client runs on a private event loop in a background
    thread (see the module docstring), so every method here blocks until its answer arrives, whether or not the
    calling thread already runs an event loop. Use :meth:`run` for async code, such as a concurrent load, written
    against :attr:`aio`, and :meth:`iterate` to walk an async page generator from :mod:`jira_lab.pagination`.

    Attributes:
        aio: the async client. It belongs to the private loop: use it only in coroutines passed to :meth:`run` or
            :meth:`iterate`, never by awaiting it on another loop.
    """

    def __init__(self, base_url: str, **options: Any) -> None:
        self._loop = _LoopThread()
        try:
            self.aio = JiraClient(base_url, **options)
        except BaseException:
            self._loop.stop()
            raise
        # a client dropped without close() must not leave its thread and loop behind
        weakref.finalize(self, self._loop.stop)

    @classmethod
    def for_cloud(
        cls, cloud_id: str, *, auth: httpx.Auth, api_url: str = GATEWAY_URL, **options: Any
    ) -> SyncJiraClient:
        """A blocking client for the API gateway (3LO Bearer tokens)."""
        return cls(gateway_base_url(cloud_id, api_url), auth=auth, **options)

    @classmethod
    def for_site(cls, site_url: str, *, auth: httpx.Auth, **options: Any) -> SyncJiraClient:
        """A blocking client for a site URL (Basic auth with an API token)."""
        return cls(site_url, auth=auth, **options)

    def __repr__(self) -> str:
        return f"SyncJiraClient({self.aio.base_url!r}, max_concurrency={self.aio.max_concurrency})"

    def get(self, path: str, *, params: Params | None = None) -> Any:
        """Blocking :meth:`JiraClient.get`."""
        return self._loop.run(self.aio.get(path, params=params))

    def post(self, path: str, *, json: Any = None, params: Params | None = None, idempotent: bool | None = None) -> Any:
        """Blocking :meth:`JiraClient.post`."""
        return self._loop.run(self.aio.post(path, json=json, params=params, idempotent=idempotent))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Blocking :meth:`JiraClient.request`."""
        return self._loop.run(self.aio.request(method, path, params=params, json=json, idempotent=idempotent))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine (written against :attr:`aio`) on the client's loop and return its result.

        Example: ``client.run(load_everything(client.aio))`` runs a concurrent load from a notebook cell.
        """
        return self._loop.run(coroutine)

    def iterate(self, items: AsyncIterable[T]) -> Iterator[T]:
        """Walk an async iterable (a page generator over :attr:`aio`) as a plain iterator, one step at a time."""
        iterator = aiter(items)
        try:
            while True:
                item = self._loop.run(_next_or_end(iterator))
                if item is _END:
                    return
                yield cast(T, item)
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and self._loop.running:
                self._loop.run(close())

    @property
    def stats(self) -> RequestStats:
        """A snapshot of the request counters."""
        return self.aio.stats

    def close(self) -> None:
        """Close the connection pool and stop the background loop; safe to call twice."""
        if self._loop.running:
            self._loop.run(self.aio.aclose())
            self._loop.stop()

    def __enter__(self) -> SyncJiraClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_END = object()


async def _next_or_end(iterator: AsyncIterator[T]) -> T | object:
    # StopAsyncIteration must not cross the thread boundary as an exception inside a future
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _END
