"""The waitlist: FIFO order, its index streams, and the scans that promote from it.

Every rule of the waitlist's order lives here: a request joins at the end
(:meth:`Waitlist.add`), leaves from anywhere (:meth:`Waitlist.remove`), and a
scan visits the waitlisted requests in that order (:meth:`Waitlist.scan_all`,
:meth:`Waitlist.scan_after_free`). The order is the sequence number a request
gets when it joins; a scan compares nothing else.

Why the scan after a cancellation may look only at a few candidates
--------------------------------------------------------------------
Invariant: *between operations, no waitlisted request is feasible.* A request
joins the waitlist only when infeasible; placing children only makes every
rule-3/4/5 quantity grow (all rules are monotone), so a book keeps every
waitlisted request infeasible; a scan checks every waitlisted request it keeps
at a moment after which only promotions (more placing) happen; removing a
waitlisted request changes no place.

Feasibility of a waitlisted request ``w`` in a preference ``t`` depends only on
the counts of session ``t`` (children, per group, caregiver need) and on the
sessions held by ``w``'s children (overlap, per-child cap). Cancelling a place
of request ``r`` in session ``s`` changes exactly the counts of ``s`` and the
sessions held by ``r``'s children; the promotions of the scan only add places.
So if ``w`` has no eligible preference ``s`` and shares no child with ``r``,
every quantity ``w`` depends on is, throughout the scan, what it was when ``w``
was infeasible, or larger: the literal scan would pass over ``w``. The same
argument shows that a ``w`` which shares no child with ``r`` can only become
feasible in ``s`` itself, so only that preference needs checking. Visiting, in
waitlist (FIFO) order, exactly the waitlisted requests eligible for ``s`` and
those sharing a child with ``r`` therefore makes the same decisions as the
literal scan, at a cost proportional to those candidates, not to the waitlist.

Finer still: the candidates of ``s`` are indexed by (session, age group). When
one more child of group ``g`` no longer fits ``s`` by rule 3
(:meth:`Occupancy.room_for_one`), no request bringing a child of group ``g``
fits ``s`` (every rule-3 quantity is monotone in the children added), and since
the scan only adds places this stays true until its end: that group's stream is
dropped. In the usual case (a full session frees one place) the first candidate
takes it and the scan ends after one check.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Iterator, Sequence
from heapq import heapify, heappop, heapreplace

from slotalloc.online.records import WAITING, Arc, Req
from slotalloc.rules import Occupancy

__all__ = ["Waitlist", "slots_of"]


def slots_of(arcs: Sequence[Arc], n_groups: int) -> list[int]:
    """The (session, group) index slots, ``session * n_groups + group``, of some arcs."""
    out: list[int] = []
    for s, groups, _rank in arcs:
        base = s * n_groups
        for g, _k in groups:
            out.append(base + g)
    return out


class Waitlist:
    """The waitlisted requests in FIFO order, indexed for the scan after a cancellation.

    The index streams hold sequence numbers, appended in increasing order.
    A (session, group) stream (``by_slot``) is a deque that may keep *stale*
    numbers (of requests that left the waitlist) in its interior, counted in
    ``stale``; its head is always a waitlisted request (see :meth:`remove`).
    A child's stream (``by_child``) is a short list kept exact.

    Parameters
    ----------
    n_sessions, n_groups
        Sizes of the compiled instance.

    Attributes
    ----------
    by_seq
        Sequence number -> waitlisted request, in waitlist order.
    by_slot
        Per (session, group) slot, the stream of requests eligible there with a
        child of that group.
    stale
        Per slot, the numbers in its stream that have left the waitlist.
    by_child
        Per child index, the waitlisted requests naming it.
    next_seq
        The number the next request to join gets.
    by_priority
        FORMAT §4 rule 9: the waitlist is in decreasing priority, joining order
        within a priority. A request's number is then ``(9 - priority) << 40``
        plus its joining counter, so every comparison above stays the same;
        only a number smaller than a stream's last is inserted in order rather
        than appended.
    """

    __slots__ = ("_G", "by_child", "by_priority", "by_seq", "by_slot", "next_seq", "stale")

    def __init__(self, n_sessions: int, n_groups: int, *, by_priority: bool = False) -> None:
        self._G = n_groups
        self.by_priority = by_priority
        self.by_seq: dict[int, Req] = {}
        self.by_slot: list[deque[int]] = [deque() for _ in range(n_sessions * n_groups)]
        self.stale: list[int] = [0] * (n_sessions * n_groups)
        self.by_child: dict[int, list[int]] = {}
        self.next_seq = 0

    def __len__(self) -> int:
        return len(self.by_seq)

    def __iter__(self) -> Iterator[Req]:
        """The waitlisted requests, head first."""
        if self.by_priority:
            wait = self.by_seq
            return iter([wait[q] for q in sorted(wait)])
        return iter(self.by_seq.values())

    def _number(self, rec: Req) -> int:
        n = self.next_seq
        self.next_seq = n + 1
        if not self.by_priority:
            return n
        src = rec.source
        prio = int(src["priority"] if isinstance(src, dict) else src.priority)
        return ((9 - prio) << 40) | n

    def add(self, rec: Req, arcs: list[Arc], slots: Sequence[int]) -> None:
        """Put a request at the end of the waitlist and of its index streams.

        ``slots`` are :func:`slots_of` ``arcs`` (the admission path has them
        already). A request with no eligible preference can never be promoted:
        it is indexed nowhere.
        """
        seq = self._number(rec)
        rec.seq = seq
        rec.state = WAITING
        rec.arc = None
        rec.arcs = arcs
        self.by_seq[seq] = rec
        if slots:
            by_slot = self.by_slot
            ordered = self.by_priority
            for k in slots:
                q = by_slot[k]
                if ordered and q and q[-1] > seq:
                    insort(q, seq)
                else:
                    q.append(seq)
            by_child = self.by_child
            for ci in rec.kids:
                d = by_child.get(ci)
                if d is None:
                    by_child[ci] = [seq]
                elif ordered and d[-1] > seq:
                    insort(d, seq)
                else:
                    d.append(seq)

    def enqueue(self, rec: Req, arcs: list[Arc]) -> None:
        """:meth:`add` computing the slots."""
        self.add(rec, arcs, slots_of(arcs, self._G))

    def remove(self, rec: Req) -> None:
        """Take a request off the waitlist (amortised O(its arcs + children)).

        Leaving the head of a (session, group) stream (the usual promotion) pops
        it and the stale numbers behind it, so a scan never starts on stale
        ones; leaving its interior only counts one more stale number, and a
        stream more than half stale is rebuilt (each rebuild is paid for by the
        departures since the last one). The caller sets the request's new state.
        """
        seq = rec.seq
        wait = self.by_seq
        del wait[seq]
        if not rec.arcs:
            return
        by_slot, stale, G = self.by_slot, self.stale, self._G
        for s, groups, _rank in rec.arcs:
            base = s * G
            for g, _k in groups:
                k = base + g
                q = by_slot[k]
                n = stale[k]
                if q[0] == seq:
                    q.popleft()
                    while n and q[0] not in wait:
                        q.popleft()
                        n -= 1
                else:
                    n += 1
                    if 2 * n > len(q):
                        by_slot[k] = deque([x for x in q if x in wait])
                        n = 0
                stale[k] = n
        by_child = self.by_child
        for ci in rec.kids:
            d = by_child[ci]
            if len(d) == 1:
                del by_child[ci]
            else:
                d.remove(seq)

    def position(self, rec: Req) -> int:
        """1 for the head (O(waitlist): a query, not the hot path)."""
        seq = rec.seq
        return 1 + sum(1 for q in self.by_seq if q < seq)

    def waiting_per_session(self, n_sessions: int) -> list[int]:
        """Per session, the waitlisted requests eligible for it."""
        waiting = [0] * n_sessions
        for rec in self.by_seq.values():
            for arc in rec.arcs:
                waiting[arc[0]] += 1
        return waiting

    def scan_all(self, occ: Occupancy) -> list[Req]:
        """The literal scan over the whole waitlist, head first (FORMAT §3).

        Each request feasible at its turn takes its first feasible preference
        in ``occ`` (``rec.arc`` is set); the promoted requests are returned in
        waitlist order and are still on the waitlist.
        """
        try_add = occ.try_add
        promoted: list[Req] = []
        for rec in list(self):
            for arc in rec.arcs:
                if try_add(arc[0], rec.size, arc[1], rec.kids):
                    rec.arc = arc
                    promoted.append(rec)
                    break
        return promoted

    def _streams(
        self, occ: Occupancy, s: int, freed: tuple[int, ...]
    ) -> tuple[list[Iterator[int]], list[int]]:
        """The index streams a scan after a free in ``s`` merges, and each one's group.

        One per age group with room left in ``s`` (its group), one per freed
        child (-1).
        """
        G = self._G
        by_slot = self.by_slot
        stale = self.stale
        room = occ.room_for_one
        streams: list[Iterator[int]] = []
        group_of_stream: list[int] = []
        base = s * G
        for g in range(G):
            d = by_slot[base + g]
            if len(d) > stale[base + g] and room(s, g):
                streams.append(iter(d))
                group_of_stream.append(g)
        by_child = self.by_child
        for ci in freed:
            dc = by_child.get(ci)
            if dc:
                streams.append(iter(dc))
                group_of_stream.append(-1)
        return streams, group_of_stream

    def scan_after_free(self, occ: Occupancy, s: int, freed: tuple[int, ...]) -> list[Req]:
        """The scan after a place of children ``freed`` in session ``s`` was freed.

        Makes the decisions of :meth:`scan_all` (see the module notes) but
        visits only the candidates, in FIFO order, by a heap merge of the index
        streams (:meth:`_streams`). The streams are not changed while iterated:
        the promoted requests are returned, still on the waitlist, as
        :meth:`scan_all` does. Stale numbers in a stream are skipped; they are
        at most as many as the waitlisted ones in it, and never at its head.
        """
        streams, group_of_stream = self._streams(occ, s, freed)
        if not streams:
            return []
        heap = [(next(it), i) for i, it in enumerate(streams)]
        heapify(heap)
        alive = [True] * len(streams)
        wait = self.by_seq
        try_add = occ.try_add
        room = occ.room_for_one
        visited: set[int] = set()
        promoted: list[Req] = []
        n_session_streams = sum(1 for g in group_of_stream if g >= 0)
        while heap:
            seq, i = heap[0]
            if not alive[i]:
                heappop(heap)
                continue
            nxt = next(streams[i], None)
            if nxt is None:
                heappop(heap)
            else:
                heapreplace(heap, (nxt, i))
            if seq in visited:
                continue
            visited.add(seq)
            rec = wait.get(seq)
            if rec is None:  # stale: the request left the waitlist
                continue
            kids = rec.kids
            shares = False
            for ci in kids:
                if ci in freed:
                    shares = True
                    break
            if shares:
                for arc in rec.arcs:
                    if try_add(arc[0], rec.size, arc[1], kids):
                        rec.arc = arc
                        break
                else:
                    continue
            else:
                for arc in rec.arcs:
                    if arc[0] == s:
                        break
                else:  # pragma: no cover - indexed under s, so it has an arc there
                    continue
                if not try_add(s, rec.size, arc[1], kids):
                    continue
                rec.arc = arc
            promoted.append(rec)
            if rec.arc[0] == s and n_session_streams:
                # One more child of group g no longer fitting s (rule 3) stays true to
                # the end of the scan: drop that group's stream (see the module notes).
                for j, g in enumerate(group_of_stream):
                    if g >= 0 and alive[j] and not room(s, g):
                        alive[j] = False
                        n_session_streams -= 1
        return promoted
