"""Tokens and token stores: no secret in reprs, several grants side by side, 0600 files replaced atomically."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path

import pytest

from jira_lab.auth.tokens import (
    FileTokenStore,
    MemoryTokenStore,
    Site,
    Token,
    TokenGrant,
    TokenKey,
    TokenStore,
    default_token_path,
)
from jira_lab.errors import AuthError

ACCESS = "at-SECRET-access-0123456789"
REFRESH = "rt-SECRET-refresh-0123456789"
SITE = Site("1c4f-aaaa", "tiny", "https://tiny.atlassian.net", frozenset({"read:jira-work"}))


def token(account_id: str = "acc-ann", *, access: str = ACCESS, refresh: str | None = REFRESH) -> Token:
    return Token(
        access_token=access,
        refresh_token=refresh,
        expires_at=1_800_000_000.0,
        scopes=frozenset({"read:jira-work", "offline_access"}),
        client_id="client-1",
        account_id=account_id,
        sites=(SITE,),
    )


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0: a file or directory not created with restrictive permissions would show it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


# -- values ----------------------------------------------------------------------------------------------------
def test_token_repr_and_str_hide_both_secrets_but_say_what_it_is() -> None:
    value = token()

    for text in (repr(value), str(value), f"{value}", repr([value])):
        assert ACCESS not in text
        assert REFRESH not in text
        assert "client-1" in text
        assert "acc-ann" in text


def test_grant_repr_hides_secrets() -> None:
    grant = TokenGrant(ACCESS, REFRESH, 10.0, frozenset({"read:jira-work"}))

    assert ACCESS not in repr(grant)
    assert REFRESH not in str(grant)
    assert "read:jira-work" in repr(grant)


def test_a_token_is_stored_under_its_grant_not_its_site() -> None:
    assert token().key == TokenKey("client-1", "acc-ann")


def test_expiry_counts_the_leeway() -> None:
    value = token()

    assert not value.is_expired(value.expires_at - 61, leeway=60)
    assert value.is_expired(value.expires_at - 59, leeway=60)
    assert value.is_expired(value.expires_at)
    assert not value.is_expired(value.expires_at - 1)


def test_a_refresh_answer_rotates_the_refresh_token_and_keeps_the_rest() -> None:
    fresh = token().with_grant(TokenGrant("at-new", "rt-new", 2_000_000_000.0, frozenset({"read:jira-work"})))

    assert (fresh.access_token, fresh.refresh_token, fresh.expires_at) == ("at-new", "rt-new", 2_000_000_000.0)
    assert fresh.scopes == frozenset({"read:jira-work"})
    assert (fresh.client_id, fresh.account_id, fresh.sites) == ("client-1", "acc-ann", (SITE,))


def test_a_refresh_answer_without_refresh_token_keeps_the_old_one() -> None:
    # Atlassian's sample only overwrites the stored refresh token when the answer has one
    fresh = token().with_grant(TokenGrant("at-new", None, 2_000_000_000.0, frozenset()))

    assert fresh.refresh_token == REFRESH
    assert fresh.scopes == token().scopes  # an answer without scopes does not erase them


def test_token_round_trips_through_its_dict() -> None:
    value = token()

    assert Token.from_dict(json.loads(json.dumps(value.to_dict()))) == value
    assert Token.from_dict(token(refresh=None).to_dict()).refresh_token is None


# -- memory store --------------------------------------------------------------------------------------------------
def test_memory_store_keeps_grants_side_by_side() -> None:
    store = MemoryTokenStore()
    ann, bob = token("acc-ann"), token("acc-bob", access="at-bob")

    store.save(ann.key, ann)
    store.save(bob.key, bob)
    store.delete(ann.key)
    store.delete(TokenKey("nobody"))

    assert isinstance(store, TokenStore)
    assert store.load(ann.key) is None
    assert store.load(bob.key) == bob
    assert store.keys() == [bob.key]


# -- file store ------------------------------------------------------------------------------------------------
def test_default_path_is_in_the_user_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    assert default_token_path() == tmp_path / "config" / "jira-lab" / "tokens.json"
    assert FileTokenStore().path == tmp_path / "config" / "jira-lab" / "tokens.json"


def test_file_store_keeps_several_grants_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    ann, bob = token("acc-ann"), token("acc-bob", access="at-bob", refresh="rt-bob")
    FileTokenStore(path).save(ann.key, ann)
    FileTokenStore(path).save(bob.key, bob)

    reopened = FileTokenStore(path)
    assert reopened.load(ann.key) == ann
    assert reopened.load(bob.key) == bob
    assert set(reopened.keys()) == {ann.key, bob.key}

    reopened.delete(ann.key)
    assert FileTokenStore(path).keys() == [bob.key]
    assert FileTokenStore(tmp_path / "absent.json").load(ann.key) is None


def test_file_and_directory_are_private_from_creation(tmp_path: Path, open_umask: None) -> None:
    seen_modes: list[int] = []

    class WatchingStore(FileTokenStore):
        def _replace_file(self, source: Path, target: Path) -> None:
            # the secrets are already written: the file holding them must be private at this point
            seen_modes.append(stat.S_IMODE(source.stat().st_mode))
            super()._replace_file(source, target)

    path = tmp_path / "config" / "jira-lab" / "tokens.json"
    WatchingStore(path).save(token().key, token())
    WatchingStore(path).save(token("acc-bob").key, token("acc-bob"))

    assert seen_modes == [0o600, 0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.with_name("tokens.json.lock").stat().st_mode) == 0o600


def test_a_crash_while_replacing_leaves_the_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    old = token()
    FileTokenStore(path).save(old.key, old)
    before = path.read_bytes()

    class CrashingStore(FileTokenStore):
        def _replace_file(self, source: Path, target: Path) -> None:
            raise OSError("power lost")

    with pytest.raises(OSError, match="power lost"):
        CrashingStore(path).save(old.key, token(access="at-rotated", refresh="rt-rotated"))

    assert path.read_bytes() == before
    assert FileTokenStore(path).load(old.key) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]  # no temp file left


def test_the_file_holds_the_secrets_only_as_stored_values(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(token().key, token())

    data = json.loads((tmp_path / "tokens.json").read_text())
    assert data["tokens"][0]["token"]["refresh_token"] == REFRESH
    assert REFRESH not in repr(store)


def test_a_damaged_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"tokens": [{"client_id": "c"')

    with pytest.raises(AuthError, match="delete it and run `jira-lab token`"):
        FileTokenStore(path).load(TokenKey("c"))


def test_two_stores_saving_at_once_from_threads_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    writers, per_writer = 8, 12
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        store = FileTokenStore(path)  # each thread its own store object, as separate components would have
        start.wait()
        for i in range(per_writer):
            value = token(f"acc-{n}-{i}", access=f"at-{n}-{i}")
            store.save(value.key, value)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = FileTokenStore(path)
    assert len(stored.keys()) == writers * per_writer
    assert stored.load(TokenKey("client-1", "acc-5-7")) == token("acc-5-7", access="at-5-7")


def _write_from_process(path: str, n: int, per_writer: int, start: BarrierType) -> None:
    store = FileTokenStore(path)
    start.wait()
    for i in range(per_writer):
        value = token(f"proc-{n}-{i}", access=f"at-{n}-{i}")
        store.save(value.key, value)


def test_two_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    path = tmp_path / "tokens.json"
    writers, per_writer = 4, 15
    start = context.Barrier(writers)
    processes = [
        context.Process(target=_write_from_process, args=(str(path), n, per_writer, start)) for n in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)

    assert [p.exitcode for p in processes] == [0] * writers
    stored = FileTokenStore(path)
    assert len(stored.keys()) == writers * per_writer
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
