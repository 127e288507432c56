"""Replaying an events file (FORMAT §3) into decision dicts, fast.

Each line is decoded with :mod:`json` and its shape checked here against the
FORMAT §1 rules for a request and its children, without pydantic: building a
model per event would cost more than the booking itself. Only a line this check
does not plainly accept goes through :func:`slotalloc.io.parse_event` (the
models, which are the authority): it gives the error message, and if the
models accept a line the fast check refused, the models' reading is used. So
the fast check may be stricter than the models, never looser; the tests compare
the two on mutated lines.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from slotalloc.exceptions import BookingError
from slotalloc.io import event_line_error, parse_event
from slotalloc.models import MAX_PREFERENCES, BookEvent, Instance, _parse_date, _parse_timestamp
from slotalloc.online.allocator import Allocator

__all__ = ["replay"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_BOOK_KEYS = frozenset({"op", "request", "children"})
_REQUEST_KEYS = frozenset({"id", "children", "preferences", "priority", "submitted_at"})
_CHILD_KEYS = frozenset({"id", "birth_date", "residency", "household"})

# (request id, child ids, preference ids, declared children, priority, source)
_Book = tuple[str, Any, Any, list[tuple[str, dt.date, Any]], int, Any]


def _ids_ok(xs: Any, lo: int, hi: int) -> bool:
    if type(xs) is not list or not lo <= len(xs) <= hi:
        return False
    for x in xs:
        if type(x) is not str or not 0 < len(x) <= 64:
            return False
    return len(set(xs)) == len(xs)


def _fast_book(raw: dict[str, Any]) -> _Book | None:
    """A book event's parts when its shape is plainly valid, else None."""
    if not raw.keys() <= _BOOK_KEYS:
        return None
    req = raw.get("request")
    if type(req) is not dict or not req.keys() <= _REQUEST_KEYS:
        return None
    rid = req.get("id")
    if type(rid) is not str or not 0 < len(rid) <= 64:
        return None
    kids = req.get("children")
    prefs = req.get("preferences")
    if not _ids_ok(kids, 1, 1 << 30) or not _ids_ok(prefs, 1, MAX_PREFERENCES):
        return None
    priority = req.get("priority")
    if priority is None:
        priority = 0
    elif type(priority) is not int or not 0 <= priority <= 9:
        return None
    stamp = req.get("submitted_at")
    if stamp is not None:
        if type(stamp) is not str:
            return None
        try:
            _parse_timestamp(stamp)
        except ValueError:
            return None
    declared: list[tuple[str, dt.date, Any]] = []
    children = raw.get("children")
    if children is not None:
        if type(children) is not list:
            return None
        for ch in children:
            if type(ch) is not dict or not ch.keys() <= _CHILD_KEYS:
                return None
            cid = ch.get("id")
            bd = ch.get("birth_date")
            if type(cid) is not str or not 0 < len(cid) <= 64 or type(bd) is not str:
                return None
            try:
                born = _parse_date(bd)
            except ValueError:
                return None
            for key in ("residency", "household"):
                v = ch.get(key)
                if v is not None and type(v) is not str:
                    return None
            declared.append((cid, born, ch))
    return rid, kids, prefs, declared, priority, req


def replay(instance: Instance, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Apply FORMAT §3 events to a starting instance and yield the decisions.

    Parameters
    ----------
    instance
        The starting instance; its bookings are the places already held.
    lines
        The events, one JSON object per line; blank lines are skipped and not
        numbered.

    Returns
    -------
    Iterator of dict
        One decision per numbered line, with exactly the keys of FORMAT §3:
        ``{"event", "request", "session", "waitlisted"}`` for a book,
        ``{"event", "request", "cancelled", "promoted"}`` for a cancel,
        ``{"event", "error"}`` for a refused or malformed line.

    Raises
    ------
    InvalidStateError
        At once (before any decision) when the instance's bookings break one of
        FORMAT §2 rules 1-5 or 7.
    """
    alloc = Allocator(instance)
    return _decisions(alloc, lines)


def _event(line: str) -> tuple[_Book | None, str | None, str | None]:
    """A non-blank line read: (book, None, None), (None, cancel id, None) or (None, None, error)."""
    # FORMAT's general rules (a key twice, a number not finite or too long, deep
    # nesting, a lone surrogate, a control character in an id), which the plain
    # decoder below does not see.
    why = event_line_error(line)
    if why is not None:
        return None, None, why
    try:
        raw = _DECODER.decode(line)
    except ValueError:
        raw = None
    if type(raw) is dict:
        op = raw.get("op")
        if op == "book":
            book = _fast_book(raw)
            if book is not None:
                return book, None, None
        elif op == "cancel" and len(raw) == 2:
            r = raw.get("request")
            if type(r) is str and 0 < len(r) <= 64:
                return None, r, None
    # Not plainly valid: the models decide, and give the message.
    try:
        event = parse_event(line)
    except ValueError as e:
        return None, None, str(e)
    if isinstance(event, BookEvent):
        req = event.request
        declared = [(c.id, c.birth_date, c) for c in event.children or ()]
        return (
            (req.id, list(req.children), list(req.preferences), declared, req.priority, req),
            None,
            None,
        )
    return None, event.request, None


def _decisions(alloc: Allocator, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    admit = alloc._admit
    cancel = alloc._cancel
    lock = alloc._lock
    sid = alloc._session_ids
    n = -1
    for line in lines:
        if not line.strip():
            continue
        n += 1
        book, cancel_id, why = _event(line)
        if why is not None:
            yield {"event": n, "error": why}
            continue
        try:
            if book is not None:
                rid, kids, prefs, declared, _priority, source = book
                with lock:  # the priority counts only in the exported score (from the source)
                    rec = admit(rid, kids, prefs, declared, source)
                arc = rec.arc
                yield {
                    "event": n,
                    "request": rec.id,
                    "session": None if arc is None else sid[arc[0]],
                    "waitlisted": arc is None,
                }
            else:
                assert cancel_id is not None
                with lock:
                    _, promoted = cancel(cancel_id)
                yield {
                    "event": n,
                    "request": cancel_id,
                    "cancelled": True,
                    "promoted": [{"request": p[0], "session": p[1]} for p in promoted],
                }
        except BookingError as e:
            yield {"event": n, "error": str(e)}
