"""The durable ledger: exact replay, snapshots, integrity checks, failed commits, rebalance."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import slotalloc.solve  # noqa: F401  (sys.modules entry patched below)
from conftest import DATA
from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    DuplicateRequestError,
    UnknownRequestError,
)
from slotalloc.io import load_instance, parse_event
from slotalloc.models import Assignment, BookEvent, Child, Instance, Request, Solution, Status
from slotalloc.online import replay
from slotalloc.result import Result
from slotalloc.service.chain import row_hash
from slotalloc.service.ledger import (
    BookOp,
    DurableAllocator,
    GroupCommitter,
    HeadFile,
    Ledger,
    LedgerCorruptError,
    LedgerError,
    LedgerMismatchError,
    LedgerUnavailableError,
    LedgerWriteError,
    NotPermittedError,
    RebalanceRejectedError,
    UnstorableEventError,
    compact,
)
from slotalloc.service.ownership import Ownership
from slotalloc.verify import verify


@pytest.fixture(scope="module")
def instance() -> Instance:
    return load_instance(DATA / "sample-events.json")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return [ln for ln in (DATA / "sample-events.jsonl").read_text().splitlines() if ln.strip()]


def crash(da: DurableAllocator) -> None:
    """What a process death does to an open allocator: its files close, nothing else runs."""
    da._ledger._stop_checkpointer()
    da._ledger._db.close()
    da._ledger.head_file.close()
    if da._lock_file is not None:
        da._lock_file.close()


def head_of(da: DurableAllocator) -> tuple[int, bytes]:
    """The last committed (seq, hash) as the head file records it."""
    seq, h = da.head
    return seq, bytes.fromhex(h)


def apply_line(da: DurableAllocator, n: int, line: str) -> dict[str, Any]:
    """One FORMAT §3 event through the durable allocator, as a decision dict."""
    try:
        ev = parse_event(line)
    except ValueError as e:
        return {"event": n, "error": str(e)}
    try:
        if isinstance(ev, BookEvent):
            d = da.book(ev.request, ev.children or ())
            return {
                "event": n,
                "request": d.request,
                "session": d.session,
                "waitlisted": d.waitlisted,
            }
        c = da.cancel(ev.request)
        return {
            "event": n,
            "request": c.request,
            "cancelled": True,
            "promoted": [{"request": p.request, "session": p.session} for p in c.promoted],
        }
    except BookingError as e:
        return {"event": n, "error": str(e)}


def book_after(lines: list[str], i: int) -> BookEvent:
    """The first book event at or after line ``i``."""
    for line in lines[i:]:
        ev = parse_event(line)
        if isinstance(ev, BookEvent):
            return ev
    raise AssertionError("no book event")


def run_stream(da: DurableAllocator, lines: list[str]) -> list[dict[str, Any]]:
    return [apply_line(da, n, line) for n, line in enumerate(lines)]


def same_decisions(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if "error" in e:
            assert "error" in g, (g, e)
        else:
            assert g == e


def used_ids(instance: Instance, lines: list[str]) -> list[str]:
    """The starting request ids and those of the stream's accepted book events."""
    ids = [r.id for r in instance.requests]
    decisions = (DATA / "sample-events.decisions.jsonl").read_text().splitlines()
    for line, d in zip(lines, decisions, strict=True):
        try:
            ev = parse_event(line)
        except ValueError:
            continue
        if isinstance(ev, BookEvent) and ev.request.id not in ids and "error" not in d:
            ids.append(ev.request.id)
    return ids


def sources(da: DurableAllocator) -> dict[str, Any]:
    """Request id -> request, for the requests of the current state."""
    return {r.id: r for r in da.export()[0].requests}


def export_json(da: DurableAllocator) -> tuple[Any, Any]:
    inst, sol = da.export()
    return inst.model_dump(mode="json"), sol.model_dump(mode="json")


