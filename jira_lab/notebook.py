"""Connect a notebook to Jira Cloud with OAuth 2.0 (3LO), in place: :class:`ConnectWidget`.

::

    ┌──────────────────────────────────────────────────────────────────────────┐
    │ Client ID      [____________________]                                    │
    │ Client secret  [••••••••••••••••••••]   (held in kernel memory only)     │
    │ Site URL       [https://…atlassian.net] (optional)                       │
    │ [Authorize]    Open Atlassian's consent page ↗                           │
    │ status: waiting for the consent …                                        │
    │ Site [alpha — https://alpha.atlassian.net ▾] [Use this site]  (several)  │
    │ Kernel on another machine? Paste the address the browser shows after     │
    │ the consent:  [http://localhost:13131/?code=…&state=…] [Connect]         │
    │ site: …   user: …   scopes: …   expiry: …                                │
    └──────────────────────────────────────────────────────────────────────────┘

Usage::

    from jira_lab.notebook import ConnectWidget
    w = ConnectWidget()        # client id and secret may come from JIRA_LAB_CLIENT_ID / JIRA_LAB_CLIENT_SECRET
    w                          # fill in, click Authorize, accept on Atlassian's page
    # in a later cell
    connection = w.wait(timeout=300)       # or w.connection, or w.on_connect(callback)

Two ways back from the consent page, one code path (:mod:`jira_lab.auth.connect`): the loopback callback server
on the registered ``http://localhost:13131/`` catches the browser's redirect in a background thread, so the kernel
stays responsive; when the kernel runs remotely (JupyterHub, Colab, Binder) that redirect cannot reach it, and the
user pastes the address the browser ends up on instead. Whichever arrives first completes the attempt.

The widget holds state and calls the library; it has no protocol logic. Secrets never enter the notebook:

* Widget state is mirrored to the frontend and saved in the ``.ipynb`` (``metadata.widgets``). The client secret is
  taken out of its password field as soon as the frontend commits it (Enter, or leaving the field: the field only
  syncs on commit) and the field is reset to empty, so the frontend model — and any saved state — holds ``""``.
  The field also does not echo the value back to other frontends.
* Tokens are never put into a widget value, description or HTML; the result shows site, user, scope check and
  expiry only. The pasted redirect URL (it carries the one-time code) is not echoed either, and its field is
  emptied once read.
* Messages shown come from the library, whose errors never carry secrets; they are masked again here anyway.
"""

from __future__ import annotations

import contextlib
import enum
import html
import logging
import os
import re
import sys
import threading
import time
import weakref
import webbrowser
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import ipywidgets as widgets  # type: ignore[import-untyped]
import traitlets

from jira_lab.auth.callback import LoopbackCallback, parse_pasted_url
from jira_lab.auth.connect import (
    HTTP_TIMEOUT,
    Authorization,
    Connection,
    PendingAuthorization,
    complete_authorization,
    start_authorization,
)
from jira_lab.auth.oauth import API_URL, AUTH_URL, DEFAULT_PORT, redirect_uri_for
from jira_lab.auth.scopes import REQUIRED_SCOPES
from jira_lab.auth.tokens import FileTokenStore, TokenStore
from jira_lab.errors import CallbackError, CallbackTimeoutError, JiraLabError, SiteSelectionError

__all__ = ["ConnectWidget", "Phase", "kernel_is_local"]

logger = logging.getLogger(__name__)

CLIENT_ID_ENV = "JIRA_LAB_CLIENT_ID"
CLIENT_SECRET_ENV = "JIRA_LAB_CLIENT_SECRET"
#: how long the loopback server listens for the redirect; the paste box stays usable afterwards
DEFAULT_CALLBACK_TIMEOUT = 600.0
MASK = "***"
#: credentials that can appear as query parameters in a URL quoted by a message
_URL_SECRETS = re.compile(r"\b(code|access_token|refresh_token|client_secret)=[^&\s\"'<>]+")
_COLOURS = {"info": "#44546f", "progress": "#0c66e4", "success": "#216e4e", "warning": "#a54800", "error": "#ae2e24"}
_DESCRIPTION_STYLE = {"description_width": "9em"}
_FIELD_LAYOUT = {"width": "36em"}


