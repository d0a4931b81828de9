"""The loopback end of the consent flow: a one-shot HTTP server on 127.0.0.1 that catches the browser's redirect.

Atlassian sends the browser back to the app's single registered callback URL (``http://localhost:13131/`` for
jira-lab), with ``?code=...&state=...`` or ``?error=...``. :class:`LoopbackCallback` listens there::

    with LoopbackCallback.for_redirect_uri(request.redirect_uri, expected_state=request.state) as callback:
        webbrowser.open(request.url)
        redirect_url = callback.wait(timeout=300)   # then oauth.parse_callback(redirect_url, request.state)

Which requests end the wait (decided here, and why):

* The first request on the callback path whose ``state`` equals the expected one ends it, whether it carries a
  ``code`` or an ``error``: only the authorization server can know the state. Later requests never replace it (the
  browser shows "already received"), so exactly one callback is ever handed back.
* A request with a *different* or missing ``state`` gets a failure page and the wait goes on. It is usually a stale
  tab from an earlier attempt, and a page that anyone can make the browser load must not be able to end the flow
  with its own code (login CSRF) — nor abort a consent the user is still giving.
* An ``error=`` redirect without any ``state`` ends the wait too: RFC 6749 asks servers to echo the state, but a
  user who pressed Deny must not be left waiting for the timeout if one does not. It can only abort, never inject.

The pages shown to the browser never contain the code, the state or any other secret, and the server writes no
access log (the default ``http.server`` log line would print the code to stderr).
"""

from __future__ import annotations

import errno
import html
import http.server
import logging
import os
import secrets
import socket
import socketserver
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jira_lab.auth.oauth import DEFAULT_PORT, parse_callback
from jira_lab.errors import CallbackError, CallbackTimeoutError, PortInUseError

logger = logging.getLogger(__name__)

