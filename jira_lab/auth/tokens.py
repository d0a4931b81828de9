"""OAuth tokens and where they are kept.

A refresh token belongs to the *grant*: one per app per Atlassian account, covering every site the account consented
to. Stores are therefore keyed by :class:`TokenKey` (client id, account id), never by site, so that rotating the
refresh token while working on one site cannot strand another.

:class:`FileTokenStore` keeps several grants side by side in one JSON file under the user's config directory. Every
write replaces the file atomically (temp file in the same directory, fsync, ``os.replace``) with mode 0600 from the
moment it exists, under an exclusive ``flock`` on a sidecar lock file, so two threads or processes saving at once never
lose each other's entries (or a rotated refresh token).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import platformdirs

from jira_lab.errors import AuthError

if sys.platform != "win32":
    import fcntl

FILE_MODE = 0o600
DIR_MODE = 0o700
FORMAT_VERSION = 1
MASK = "***"


@dataclass(frozen=True, slots=True)
class Site:
    """One site of a grant, as ``accessible-resources`` lists it.

    Attributes:
        cloud_id: the site's cloud id (the ``id`` field), which forms the gateway URL.
        name: the site's name.
        url: the site's URL, e.g. ``https://example.atlassian.net``.
        scopes: the scopes granted on this site.
    """

    cloud_id: str
    name: str
    url: str
    scopes: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {"cloud_id": self.cloud_id, "name": self.name, "url": self.url, "scopes": sorted(self.scopes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        return cls(str(data["cloud_id"]), str(data["name"]), str(data["url"]), frozenset(data.get("scopes", ())))


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Which grant a token belongs to: the app's client id and the consenting Atlassian account."""

    client_id: str
    account_id: str | None = None

    def __str__(self) -> str:
        return f"{self.client_id}/{self.account_id or '?'}"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What the token endpoint answered: fresh credentials, not yet tied to an account or a site.

    Attributes:
        access_token: the Bearer token (secret).
        refresh_token: the rotated refresh token (secret); ``None`` when the answer had none.
        expires_at: when the access token expires, in seconds since the epoch.
        scopes: the granted scopes; empty when the answer did not list them.
        token_type: ``bearer``.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float
    scopes: frozenset[str]
    token_type: str = "bearer"

    def __repr__(self) -> str:
        return (
            f"TokenGrant(access_token={MASK}, refresh_token={_masked(self.refresh_token)}, "
            f"expires_at={self.expires_at!r}, scopes={sorted(self.scopes)!r}, token_type={self.token_type!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Token:
    """The stored credentials of one grant.

    Attributes:
        access_token: the Bearer token (secret; never in repr or str).
        refresh_token: the current refresh token (secret); ``None`` when ``offline_access`` was not granted.
        expires_at: when the access token expires, in seconds since the epoch.
        scopes: the granted scopes.
        client_id: the app's client id.
        account_id: the consenting account, ``None`` until ``/myself`` was asked.
        sites: every site of the grant.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float
    scopes: frozenset[str]
    client_id: str
    account_id: str | None = None
    sites: tuple[Site, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Token(client_id={self.client_id!r}, account_id={self.account_id!r}, expires_at={self.expires_at!r}, "
            f"scopes={len(self.scopes)} scopes, sites={tuple(s.url for s in self.sites)!r}, "
            f"access_token={MASK}, refresh_token={_masked(self.refresh_token)})"
        )

    __str__ = __repr__

    @property
    def key(self) -> TokenKey:
        """The key this token is stored under."""
        return TokenKey(self.client_id, self.account_id)

    def is_expired(self, now: float, leeway: float = 0.0) -> bool:
        """True when the access token expires within ``leeway`` seconds of ``now`` (or already has)."""
        return now >= self.expires_at - leeway

    def with_grant(self, grant: TokenGrant) -> Token:
        """This token after a refresh: the new access token, and the rotated refresh token when one came back.

        Atlassian documents that a refresh answer may lack ``refresh_token``; the old one then stays in use.
        """
        return replace(
            self,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token or self.refresh_token,
            expires_at=grant.expires_at,
            scopes=grant.scopes or self.scopes,
        )

    @classmethod
    def from_grant(
        cls, grant: TokenGrant, client_id: str, account_id: str | None = None, sites: tuple[Site, ...] = ()
    ) -> Token:
        """A token for a fresh grant."""
        return cls(
            grant.access_token, grant.refresh_token, grant.expires_at, grant.scopes, client_id, account_id, sites
        )

    def to_dict(self) -> dict[str, Any]:
        """The token as JSON-ready data, **secrets included**: only for writing to a token store."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "scopes": sorted(self.scopes),
            "client_id": self.client_id,
            "account_id": self.account_id,
            "sites": [s.to_dict() for s in self.sites],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Token:
        """The inverse of :meth:`to_dict`."""
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=None if data.get("refresh_token") is None else str(data["refresh_token"]),
            expires_at=float(data["expires_at"]),
            scopes=frozenset(data.get("scopes", ())),
            client_id=str(data["client_id"]),
            account_id=data.get("account_id"),
            sites=tuple(Site.from_dict(s) for s in data.get("sites", ())),
        )


