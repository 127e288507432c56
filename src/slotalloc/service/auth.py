"""Bearer tokens of the booking service: the auth file, roles and constant-time checks.

The auth file is JSON::

    {
      "operator": ["<token>", ...],
      "booking": ["<token>", {"token": "<token>", "may_set_priority": true}, ...]
    }

``operator`` tokens may do everything (export, rebalance, compaction, session
details naming requests, cancelling any booking, any priority). ``booking``
tokens may book, cancel a booking whose per-booking secret they present, and
read one booking; a booking token given as an object with
``"may_set_priority": true`` may also book with ``priority`` > 0. Either list
may be absent or empty, but the file must hold at least one token. Tokens are
at least :data:`MIN_TOKEN_CHARS` characters, printable ASCII without spaces,
and each appears once.

Tokens are never compared as strings: the presented token and every stored one
are reduced to SHA-256 digests and compared with :func:`hmac.compare_digest`,
over the whole list every time, so neither the time taken nor an early exit
tells which prefix or which entry matched. No token value is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Any, Literal

from slotalloc.exceptions import InputError

__all__ = [
    "MIN_TOKEN_CHARS",
    "AuthConfig",
    "Principal",
    "bearer_token",
    "default_auth_path",
    "generate_auth_file",
    "is_bearer",
    "load_or_create_auth",
]

log = logging.getLogger(__name__)

#: Shortest token accepted in an auth file (``secrets.token_urlsafe(32)`` gives 43).
MIN_TOKEN_CHARS = 24

Role = Literal["operator", "booking"]


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to.

    Attributes
    ----------
    role
        ``"operator"`` or ``"booking"``.
    may_set_priority
        Whether bookings may carry ``priority`` > 0 (always true for operators).
    index
        Position of the token in its list (for log lines; never the token).
    """

    role: Role
    may_set_priority: bool
    index: int

    @property
    def is_operator(self) -> bool:
        """Whether this is an operator token."""
        return self.role == "operator"

    @property
    def label(self) -> str:
        """A name for log lines, e.g. ``booking#2``: never the token itself."""
        return f"{self.role}#{self.index}"


def _digest(token: str | bytes) -> bytes:
    raw = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def _check_token(value: Any, where: str, source: str) -> str:
    if not isinstance(value, str):
        raise InputError(source, where, "a token must be a string")
    if len(value) < MIN_TOKEN_CHARS:
        raise InputError(source, where, f"a token needs at least {MIN_TOKEN_CHARS} characters")
    if not all("!" <= ch <= "~" for ch in value):
        raise InputError(source, where, "a token must be printable ASCII without spaces")
    return value