class Phase(enum.Enum):
    """Where the widget's authorization stands."""

    IDLE = "idle"
    #: the consent link is shown; the loopback server listens and the paste box takes the redirected URL
    WAITING = "waiting for consent"
    #: the redirect arrived: exchanging the code, listing sites, asking who the user is
    EXCHANGING = "exchanging the code"
    #: several sites were granted and none was named: the site picker waits for a choice
    CHOOSING_SITE = "choosing a site"
    CONNECTED = "connected"
    FAILED = "failed"


class _SecretField(widgets.Password):  # type: ignore[misc]
    """A password field that never echoes its value back to the frontends (the widget empties it at once)."""

    value = traitlets.Unicode("", help="the typed secret; the widget empties it as soon as it arrives").tag(
        sync=True, echo_update=False
    )


class _UnechoedText(widgets.Text):  # type: ignore[misc]
    """A text field for a value carrying a credential (the redirect URL's code): never echoed to the frontends."""

    value = traitlets.Unicode("", help="the pasted text; the widget empties it once read").tag(
        sync=True, echo_update=False
    )


@dataclass(eq=False)
class _Attempt:
    """One click of Authorize: the pending authorization, its loopback server and its outcome."""

    pending: PendingAuthorization
    client_secret: str = field(repr=False)
    callback: LoopbackCallback | None = None
    future: Future[Connection] = field(default_factory=Future)
    #: set once a redirect (loopback or pasted) has been taken up, so that only one is ever exchanged
    claimed: bool = False
    authorization: Authorization | None = None


