"""The durable ledger: exact replay, snapshots, integrity checks, failed commits, rebalance."""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

import slotalloc.solve  # noqa: F401  (sys.modules entry patched below)
from slotalloc.exceptions import BookingError, DuplicateRequestError, UnknownRequestError
from slotalloc.io import load_instance, parse_event
from slotalloc.ledger import (
    DurableAllocator,
    Ledger,
    LedgerCorruptError,
    LedgerMismatchError,
    LedgerUnavailableError,
    LedgerWriteError,
    RebalanceRejectedError,
)
from slotalloc.models import Assignment, BookEvent, Instance, Solution, Status
from slotalloc.online import replay
from slotalloc.result import Result
from slotalloc.verify import verify

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def instance() -> Instance:
    return load_instance(DATA / "sample-events.json")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return [ln for ln in (DATA / "sample-events.jsonl").read_text().splitlines() if ln.strip()]


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
    for line in lines:
        try:
            ev = parse_event(line)
        except ValueError:
            continue
        if isinstance(ev, BookEvent) and ev.request.id not in ids:
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
    da._ledger._db.close()  # a crash: no close(), no final snapshot
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
    real_commit = Ledger.commit

    def failing(self: Ledger, seq: int, h: bytes) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Ledger, "commit", failing)
    ev = book_after(lines, 60)
    with pytest.raises(LedgerWriteError):
        da.book(ev.request, ev.children or ())
    monkeypatch.setattr(Ledger, "commit", real_commit)
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

    monkeypatch.setattr(Ledger, "commit", failing)
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
                da._ledger._db.close()  # crash
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