#: how long :meth:`LoopbackCallback.wait` waits for the consent by default, in seconds
DEFAULT_TIMEOUT = 300.0
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: an idle connection (a browser's speculative pre-connect) is dropped after this many seconds
_IDLE_CONNECTION_TIMEOUT = 10.0


class LoopbackCallback:
    """A one-shot HTTP server on loopback that waits for the consent page's redirect.

    The socket is bound at construction, so a taken port is reported before the browser is sent anywhere.

    Args:
        expected_state: the ``state`` of the authorization request; only a redirect carrying it counts.
        port: the port of the registered callback URL; 0 picks a free one (tests only: Atlassian redirects to the
            one registered URL, so its port is fixed).
        host: the address to listen on; loopback only.
        path: the path of the registered callback URL.
        redirect_host: the host of the registered callback URL, as the browser is sent to it.
        on_callback: called once, from the server's thread, with the redirect URL when it arrives (for callers
            such as a notebook widget that do not block in :meth:`wait`). It should not raise; if it does, the
            error is logged and the result stays available from :meth:`wait`.

    Raises:
        PortInUseError: another program listens on ``port``.
        CallbackError: the port cannot be listened on for another reason.
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(
        self,
        *,
        expected_state: str,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        path: str = "/",
        redirect_host: str = "localhost",
        on_callback: Callable[[str], None] | None = None,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the callback server listens on loopback only, not on {host!r}")
        if not expected_state:
            raise ValueError("expected_state is required: without it any page could complete the authorization")
        self.expected_state = expected_state
        self.path = path or "/"
        self.on_callback = on_callback
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: str | None = None
        self._closed = False
        #: requests on the callback path refused because their state did not match (reported on timeout)
        self.refused = 0
        self._server = _bind(self, host, port)
        self.host = host
        self.port: int = self._server.server_address[1]
        display_host = f"[{redirect_host.strip('[]')}]" if ":" in redirect_host else redirect_host
        self._origin = f"http://{display_host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="jira-lab-callback", daemon=True
        )
        self._thread.start()

    @classmethod
    def for_redirect_uri(
        cls,
        redirect_uri: str,
        *,
        expected_state: str,
        host: str = "127.0.0.1",
        on_callback: Callable[[str], None] | None = None,
    ) -> LoopbackCallback:
        """A callback server for the app's registered ``http://localhost:<port>/<path>`` callback URL."""
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or (parts.hostname or "") not in LOOPBACK_HOSTS:
            raise CallbackError(
                f"the callback URL {redirect_uri} is not on this machine: jira-lab can only catch the redirect on an "
                "http://localhost:<port>/ callback URL; register one in the app's settings in the developer console"
            )
        port = parts.port or 80
        return cls(
            expected_state=expected_state,
            port=port,
            host=host,
            path=parts.path,
            redirect_host=parts.hostname or "localhost",
            on_callback=on_callback,
        )

    @property
    def redirect_uri(self) -> str:
        """The URL this server answers, as the browser will be sent to it (with the actual port when 0 was asked)."""
        return self._origin + self.path

    @property
    def received(self) -> str | None:
        """The redirect URL once one has arrived, else ``None``; never blocks."""
        return self._result

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Block until the redirect arrives and return its full URL (``http://localhost:13131/?code=...&state=...``).

        The URL is that of a request carrying the expected state; it holds a ``code`` or an ``error``, which
        :func:`jira_lab.auth.oauth.parse_callback` turns into the code or a :class:`CallbackError`.

        Raises:
            CallbackTimeoutError: nothing arrived within ``timeout`` seconds; the message says what to do.
            CallbackError: the server was closed before a redirect arrived.
        """
        self._done.wait(timeout)
        with self._lock:
            result, closed = self._result, self._closed
        if result is not None:
            return result
        if closed:
            raise CallbackError("the callback server was closed before the consent page redirected to it")
        raise CallbackTimeoutError(self._timeout_message(timeout))

    def _timeout_message(self, timeout: float) -> str:
        refused = (
            f" {self.refused} redirect(s) from another authorization attempt were refused (their state did not "
            "match): use the link printed by the attempt that is waiting."
            if self.refused
            else ""
        )
        return (
            f"no redirect from the consent page reached {self.redirect_uri} within {timeout:g} s: start again and "
            "accept the consent in the browser before the time runs out. If the browser runs on another machine, "
            f"forward the port first (ssh -L {self.port}:localhost:{self.port} ...) or use the notebook widget's "
            "paste box. If the browser showed an Atlassian error page instead (invalid_scope, a redirect_uri that is "
            f"not registered), fix the app's settings in the developer console first.{refused}"
        )

    def close(self) -> None:
        """Stop listening; a :meth:`wait` still blocked raises :class:`CallbackError`. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._done.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LoopbackCallback:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:  # the expected state is a CSRF secret: never shown
        state = "received" if self._result is not None else "closed" if self._closed else "waiting"
        return f"LoopbackCallback({self.redirect_uri!r}, {state})"

    # -- called from the server's handler threads --------------------------------------------------------------
    def _answer(self, target: str) -> tuple[int, str, str, bool]:
        """Decide what a GET of ``target`` (path and query) means: (status, page title, page text, ended the wait)."""
        parts = urlsplit(target)
        if (parts.path or "/") != self.path:
            return 404, "Not found", f"jira-lab waits for the consent redirect on {self.path}, not here.", False
        query = parse_qs(parts.query, keep_blank_values=True)
        states = query.get("state", [])
        error = query.get("error", [])
        ours = len(states) == 1 and secrets.compare_digest(states[0].encode(), self.expected_state.encode())
        if not ours and not (error and not states):
            with self._lock:
                self.refused += 1
            return (
                400,
                "This link is not the one jira-lab is waiting for",
                "This redirect belongs to another authorization attempt (its state does not match), so it was "
                "ignored. Use the authorization link that jira-lab printed most recently.",
                False,
            )
        with self._lock:
            if self._result is not None or self._closed:
                return (
                    409,
                    "Already received",
                    "jira-lab has already received the authorization; this request was ignored. You can close "
                    "this tab.",
                    False,
                )
            self._result = self._origin + target
        self._done.set()
        if error:
            description = query.get("error_description", [""])[0]
            reason = error[0] + (f": {description}" if description else "")
            return (
                400,
                "Authorization not granted",
                f"The authorization was not granted ({reason}). Return to jira-lab for what to do next; you can close "
                "this tab.",
                True,
            )
        if not query.get("code", [""])[0]:
            return 400, "Authorization failed", "The redirect carried no authorization code. Return to jira-lab.", True
        return (
            200,
            "Authorization received",
            "jira-lab received the authorization. You can close this tab and return to jira-lab, which finishes "
            "the connection and shows the result.",
            True,
        )

    def _notify(self) -> None:
        url = self._result
        if self.on_callback is None or url is None:
            return
        try:
            self.on_callback(url)
        except Exception:  # the browser still gets its page; wait() still has the URL
            logger.exception("the on_callback hook of the loopback callback server failed")


def _page(title: str, text: str, status: int) -> bytes:
    """A small self-contained HTML page; everything shown is escaped (the error description comes from the URL)."""
    outcome = "success" if status == 200 else "failure"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>jira-lab: '
        f"{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}"
        ".success{color:#216e4e}.failure{color:#ae2e24}</style></head>\n"
        f'<body><h1 id="outcome" class="{outcome}">{html.escape(title)}</h1>\n'
        f'<p id="message">{html.escape(text)}</p></body></html>\n'
    ).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = _IDLE_CONNECTION_TIMEOUT
    server_version = "jira-lab-callback"
    sys_version = ""

    def do_GET(self) -> None:
        callback = self.server.callback
        status, title, text, ended = callback._answer(self.path)
        self._send(status, _page(title, text, status))
        if ended:  # after the page is out: the hook may take a while (a widget exchanging the code)
            callback._notify()

    def do_HEAD(self) -> None:
        self._send(405, b"", allow="GET")

    def do_POST(self) -> None:
        self._send(405, b"", allow="GET")

    def _send(self, status: int, body: bytes, allow: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        # the URL holds a one-time code: keep it out of caches and of any Referer
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the request line holds the authorization code."""


class _Server(http.server.ThreadingHTTPServer):
    # a thread per connection: a browser's idle pre-connect must not block the real redirect
    daemon_threads = True
    # Windows' SO_REUSEADDR would let us share a port another program listens on; elsewhere it only skips TIME_WAIT
    allow_reuse_address = os.name != "nt"

    def __init__(self, address: tuple[str, int], callback: LoopbackCallback, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.callback = callback
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can hang on a badly configured resolver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("callback connection from %s failed", client_address, exc_info=True)


def _bind(callback: LoopbackCallback, host: str, port: int) -> _Server:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = "127.0.0.1" if host == "localhost" else host.strip("[]")
    try:
        return _Server((address, port), callback, family)
    except OSError as error:
        if error.errno in {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}:
            raise PortInUseError(
                f"another program uses port {port} on {address}, where jira-lab must catch the consent redirect; "
                f"stop it, or pass --port M (the app's registered callback URL must then use port M too)"
            ) from None
        raise CallbackError(f"cannot listen on {address}:{port} for the consent redirect: {error.strerror}") from None


def redirect_url_from_paste(text: str) -> str:
    """The redirect URL in what the user pasted from the browser's address bar (remote kernels, where the loopback
    callback cannot be reached and the browser shows an error page, its address bar still holding the URL).

    Surrounding blanks, quotes and angle brackets are dropped, and the query alone (``?code=...&state=...``) is
    accepted. A real URL comes back unchanged.

    Raises:
        CallbackError: the text is no redirect URL (a bare code cannot be checked against the state).
    """
    url = text.strip().strip("'\"<>").strip()
    if url.startswith("?"):
        url = "http://localhost/" + url
    if "?" not in url or "=" not in url:
        raise CallbackError(
            "paste the whole address from the browser's address bar after the consent (it starts with "
            "http://localhost and holds code=... and state=...), not the code alone"
        )
    return url


def parse_pasted_url(text: str, expected_state: str) -> str:
    """The authorization code from a pasted redirect URL (see :func:`redirect_url_from_paste`), state checked.

    Raises:
        CallbackError: not a redirect URL, a state that does not match, or an ``error=`` redirect.
    """
    return parse_callback(redirect_url_from_paste(text), expected_state)