def kernel_is_local() -> bool:
    """Best guess whether the user's browser runs on the kernel's machine (so opening it there makes sense).

    Hosted notebooks (JupyterHub, Colab, Binder, Codespaces), SSH sessions and Linux machines without a display
    count as remote. The guess only decides whether the consent page is opened for the user; the link is shown
    and the paste box offered either way.
    """
    if "google.colab" in sys.modules:
        return False
    remote_markers = (
        "COLAB_RELEASE_TAG",
        "JUPYTERHUB_USER",
        "JUPYTERHUB_SERVICE_PREFIX",
        "BINDER_SERVICE_HOST",
        "CODESPACES",
        "SSH_CONNECTION",
        "SSH_CLIENT",
    )
    if any(marker in os.environ for marker in remote_markers):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class ConnectWidget:
    """A notebook form that runs Atlassian's 3LO consent and hands back a :class:`~jira_lab.auth.connect.Connection`.

    Display it (it is the last expression of a cell, or ``display(widget)``); fill in the app's client id and
    secret; click Authorize. The connection is :attr:`connection` once made; :meth:`wait` blocks until then (the
    loopback completion runs in a thread, so waiting in a later cell works; a pasted URL needs the kernel idle to
    receive the Connect click), and :meth:`on_connect` calls back.

    Args:
        client_id: prefills the client id field; default ``$JIRA_LAB_CLIENT_ID``.
        client_secret: the app's secret, held in memory and never shown; default ``$JIRA_LAB_CLIENT_SECRET``.
            Typing it into the password field works too (and keeps it out of the notebook's code).
        site_url: prefills the site field (URL or cloud id); needed only when the grant covers several sites.
        auth_url: the authorization server (Atlassian's, or the simulator's).
        api_url: the API gateway.
        store: where the token is kept; the user's token file (:class:`FileTokenStore`) by default.
        port: the port of the app's registered callback URL ``http://localhost:<port>/``.
        transport: the httpx transport for the token and gateway requests (tests: ``cloud.transport()``).
        scopes: the scopes to ask for (only scopes configured on the app are accepted by Atlassian).
        required: the scopes the granted ones are checked against.
        open_browser: open the consent page with :mod:`webbrowser`; ``None`` does when :func:`kernel_is_local`.
        open_url: how a URL is opened (default :func:`webbrowser.open`).
        callback_timeout: seconds the loopback server listens for the redirect.
        clock: seconds since the epoch (expiry of the token).
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        site_url: str = "",
        auth_url: str = AUTH_URL,
        api_url: str = API_URL,
        store: TokenStore | None = None,
        port: int = DEFAULT_PORT,
        transport: httpx.BaseTransport | None = None,
        scopes: Iterable[str] = REQUIRED_SCOPES,
        required: Iterable[str] = REQUIRED_SCOPES,
        open_browser: bool | None = None,
        open_url: Callable[[str], object] = webbrowser.open,
        callback_timeout: float = DEFAULT_CALLBACK_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth_url = auth_url
        self.api_url = api_url
        self.store: TokenStore = store if store is not None else FileTokenStore()
        self.port = port
        self.transport = transport
        self.scopes = tuple(scopes)
        self.required = tuple(required)
        self.open_browser = kernel_is_local() if open_browser is None else open_browser
        self.open_url = open_url
        self.callback_timeout = callback_timeout
        self.clock = clock
        self.phase = Phase.IDLE
        #: the connection the loaders use, once made (the latest, when the site is switched)
        self.connection: Connection | None = None
        self._client_secret = client_secret if client_secret is not None else os.environ.get(CLIENT_SECRET_ENV, "")
        self._secret_source = "given" if client_secret is not None else CLIENT_SECRET_ENV
        self._attempt: _Attempt | None = None
        self._connected: Future[Connection] = Future()
        self._listeners: list[Callable[[Connection], object]] = []
        self._lock = threading.RLock()
        self._build(client_id if client_id is not None else os.environ.get(CLIENT_ID_ENV, ""), site_url)
        self._render()

    # -- layout ------------------------------------------------------------------------------------------------
    def _build(self, client_id: str, site_url: str) -> None:
        self.client_id_field = widgets.Text(
            value=client_id,
            description="Client ID",
            placeholder="developer console → your app → Settings",
            **_field_options(),
        )
        self.client_secret_field = _SecretField(
            description="Client secret", continuous_update=False, **_field_options()
        )
        self.client_secret_field.observe(self._take_secret, names="value")
        self.site_url_field = widgets.Text(
            value=site_url,
            description="Site URL",
            placeholder="https://your-site.atlassian.net (optional)",
            **_field_options(),
        )
        self.authorize_button = widgets.Button(description="Authorize", button_style="primary", icon="key")
        self.authorize_button.on_click(lambda _button: self._guarded(self.authorize))
        self.link = widgets.HTML()
        self.status = widgets.HTML()
        self.site_picker = widgets.Dropdown(description="Site", options=[], style=_DESCRIPTION_STYLE)
        self.site_picker.observe(lambda _change: self._render(), names="value")
        self.use_site_button = widgets.Button(description="Use this site")
        self.use_site_button.on_click(lambda _button: self._guarded(self.use_selected_site))
        self.site_box = widgets.HBox([self.site_picker, self.use_site_button])
        self.paste_field = _UnechoedText(
            description="Redirected URL",
            continuous_update=False,
            placeholder=f"{redirect_uri_for(self.port)}?code=…&state=…",
            **_field_options(),
        )
        self.connect_button = widgets.Button(description="Connect")
        self.connect_button.on_click(lambda _button: self._guarded(self.connect_pasted))
        self.paste_box = widgets.VBox(
            [
                widgets.HTML(
                    "Kernel on another machine? The consent page then ends on an address that does not load "
                    "(<code>localhost</code> is your computer, not the kernel's). Copy that whole address from the "
                    "browser's address bar and paste it here."
                ),
                widgets.HBox([self.paste_field, self.connect_button]),
            ]
        )
        self.result = widgets.HTML()
        self.ui = widgets.VBox(
            [
                self.client_id_field,
                self.client_secret_field,
                self.site_url_field,
                widgets.HBox([self.authorize_button, self.link]),
                self.status,
                self.site_box,
                self.paste_box,
                self.result,
            ]
        )
        self._status_text, self._status_level = "Enter the app's client id and secret, then click Authorize.", "info"
        if self._client_secret:
            self._mark_secret_held(self._secret_source)

    def _widgets(self) -> Iterator[Any]:
        """Every widget model of the form: containers, fields, and their layouts and styles."""
        pending = [self.ui]
        while pending:
            widget = pending.pop()
            yield widget
            pending.extend(getattr(widget, "children", ()))
            yield from (
                part for part in (getattr(widget, "layout", None), getattr(widget, "style", None)) if part is not None
            )

    def _render(self) -> None:
        """Make the widgets show the current phase, status and result."""
        # under the lock as a whole: a stale snapshot from one thread must not overwrite a newer one from another
        with self._lock:
            self._render_locked()

    def _render_locked(self) -> None:
        phase, attempt, connection = self.phase, self._attempt, self.connection
        busy = phase is Phase.EXCHANGING
        self.authorize_button.disabled = busy
        self.authorize_button.description = "Authorize again" if phase is Phase.CONNECTED else "Authorize"
        waiting = phase is Phase.WAITING and attempt is not None
        self.link.value = (
            f'<a href="{html.escape(attempt.pending.url, quote=True)}" target="_blank" '
            f'rel="noopener noreferrer">Open Atlassian\'s consent page ↗</a>'
            if waiting and attempt is not None
            else ""
        )
        _show(self.paste_box, waiting)
        self.connect_button.disabled = not waiting
        several = attempt is not None and attempt.authorization is not None and len(attempt.authorization.sites) > 1
        _show(self.site_box, phase is Phase.CHOOSING_SITE or (phase is Phase.CONNECTED and several))
        self.use_site_button.disabled = busy or self.site_picker.value is None
        colour = _COLOURS[self._status_level]
        self.status.value = f'<span style="color:{colour}">{html.escape(self._redact(self._status_text))}</span>'
        self.result.value = _summary_html(connection, self._redact) if phase is Phase.CONNECTED else ""

    def _show_status(self, text: str, level: str, phase: Phase | None = None, attempt: _Attempt | None = None) -> bool:
        """Set the status (and phase) if ``attempt`` is still the current one (``None``: always); then render."""
        with self._lock:
            if attempt is not None and attempt is not self._attempt:
                return False
            self._status_text, self._status_level = text, level
            if phase is not None:
                self.phase = phase
        self._render()
        return True

    # -- the client secret -------------------------------------------------------------------------------------
    def _take_secret(self, change: dict[str, Any]) -> None:
        """Move a committed secret out of the synced field into kernel memory, and empty the field."""
        secret = change["new"]
        if not secret:
            return  # our own reset, or an emptied field: keep the secret held
        self._client_secret = secret
        self.client_secret_field.value = ""
        self._mark_secret_held("typed")

    def _mark_secret_held(self, source: str) -> None:
        origin = {"typed": "entered", "given": "given", CLIENT_SECRET_ENV: f"from ${CLIENT_SECRET_ENV}"}[source]
        self.client_secret_field.placeholder = f"•••••••• ({origin}; held in kernel memory; type to replace)"

    # -- actions (what the buttons do) -------------------------------------------------------------------------
    def authorize(self) -> Future[Connection]:
        """Start an authorization (the Authorize button): show the consent link, listen for the redirect.

        A previous attempt still waiting is abandoned.

        Returns:
            The attempt's outcome: the :class:`Connection`, or the error that ended it (also shown in the status).
        """
        client_id = self.client_id_field.value.strip()
        problem = (
            "Enter the app's client id (developer console → your app → Settings)."
            if not client_id
            else "Enter the app's client secret (developer console → your app → Settings)."
            if not self._client_secret
            else None
        )
        if problem is not None:
            self._show_status(problem, "error")
            return _failed(ValueError(problem))
        self._abandon()
        _take_port(self)
        pending = start_authorization(
            client_id,
            redirect_uri=redirect_uri_for(self.port),
            scopes=self.scopes,
            required=self.required,
            auth_url=self.auth_url,
            api_url=self.api_url,
        )
        callback, listen_problem = self._listen(pending)
        attempt = _Attempt(pending, self._client_secret, callback)
        with self._lock:
            self._attempt = attempt
        opened = self._open(pending.url) if self.open_browser else False
        self._show_status(_waiting_message(opened, callback, listen_problem), "progress", Phase.WAITING, attempt)
        if callback is not None:
            threading.Thread(target=self._await_loopback, args=(attempt,), name="jira-lab-connect", daemon=True).start()
        return attempt.future

    def connect_pasted(self) -> None:
        """Complete the attempt with the URL in the paste box (the Connect button); the box is emptied."""
        text = self.paste_field.value
        self.paste_field.value = ""  # it carries the one-time authorization code
        with self._lock:
            attempt = self._attempt
            open_attempt = attempt is not None and not attempt.claimed and not attempt.future.done()
        if attempt is None or not open_attempt:
            self._show_status("Click Authorize first, then paste the address the consent page led to.", "error")
            return
        if not text.strip():
            self._show_status("Paste the whole address from the browser's address bar first.", "error", attempt=attempt)
            return
        try:
            code = parse_pasted_url(text, attempt.pending.state)
        except CallbackError as error:
            # the attempt stays open: a wrong paste (an old tab, a truncated URL) must not cost a new consent
            self._show_status(f"{error}", "error", attempt=attempt)
            return
        # parse_pasted_url forgives what users paste (quotes, a bare query); complete_authorization takes a redirect
        # URL, so it gets the canonical one (its state was just checked)
        redirect = f"{attempt.pending.redirect_uri}?{urlencode({'code': code, 'state': attempt.pending.state})}"
        self._complete(attempt, redirect)

    def use_selected_site(self) -> None:
        """Connect to the site chosen in the picker (the Use this site button)."""
        with self._lock:
            attempt = self._attempt
        cloud_id = self.site_picker.value
        if attempt is None or attempt.authorization is None or cloud_id is None:
            self._show_status("Choose one of the granted sites first.", "error")
            return
        self._connect_site(attempt, attempt.authorization, cloud_id)

    # -- waiting from code: futures and callbacks --------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Connection:
        """Block until the widget is connected and return the connection.

        Raises:
            TimeoutError: not connected within ``timeout`` seconds (the status line says why).
        """
        return self._connected.result(timeout)

    def on_connect(self, callback: Callable[[Connection], object]) -> None:
        """Call ``callback(connection)`` whenever a connection is made (at once if one exists)."""
        with self._lock:
            self._listeners.append(callback)
            current = self.connection
        if current is not None:
            callback(current)

    @property
    def attempt(self) -> Future[Connection] | None:
        """The outcome of the latest Authorize click, ``None`` before the first."""
        with self._lock:
            return self._attempt.future if self._attempt is not None else None

    def close(self) -> None:
        """Stop listening for the redirect and close every widget of the form."""
        self._abandon()
        for widget in list(self._widgets()):
            widget.close()

    # -- display -----------------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.ui._repr_mimebundle_(**kwargs)
        if bundle:
            bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        site = self.connection.site.url if self.connection is not None else None
        client_id = self.client_id_field.value.strip() or None
        return f"ConnectWidget(phase={self.phase.value!r}, client_id={client_id!r}, site={site!r})"

    # -- the flow ----------------------------------------------------------------------------------------------
    def _listen(self, pending: PendingAuthorization) -> tuple[LoopbackCallback | None, str | None]:
        """The loopback server for the attempt, or why there is none (the paste box still works)."""
        try:
            return LoopbackCallback.for_redirect_uri(pending.redirect_uri, expected_state=pending.state), None
        except JiraLabError as error:
            return None, str(error)

    def _await_loopback(self, attempt: _Attempt) -> None:
        """The background thread: wait for the browser's redirect, then complete the attempt with it."""
        try:
            self._await_loopback_unguarded(attempt)
        except Exception as error:  # a thread's exception would only reach stderr: show it where the user looks
            self._fail(attempt, error)

    def _await_loopback_unguarded(self, attempt: _Attempt) -> None:
        callback = attempt.callback
        assert callback is not None
        try:
            redirect = callback.wait(self.callback_timeout)
        except CallbackTimeoutError:
            callback.close()
            self._show_status(
                f"No redirect reached the kernel within {self.callback_timeout:g} s. If the kernel runs on another "
                "machine, paste the address the consent page led to below; otherwise click Authorize again.",
                "warning",
                attempt=attempt,
            )
            return
        except CallbackError:
            return  # closed: a pasted URL completed the attempt, or a newer attempt replaced it
        self._complete(attempt, redirect)

    def _complete(self, attempt: _Attempt, redirect: str) -> None:
        """Exchange the redirect's code, store the token, then connect to the site (or offer the picker)."""
        with self._lock:
            if attempt is not self._attempt or attempt.claimed:
                return
            attempt.claimed = True
        _close(attempt.callback)
        self._show_status(
            "Consent received: exchanging the code and listing the granted sites…",
            "progress",
            Phase.EXCHANGING,
            attempt,
        )
        try:
            with self._http() as http:
                authorization = complete_authorization(
                    attempt.pending, attempt.client_secret, redirect, store=self.store, http=http, clock=self.clock
                )
        except Exception as error:  # shown in the status line: nothing may escape into the notebook
            self._fail(attempt, error)
            return
        with self._lock:
            attempt.authorization = authorization
        self.site_picker.options = [(f"{site.name} — {site.url}", site.cloud_id) for site in authorization.sites]
        self.site_picker.value = None
        wanted = self.site_url_field.value.strip() or None
        try:
            site = authorization.pick(wanted)
        except SiteSelectionError as error:
            self._show_status(f"{error}. Choose the site below.", "warning", Phase.CHOOSING_SITE, attempt)
            return
        self._connect_site(attempt, authorization, site.cloud_id)

    def _connect_site(self, attempt: _Attempt, authorization: Authorization, cloud_id: str) -> None:
        try:
            connection = authorization.connect(cloud_id)
        except Exception as error:
            self._fail(attempt, error)
            return
        with self._lock:
            if attempt is not self._attempt:
                return
            self.connection = connection
            listeners = list(self._listeners)
        self.site_picker.value = cloud_id
        ok = connection.scope_check.ok
        self._show_status(
            f"Connected to {connection.site.name}."
            if ok
            else f"Connected to {connection.site.name}, but {connection.scope_check.describe()}. Add them to the app "
            "in the developer console (Permissions), then Authorize again.",
            "success" if ok else "warning",
            Phase.CONNECTED,
            attempt,
        )
        _settle(attempt.future, connection)
        _settle(self._connected, connection)
        for listener in listeners:
            try:
                listener(connection)
            except Exception:  # a failing listener must not hide the connection from the others
                logger.exception("an on_connect callback of the connect widget failed")

    def _fail(self, attempt: _Attempt, error: BaseException) -> None:
        _close(attempt.callback)
        if not attempt.future.done():
            attempt.future.set_exception(error)
        self._show_status(self._describe(error), "error", Phase.FAILED, attempt)

    def _abandon(self) -> None:
        """Drop the current attempt: stop its loopback server and cancel its future (if still open)."""
        with self._lock:
            attempt, self._attempt = self._attempt, None
        if attempt is not None:
            _close(attempt.callback)
            attempt.future.cancel()

    def _make_way(self) -> None:
        """A newer form wants the callback port: give up a waiting attempt (a re-run cell leaves the old form)."""
        with self._lock:
            attempt = self._attempt
            waiting = self.phase is Phase.WAITING and attempt is not None and not attempt.claimed
        if waiting:
            self._abandon()
            self._show_status("A newer connect form took over the callback port; use that one.", "warning", Phase.IDLE)

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run a button's action; an unexpected error goes to the status line, never into the notebook."""
        try:
            action()
        except Exception as error:
            self._show_status(self._describe(error), "error", Phase.FAILED)

    @contextlib.contextmanager
    def _http(self) -> Iterator[httpx.Client]:
        with httpx.Client(transport=self.transport, timeout=HTTP_TIMEOUT) as client:
            yield client

    def _open(self, url: str) -> bool:
        try:
            return bool(self.open_url(url))
        except Exception:  # no browser here: the link is shown anyway
            logger.debug("opening the consent page in a browser failed", exc_info=True)
            return False

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, JiraLabError):
            return str(error)
        if isinstance(error, httpx.HTTPError):
            return f"could not reach the Atlassian servers ({type(error).__name__}: {error}); check the network"
        return f"unexpected {type(error).__name__}: {error}"

    def _redact(self, text: str) -> str:
        """Mask the client secret and URL-borne credentials in ``text`` (belt and braces: messages carry none)."""
        if self._client_secret:
            text = text.replace(self._client_secret, MASK)
        return _URL_SECRETS.sub(lambda match: f"{match.group(1)}={MASK}", text)