def test_sample_stream_matches_the_reference_decisions(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    expected = [
        json.loads(x)
        for x in (DATA / "sample-events.decisions.jsonl").read_text().splitlines()
        if x.strip()
    ]
    with DurableAllocator(instance, tmp_path / "l.db") as da:
        same_decisions(run_stream(da, lines), expected)
        inst, sol = da.export()
        assert verify(inst, sol).accepted
        n_ok = sum("error" not in e for e in expected)
        assert da.head[0] == n_ok - 1  # refusals are not logged


def test_restart_full_replay_and_snapshot_give_the_same_state(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    with DurableAllocator(instance, db, snapshot_every=37) as da:
        run_stream(da, lines)
        live = export_json(da)
        head = da.head
        held, waitlist = da.held(), da.waitlist()
        statuses = {rid: da.status(rid) for rid in used_ids(instance, lines)}
    # A snapshot every 37 rows, plus one at close: the restart replays nothing.
    snap = DurableAllocator(instance, db)
    assert snap.replayed_rows == 0
    assert export_json(snap) == live and snap.head == head
    assert snap.held() == held and snap.waitlist() == waitlist
    assert {rid: snap.status(rid) for rid in statuses} == statuses
    snap.close(snapshot=False)
    full = DurableAllocator(instance, db, use_snapshots=False)
    assert full.replayed_rows == head[0] + 1
    assert export_json(full) == live and full.waitlist() == waitlist
    full.close(snapshot=False)


def test_snapshot_plus_tail_after_a_crash(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, snapshot_every=100)
    run_stream(da, lines)
    live = export_json(da)
    crash(da)  # no close(), no final snapshot
    again = DurableAllocator(instance, db)
    assert 0 < again.replayed_rows < 100
    assert export_json(again) == live
    # The state keeps evolving identically after recovery.
    again.book(book_after(lines, 1).request.model_copy(update={"id": "late-1"}))
    again.close()


def test_ledger_rows_replay_to_the_serial_format_decisions(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    with DurableAllocator(instance, db) as da:
        run_stream(da, lines)
    led = Ledger(db, instance)
    rows = list(led.rows())
    led.close()
    events = [json.dumps({"op": r.kind, **json.loads(r.body)}) for r in rows]
    decisions = [dict(d) for d in replay(instance, events)]
    for i, (d, r) in enumerate(zip(decisions, rows, strict=True)):
        assert d.pop("event") == i
        assert d == json.loads(r.result)


def test_refusals_change_nothing_and_are_not_logged(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    with DurableAllocator(instance, tmp_path / "l.db") as da:
        ev = book_after(lines, 0)
        da.book(ev.request, ev.children)
        before = (da.head, export_json(da))
        with pytest.raises(DuplicateRequestError):
            da.book(ev.request, ev.children)
        with pytest.raises(UnknownRequestError):
            da.cancel("never-booked")
        assert (da.head, export_json(da)) == before


def test_a_cancelled_id_stays_used_across_a_restart(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    ev = book_after(lines, 0)
    with DurableAllocator(instance, db) as da:
        da.book(ev.request, ev.children)
        da.cancel(ev.request.id)
    with DurableAllocator(instance, db) as da:  # rebuilt from a snapshot
        assert da.status(ev.request.id).cancelled
        with pytest.raises(DuplicateRequestError):
            da.book(ev.request, ev.children)


# ---------------------------------------------------------------- integrity


def _fill(instance: Instance, lines: list[str], db: Path, *, snapshot: bool = False) -> int:
    da = DurableAllocator(instance, db, snapshot_every=0)
    run_stream(da, lines[:120])
    seq = da.head[0]
    da.close(snapshot=snapshot)
    return seq


def test_an_edited_row_is_detected(instance: Instance, lines: list[str], tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    seq = _fill(instance, lines, db)
    with sqlite3.connect(db) as con:
        con.execute(
            "UPDATE events SET result = replace(result, 'false', 'true') WHERE seq = ?", (seq - 3,)
        )
    with pytest.raises(LedgerCorruptError, match="hash chain"):
        DurableAllocator(instance, db)


def test_a_truncated_tail_is_detected(instance: Instance, lines: list[str], tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    seq = _fill(instance, lines, db)
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM events WHERE seq > ?", (seq - 5,))
    with pytest.raises(LedgerCorruptError, match="truncated"):
        DurableAllocator(instance, db)


def test_a_gap_is_detected(instance: Instance, lines: list[str], tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _fill(instance, lines, db)
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM events WHERE seq = 10")
    with pytest.raises(LedgerCorruptError, match="missing"):
        DurableAllocator(instance, db)


def test_a_truncated_file_is_detected(instance: Instance, lines: list[str], tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _fill(instance, lines, db)
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(LedgerCorruptError):
        DurableAllocator(instance, db, full_check=True)


def test_a_damaged_file_is_detected(instance: Instance, lines: list[str], tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _fill(instance, lines, db)
    raw = bytearray(db.read_bytes())
    rng = random.Random(3)
    for i in rng.sample(range(4096, len(raw)), 200):  # page 1 kept: the schema stays readable
        raw[i] ^= 0xFF
    db.write_bytes(bytes(raw))
    with pytest.raises(LedgerCorruptError):
        DurableAllocator(instance, db, full_check=True)


def test_a_bad_snapshot_is_skipped_not_trusted(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    with DurableAllocator(instance, db, snapshot_every=0) as da:
        run_stream(da, lines)
        live = export_json(da)
    with sqlite3.connect(db) as con:
        (blob,) = con.execute("SELECT state FROM snapshots").fetchone()
        con.execute("UPDATE snapshots SET state = ?", (bytes(blob[:-1]) + b"\x00",))
    da = DurableAllocator(instance, db)
    assert da.replayed_rows == da.head[0] + 1  # fell back to the rows
    assert export_json(da) == live
    da.close(snapshot=False)


def test_another_instance_or_schema_is_refused(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    _fill(instance, lines, db)
    other = instance.model_copy(update={"name": "another"})
    with pytest.raises(LedgerMismatchError, match="another instance"):
        DurableAllocator(other, db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LedgerMismatchError, match="schema version"):
        DurableAllocator(instance, db)


# ---------------------------------------------------------------- failed commits


def test_a_failed_commit_changes_nothing(
    instance: Instance, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, snapshot_every=0)
    run_stream(da, lines[:50])
    before = (da.head, export_json(da), da.waitlist())
    real_append = Ledger.append

    def failing(self: Ledger, *_: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Ledger, "append", failing)
    ev = book_after(lines, 60)
    with pytest.raises(LedgerWriteError):
        da.book(ev.request, ev.children or ())
    monkeypatch.setattr(Ledger, "append", real_append)
    assert (da.head, export_json(da), da.waitlist()) == before
    # The refused event can be submitted again, and the ledger stays exact.
    da.book(ev.request, ev.children or ())
    live = export_json(da)
    da.close(snapshot=False)
    again = DurableAllocator(instance, db, use_snapshots=False)
    assert export_json(again) == live
    again.close()


def test_an_unrecoverable_failure_refuses_further_operations(
    instance: Instance, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    da = DurableAllocator(instance, tmp_path / "l.db")
    run_stream(da, lines[:20])

    def failing(*_: Any, **__: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Ledger, "append", failing)
    monkeypatch.setattr(Ledger, "latest_snapshot", failing)
    ev = book_after(lines, 30)
    with pytest.raises(LedgerUnavailableError):
        da.book(ev.request, ev.children or ())
    assert da.failure is not None
    with pytest.raises(LedgerUnavailableError):
        da.cancel("anything")
    da.close()


def test_a_transaction_groups_commits_and_undoes_on_error(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    da = DurableAllocator(instance, tmp_path / "l.db")
    with da.transaction():
        run_stream(da, lines[:40])
    committed = (da.head, export_json(da))
    with pytest.raises(RuntimeError, match="boom"), da.transaction():
        run_stream(da, lines[40:80])
        raise RuntimeError("boom")
    assert (da.head, export_json(da)) == committed
    da.close()


# ---------------------------------------------------------------- rebalance


def _fake_solver(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """Replace the batch solver by one applying ``change`` to the current places."""

    def fake(problem: Instance, **_: Any) -> Result:
        places = {b.request: b.session for b in problem.bookings}
        change(problem, places)
        order = problem.request_index
        return Result(
            status=Status.FEASIBLE,
            score=0,
            bound=None,
            assignments=tuple(
                Assignment(request=r, session=s)
                for r, s in sorted(places.items(), key=lambda kv: order[kv[0]])
            ),
            stats={"solver": "fake"},
        )

    monkeypatch.setattr(sys.modules["slotalloc.solve"], "solve", fake)


def test_rebalance_moves_drops_and_replays(
    instance: Instance, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, snapshot_every=0)
    run_stream(da, lines[:200])
    assert da.waitlist()
    held = da.held()
    # Drop one held request whose session a waitlisted request wants: the scan places it.
    src = sources(da)
    wl = da.waitlist()
    victim = next(r for r, s in held.items() if any(s in src[w].preferences for w in wl))

    def drop(problem: Instance, places: dict[str, str]) -> None:
        del places[victim]

    _fake_solver(monkeypatch, drop)
    before = export_json(da)
    with pytest.raises(RebalanceRejectedError, match="drops"):
        da.rebalance()
    assert export_json(da) == before
    out = da.rebalance(allow_drops=True)
    assert out.dropped == ((victim, held[victim]),)
    assert out.promoted, "the freed place goes to the waitlist"
    st = da.status(victim)
    assert st.waitlisted or st.session is not None
    inst, sol = da.export()
    assert verify(inst, sol).accepted
    live = export_json(da)
    da.close(snapshot=False)
    full = DurableAllocator(instance, db, use_snapshots=False)
    assert export_json(full) == live
    full.close()
    with DurableAllocator(instance, db) as snap:
        assert export_json(snap) == live


def test_rebalance_applies_a_move(
    instance: Instance, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db)
    run_stream(da, lines[:30])
    src = sources(da)
    moved: list[tuple[str, str, str]] = []

    def move(problem: Instance, places: dict[str, str]) -> None:
        for r, s in places.items():
            for alt in src[r].preferences:
                if alt != s and da.session_occupancy(alt)["taken"] == 0:
                    probe = dict(places)
                    probe[r] = alt
                    pairs = [Assignment(request=k, session=v) for k, v in probe.items()]
                    sol = Solution(status=Status.FEASIBLE, score=0, assignments=tuple(pairs))
                    if verify(problem, sol).valid:
                        places[r] = alt
                        moved.append((r, s, alt))
                        return

    _fake_solver(monkeypatch, move)
    out = da.rebalance()
    assert out.moved == tuple(moved) and len(moved) == 1
    r, _old, new = moved[0]
    assert da.status(r).session == new and da.held()[r] == new
    live = export_json(da)
    da.close(snapshot=False)
    with DurableAllocator(instance, db, use_snapshots=False) as full:
        assert export_json(full) == live


def test_rebalance_with_the_baseline_changes_nothing(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    with DurableAllocator(instance, tmp_path / "l.db") as da:
        run_stream(da, lines)
        head = da.head
        out = da.rebalance()
        assert out.seq is None and not (out.moved or out.dropped or out.placed)
        assert da.head == head


# ---------------------------------------------------------------- random restarts


@pytest.mark.parametrize("seed", [1, 2])
def test_random_restarts_never_change_the_outcome(
    instance: Instance, lines: list[str], tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    db = tmp_path / "l.db"
    with DurableAllocator(instance, tmp_path / "ref.db") as ref:
        expected = run_stream(ref, lines)
        final = export_json(ref)
    got: list[dict[str, Any]] = []
    da = DurableAllocator(instance, db, snapshot_every=rng.randint(5, 60))
    for n, line in enumerate(lines):
        got.append(apply_line(da, n, line))
        if rng.random() < 0.05:
            if rng.random() < 0.5:
                crash(da)
            else:
                da.close()
            da = DurableAllocator(instance, db, snapshot_every=rng.randint(5, 60))
    same_decisions(got, expected)
    assert export_json(da) == final
    da.close()


def test_session_occupancy_agrees_with_the_export(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    with DurableAllocator(instance, tmp_path / "l.db") as da:
        run_stream(da, lines)
        inst, sol = da.export()
        kids = {r.id: len(r.children) for r in inst.requests}
        per_session: dict[str, int] = {}
        for a in sol.assignments:
            per_session[a.session] = per_session.get(a.session, 0) + kids[a.request]
        for s in inst.sessions:
            occ = da.session_occupancy(s.id)
            assert occ["taken"] == per_session.get(s.id, 0)
            assert occ["taken"] == sum(g["taken"] for g in occ["groups"])
            assert occ["caregivers_needed"] <= occ["caregivers_available"]
            assert occ["taken"] <= occ["capacity"]


# ---------------------------------------------------------------- review regressions


def _fresh_child_book(da: DurableAllocator, rid: str, child: str, **child_kw: Any) -> BookEvent:
    """A book event declaring one new child, with the first sessions as preferences."""
    return BookEvent.model_validate(
        {
            "op": "book",
            "request": {"id": rid, "children": [child], "preferences": da.session_ids[:10]},
            "children": [{"id": child, "birth_date": "2024-01-30", **child_kw}],
        }
    )


def test_regression_surrogate_household_not_phantom(instance: Instance, tmp_path: Path) -> None:
    """Text the file cannot hold is refused before the state changes (models bypassed)."""
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db)
    ok = _fresh_child_book(da, "ok-1", "kid-ok")
    da.book(ok.request, ok.children or ())
    before = (da.head, export_json(da), da.waitlist())
    req = Request.model_validate(
        {"id": "sur-1", "children": ["kid-s"], "preferences": da.session_ids[:3]}
    )
    bad_child = Child.model_construct(
        id="kid-s", birth_date=dt.date(2024, 1, 30), household="\ud800"
    )
    with pytest.raises(UnstorableEventError):
        da.book(req, [bad_child])
    bad_req = Request.model_construct(
        id="sur-\udc00", children=("kid-ok",), preferences=tuple(da.session_ids[:3]), priority=0
    )
    with pytest.raises(UnstorableEventError):
        da.book(bad_req)
    assert (da.head, export_json(da), da.waitlist()) == before
    with pytest.raises(UnknownRequestError):
        da.status("sur-1")
    # A booking that would depend on the refused one is refused too: the child is unknown.
    dep = Request.model_validate(
        {"id": "dep", "children": ["kid-s"], "preferences": da.session_ids[:1]}
    )
    with pytest.raises(BookingError):
        da.book(dep)
    live = export_json(da)
    crash(da)
    with DurableAllocator(instance, db, use_snapshots=False) as again:
        assert export_json(again) == live


class _Boom(Exception):
    pass


@pytest.mark.parametrize(
    "where, exc",
    [
        ("append", sqlite3.OperationalError("disk I/O error")),
        ("append", RuntimeError("anything")),
        ("append", KeyboardInterrupt()),
        ("head_file", OSError(28, "No space left on device")),
        ("head_file", _Boom()),
        ("after_apply", _Boom()),
    ],
)
def test_regression_failed_commit_any_exception_changes_nothing(
    instance: Instance,
    lines: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    exc: BaseException,
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, snapshot_every=0)
    run_stream(da, lines[:50])
    before = (da.head, export_json(da), da.waitlist())

    def fail(*_: Any, **__: Any) -> None:
        raise exc

    if where == "append":
        monkeypatch.setattr(Ledger, "append", fail)
    elif where == "head_file":
        real_write = HeadFile.write
        calls = {"n": 0}

        def write(self: HeadFile, seq: int, h: bytes) -> None:
            calls["n"] += 1
            if calls["n"] == 1:  # the commit's head; the compensation's goes through
                raise exc
            real_write(self, seq, h)

        monkeypatch.setattr(HeadFile, "write", write)
    else:
        # Between applying an operation and appending its row (once: recovery hashes too).
        mod = sys.modules["slotalloc.service.journal"]
        real_hash, calls_h = mod.row_hash, {"n": 0}

        def row_hash(*a: Any) -> bytes:
            calls_h["n"] += 1
            if calls_h["n"] == 3:  # the third operation of the batch
                raise exc
            return real_hash(*a)

        monkeypatch.setattr(mod, "row_hash", row_hash)
    ops = [parse_event(x) for x in lines[60:70]]
    expected = LedgerWriteError if isinstance(exc, Exception) else type(exc)
    with pytest.raises(expected), da.transaction():
        for ev in ops:
            with contextlib.suppress(BookingError):
                if isinstance(ev, BookEvent):
                    da.book(ev.request, ev.children or ())
                else:
                    da.cancel(ev.request)
    monkeypatch.undo()
    assert da.failure is None
    assert (da.head, export_json(da), da.waitlist()) == before
    # Nothing of it reached the file, and the same operations can be submitted again.
    run_stream(da, lines[60:70])
    live = export_json(da)
    da.close(snapshot=False)
    with DurableAllocator(instance, db, use_snapshots=False) as again:
        assert export_json(again) == live


def _filled(instance: Instance, lines: list[str], db: Path) -> DurableAllocator:
    """An open allocator: 60 events checkpointed into the file, 60 more in the WAL only."""
    da = DurableAllocator(instance, db, snapshot_every=0)
    run_stream(da, lines[:60])
    da._ledger._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    run_stream(da, lines[60:120])
    return da


def _copy(src: Path, dest: Path, suffixes: tuple[str, ...]) -> Path:
    dest.mkdir()
    for s in suffixes:
        shutil.copyfile(str(src) + s, str(dest / src.name) + s)
    return dest / src.name


def test_regression_emptied_db_refused(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    seq = _fill(instance, lines, db)
    db.write_bytes(b"")
    with pytest.raises(LedgerCorruptError, match=r"empty.*head file records row"):
        DurableAllocator(instance, db)
    assert db.stat().st_size == 0  # refused before writing anything
    db.unlink()
    with pytest.raises(LedgerCorruptError, match="missing"):
        DurableAllocator(instance, db)
    assert not db.exists()
    with DurableAllocator(instance, db, recover=True) as da:
        rep = da.recovery
        assert rep is not None and rep.kept_last == -1 and rep.head_file == seq
        assert "acknowledged row(s) lost" in rep.summary()
    with DurableAllocator(instance, db) as da:  # now consistent again
        assert da.head[0] == -1


def test_regression_deleted_wal_refused(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    da = _filled(instance, lines, tmp_path / "l.db")
    head = da.head[0]
    # The file and its head file without the WAL: what a deleted WAL leaves.
    copy = _copy(tmp_path / "l.db", tmp_path / "nowal", ("", ".head"))
    da.close()
    with pytest.raises(LedgerCorruptError, match=r"missing.*WAL"):
        DurableAllocator(instance, copy)
    with DurableAllocator(instance, copy, recover=True) as rec:
        assert rec.recovery is not None and rec.recovery.head_file == head
        assert rec.head[0] < head
        assert Path(rec.recovery.backup + ".head").exists()


def test_regression_flipped_wal_byte_refused(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    da = _filled(instance, lines, tmp_path / "l.db")
    head = da.head[0]
    copy = _copy(tmp_path / "l.db", tmp_path / "flip", ("", "-wal", ".head"))
    da.close()
    wal = Path(str(copy) + "-wal")
    raw = bytearray(wal.read_bytes())
    frame = 24 + 4096
    frames = (len(raw) - 32) // frame
    assert frames > 4
    raw[32 + (frames // 2) * frame + 24 + 100] ^= 0x01  # one bit, in a page of a middle commit
    wal.write_bytes(bytes(raw))
    with pytest.raises(LedgerCorruptError, match=f"head file records row {head}"):
        DurableAllocator(instance, copy)
    with DurableAllocator(instance, copy, recover=True) as rec:
        assert rec.recovery is not None and 0 <= rec.head[0] < head


def test_regression_rows_before_snapshot_checked(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    with DurableAllocator(instance, db, snapshot_every=0) as da:
        run_stream(da, lines[:120])
    # The snapshot (at the head) would let a start skip every row: edit one long before it.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE events SET body = replace(body, '2024', '2023') WHERE seq = 3")
    with pytest.raises(LedgerCorruptError, match="row 3 fails the hash chain"):
        DurableAllocator(instance, db)


def test_regression_missing_head_file_refused(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    seq = _fill(instance, lines, db)
    Path(str(db) + ".head").unlink()
    with pytest.raises(LedgerCorruptError, match=r"head file .* is missing"):
        DurableAllocator(instance, db)
    with DurableAllocator(instance, db, recover=True) as da:  # adopts the ledger as it is
        assert da.head[0] == seq and da.recovery is not None and da.recovery.dropped == 0
    with DurableAllocator(instance, db) as da:
        assert da.head[0] == seq


def test_regression_altered_tail_recovered_to_the_valid_prefix(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    seq = _fill(instance, lines, db)
    with sqlite3.connect(db) as con:
        con.execute(
            "UPDATE events SET result = replace(result, 'false', 'true') WHERE seq = ?", (seq - 5,)
        )
    with pytest.raises(LedgerCorruptError, match="hash chain"):
        DurableAllocator(instance, db)
    with DurableAllocator(instance, db, recover=True) as da:
        rep = da.recovery
        assert rep is not None and rep.kept_last == seq - 6 and rep.dropped == 6
        assert da.head[0] == seq - 6
        kept = export_json(da)
    with DurableAllocator(instance, db, use_snapshots=False) as da:
        assert export_json(da) == kept
    with DurableAllocator(instance, tmp_path / "ref.db") as ref:  # the same as the prefix
        n_ok = 0
        for n, line in enumerate(lines[:120]):
            if "error" not in apply_line(ref, n, line):
                n_ok += 1
            if n_ok == seq - 5:
                break
        assert export_json(ref) == kept


def test_head_file_one_commit_behind_is_kept(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    """A crash between the commit and the head file: that transaction was never acknowledged."""
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, snapshot_every=0)
    run_stream(da, lines[:40])
    prev = head_of(da)
    with da.transaction():
        run_stream(da, lines[40:50])
    live = export_json(da)
    da._ledger.head_file.write(*prev)  # as if the head file write had not happened
    crash(da)
    with DurableAllocator(instance, db) as again:
        assert export_json(again) == live
    # Two transactions behind is not a crash artefact: refused.
    da = DurableAllocator(instance, db, snapshot_every=0)
    old = head_of(da)
    run_stream(da, lines[50:52])
    da._ledger.head_file.write(*old)
    crash(da)
    with pytest.raises(LedgerCorruptError, match="head file records row"):
        DurableAllocator(instance, db)


def test_regression_group_commit_one_fsync_per_batch(
    instance: Instance, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    da = DurableAllocator(instance, tmp_path / "l.db")
    gc = GroupCommitter(da, window=0.005)
    commits: list[int] = []
    real_append = Ledger.append

    def append(self: Ledger, rows: Any, head: Any, prev: Any) -> None:
        commits.append(len(rows))
        time.sleep(0.01)  # a slow disk: operations pile up behind the commit
        real_append(self, rows, head, prev)

    monkeypatch.setattr(Ledger, "append", append)
    events = [parse_event(x) for x in lines[:80]]
    books = [ev for ev in events if isinstance(ev, BookEvent)][:60]
    futures = []
    with ThreadPoolExecutor(12) as pool:
        futures = list(pool.map(lambda ev: gc.submit(BookOp(ev.request, ev.children or ())), books))
    outs = []
    for f in futures:
        try:
            d = f.result(30)
        except BookingError:
            continue
        assert da.head[0] >= d.sequence  # resolved only after its commit
        outs.append(d)
    gc.close()
    assert sum(commits) == len(outs) and len(commits) < len(outs), commits
    assert max(commits) > 1
    live = export_json(da)
    da.close(snapshot=False)
    with DurableAllocator(instance, tmp_path / "l.db", use_snapshots=False) as again:
        assert export_json(again) == live


def test_compaction_erases_a_cancelled_family(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, snapshot_every=25)
    run_stream(da, lines[:80])
    fam = _fresh_child_book(da, "fam-1", "kid-erase", household="HOUSEHOLD-Erase-Me")
    da.book(fam.request, fam.children or (), secret="s3cret-fam-1")
    other = _fresh_child_book(da, "fam-2", "kid-stay", household="HOUSEHOLD-Stays")
    da.book(other.request, other.children or (), secret="s3cret-fam-2")
    da.cancel("fam-1")
    before = (da.held(), da.waitlist())
    old_head = da.head
    report = da.compact()
    assert report.old_head == old_head[0] and report.old_head_hash == old_head[1]
    assert report.erased_children >= 1 and da.head == (report.base_seq, report.base_hash)
    assert (da.held(), da.waitlist()) == before
    # The base row chains from the old head.
    rows = list(da._ledger.rows())
    assert [r.kind for r in rows] == ["base"]
    assert rows[0].hash == row_hash(
        bytes.fromhex(old_head[1]), report.base_seq, "base", rows[0].body, rows[0].result
    )
    # Ids stay used; the family can be booked again (its data was forgotten), others go on.
    with pytest.raises(DuplicateRequestError):
        da.book(fam.request, fam.children or ())
    da.cancel("fam-2", proof="s3cret-fam-2", privileged=False)
    run_stream(da, lines[80:120])
    live = export_json(da)
    da.close()
    for path in (db, Path(str(db) + "-wal")):
        if path.exists():
            assert b"HOUSEHOLD-Erase-Me" not in path.read_bytes()
    with DurableAllocator(instance, db, use_snapshots=False) as again:
        assert export_json(again) == live
    with DurableAllocator(instance, db) as again:
        assert export_json(again) == live


def test_compaction_that_fails_changes_nothing(
    instance: Instance, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db)
    run_stream(da, lines[:40])
    before = (da.head, export_json(da))

    def fail(*_: Any, **__: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sys.modules["slotalloc.service.store"], "fsync_dir", fail)
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(LedgerWriteError):
        da.compact()
    monkeypatch.undo()
    assert (da.head, export_json(da)) == before
    assert sorted(p.name for p in tmp_path.iterdir() if "rewrite" in p.name) == []
    da.close()
    with DurableAllocator(instance, db) as again:
        assert (again.head, export_json(again)) == before


def test_a_crash_while_creating_the_ledger_needs_no_recover(
    instance: Instance, tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    DurableAllocator(instance, db).close()
    Path(str(db) + ".head").unlink()  # created, but the head file never written
    with DurableAllocator(instance, db) as da:
        assert da.head[0] == -1 and da.recovery is None
    db.write_bytes(b"")  # the head file written, the file not yet
    with DurableAllocator(instance, db) as da:
        assert da.head[0] == -1 and da.recovery is None


def test_a_second_writer_is_refused(instance: Instance, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with DurableAllocator(instance, db, exclusive=True):
        with pytest.raises(LedgerError, match="open in another process"):
            DurableAllocator(instance, db, exclusive=True)
        with pytest.raises(LedgerError, match="open in another process"):
            compact(instance, db)
        Ledger(db, instance).close()  # reading it is fine
    DurableAllocator(instance, db, exclusive=True).close()  # released on close


def test_background_checkpoint_keeps_checkpoints_out_of_commits(
    instance: Instance, lines: list[str], tmp_path: Path
) -> None:
    db = tmp_path / "l.db"
    da = DurableAllocator(instance, db, background_checkpoint=True)
    assert da._ledger._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    ck = da._ledger._checkpointer
    assert ck is not None
    ck.threshold, ck.interval = 1, 0.05
    run_stream(da, lines[:80])
    head = da.head[0]
    deadline = time.monotonic() + 10
    while True:  # the database file alone (no WAL) holds every committed row
        copy = tmp_path / f"copy-{time.monotonic_ns()}.db"
        shutil.copyfile(db, copy)
        with contextlib.closing(sqlite3.connect(copy)) as con:
            try:
                top = con.execute("SELECT max(seq) FROM events").fetchone()[0]
            except sqlite3.DatabaseError:
                top = None
        if top == head:
            break
        assert time.monotonic() < deadline, "no background checkpoint"
        time.sleep(0.05)
    live = export_json(da)
    da.close()
    assert not da._ledger._checkpointer  # stopped with the ledger
    with DurableAllocator(instance, db, use_snapshots=False) as again:
        assert export_json(again) == live


# ---------------------------------------------------------------- per-booking secrets


def test_ownership_checks_and_survives_a_snapshot(instance: Instance, tmp_path: Path) -> None:
    """Who may cancel or book again without an operator, live and after a restart."""
    (kid,) = instance.requests[0].children
    mine = Request(id="mine", children=(kid,), preferences=instance.requests[0].preferences)
    again = Request(id="again", children=(kid,), preferences=mine.preferences)
    db = tmp_path / "l.db"
    with DurableAllocator(instance, db) as da:
        da.book(mine, secret="s3cret-mine")
    for snaps in (True, False):
        with DurableAllocator(instance, db, use_snapshots=snaps) as da:
            with pytest.raises(NotPermittedError, match="registered by another booking"):
                da.book(again, proof="wrong", privileged=False)
            with pytest.raises(NotPermittedError, match="needs its secret"):
                da.cancel("mine", proof="wrong", privileged=False)
            assert da.head[0] == 0  # refusals are not logged
    with DurableAllocator(instance, db) as da:
        da.cancel("mine", proof="s3cret-mine", privileged=False)
        da.book(again, proof="s3cret-mine", privileged=False)  # the secret still owns the child
        with pytest.raises(AlreadyCancelledError):
            da.cancel("mine", proof="s3cret-mine", privileged=False)


def test_ownership_round_trips_through_its_json() -> None:
    kid_request = Request(id="r", children=("c1", "c2"), preferences=("s",))
    own = Ownership()
    own.note(kid_request, b"\x01" * 32)
    own.note(kid_request, b"\x01" * 32)  # the same digest once per child
    back = Ownership.from_json(json.loads(json.dumps(own.to_json())))
    assert back.secrets == {"r": b"\x01" * 32} and back.owners == own.owners
    assert back.owners["c1"] == [b"\x01" * 32]
    assert back.may_cancel("r", b"\x01" * 32) and not back.may_cancel("r", b"\x02" * 32)
    assert back.book_refusal(kid_request, b"\x01" * 32) is None
    assert isinstance(back.book_refusal(kid_request, None), NotPermittedError)
    back.forget("r")
    assert not back.may_cancel("r", b"\x01" * 32)


def test_the_ledger_side_imports_no_fastapi() -> None:
    code = "import sys, slotalloc.service.ledger; assert 'fastapi' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
