"""Persistence: the whole state as plain JSON data, and back (a snapshot).

:meth:`Persistence.state` copies the state under the lock and turns it into
lists and dicts of str/int/None; :meth:`Persistence.restore` rebuilds an
allocator from them over the same starting instance, without pydantic, checking
what the engine relies on: every place held (rules 1-5 and 7) and that no
waitlisted request is feasible (the invariant of :mod:`slotalloc.online.waitlist`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

from slotalloc.compile import Compiled
from slotalloc.exceptions import InvalidStateError
from slotalloc.models import Child, Instance, Request
from slotalloc.online.core import EngineState
from slotalloc.online.records import HELD, IDLE, WAITING, Req, new_req

__all__ = ["STATE_FORMAT", "Persistence", "gc_paused"]

#: Tag of the plain data of :meth:`Allocator.state`; :meth:`Allocator.restore` checks it.
STATE_FORMAT = "slotalloc.online-state/1"

_STATUS_NAMES = {HELD: "held", WAITING: "waitlisted", IDLE: "idle"}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic collector while a large state is built.

    Building a state allocates a few objects per request and no reference
    cycles, so the collector finds nothing, but its passes traverse the whole
    growing heap again and again: measured, more than half of a 100 000-request
    :meth:`Allocator.restore`. Nested use is fine; the collector is turned back
    on only if it was on.

    Yields
    ------
    None
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Persistence(EngineState):
    """:meth:`state` and :meth:`restore` (a mixin of :class:`~slotalloc.online.Allocator`)."""

    def state(self) -> dict[str, Any]:
        """The whole state as plain JSON data, for :meth:`restore` (e.g. a snapshot).

        Lists and dicts of str/int/None only (``json.dumps`` takes it as is).
        Requests of the starting instance are named by id; the others carry
        their source as JSON.

        Returns
        -------
        dict
            ``format`` (:data:`STATE_FORMAT`), ``ops``, ``children`` (declared,
            in order), ``requests`` (``[id, status, session, source]`` in request
            order, status ``held``/``waitlisted``/``idle``), ``waitlist`` (ids,
            head first), ``used`` (ids used by requests no longer present, sorted).

        Raises
        ------
        pydantic.ValidationError
            Never (sources are already valid).
        """
        with self._lock:
            recs = list(self._live.values())
            held = [r.arc[0] if r.state == HELD and r.arc is not None else -1 for r in recs]
            states = [r.state for r in recs]
            waitlist = [r.id for r in self._waitlist]
            live = self._live
            gone = [rid for rid in self._gone if rid not in live]
            children = list(self._new_children)
            ops = self._ops
        start = self._start_ids
        sid = self._session_ids
        rows: list[list[Any]] = []
        for r, s, st in zip(recs, held, states, strict=True):
            src: Any
            if r.id in start:
                src = None
            elif isinstance(r.source, Request):
                src = r.source.model_dump(mode="json", exclude_none=True)
            else:
                src = r.source
            rows.append([r.id, _STATUS_NAMES[st], sid[s] if s >= 0 else None, src])
        return {
            "format": STATE_FORMAT,
            "ops": ops,
            "children": [
                c.model_dump(mode="json", exclude_none=True) if isinstance(c, Child) else c
                for c in children
            ],
            "requests": rows,
            "waitlist": waitlist,
            "used": sorted(gone),
        }

    @classmethod
    def restore(
        cls,
        instance: Instance,
        state: Mapping[str, Any],
        *,
        compiled: Compiled | None = None,
    ) -> Self:
        """An Allocator in the state :meth:`state` gave, over the same starting instance.

        No pydantic validation: the sources are kept as the JSON data they are
        (as :func:`replay` does) and validated only by :meth:`export`. The
        places held are still checked (rules 1-5 and 7), and so is the engine's
        invariant that no waitlisted request is feasible.

        Parameters
        ----------
        instance
            The starting instance the state was built over.
        state
            What :meth:`state` returned (possibly through JSON).
        compiled
            ``compile_instance(instance)`` when the caller has it already.

        Returns
        -------
        Allocator
            Deciding every later operation as the saved one would.

        Raises
        ------
        InvalidStateError
            The data is malformed, of another format, names unknown requests,
            children or sessions, its places break a rule, or a waitlisted
            request is feasible.
        """
        self = cls.__new__(cls)
        try:
            with gc_paused():
                self._restore(instance, compiled, state)
        except InvalidStateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise InvalidStateError(f"malformed allocator state: {e!r}") from e
        return self

    def _restore(
        self, instance: Instance, compiled: Compiled | None, state: Mapping[str, Any]
    ) -> None:
        if state.get("format") != STATE_FORMAT:
            raise InvalidStateError(f"not an allocator state of format {STATE_FORMAT}")
        self._setup(instance, compiled)
        self._restore_children(state["children"])
        start = self._live
        self._live = {}
        waiting: dict[str, tuple[Req, Sequence[str]]] = {}
        for order, row in enumerate(state["requests"]):
            rec, prefs = self._restore_request(order, row, start)
            if rec.state == WAITING:
                waiting[rec.id] = (rec, prefs)
        waitlist = self._waitlist
        for rid in state["waitlist"]:
            rec, prefs = waiting.pop(rid)
            waitlist.enqueue(rec, self._arcs(rec.kids, prefs))
        if waiting:
            raise InvalidStateError(f"state: {next(iter(waiting))!r} is waitlisted out of the list")
        live = self._live
        self._gone.update(state["used"])
        self._gone.update(rid for rid in start if rid not in live)
        self._ops = int(state["ops"])
        self._next_order = len(live)
        self._check_nobody_waiting_fits()

    def _restore_children(self, children: Sequence[dict[str, Any]]) -> None:
        cidx = self._cidx
        for ch in children:
            cid = ch["id"]
            if type(cid) is not str or cid in cidx:
                raise InvalidStateError(f"state: child {cid!r} is declared twice")
            self._add_child(cid, dt.date.fromisoformat(ch["birth_date"]), ch)

    def _restore_request(
        self, order: int, row: Sequence[Any], start: Mapping[str, Req]
    ) -> tuple[Req, Sequence[str]]:
        """One ``[id, status, session, source]`` row as a live record, and its preferences.

        A waitlisted one is marked :data:`WAITING` but joins the waitlist later,
        in the state's waitlist order.
        """
        rid, status, sid, src = row
        where = f"state: request {rid!r}"
        live = self._live
        if rid in live:
            raise InvalidStateError(f"{where} is listed twice")
        source: Request | dict[str, Any]
        if src is None:
            source = start[rid].source
            assert isinstance(source, Request)
            kid_ids: Sequence[str] = source.children
            prefs: Sequence[str] = source.preferences
        else:
            if rid in start or src["id"] != rid:
                raise InvalidStateError(f"{where}: id used twice or not its source's")
            source = src
            kid_ids, prefs = src["children"], src["preferences"]
        cidx = self._cidx
        rec = live[rid] = new_req(rid, tuple([cidx[c] for c in kid_ids]), source, order)
        if status == "held":
            self._restore_held(rec, sid, prefs, where)
        elif status == "waitlisted":
            rec.state = WAITING
        elif status != "idle" or src is not None:
            raise InvalidStateError(f"{where}: status {status!r}")
        return rec, prefs

    def _restore_held(self, rec: Req, sid: str, prefs: Sequence[str], where: str) -> None:
        s = self._sidx[sid]
        groups = self._groups_in(rec.kids, s)
        if groups is None:
            raise InvalidStateError(f"{where}: rule 2 broken in {sid!r}")
        occ = self._occ
        broken = occ.violation(s, rec.size, groups, rec.kids)
        if broken is not None:
            raise InvalidStateError(f"{where}: rule {broken} broken in {sid!r}")
        occ.add(s, rec.size, groups, rec.kids)
        self._hold(rec, (s, groups, list(prefs).index(sid)))  # ValueError: rule 1

    def _check_nobody_waiting_fits(self) -> None:
        """The invariant the cancellation scan relies on: nobody waitlisted fits."""
        occ = self._occ
        open_, G, fits = occ.open, self._G, occ.fits
        for rec in self._waitlist:
            for s, groups, _rank in rec.arcs:
                base = s * G
                if all(open_[base + g] for g, _k in groups) and fits(s, rec.size, groups, rec.kids):
                    raise InvalidStateError(
                        f"state: waitlisted {rec.id!r} fits {self._session_ids[s]!r}"
                    )