def _masked(secret: str | None) -> str:
    return "None" if secret is None else MASK


@runtime_checkable
class TokenStore(Protocol):
    """Where tokens are kept, one per :class:`TokenKey`."""

    def load(self, key: TokenKey) -> Token | None:
        """The token stored under ``key``, or ``None``."""
        ...

    def save(self, key: TokenKey, token: Token) -> None:
        """Store ``token`` under ``key``, replacing what was there; durable when this returns."""
        ...

    def delete(self, key: TokenKey) -> None:
        """Forget the token under ``key`` (no error when there is none)."""
        ...

    def keys(self) -> list[TokenKey]:
        """Every key with a stored token."""
        ...


class MemoryTokenStore:
    """A token store in memory, for tests and for sessions that must leave nothing on disk."""

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, Token] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryTokenStore({len(self._tokens)} tokens)"

    def load(self, key: TokenKey) -> Token | None:
        with self._lock:
            return self._tokens.get(key)

    def save(self, key: TokenKey, token: Token) -> None:
        with self._lock:
            self._tokens[key] = token

    def delete(self, key: TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def keys(self) -> list[TokenKey]:
        with self._lock:
            return list(self._tokens)


def default_token_path() -> Path:
    """``tokens.json`` in the user's config directory for jira-lab (e.g. ``~/.config/jira-lab/tokens.json``)."""
    return Path(platformdirs.user_config_dir("jira-lab")) / "tokens.json"


class FileTokenStore:
    """Tokens in a JSON file, several grants side by side.

    Args:
        path: the file; ``~/.config/jira-lab/tokens.json`` (the platform's equivalent) by default. Its directory is
            created with mode 0700 when missing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_token_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def load(self, key: TokenKey) -> Token | None:
        # writers replace the file atomically, so a reader always sees one complete version without locking
        return self._read().get(key)

    def save(self, key: TokenKey, token: Token) -> None:
        with self._exclusive():
            entries = self._read()
            entries[key] = token
            self._write(entries)

    def delete(self, key: TokenKey) -> None:
        with self._exclusive():
            entries = self._read()
            if entries.pop(key, None) is not None:
                self._write(entries)

    def keys(self) -> list[TokenKey]:
        return list(self._read())

    # -- file handling -----------------------------------------------------------------------------------------
    def _read(self) -> dict[TokenKey, Token]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            return {
                TokenKey(str(entry["client_id"]), entry.get("account_id")): Token.from_dict(entry["token"])
                for entry in data["tokens"]
            }
        except (ValueError, KeyError, TypeError) as error:
            raise AuthError(
                f"the token file {self.path} is damaged ({type(error).__name__}); delete it and run "
                "`jira-lab token` again to consent"
            ) from None

    def _write(self, entries: dict[TokenKey, Token]) -> None:
        data = {
            "version": FORMAT_VERSION,
            "tokens": [
                {"client_id": key.client_id, "account_id": key.account_id, "token": token.to_dict()}
                for key, token in entries.items()
            ],
        }
        payload = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8")
        temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        # created 0600 in one step: the secrets are never readable by others, not even for an instant
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            self._replace_file(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        self._sync_directory()

    def _replace_file(self, source: Path, target: Path) -> None:
        """The atomic step of a write (a separate method so a test can make it fail like a crash would)."""
        os.replace(source, target)

    def _sync_directory(self) -> None:
        if sys.platform == "win32":
            return
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the store's lock: one writer at a time across threads and processes."""
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            if sys.platform != "win32":
                # flock locks belong to the open file description, so each call's own fd excludes other threads too
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
