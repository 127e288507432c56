"""Regression tests of the security and reliability review of ``slotalloc serve``.

One test per finding, named after it. Every refused HTTP call must be a 4xx
that changes nothing (same ledger head, same export).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx
from fastapi.testclient import TestClient

import service_fixtures
import slotalloc.solve
from service_fixtures import (
    AUTH,
    BK,
    BOOKING,
    DATA,
    OP,
    OPERATOR,
    PR,
    free_port,
    live_server,
    state,
)
from slotalloc.io import load_instance
from slotalloc.models import Assignment, Instance, Solution, Status
from slotalloc.online import Allocator
from slotalloc.result import Result
from slotalloc.service.ledger import DurableAllocator, Ledger
from slotalloc.service.server import Limits, OneLineFormatter, create_app
from slotalloc.verify import verify

ROOT = Path(__file__).resolve().parents[2]

alloc = service_fixtures.alloc
client = service_fixtures.client


def session_ids(alloc: DurableAllocator) -> list[str]:
    return alloc.session_ids


def body_for(
    rid: str, alloc: DurableAllocator, child: str = "new-kid", born: str = "2024-01-30", **kw: Any
) -> dict[str, Any]:
    """A book body declaring one new child, preferring every session (waitlisted at worst)."""
    prefs = alloc.session_ids[:10]
    req = {"id": rid, "children": [child], "preferences": prefs, **kw}
    return {"request": req, "children": [{"id": child, "birth_date": born}]}


# ---------------------------------------------------------------- access


def test_regression_anonymous_cancel_refused(client: TestClient, alloc: DurableAllocator) -> None:
    r = client.post("/bookings", json=body_for("fam-1", alloc), headers=BK)
    assert r.status_code == 201
    secret = r.json()["secret"]
    before = state(client, alloc)
    assert client.delete("/bookings/fam-1").status_code == 401
    assert (
        client.delete("/bookings/fam-1", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    # A booking token alone is not enough: knowing a request id is not enough.
    assert client.delete("/bookings/fam-1", headers=BK).status_code == 403
    wrong = {**BK, "X-Booking-Secret": secret[:-1] + ("A" if secret[-1] != "A" else "B")}
    assert client.delete("/bookings/fam-1", headers=wrong).status_code == 403
    assert state(client, alloc) == before
    ok = client.delete("/bookings/fam-1", headers={**BK, "X-Booking-Secret": secret})
    assert ok.status_code == 200 and ok.json()["cancelled"] is True
    # An operator may cancel any booking.
    r2 = client.post("/bookings", json=body_for("fam-2", alloc, child="kid-2"), headers=BK)
    assert client.delete("/bookings/fam-2", headers=OP).status_code == 200, r2.text


def test_regression_secret_survives_restart(tmp_path: Path) -> None:
    inst = load_instance(DATA / "sample-events.json")
    db = tmp_path / "l.db"
    with DurableAllocator(inst, db) as da, TestClient(create_app(da, AUTH)) as c:
        secret = c.post("/bookings", json=body_for("fam-1", da), headers=BK).json()["secret"]
    for use_snapshots in (True, False):  # from the snapshot, and from the rows alone
        with DurableAllocator(inst, db, use_snapshots=use_snapshots) as da:
            with TestClient(create_app(da, AUTH)) as c:
                assert c.delete("/bookings/fam-1", headers=BK).status_code == 403
            da.close(snapshot=False)
    with DurableAllocator(inst, db) as da, TestClient(create_app(da, AUTH)) as c:
        got = c.delete("/bookings/fam-1", headers={**BK, "X-Booking-Secret": secret})
        assert got.status_code == 200


def test_regression_export_requires_operator(client: TestClient) -> None:
    assert client.get("/export").status_code == 401
    assert client.get("/export", headers=BK).status_code == 403
    r = client.get("/export", headers=OP)
    assert r.status_code == 200
    inst = Instance.model_validate(r.json()["instance"])
    assert verify(inst, Solution.model_validate(r.json()["solution"])).accepted


def test_regression_session_request_ids_need_operator(
    client: TestClient, alloc: DurableAllocator
) -> None:
    client.post("/bookings", json=body_for("fam-1", alloc), headers=BK)
    assert client.get("/sessions").status_code == 401
    counts = client.get("/sessions", headers=BK).json()["sessions"]
    assert counts and all("requests" not in s and "taken" in s for s in counts)
    full = client.get("/sessions", headers=OP).json()["sessions"]
    assert any(s["requests"] for s in full)


def test_regression_anonymous_booking_refused(client: TestClient, alloc: DurableAllocator) -> None:
    """Nobody without a token can book, or squat a request id."""
    before = state(client, alloc)
    assert client.post("/bookings", json=body_for("squat", alloc)).status_code == 401
    assert client.get("/bookings/squat").status_code == 401
    assert client.get("/bookings/squat", headers=OP).status_code == 404  # the id is still free
    assert state(client, alloc) == before
    assert client.post("/bookings", json=body_for("squat", alloc), headers=BK).status_code == 201


def test_regression_other_familys_child_refused(
    client: TestClient, alloc: DurableAllocator
) -> None:
    r = client.post("/bookings", json=body_for("fam-1", alloc, child="kid-a"), headers=BK)
    secret = r.json()["secret"]
    before = state(client, alloc)
    # Another family books kid-a: naming it, or re-declaring it with the right date.
    other = {
        "request": {"id": "intruder", "children": ["kid-a"], "preferences": session_ids(alloc)[:3]}
    }
    assert client.post("/bookings", json=other, headers=BK).status_code == 403
    redeclared = body_for("intruder", alloc, child="kid-a")
    assert client.post("/bookings", json=redeclared, headers=BK).status_code == 403
    assert state(client, alloc) == before
    # The family itself, with its booking's secret, may book the child again; so may an operator.
    mine = client.post("/bookings", json=other, headers={**BK, "X-Booking-Secret": secret})
    assert mine.status_code == 201
    other["request"]["id"] = "by-operator"
    assert client.post("/bookings", json=other, headers=OP).status_code == 201


def test_regression_priority_needs_permission(client: TestClient, alloc: DurableAllocator) -> None:
    before = state(client, alloc)
    r = client.post("/bookings", json=body_for("p-1", alloc, priority=9), headers=BK)
    assert r.status_code == 403
    assert state(client, alloc) == before
    assert (
        client.post("/bookings", json=body_for("p-1", alloc, priority=0), headers=BK).status_code
        == 201
    )
    body = body_for("p-2", alloc, child="kid-p2", priority=9)
    assert client.post("/bookings", json=body, headers=PR).status_code == 201
    body = body_for("p-3", alloc, child="kid-p3", priority=5)
    assert client.post("/bookings", json=body, headers=OP).status_code == 201


def test_regression_rebalance_requires_operator(
    client: TestClient, alloc: DurableAllocator
) -> None:
    before = state(client, alloc)
    assert client.post("/rebalance", json={"allow_drops": True}).status_code == 401
    assert client.post("/rebalance", json={"allow_drops": True}, headers=BK).status_code == 403
    assert client.post("/compact", headers=BK).status_code == 403
    assert state(client, alloc) == before


def test_regression_healthz_open_but_says_little(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert set(client.get("/healthz", headers=BK).json()) == {"status", "ledger_seq", "ledger_hash"}


# ---------------------------------------------------------------- children's data


def test_regression_birth_date_not_echoed(client: TestClient, alloc: DurableAllocator) -> None:
    r = client.post("/bookings", json=body_for("fam-1", alloc, born="2023-05-17"), headers=BK)
    secret = r.json()["secret"]
    before = state(client, alloc)
    wrong = body_for("fam-1b", alloc, born="2024-02-01")
    r = client.post("/bookings", json=wrong, headers={**BK, "X-Booking-Secret": secret})
    assert r.status_code == 422
    assert "differs" in r.text and "2023" not in r.text and "05-17" not in r.text
    assert state(client, alloc) == before
    # And the engine itself never puts the known date in the message.
    inst = load_instance(DATA / "sample-events.json")
    known = inst.children[0]
    req = body_for("x", alloc, child=known.id, born="2000-01-01")
    with pytest.raises(Exception) as err:
        Allocator(inst).book(
            slotalloc.models.Request.model_validate(req["request"]),
            [slotalloc.models.Child.model_validate(c) for c in req["children"]],
        )
    assert known.birth_date.isoformat() not in str(err.value)


def test_regression_cancelled_children_leave_export(
    client: TestClient, alloc: DurableAllocator
) -> None:
    r = client.post("/bookings", json=body_for("fam-1", alloc, child="kid-gone"), headers=BK)
    secret = r.json()["secret"]
    shared = body_for("fam-2", alloc, child="kid-shared")
    s2 = client.post("/bookings", json=shared, headers=BK).json()["secret"]
    again = {
        "request": {
            "id": "fam-2b",
            "children": ["kid-shared"],
            "preferences": session_ids(alloc)[:2],
        }
    }
    assert (
        client.post("/bookings", json=again, headers={**BK, "X-Booking-Secret": s2}).status_code
        == 201
    )
    kids = {c["id"] for c in client.get("/export", headers=OP).json()["instance"]["children"]}
    assert {"kid-gone", "kid-shared"} <= kids
    client.delete("/bookings/fam-1", headers={**BK, "X-Booking-Secret": secret})
    client.delete("/bookings/fam-2", headers={**BK, "X-Booking-Secret": s2})
    exported = client.get("/export", headers=OP).json()
    kids = {c["id"] for c in exported["instance"]["children"]}
    assert "kid-gone" not in kids  # nobody live names it
    assert "kid-shared" in kids  # fam-2b still does
    inst = Instance.model_validate(exported["instance"])
    assert verify(inst, Solution.model_validate(exported["solution"])).accepted


def test_regression_validation_errors_do_not_echo_input(
    client: TestClient, alloc: DurableAllocator
) -> None:
    body = body_for("v-1", alloc, born="2024-02-30")
    body["children"][0]["household"] = 12345
    r = client.post("/bookings", json=body, headers=BK)
    assert r.status_code == 422
    assert "12345" not in r.text and "2024-02-30" not in r.text
    assert all(set(e) == {"loc", "msg", "type"} for e in r.json()["detail"])


# ---------------------------------------------------------------- HTTP input


@pytest.mark.parametrize(
    "raw",
    [
        b'{"request": {"id": "n", "children": ["k"], "preferences": ["s"], "priority": NaN}}',
        b'{"request": {"id": "n", "children": ["k"], "preferences": ["s"]}, '
        b'"children": [{"id": "k", "birth_date": "2024-01-01", "household": NaN}]}',
        b'{"request": {"id": "n", "children": ["k"], "preferences": ["s"]}, "x": Infinity}',
        b'{"request": NaN}',
        b"NaN",
    ],
)
def test_regression_nan_in_a_booking_is_422(
    client: TestClient, alloc: DurableAllocator, raw: bytes
) -> None:
    before = state(client, alloc)
    r = client.post("/bookings", content=raw, headers={**BK, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert state(client, alloc) == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"time_limit": 1e6}',
        b'{"time_limit": 1e999}',
        b'{"time_limit": NaN}',
        b'{"time_limit": -Infinity}',
        b'{"time_limit": 0}',
        b'{"seed": 100000000000000000000000000000}',
        b'{"seed": -1}',
        b'{"seed": 2147483648}',
        b'{"method": "nope"}',
    ],
)
def test_regression_rebalance_time_limit_bounded(
    client: TestClient, alloc: DurableAllocator, raw: bytes
) -> None:
    before = state(client, alloc)
    r = client.post("/rebalance", content=raw, headers={**OP, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert state(client, alloc) == before


def test_regression_rebalance_limits_accept_the_bounds(client: TestClient) -> None:
    ok = client.post("/rebalance", json={"time_limit": 60, "seed": 2**31 - 1}, headers=OP)
    assert ok.status_code == 200, ok.text


def test_regression_second_rebalance_409(
    client: TestClient, alloc: DurableAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(problem: Instance, **_: Any) -> Result:
        entered.set()
        release.wait(10)
        same = tuple(Assignment(request=b.request, session=b.session) for b in problem.bookings)
        return Result(status=Status.FEASIBLE, score=0, bound=None, assignments=same, stats={})

    monkeypatch.setattr(sys.modules["slotalloc.solve"], "solve", slow)
    first: dict[str, Any] = {}
    t = threading.Thread(target=lambda: first.update(r=client.post("/rebalance", headers=OP)))
    t.start()
    assert entered.wait(10)
    try:
        second = client.post("/rebalance", headers=OP)
        assert second.status_code == 409 and "already running" in second.text
    finally:
        release.set()
        t.join(10)
    assert first["r"].status_code == 200
    assert client.post("/rebalance", headers=OP).status_code == 200  # free again


def test_regression_surrogate_household_not_phantom(tmp_path: Path) -> None:
    """A lone surrogate is refused before anything is applied; nothing phantom, restart fine."""
    inst = load_instance(DATA / "sample-events.json")
    db = tmp_path / "l.db"
    raw = (
        b'{"request": {"id": "sur-1", "children": ["kid-s"], "preferences": ["%s"]}, '
        b'"children": [{"id": "kid-s", "birth_date": "2024-01-30", "household": "\\ud800"}]}'
    )
    with DurableAllocator(inst, db) as da, TestClient(create_app(da, AUTH)) as c:
        raw = raw.replace(b"%s", da.session_ids[0].encode())
        before = state(c, da)
        r = c.post("/bookings", content=raw, headers={**BK, "content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert c.get("/bookings/sur-1", headers=OP).status_code == 404
        assert state(c, da) == before
        # A later booking naming the same child is refused too (the child was never added).
        dep = {"request": {"id": "sur-2", "children": ["kid-s"], "preferences": da.session_ids[:1]}}
        assert c.post("/bookings", json=dep, headers=BK).status_code == 422
        ok = c.post("/bookings", json=body_for("fine", da), headers=BK)
        assert ok.status_code == 201
        live = c.get("/export", headers=OP).json()
    da.close()
    with DurableAllocator(inst, db, use_snapshots=False) as again:
        inst2, sol2 = again.export()
        assert {
            "instance": inst2.model_dump(mode="json"),
            "solution": sol2.model_dump(mode="json"),
        } == live


# ---------------------------------------------------------------- logs


def test_regression_no_token_or_child_data_in_logs(
    client: TestClient,
    alloc: DurableAllocator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    household = "HOUSEHOLD-Zhang-Wei-secret"
    body = body_for("log-1", alloc, child="kid-log", born="2023-03-09")
    body["children"][0]["household"] = household
    r = client.post("/bookings", json=body, headers=BK)
    secret = r.json()["secret"]
    client.post("/bookings", json=body, headers=BK)  # 409
    bad = body_for("log-2", alloc, child="kid-log", born="2022-11-11")
    client.post("/bookings", json=bad, headers={**BK, "X-Booking-Secret": secret})  # 422
    client.post(
        "/bookings",
        content=b'{"request": NaN, "h": "' + household.encode() + b'"}',
        headers={**BK, "content-type": "application/json"},
    )
    client.delete("/bookings/log-1", headers={"Authorization": f"Bearer {BOOKING}x"})
    client.get("/export", headers=BK)

    def boom(_rid: str) -> Any:
        raise ValueError(f"{household} 2023-03-09 {OPERATOR}")

    monkeypatch.setattr(alloc, "status", boom)
    r500 = client.get("/bookings/log-1", headers=OP)
    assert r500.status_code == 500 and household not in r500.text
    client.delete("/bookings/log-1", headers={**BK, "X-Booking-Secret": secret})
    text = "\n".join(OneLineFormatter().format(rec) for rec in caplog.records) + "\n".join(
        str(rec.args) for rec in caplog.records
    )
    assert "500: unexpected ValueError" in text
    for needle in (household, "2023-03-09", "2022-11-11", OPERATOR, BOOKING, secret):
        assert needle not in text, needle


def test_regression_log_lines_are_one_line() -> None:
    fmt = OneLineFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("child born 2023-01-01\nsecond line")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "a\nb", (), sys.exc_info())
    out = fmt.format(rec)
    assert "\n" not in out and "2023-01-01" not in out and "ValueError" in out


# ---------------------------------------------------------------- live server


def test_regression_receipt_matches_row_under_concurrency(alloc: DurableAllocator) -> None:
    receipts: list[tuple[int, str, str, dict[str, Any]]] = []
    late: list[tuple[int, int]] = []
    lock = threading.Lock()
    app = create_app(alloc, AUTH)
    with live_server(app) as live:
        url = live.url

        def worker(w: int) -> None:
            with httpx.Client(base_url=url, headers=BK, timeout=30) as http:
                mine: list[tuple[str, str]] = []
                for i in range(40):
                    if mine and i % 3 == 2:
                        rid, secret = mine.pop()
                        r = http.delete(f"/bookings/{rid}", headers={"X-Booking-Secret": secret})
                        kind = "cancel"
                    else:
                        rid = f"w{w}-{i}"
                        r = http.post("/bookings", json=body_for(rid, alloc, child=f"kid-{rid}"))
                        kind = "book"
                    assert r.status_code in (200, 201), r.text
                    seq = int(r.headers["x-ledger-seq"])
                    committed = alloc.head[0]  # the reply came after its commit
                    reply = r.json()
                    if kind == "book":
                        mine.append((rid, reply.pop("secret")))
                        reply.pop("reason")  # the reply's, not the ledger row's
                    with lock:
                        receipts.append((seq, r.headers["x-ledger-hash"], kind, reply))
                        if committed < seq:
                            late.append((seq, committed))

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        committer = app.state.committer
        batches, ops = committer.batches, committer.operations
    assert not late, f"replies before their commit: {late[:3]}"
    assert len(receipts) == 320
    led = Ledger(alloc._ledger.path, load_instance(DATA / "sample-events.json"))
    rows = {r.seq: r for r in led.rows()}
    led.close()
    for seq, h, kind, reply in receipts:
        row = rows[seq]
        assert row.hash.hex() == h, f"receipt of row {seq} does not match it"
        assert row.kind == kind and json.loads(row.result) == reply
    # Group commit: concurrent operations shared commits.
    assert ops == 320 and batches < ops, (batches, ops)


def test_regression_slow_partial_request_dropped(alloc: DurableAllocator) -> None:
    limits = Limits(header_timeout=0.5, body_timeout=0.5, keep_alive=1)
    with live_server(create_app(alloc, AUTH, limits=limits), limits) as live:
        url, port = live.url, live.port
        # Headers that never finish: the connection is closed.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            t0 = time.monotonic()
            assert s.recv(1024) == b""
            assert time.monotonic() - t0 < 3
        # A body that never finishes: 408, then closed.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(
                b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer "
                + BOOKING.encode()
                + b'\r\nContent-Length: 100\r\n\r\n{"re'
            )
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 408"), data[:80]
        # Many partial connections do not pile up: each is closed after the timeout.
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(1.2)
        for s in socks:
            assert s.recv(16) == b""
            s.close()
        assert httpx.get(url + "/healthz").status_code == 200
    assert alloc.head[0] == -1


def test_regression_large_request_head_refused(client: TestClient, alloc: DurableAllocator) -> None:
    before = state(client, alloc)
    r = client.post(
        "/bookings", json=body_for("big-head", alloc), headers={**BK, "X-Big": "a" * 20_000}
    )
    assert r.status_code == 431
    assert state(client, alloc) == before


def test_regression_connection_cap(alloc: DurableAllocator) -> None:
    limits = Limits(max_connections=5, header_timeout=5)
    with live_server(create_app(alloc, AUTH, limits=limits), limits) as live:
        url, port = live.url, live.port
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):  # reset: closed before it read ours
            assert extra.recv(64) == b""  # closed at once
        extra.close()
        for s in held:
            s.close()
        time.sleep(0.2)
        assert httpx.get(url + "/healthz").status_code == 200


def test_regression_export_outside_lock(
    alloc: DurableAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an export builds its models, bookings commit: the lock is held only for a copy."""
    building, release = threading.Event(), threading.Event()
    real = Allocator._export_from

    def slow(self: Allocator, *a: Any, **k: Any) -> Any:
        building.set()
        assert release.wait(10)
        return real(self, *a, **k)

    monkeypatch.setattr(Allocator, "_export_from", slow)
    with TestClient(create_app(alloc, AUTH)) as c:
        got: dict[str, Any] = {}
        t = threading.Thread(target=lambda: got.update(r=c.get("/export", headers=OP)))
        t.start()
        assert building.wait(10)
        try:
            t0 = time.monotonic()
            r = c.post("/bookings", json=body_for("during-export", alloc), headers=BK)
            assert r.status_code == 201 and time.monotonic() - t0 < 5
        finally:
            release.set()
            t.join(10)
        exported = got["r"].json()
        # The export is the consistent state of when it was copied: without the booking.
        assert "during-export" not in {r["id"] for r in exported["instance"]["requests"]}
        assert "during-export" in {
            r["id"] for r in c.get("/export", headers=OP).json()["instance"]["requests"]
        }


