"""The loopback callback server: real sockets on 127.0.0.1, free ports only (never the fixed 13131)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from jira_lab.auth.callback import LoopbackCallback, parse_pasted_url
from jira_lab.errors import CallbackError, CallbackTimeoutError, PortInUseError

STATE = "state-for-this-attempt-0123456789"


@pytest.fixture
def callback() -> Iterator[LoopbackCallback]:
    with LoopbackCallback(expected_state=STATE, port=0, path="/callback") as server:
        yield server


def visit(callback: LoopbackCallback, target: str) -> httpx.Response:
    """What a browser does when the consent page redirects it to ``target`` (path and query)."""
    return httpx.get(f"http://127.0.0.1:{callback.port}{target}", timeout=5)


def test_a_valid_redirect_ends_the_wait_and_the_browser_is_told_without_the_code(callback: LoopbackCallback) -> None:
    page = visit(callback, f"/callback?code=the-one-time-code&state={STATE}")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert "Authorization received" in page.text
    assert "the-one-time-code" not in page.text
    assert STATE not in page.text
    url = callback.wait(timeout=5)
    assert url == f"http://localhost:{callback.port}/callback?code=the-one-time-code&state={STATE}"
    assert callback.received == url


def test_exactly_one_callback_is_accepted(callback: LoopbackCallback) -> None:
    visit(callback, f"/callback?code=first&state={STATE}")
    again = visit(callback, f"/callback?code=second&state={STATE}")

    assert again.status_code == 409
    assert "already received" in again.text
    assert callback.wait(timeout=5).endswith(f"?code=first&state={STATE}")


def test_a_wrong_state_gets_a_failure_page_and_the_wait_goes_on(callback: LoopbackCallback) -> None:
    forged = visit(callback, "/callback?code=attacker-code&state=another-attempt")

    assert forged.status_code == 400
    assert "another authorization attempt" in forged.text
    assert callback.received is None
    visit(callback, f"/callback?code=good&state={STATE}")
    assert callback.wait(timeout=5).endswith(f"?code=good&state={STATE}")


def test_a_missing_state_with_a_code_is_refused(callback: LoopbackCallback) -> None:
    assert visit(callback, "/callback?code=no-state").status_code == 400
    assert callback.received is None
    assert callback.refused == 1


def test_an_error_redirect_ends_the_wait_with_a_clear_failure_page(callback: LoopbackCallback) -> None:
    page = visit(callback, f"/callback?error=access_denied&error_description=User+denied&state={STATE}")

    assert page.status_code == 400
    assert "not granted (access_denied: User denied)" in page.text
    assert "error=access_denied" in callback.wait(timeout=5)


def test_an_error_redirect_without_state_ends_the_wait_rather_than_leave_the_user_waiting(
    callback: LoopbackCallback,
) -> None:
    visit(callback, "/callback?error=access_denied")
    assert callback.wait(timeout=5).endswith("/callback?error=access_denied")


def test_the_failure_page_escapes_what_the_url_says(callback: LoopbackCallback) -> None:
    page = visit(callback, f"/callback?error=%3Cscript%3Ealert(1)%3C/script%3E&state={STATE}")

    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text


def test_other_paths_are_not_found_and_do_not_count(callback: LoopbackCallback) -> None:
    assert visit(callback, "/favicon.ico").status_code == 404
    assert visit(callback, f"/?code=x&state={STATE}").status_code == 404
    assert callback.received is None


def test_times_out_cleanly_saying_what_to_do() -> None:
    with LoopbackCallback(expected_state=STATE, port=0) as callback:
        visit(callback, "/?code=stale&state=from-an-earlier-run")
        with pytest.raises(CallbackTimeoutError) as caught:
            callback.wait(timeout=0.05)
    message = str(caught.value)
    assert f"reached http://localhost:{callback.port}/ within 0.05 s" in message
    assert f"ssh -L {callback.port}:localhost:{callback.port}" in message
    assert "1 redirect(s) from another authorization attempt were refused" in message
    assert STATE not in message


def test_port_in_use_says_what_to_do() -> None:
    occupier = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    occupier.bind(("127.0.0.1", 0))
    occupier.listen(1)
    port = occupier.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=f"another program uses port {port}.*--port M.*callback URL"):
            LoopbackCallback(expected_state=STATE, port=port)
    finally:
        occupier.close()


def test_the_port_is_free_again_after_close() -> None:
    with LoopbackCallback(expected_state=STATE, port=0) as first:
        port = first.port
    with LoopbackCallback(expected_state=STATE, port=port) as second:
        assert second.port == port


def test_close_wakes_a_blocked_wait() -> None:
    callback = LoopbackCallback(expected_state=STATE, port=0)
    errors: list[BaseException] = []
    waiting = threading.Thread(target=lambda: _capture(errors, callback.wait, 30))
    waiting.start()
    callback.close()
    waiting.join(5)
    assert not waiting.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], CallbackError)
    assert not isinstance(errors[0], CallbackTimeoutError)


def _capture(errors: list[BaseException], wait: object, timeout: float) -> None:
    try:
        wait(timeout)  # type: ignore[operator]
    except BaseException as error:
        errors.append(error)


def test_an_idle_browser_preconnect_does_not_block_the_redirect(callback: LoopbackCallback) -> None:
    # browsers open sockets speculatively and send nothing on them
    idle = socket.create_connection(("127.0.0.1", callback.port))
    try:
        assert visit(callback, f"/callback?code=c&state={STATE}").status_code == 200
    finally:
        idle.close()


def test_on_callback_hook_gets_the_url_once_the_page_is_sent() -> None:
    seen: list[str] = []
    arrived = threading.Event()

    def hook(url: str) -> None:
        seen.append(url)
        arrived.set()

    with LoopbackCallback(expected_state=STATE, port=0, on_callback=hook) as callback:
        visit(callback, f"/?code=c&state={STATE}")
        visit(callback, f"/?code=again&state={STATE}")
        assert arrived.wait(5)
    assert seen == [f"http://localhost:{callback.port}/?code=c&state={STATE}"]


def test_for_redirect_uri_takes_port_path_and_host_from_the_registered_url() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with LoopbackCallback.for_redirect_uri(f"http://127.0.0.1:{port}/oauth/cb", expected_state=STATE) as callback:
        assert callback.redirect_uri == f"http://127.0.0.1:{port}/oauth/cb"
        visit(callback, f"/oauth/cb?code=c&state={STATE}")
        assert callback.wait(5) == f"http://127.0.0.1:{port}/oauth/cb?code=c&state={STATE}"


def test_a_callback_url_off_this_machine_cannot_be_caught() -> None:
    with pytest.raises(CallbackError, match="not on this machine"):
        LoopbackCallback.for_redirect_uri("https://example.com/callback", expected_state=STATE)


def test_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LoopbackCallback(expected_state=STATE, port=0, host="0.0.0.0")


def test_the_repr_hides_the_state(callback: LoopbackCallback) -> None:
    assert STATE not in repr(callback)
    assert "waiting" in repr(callback)


# -- a URL pasted from the browser (remote kernels, where the loopback cannot be reached) ------------------------
def test_a_pasted_url_gives_the_code() -> None:
    pasted = f"  'http://localhost:13131/?code=pasted-code&state={STATE}'\n"
    assert parse_pasted_url(pasted, STATE) == "pasted-code"


def test_a_pasted_url_with_another_state_is_refused() -> None:
    with pytest.raises(CallbackError, match="state"):
        parse_pasted_url("http://localhost:13131/?code=c&state=another", STATE)


def test_a_pasted_denial_is_reported() -> None:
    with pytest.raises(CallbackError, match="access_denied"):
        parse_pasted_url(f"http://localhost:13131/?error=access_denied&state={STATE}", STATE)


def test_a_pasted_bare_code_is_refused_because_its_state_cannot_be_checked() -> None:
    with pytest.raises(CallbackError, match="whole address"):
        parse_pasted_url("just-a-code", STATE)
