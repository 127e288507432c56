"""Erasure: the ledger rewritten as one ``base`` row holding the current state, minus erased data.

What leaves the file: every row so far (book bodies with children's birth
dates and households, cancels, rebalances), every snapshot, the cancelled
requests' bodies and the children no live request names. What stays: the
live requests and the children they name, the ids ever used (so none is
reused), the per-booking secret digests of live requests, and the starting
instance (``meta``). The base row's hash chains from the old head, so the
rewritten file continues the chain of receipts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slotalloc.compile import Compiled
from slotalloc.exceptions import InvalidStateError
from slotalloc.models import Instance
from slotalloc.online import Allocator
from slotalloc.service.chain import Row, canonical_json, row_hash, storable
from slotalloc.service.errors import LedgerWriteError

__all__ = ["CompactionReport", "base_row", "redact"]


@dataclass(frozen=True)
class CompactionReport:
    """What :meth:`DurableAllocator.compact` erased.

    Attributes
    ----------
    old_first, old_head
        The first and last rows of the ledger before (seq).
    old_head_hash
        The old head's hash (hex): the new base row chains from it.
    base_seq, base_hash
        The new base row (seq, hash hex), now the ledger's only row.
    erased_children
        Children no live request names, whose data left the ledger.
    erased_requests
        Requests no longer live (cancelled) whose bodies left the ledger.
    """

    old_first: int
    old_head: int
    old_head_hash: str
    base_seq: int
    base_hash: str
    erased_children: int
    erased_requests: int


def redact(state: dict[str, Any], start_kids: Mapping[str, Sequence[str]]) -> tuple[int, int]:
    """Take the children no live request names out of a snapshot state, in place.

    Parameters
    ----------
    state
        :func:`slotalloc.service.replay.snapshot_state`; its ``seq`` is removed
        too (the base row's own seq says where it stands).
    start_kids
        The children of each request of the starting instance (a request kept
        from it has no stored body).

    Returns
    -------
    tuple
        (children erased, requests no longer live).
    """
    alloc_state = state["allocator"]
    used: set[str] = set()
    for rid, _status, _sid, src in alloc_state["requests"]:
        used.update(src["children"] if src is not None else start_kids[rid])
    kept = [c for c in alloc_state["children"] if c["id"] in used]
    erased_children = len(alloc_state["children"]) - len(kept)
    alloc_state["children"] = kept
    owners = state["auth"]["owners"]
    state["auth"]["owners"] = {c: v for c, v in owners.items() if c in used}
    erased_requests = len(alloc_state["used"])
    state.pop("seq")
    return erased_children, erased_requests


def base_row(
    state: dict[str, Any],
    *,
    start: Instance,
    compiled: Compiled,
    live: Allocator,
    start_kids: Mapping[str, Sequence[str]],
    first: int,
    head: tuple[int, bytes],
) -> tuple[Row, CompactionReport]:
    """The base row replacing every row from ``first`` to ``head``, checked against ``live``.

    Before anything is written, the redacted state is restored and must hold
    exactly the places and the waitlist of ``live``.

    Raises
    ------
    LedgerWriteError
        The redacted state does not restore, or differs.
    UnstorableEventError
        The state cannot be written.
    """
    erased_children, erased_requests = redact(state, start_kids)
    try:
        probe = Allocator.restore(start, state["allocator"], compiled=compiled)
    except InvalidStateError as e:
        raise LedgerWriteError(f"compaction refused: {e}") from e
    if probe.held() != live.held() or probe.waitlist() != live.waitlist():
        raise LedgerWriteError("compaction refused: the redacted state differs")
    body = storable(canonical_json(state))
    result = canonical_json(
        {"compacted_from": {"first": first, "head": head[0]}, "erased_children": erased_children}
    )
    seq = head[0] + 1
    h = row_hash(head[1], seq, "base", body, result)
    report = CompactionReport(
        old_first=first,
        old_head=head[0],
        old_head_hash=head[1].hex(),
        base_seq=seq,
        base_hash=h.hex(),
        erased_children=erased_children,
        erased_requests=erased_requests,
    )
    return Row(seq, "base", body, result, h), report
