"""The hash chain of the ledger: canonical JSON, the genesis and row hashes, and :class:`Row`.

Row ``n`` stores ``hash_n = sha256(hash_{n-1} || seq, kind, body, result[, secret])``;
the chain starts from :func:`instance_digest` of the starting instance (and
plan). These bytes are the ledger's file format: changing any of them makes
every existing ledger fail its integrity check.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from slotalloc.models import Instance, Solution
from slotalloc.result import Result
from slotalloc.service.errors import UnstorableEventError

__all__ = [
    "GENESIS_TAG",
    "Row",
    "canonical_json",
    "instance_digest",
    "row_hash",
    "secret_digest",
    "storable",
]

GENESIS_TAG = b"slotalloc.service.ledger/1\n"


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the bytes that are hashed and stored."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def instance_digest(instance: Instance, start: Solution | Result | None = None) -> bytes:
    """The hash that starts the chain: binds a ledger to its starting instance.

    With ``start`` (a batch result the service starts from), its assignments are
    bound too: the same instance served from another plan is another ledger.
    """
    text = canonical_json(instance.model_dump(mode="json"))
    if start is not None:
        held = [[a.request, a.session] for a in start.assignments]
        text += "\n" + canonical_json({"start_assignments": held})
    return hashlib.sha256(GENESIS_TAG + text.encode()).digest()


def secret_digest(secret: str) -> bytes:
    """The SHA-256 of a per-booking secret: what the ledger stores and compares."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def row_hash(prev: bytes, seq: int, kind: str, body: str, result: str, secret: str = "") -> bytes:
    """The chain hash of a row, from the hash of the row before it."""
    h = hashlib.sha256(prev)
    text = f"{seq}\x1f{kind}\x1f{body}\x1f{result}"
    if secret:  # rows without a secret hash as in schema version 1
        text += f"\x1f{secret}"
    h.update(text.encode())
    return h.digest()


def storable(text: str) -> str:
    """The text itself, once it is known to encode to UTF-8 (what the file stores).

    Raises
    ------
    UnstorableEventError
        It holds a lone surrogate (or anything else UTF-8 cannot encode).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableEventError(
            "the event holds text that is not valid Unicode (a lone surrogate?) and cannot "
            "be stored"
        ) from None
    return text


@dataclass(frozen=True)
class Row:
    """One ledger row: an accepted event and the decision it got."""

    seq: int
    kind: str
    body: str
    result: str
    hash: bytes
    secret: str = ""