#: the form that last listened on each callback port (weakly: a form nobody holds may go)
_PORT_OWNERS: dict[int, weakref.ref[ConnectWidget]] = {}
_PORT_OWNERS_LOCK = threading.Lock()


def _take_port(widget: ConnectWidget) -> None:
    """Make ``widget`` the form listening on its port; an older form waiting there stops listening."""
    with _PORT_OWNERS_LOCK:
        previous = _PORT_OWNERS.get(widget.port)
        _PORT_OWNERS[widget.port] = weakref.ref(widget)
    older = previous() if previous is not None else None
    if older is not None and older is not widget:
        older._make_way()


def _waiting_message(opened: bool, callback: LoopbackCallback | None, listen_problem: str | None) -> str:
    where = "The consent page opened in your browser" if opened else "Open the consent page (link above)"
    if callback is None:
        return (
            f"{where}, choose the site and Accept. The kernel cannot listen for the redirect ({listen_problem}), so "
            "paste the address the browser ends on below."
        )
    return (
        f"{where}, choose the site and Accept; this form completes by itself when the browser comes back to "
        f"{callback.redirect_uri}. Kernel on another machine? Paste the address the browser ends on below."
    )


def _summary_html(connection: Connection | None, redact: Callable[[str], str]) -> str:
    if connection is None:
        return ""
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(label)}</th>"
        f"<td style='text-align:left'>{html.escape(redact(value.strip()))}</td></tr>"
        for label, _, value in (line.partition(":") for line in connection.summary())
    )
    return f"<table>{rows}</table>"


def _field_options() -> dict[str, Any]:
    return {"style": _DESCRIPTION_STYLE, "layout": widgets.Layout(**_FIELD_LAYOUT)}


def _show(widget: Any, visible: bool) -> None:
    widget.layout.display = "" if visible else "none"


def _close(callback: LoopbackCallback | None) -> None:
    if callback is not None:
        callback.close()


def _settle(future: Future[Connection], connection: Connection) -> None:
    if not future.done():
        future.set_result(connection)


def _failed(error: BaseException) -> Future[Connection]:
    future: Future[Connection] = Future()
    future.set_exception(error)
    return future