class AuthConfig:
    """The tokens the service accepts, held as digests only.

    Parameters
    ----------
    entries
        (token, role, may_set_priority) triples.

    Raises
    ------
    ValueError
        No token, or the same token twice.
    """

    def __init__(self, entries: list[tuple[str, Role, bool]]) -> None:
        if not entries:
            raise ValueError("an auth configuration needs at least one token")
        digests = [_digest(t) for t, _r, _p in entries]
        if len(set(digests)) != len(digests):
            raise ValueError("the same token is listed twice")
        counters: dict[str, int] = {}
        self._entries: list[tuple[bytes, Principal]] = []
        for d, (_t, role, prio) in zip(digests, entries, strict=True):
            i = counters.get(role, 0)
            counters[role] = i + 1
            self._entries.append((d, Principal(role, prio or role == "operator", i)))

    @classmethod
    def from_json(cls, data: Any, source: str = "auth file") -> AuthConfig:
        """Read the auth file's JSON data (see the module notes).

        Raises
        ------
        InputError
            The data does not follow the format; the message never contains a token.
        """
        if not isinstance(data, dict):
            raise InputError(source, "", "the auth file must be a JSON object")
        unknown = sorted(set(data) - {"operator", "booking"})
        if unknown:
            raise InputError(source, unknown[0], "unknown key (expected operator, booking)")
        entries: list[tuple[str, Role, bool]] = []
        for role in ("operator", "booking"):
            items = data.get(role, [])
            if not isinstance(items, list):
                raise InputError(source, role, "must be a list of tokens")
            for i, item in enumerate(items):
                where = f"{role}[{i}]"
                if isinstance(item, dict):
                    extra = sorted(set(item) - {"token", "may_set_priority"})
                    if extra:
                        raise InputError(source, f"{where}.{extra[0]}", "unknown key")
                    if role != "booking" and "may_set_priority" in item:
                        raise InputError(source, where, "may_set_priority is for booking tokens")
                    prio = item.get("may_set_priority", False)
                    if not isinstance(prio, bool):
                        raise InputError(source, f"{where}.may_set_priority", "must be a boolean")
                    token = _check_token(item.get("token"), f"{where}.token", source)
                    entries.append((token, role, prio))
                else:
                    entries.append((_check_token(item, where, source), role, False))
        if not entries:
            raise InputError(source, "", "the auth file holds no token")
        try:
            return cls(entries)
        except ValueError as e:
            raise InputError(source, "", str(e)) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuthConfig:
        """Read an auth file; warn (without refusing) when others may read it.

        Raises
        ------
        InputError
            Unreadable, not JSON, or not of the format.
        """
        source = os.fspath(path)
        try:
            with open(source, encoding="utf-8") as f:
                mode = os.fstat(f.fileno()).st_mode
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(source, "", f"cannot read the auth file: {type(e).__name__}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("auth file %s is readable by other users; chmod 600 it", source)
        try:
            data = json.loads(text)
        except ValueError:
            # The decoder's message may quote part of the file (a token): keep it out.
            raise InputError(source, "", "the auth file is not valid JSON") from None
        return cls.from_json(data, source)

    def authenticate(self, token: str | bytes | None) -> Principal | None:
        """The principal of a presented token, or None (constant time over every entry)."""
        if not token:
            return None
        d = _digest(token)
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, d) and found is None:
                found = principal
        return found

    def __repr__(self) -> str:  # never the tokens
        roles = [p.role for _d, p in self._entries]
        return f"AuthConfig(operator={roles.count('operator')}, booking={roles.count('booking')})"


def is_bearer(value: str) -> bool:
    """Whether an ``Authorization`` header value uses the Bearer scheme (in any case)."""
    return value.partition(" ")[0].lower() == "bearer"


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, or None.

    None for an absent or empty header, another scheme, or an empty token.
    """
    if not value or not is_bearer(value):
        return None
    return value.partition(" ")[2].strip() or None


def default_auth_path(db: str | os.PathLike[str]) -> str:
    """Where ``serve`` keeps a generated auth file: beside the ledger, ``DB.auth.json``."""
    return os.fspath(db) + ".auth.json"


def generate_auth_file(path: str | os.PathLike[str]) -> None:
    """Write a new auth file with one operator and one booking token, mode 0600.

    Raises
    ------
    FileExistsError
        The file exists (it is never overwritten).
    OSError
        It cannot be written.
    """
    data = {
        "operator": [secrets.token_urlsafe(32)],
        "booking": [secrets.token_urlsafe(32)],
    }
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (json.dumps(data, indent=2) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_auth(
    auth_file: str | os.PathLike[str] | None, db: str | os.PathLike[str]
) -> tuple[AuthConfig, str, bool]:
    """The auth configuration of ``serve``: the given file, else one beside the ledger.

    Parameters
    ----------
    auth_file
        The ``--auth-file`` argument, or None.
    db
        The ledger file (a generated auth file goes beside it).

    Returns
    -------
    tuple
        (configuration, path used, whether the file was generated now).

    Raises
    ------
    InputError
        The file is unreadable or invalid, or cannot be generated.
    """
    if auth_file is not None:
        path = os.fspath(auth_file)
        return AuthConfig.load(path), path, False
    path = default_auth_path(db)
    created = False
    if not os.path.exists(path):
        try:
            generate_auth_file(path)
            created = True
        except FileExistsError:
            pass  # another process made it meanwhile: read it
        except OSError as e:
            raise InputError(path, "", f"cannot write the auth file: {e.strerror}") from None
    return AuthConfig.load(path), path, created
