"""The HTTP booking service: status codes, bad bodies change nothing, export, and crashes."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

import service_fixtures
from service_fixtures import AUTH, DATA, OP, OPERATOR, events
from slotalloc.models import Instance, Solution
from slotalloc.service.auth import bearer_token
from slotalloc.service.ledger import DurableAllocator
from slotalloc.service.server import MAX_BODY_BYTES, create_app
from slotalloc.verify import verify

ROOT = Path(__file__).resolve().parents[2]

alloc = service_fixtures.alloc


@pytest.fixture()
def client(alloc: DurableAllocator) -> Iterator[TestClient]:
    """A client sending the operator's token by default."""
    with TestClient(create_app(alloc, AUTH), headers=OP) as c:
        yield c


def book_bodies() -> list[dict[str, Any]]:
    out = []
    for ev in events():
        if ev.get("op") == "book" and isinstance(ev.get("request"), dict):
            ev.pop("op")
            out.append(ev)
    return out


def test_book_status_cancel_round_trip(client: TestClient) -> None:
    body = book_bodies()[0]
    rid = body["request"]["id"]
    r = client.post("/bookings", json=body)
    assert r.status_code == 201
    got = r.json()
    assert set(got) == {"request", "session", "waitlisted", "reason", "secret"}
    assert got["request"] == rid
    got.pop("secret")
    assert got.pop("reason") is None  # placed
    assert int(r.headers["x-ledger-seq"]) == 0
    again = client.post("/bookings", json=body)
    assert again.status_code == 409 and f"/bookings/{rid}" in again.json()["detail"]
    st = client.get(f"/bookings/{rid}").json()
    assert st == {**got, "cancelled": False, "position": None}
    c = client.delete(f"/bookings/{rid}")
    assert c.status_code == 200
    assert c.json() == {"request": rid, "cancelled": True, "promoted": []}
    assert client.get(f"/bookings/{rid}").json()["cancelled"] is True
    assert client.delete(f"/bookings/{rid}").status_code == 409  # already cancelled
    assert client.get("/bookings/never").status_code == 404
    assert client.post("/bookings", json=body).status_code == 409  # ids are never reused