# ---------------------------------------------------------------- serve


def _serve_proc(tmp_path: Path, *args: str, port: int | None = None) -> subprocess.Popen[bytes]:
    code = (
        "import sys\n"
        "from slotalloc.service.server import serve\n"
        "from slotalloc.service.ledger import LedgerError\n"
        "try:\n"
        "    recover = '--recover' in sys.argv\n"
        "    serve(sys.argv[1], sys.argv[2], port=int(sys.argv[3]), recover=recover)\n"
        "except LedgerError as e:\n"
        "    print(e, file=sys.stderr)\n"
        "    sys.exit(2)\n"
    )
    argv = [
        sys.executable,
        "-c",
        code,
        str(DATA / "sample-events.json"),
        str(tmp_path / "b.db"),
        str(port or free_port()),
        *args,
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)


def test_regression_serve_generates_auth_file_and_logs(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve_proc(tmp_path, port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        auth_path = tmp_path / "b.db.auth.json"
        assert stat.S_IMODE(os.stat(auth_path).st_mode) == 0o600
        tokens = json.loads(auth_path.read_text())
        op = tokens["operator"][0]
        assert httpx.get(f"http://127.0.0.1:{port}/export").status_code == 401
        r = httpx.get(f"http://127.0.0.1:{port}/export", headers={"Authorization": f"Bearer {op}"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    text = err.decode()
    assert str(auth_path) in text and "generated auth file" in text
    assert text.count("generated auth file") == 1
    for tok in tokens["operator"] + tokens["booking"]:
        assert tok not in text
    assert all(line.count(" INFO ") + line.count(" WARNING ") <= 1 for line in text.splitlines())


def test_regression_serve_refuses_emptied_db_with_one_line(tmp_path: Path) -> None:
    inst = load_instance(DATA / "sample-events.json")
    with DurableAllocator(inst, tmp_path / "b.db") as da:
        da.book(
            slotalloc.models.Request.model_validate(body_for("r", da)["request"]),
            [slotalloc.models.Child.model_validate(body_for("r", da)["children"][0])],
        )
    (tmp_path / "b.db").write_bytes(b"")
    proc = _serve_proc(tmp_path)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert len(lines) == 1 and "empty" in lines[0] and "--recover" in lines[0], lines
    assert (tmp_path / "b.db").stat().st_size == 0  # nothing written
