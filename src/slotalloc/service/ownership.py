"""Per-booking secrets: who may cancel a booking, and book its children again, without an operator.

A book row may carry the SHA-256 of a per-booking secret; the secret itself is
never stored. Its holder may cancel that booking, and book again the children
first registered by a booking with a secret. Digests are compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from slotalloc.models import Request
from slotalloc.service.errors import NotPermittedError

__all__ = ["Ownership"]


class Ownership:
    """The secret digests of live requests, and the digests that registered each child.

    Attributes
    ----------
    secrets
        Request id -> the digest of its booking's secret (live requests only:
        a cancel forgets it).
    owners
        Child id -> the digests of the bookings with a secret that named it.
    """

    __slots__ = ("owners", "secrets")

    def __init__(
        self,
        secrets: dict[str, bytes] | None = None,
        owners: dict[str, list[bytes]] | None = None,
    ) -> None:
        self.secrets: dict[str, bytes] = {} if secrets is None else secrets
        self.owners: dict[str, list[bytes]] = {} if owners is None else owners

    def note(self, request: Request, digest: bytes) -> None:
        """Record a booking made with a secret: it owns the request and its children."""
        self.secrets[request.id] = digest
        owners = self.owners
        for c in request.children:
            got = owners.get(c)
            if got is None:
                owners[c] = [digest]
            elif digest not in got:
                got.append(digest)

    def forget(self, request_id: str) -> None:
        """A request was cancelled: its secret no longer cancels anything."""
        self.secrets.pop(request_id, None)

    def may_cancel(self, request_id: str, proof: bytes | None) -> bool:
        """Whether ``proof`` is the digest of that request's booking secret."""
        stored = self.secrets.get(request_id)
        return stored is not None and proof is not None and hmac.compare_digest(stored, proof)

    def book_refusal(self, request: Request, proof: bytes | None) -> NotPermittedError | None:
        """Why a caller without operator rights may not book ``request``, or None if it may."""
        owners = self.owners
        for c in request.children:
            got = owners.get(c)
            if not got:
                continue
            ok = False
            if proof is not None:
                # Every digest is compared, so the time taken does not tell which matched.
                for d in got:
                    ok |= hmac.compare_digest(d, proof)
            if not ok:
                return NotPermittedError(
                    f"child {c!r} was registered by another booking: present that booking's "
                    "secret (X-Booking-Secret) or ask an operator"
                )
        return None

    def to_json(self) -> dict[str, Any]:
        """The ``auth`` part of a snapshot (digests in hex)."""
        return {
            "secrets": {r: d.hex() for r, d in self.secrets.items()},
            "owners": {c: [d.hex() for d in ds] for c, ds in self.owners.items()},
        }

    @classmethod
    def from_json(cls, auth: Mapping[str, Any]) -> Ownership:
        """Read the ``auth`` part of a snapshot.

        Raises
        ------
        AttributeError, TypeError, ValueError
            The data is not what :meth:`to_json` writes.
        """
        return cls(
            {r: bytes.fromhex(d) for r, d in auth.get("secrets", {}).items()},
            {c: [bytes.fromhex(d) for d in ds] for c, ds in auth.get("owners", {}).items()},
        )