def test_the_sample_stream_over_http_gives_the_reference_decisions(client: TestClient) -> None:
    expected = [
        json.loads(x) for x in (DATA / "sample-events.decisions.jsonl").read_text().splitlines()
    ]
    lines = (DATA / "sample-events.jsonl").read_text().splitlines()
    for n, (line, exp) in enumerate(zip(lines, expected, strict=True)):
        ev = json.loads(line)
        op = ev.pop("op", None) if isinstance(ev, dict) else None
        if op == "cancel" and isinstance(ev.get("request"), str) and len(ev) == 1:
            r = client.delete(f"/bookings/{ev['request']}")
        else:
            r = client.post("/bookings", json=ev)
        if "error" in exp:
            assert r.status_code in (404, 409, 422), (n, r.status_code, r.text)
        else:
            assert r.status_code in (200, 201), (n, r.text)
            exp.pop("event")
            assert {k: v for k, v in r.json().items() if k not in ("secret", "reason")} == exp
    exported = client.get("/export").json()
    inst = Instance.model_validate(exported["instance"])
    sol = Solution.model_validate(exported["solution"])
    assert verify(inst, sol).accepted


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer ", None),
        ("Basic abc", None),
        ("Bearerabc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_reads_one_header_value(value: str | None, token: str | None) -> None:
    assert bearer_token(value) == token


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("bearer  TOKEN ", True), ("Basic TOKEN", False), ("Bearer ", False)],
)
def test_the_write_path_and_the_routes_read_the_token_alike(
    alloc: DurableAllocator, header: str, accepted: bool
) -> None:
    """POST and DELETE /bookings skip FastAPI's routing; every path reads the header alike."""
    auth = {"Authorization": header.replace("TOKEN", OPERATOR)}
    (body,) = book_bodies()[:1]
    rid = body["request"]["id"]
    with TestClient(create_app(alloc, AUTH)) as c:
        assert (c.post("/bookings", json=body, headers=auth).status_code == 201) is accepted
        assert (c.get(f"/bookings/{rid}", headers=auth).status_code == 200) is accepted
        assert (c.delete(f"/bookings/{rid}", headers=auth).status_code == 200) is accepted
        assert ("ledger_seq" in c.get("/healthz", headers=auth).json()) is accepted


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[]",
        b'{"request": {"id": "x", "children": ["c"], "preferences": ["s"]}, "extra": 1}',
        b'{"request": {"id": 7, "children": ["c"], "preferences": ["s"]}}',
        b'{"request": {"id": "x", "children": [], "preferences": ["s"]}}',
        b'{"request": {"id": "x", "children": ["c"], "preferences": ["s"], "priority": "1"}}',
        b'{"request": {"id": "x", "children": ["c"], "preferences": ["s"]}, '
        b'"children": [{"id": "c", "birth_date": "2024-02-30"}]}',
        b'{"request": {"id": "x", "children": ["nobody"], "preferences": ["s"]}}',
    ],
)
def test_bad_bodies_change_nothing(
    client: TestClient, alloc: DurableAllocator, payload: bytes
) -> None:
    before = (alloc.head, client.get("/export").json())
    r = client.post("/bookings", content=payload, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert (alloc.head, client.get("/export").json()) == before


def test_a_large_body_is_refused_before_parsing(
    client: TestClient, alloc: DurableAllocator
) -> None:
    head = alloc.head
    big = b'{"request": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    r = client.post("/bookings", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    r = client.post("/bookings", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert alloc.head == head


def test_sessions_export_health_and_schema(client: TestClient, alloc: DurableAllocator) -> None:
    for body in book_bodies()[:30]:
        client.post("/bookings", json=body)
    sid = alloc.session_ids[0]
    assert "/" in sid
    r = client.get("/sessions", params={"id": sid})
    assert r.status_code == 200
    (occ,) = r.json()["sessions"]
    assert occ["session"] == sid and {"taken", "capacity", "groups"} <= set(occ)
    assert occ["caregivers_needed"] <= occ["caregivers_available"]
    assert len(client.get("/sessions").json()["sessions"]) == len(alloc.session_ids)
    assert client.get("/sessions", params={"id": "nope"}).status_code == 404
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["ledger_seq"] == alloc.head[0]
    schema = client.get("/openapi.json").json()
    assert {"/bookings", "/export", "/rebalance", "/sessions", "/healthz"} <= set(schema["paths"])


def test_rebalance_endpoint(client: TestClient, alloc: DurableAllocator) -> None:
    for body in book_bodies():
        client.post("/bookings", json=body)
    head = alloc.head
    r = client.post("/rebalance")
    assert r.status_code == 200
    assert r.json()["moved"] == [] and r.json()["dropped"] == []
    assert alloc.head == head  # the baseline never improves an online state: nothing logged
    assert client.post("/rebalance", json={"allow_drops": True}).status_code == 200
    assert client.post("/rebalance", json={"method": "nope"}).status_code == 422
    assert client.post("/rebalance", json={"allow_drops": "yes"}).status_code == 422


def _crash_soak() -> Any:
    spec = importlib.util.spec_from_file_location(
        "crash_soak", ROOT / "benchmarks" / "quality" / "crash_soak.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["crash_soak"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_sigkill_loses_no_acknowledged_booking(tmp_path: Path) -> None:
    """Seeded SIGKILLs inside commit batches (each phase) and at a random moment, under
    four concurrent clients; every post-condition of the soak checked."""
    figures = _crash_soak().run(4, seed=11, random_kills=1, clients=4, workdir=tmp_path, max_up=0.6)
    assert figures["kills_in_batches"] == 4 and figures["kills_missed"] == 0
    assert all(n >= 1 for n in figures["kills_by_phase"].values())
    assert figures["acknowledged"] > 100
