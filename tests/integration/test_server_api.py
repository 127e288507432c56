"""The HTTP API as a contract: every reply matches ``/openapi.json`` for its route and status.

Every call in this module goes through a client whose response hook looks up
the reply's route template, method and status in the app's own OpenAPI schema
and validates the body against the schema found there (``$ref`` resolved
against ``components/schemas``; the reply models are closed, so an
undocumented key fails too). A status the schema does not list for that
route fails the test. :func:`test_every_documented_status_is_reached` drives
every route through every status it declares, and Schemathesis generates
valid and invalid requests from the same schema
(:func:`test_generated_requests_get_documented_replies`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("jsonschema")

import httpx
import jsonschema
from fastapi import FastAPI
from fastapi.testclient import TestClient

import service_fixtures
from service_fixtures import (
    AUTH,
    BK,
    BOOKING,
    DATA,
    OP,
    OPERATOR,
    PR,
    events,
    free_port,
    live_server,
    sample_instance,
    state,
)
from slotalloc.models import Instance, Solution
from slotalloc.rules import Rule
from slotalloc.service.ledger import DurableAllocator, Ledger, RebalanceBusyError
from slotalloc.service.server import DEFAULT_PAGE, MAX_PAGE, Limits, build_server, create_app
from slotalloc.verify import verify

#: Pages outside the API that the schema rightly leaves out.
UNDOCUMENTED = {"/docs", "/openapi.json"}
#: Statuses answered by the layers around every route, documented on every operation.
TRANSPORT = {"408", "413", "431", "500"}
#: Ages (birth dates) against the sample's April 2025 sessions (cn-2019 groups).
TODDLER = "2024-01-30"  # about 15 months
INFANT = "2024-09-01"  # about 7 months: too young for sessions with min_months 12
OLDER = "2023-01-01"  # about 27 months
TOO_YOUNG = "2025-03-01"  # under 6 months: no session takes the child


# ---------------------------------------------------------------- the contract


class Contract:
    """Checks replies against an OpenAPI document; remembers what it saw."""

    def __init__(self, openapi: dict[str, Any]) -> None:
        self.openapi = openapi
        self.components = openapi.get("components", {})
        self.routes: list[tuple[re.Pattern[str], str]] = []
        for template in openapi["paths"]:
            # {request_id} is a ``:path`` parameter: it takes the rest of the path, slashes too.
            rx = re.sub(r"\\\{[a-z_]+\\\}", ".*", re.escape(template))
            self.routes.append((re.compile(f"^{rx}$"), template))
        self.seen: set[tuple[str, str, str]] = set()

    def template(self, path: str) -> str:
        found = [t for rx, t in self.routes if rx.match(path)]
        assert found, f"{path} matches no documented path"
        return min(found, key=len)  # /bookings before /bookings/{request_id}

    def check(
        self, method: str, path: str, status: int, body: bytes, headers: httpx.Headers
    ) -> None:
        template = self.template(path)
        ops = self.openapi["paths"][template]
        assert method.lower() in ops, f"{method} {template} is not documented"
        responses = ops[method.lower()]["responses"]
        doc = responses.get(str(status))
        assert doc is not None, (
            f"status {status} of {method} {template} is not documented "
            f"(documented: {sorted(responses)}); body {body[:200]!r}"
        )
        for name in doc.get("headers", {}):
            assert name.lower() in headers, f"{method} {template} {status}: no {name} header"
        content = doc.get("content")
        if not content:
            assert not body, f"{method} {template} {status}: documented without a body"
        else:
            assert "application/json" in content
            assert headers.get("content-type", "").startswith("application/json")
            schema = {**content["application/json"]["schema"], "components": self.components}
            validator = jsonschema.Draft202012Validator(schema)
            errors = sorted(validator.iter_errors(json.loads(body)), key=lambda e: e.path)
            assert not errors, (
                f"{method} {template} {status}: {errors[0].message} at {list(errors[0].path)}"
            )
        self.seen.add((template, method.lower(), str(status)))

    def hook(self, response: httpx.Response) -> None:
        response.read()
        req = response.request
        if req.url.path in UNDOCUMENTED or req.url.path.startswith("/docs/assets/"):
            return  # the schema and its browser: not API operations
        self.check(
            req.method, req.url.path, response.status_code, response.content, response.headers
        )

    def documented(self) -> set[tuple[str, str, str]]:
        return {
            (template, method, status)
            for template, ops in self.openapi["paths"].items()
            for method, op in ops.items()
            for status in op["responses"]
        }


alloc = service_fixtures.alloc


@pytest.fixture()
def app(alloc: DurableAllocator) -> FastAPI:
    return create_app(alloc, AUTH)


@pytest.fixture()
def contract(app: FastAPI) -> Contract:
    return Contract(app.openapi())


@pytest.fixture()
def client(app: FastAPI, contract: Contract) -> Iterator[TestClient]:
    with TestClient(app) as c:
        c.event_hooks = {"request": [], "response": [contract.hook]}
        yield c


def body_for(
    rid: str,
    prefs: list[str],
    child: str | None = None,
    born: str = TODDLER,
    household: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """A book body declaring one new child (``kid-RID`` unless named)."""
    kid: dict[str, Any] = {"id": child or f"kid-{rid}", "birth_date": born}
    if household is not None:
        kid["household"] = household
    return {
        "request": {"id": rid, "children": [kid["id"]], "preferences": prefs, **kw},
        "children": [kid],
    }


def fill(client: TestClient, session: str, prefix: str, born: str) -> list[dict[str, Any]]:
    """Book new children into one session until one is waitlisted; every reply, in order."""
    out = []
    for i in range(40):
        r = client.post(
            "/bookings", json=body_for(f"{prefix}-{i}", [session], born=born), headers=BK
        )
        assert r.status_code == 201, r.text
        out.append(r.json())
        if r.json()["waitlisted"]:
            return out
    raise AssertionError(f"{session} never filled")


# ---------------------------------------------------------------- the schema itself


def test_the_schema_is_complete_and_well_formed(contract: Contract) -> None:
    doc = contract.openapi
    assert doc["openapi"].startswith("3.1")
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    expected = {
        ("/bookings", "post"): {"201", "401", "403", "409", "422", "503"},
        ("/bookings", "get"): {"200", "401", "403", "422"},
        ("/bookings/{request_id}", "get"): {"200", "401", "404"},
        ("/bookings/{request_id}", "delete"): {"200", "401", "403", "404", "409", "503"},
        ("/sessions", "get"): {"200", "401", "404", "422"},
        ("/export", "get"): {"200", "401", "403"},
        ("/rebalance", "post"): {"200", "401", "403", "409", "422", "503"},
        ("/compact", "post"): {"200", "401", "403", "503"},
        ("/healthz", "get"): {"200", "503"},
    }
    got = {(p, m): set(op["responses"]) for p, ops in doc["paths"].items() for m, op in ops.items()}
    assert got == {k: v | TRANSPORT for k, v in expected.items()}
    for (path, method), codes in got.items():
        op = doc["paths"][path][method]
        for code in codes:  # every status has a described JSON body
            resp = op["responses"][code]
            assert resp["description"] and "application/json" in resp["content"], (path, code)
        if path != "/healthz":
            assert op["security"] == [{"bearer": []}], path
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # FastAPI's own validation models are not left behind once its automatic 422s are gone.
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_the_contract_refuses_undocumented_statuses_keys_and_paths(contract: Contract) -> None:
    """The checker used by every test here can fail (it is not a tautology)."""
    ok = json.dumps({"detail": "unknown request x"}).encode()
    hdr = httpx.Headers({"content-type": "application/json"})
    contract.check("GET", "/bookings/x", 404, ok, hdr)
    with pytest.raises(AssertionError, match=r"status 418 .* not documented"):
        contract.check("GET", "/bookings/x", 418, ok, hdr)
    with pytest.raises(AssertionError, match="not documented"):
        contract.check("GET", "/bookings/x", 403, ok, hdr)  # a booking read is never 403
    with pytest.raises(AssertionError, match="Additional properties"):
        contract.check("GET", "/bookings/x", 404, b'{"detail": "x", "input": "2024-01-30"}', hdr)
    status = {"request": "x", "session": None, "waitlisted": True, "cancelled": False}
    with pytest.raises(AssertionError, match="'position' is a required property"):
        contract.check("GET", "/bookings/x", 200, json.dumps(status).encode(), hdr)
    with pytest.raises(AssertionError, match="matches no documented path"):
        contract.check("GET", "/nowhere", 200, b"{}", hdr)
    with pytest.raises(AssertionError, match="no X-Ledger-Seq header"):
        reply = {"request": "x", "cancelled": True, "promoted": []}
        contract.check("DELETE", "/bookings/x", 200, json.dumps(reply).encode(), hdr)


# ---------------------------------------------------------------- every status, every route


def test_every_documented_status_is_reached(
    client: TestClient,
    alloc: DurableAllocator,
    contract: Contract,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every route through each status it declares; every reply checked by the contract."""
    sids = alloc.session_ids
    # POST /bookings
    placed = client.post("/bookings", json=body_for("t-1", sids[:3]), headers=BK)
    assert placed.status_code == 201 and placed.json()["reason"] is None
    secret = placed.json()["secret"]
    assert client.post("/bookings", json=body_for("t-x", sids[:3])).status_code == 401
    prio = body_for("t-p", sids[:3], priority=3)
    assert client.post("/bookings", json=prio, headers=BK).status_code == 403
    assert client.post("/bookings", json=prio, headers=PR).status_code == 201
    assert client.post("/bookings", json=body_for("t-1", sids[:3]), headers=OP).status_code == 409
    raw = {"content": b'{"request": NaN}', "headers": {**BK, "content-type": "application/json"}}
    malformed = client.post("/bookings", **raw)
    assert malformed.status_code == 422 and isinstance(malformed.json()["detail"], list)
    young = client.post("/bookings", json=body_for("t-y", sids[:10], born=TOO_YOUNG), headers=BK)
    assert young.status_code == 422 and isinstance(young.json()["detail"], str)
    big = b'{"request": "' + b"x" * 70_000 + b'"}'
    assert client.post("/bookings", content=big, headers=BK).status_code == 413
    huge_head = {**BK, "X-Padding": "p" * 20_000}
    assert (
        client.post("/bookings", json=body_for("t-h", sids[:10]), headers=huge_head).status_code
        == 431
    )
    # GET /bookings/{request_id}
    assert client.get("/bookings/t-1", headers=BK).status_code == 200
    assert client.get("/bookings/t-1").status_code == 401
    assert client.get("/bookings/never", headers=BK).status_code == 404
    # GET /bookings?child= | ?household=
    assert client.get("/bookings", params={"child": "kid-t-1"}, headers=OP).status_code == 200
    assert client.get("/bookings", params={"child": "kid-t-1"}).status_code == 401
    assert client.get("/bookings", params={"child": "kid-t-1"}, headers=BK).status_code == 403
    assert client.get("/bookings", headers=OP).status_code == 422
    # GET /sessions
    assert client.get("/sessions", headers=BK).status_code == 200
    assert client.get("/sessions").status_code == 401
    assert client.get("/sessions", params={"id": "nope"}, headers=BK).status_code == 404
    assert client.get("/sessions", params={"limit": 0}, headers=BK).status_code == 422
    # GET /export
    assert client.get("/export", headers=OP).status_code == 200
    assert client.get("/export").status_code == 401
    assert client.get("/export", headers=BK).status_code == 403
    # POST /rebalance
    assert client.post("/rebalance", headers=OP).status_code == 200
    assert client.post("/rebalance").status_code == 401
    assert client.post("/rebalance", headers=BK).status_code == 403
    assert client.post("/rebalance", json={"seed": -1}, headers=OP).status_code == 422

    def busy(**_: Any) -> Any:
        raise RebalanceBusyError("a rebalance is already running; retry when it is done")

    with monkeypatch.context() as m:
        m.setattr(alloc, "rebalance", busy)
        assert client.post("/rebalance", headers=OP).status_code == 409
    # DELETE /bookings/{request_id}
    assert client.delete("/bookings/t-1").status_code == 401
    assert client.delete("/bookings/t-1", headers=BK).status_code == 403
    assert client.delete("/bookings/never", headers=OP).status_code == 404
    mine = {**BK, "X-Booking-Secret": secret}
    assert client.delete("/bookings/t-1", headers=mine).status_code == 200
    assert client.delete("/bookings/t-1", headers=OP).status_code == 409
    # POST /compact
    assert client.post("/compact", headers=OP).status_code == 200
    assert client.post("/compact").status_code == 401
    assert client.post("/compact", headers=BK).status_code == 403
    # GET /healthz
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz", headers=BK).status_code == 200

    # 500: an unexpected exception in a handler (a bare reply, nothing echoed).
    def boom(_rid: str) -> Any:
        raise ValueError("kid-t-1 2024-01-30")

    with monkeypatch.context() as m:
        m.setattr(alloc, "status", boom)
        r500 = client.get("/bookings/t-1", headers=BK)
        assert r500.status_code == 500 and "2024" not in r500.text

    # 503 "not committed": the ledger refuses a row; nothing changes, the booking can be retried.
    before = state(client, alloc)

    def disk_error(*_: Any, **__: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as m:
        m.setattr(Ledger, "append", disk_error)
        r = client.post("/bookings", json=body_for("t-503", sids[:10]), headers=BK)
        assert r.status_code == 503 and "nothing changed" in r.json()["detail"]
    assert state(client, alloc) == before
    # 503 "unavailable": the rebuild after the failure fails too; every write is refused.
    p2 = client.post("/bookings", json=body_for("t-2", sids[:2]), headers=BK)
    assert p2.status_code == 201
    monkeypatch.setattr(Ledger, "append", disk_error)
    monkeypatch.setattr(Ledger, "latest_snapshot", disk_error)
    assert client.post("/bookings", json=body_for("t-3", sids[:10]), headers=BK).status_code == 503
    assert alloc.failure is not None
    assert client.delete("/bookings/t-2", headers=OP).status_code == 503
    assert client.post("/rebalance", headers=OP).status_code == 503
    assert client.post("/compact", headers=OP).status_code == 503
    assert client.get("/healthz").status_code == 503

    missing = contract.documented() - contract.seen
    assert {m for m in missing if m[2] not in TRANSPORT} == set(), sorted(missing)
    # The layers' statuses are the same on every route: each was reached on one.
    assert {s for _t, _m, s in contract.seen} >= TRANSPORT - {"408"}  # 408: the live test below


def test_a_slow_body_gets_its_documented_408(alloc: DurableAllocator) -> None:
    """408 needs a real server (the test client hands the body over whole)."""
    limits = Limits(body_timeout=0.3, header_timeout=5)
    app = create_app(alloc, AUTH, limits=limits)
    contract = Contract(app.openapi())
    with (
        live_server(app, limits) as live,
        socket.create_connection(("127.0.0.1", live.port), 5) as s,
    ):
        s.sendall(
            b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + BOOKING.encode() + b'\r\nContent-Length: 100\r\n\r\n{"re'
        )
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = httpx.Headers([tuple(h.split(": ", 1)) for h in lines[1:]])
    assert status == 408
    contract.check("POST", "/bookings", status, body, headers)
    assert alloc.head[0] == -1


# ---------------------------------------------------------------- fuzzed requests

#: Every operation but POST /rebalance (a generated ``time_limit`` would run the solver
#: for up to a minute per example; the tour above covers its statuses).
FUZZED = [
    ("/bookings", "POST"),
    ("/bookings", "GET"),
    ("/bookings/{request_id}", "GET"),
    ("/bookings/{request_id}", "DELETE"),
    ("/sessions", "GET"),
    ("/export", "GET"),
    ("/compact", "POST"),
    ("/healthz", "GET"),
]


def test_the_fuzzed_operations_are_all_but_rebalance(contract: Contract) -> None:
    documented = {(p, m.upper()) for p, ops in contract.openapi["paths"].items() for m in ops}
    assert documented == {*FUZZED, ("/rebalance", "POST")}


#: (path, method, mode): invalid requests need a parameter or body to spoil (/healthz has none).
GENERATED = [
    (p, m, mode)
    for p, m in FUZZED
    for mode in ("positive", "negative")
    if not (p == "/healthz" and mode == "negative")
]


@pytest.mark.parametrize(
    ("path", "method", "mode"), GENERATED, ids=[f"{m} {p} {mode}" for p, m, mode in GENERATED]
)
def test_generated_requests_get_documented_replies(
    alloc: DurableAllocator, path: str, method: str, mode: str
) -> None:
    """Schemathesis generates requests from the schema (valid ones, then invalid ones) and
    checks each reply: no 5xx, a documented status, content type, headers and body."""
    st = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    app = create_app(alloc, AUTH)
    with TestClient(app):  # runs the lifespan: the writer thread stops at the end
        schema = st.openapi.from_asgi("/openapi.json", app)
        strategy = schema[path][method].as_strategy(st.GenerationMode(mode))
        statuses: set[int] = set()

        @settings(
            max_examples=20,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def call(case: Any) -> None:
            for token in (OP, BK):
                reply = case.call_and_validate(headers=token, checks=checks)
                statuses.add(reply.status_code)

        call()
    assert statuses and max(statuses) < 500


# ---------------------------------------------------------------- reasons, cancels, positions


def test_the_sample_stream_carries_reasons(client: TestClient) -> None:
    expected = [
        json.loads(x) for x in (DATA / "sample-events.decisions.jsonl").read_text().splitlines()
    ]
    reasons: dict[str, int] = {}
    for ev, exp in zip(events(), expected, strict=True):
        op = ev.pop("op", None)
        if op == "cancel" and isinstance(ev.get("request"), str) and len(ev) == 1:
            r = client.delete(f"/bookings/{ev['request']}", headers=OP)
        else:
            r = client.post("/bookings", json=ev, headers=OP)
        if "error" in exp:
            assert r.status_code in (404, 409, 422), r.text
            continue
        got = r.json()
        if r.status_code == 201:
            reason = got.pop("reason")
            assert (reason is None) == (not got["waitlisted"]), got
            if reason is not None:
                assert reason in {rule.value for rule in Rule}
                reasons[reason] = reasons.get(reason, 0) + 1
            got.pop("secret")
        exp.pop("event")
        assert got == exp
    assert sum(reasons.values()) == sum(1 for e in expected if e.get("waitlisted"))
    assert reasons  # the stream does waitlist some requests


@pytest.mark.parametrize(
    ("session", "born", "reason"),
    [
        ("XI-000/2025-04-19-am", TODDLER, "caregivers"),  # 3 caregivers, all needed by then
        ("JI-003/2025-04-19-pm", OLDER, "capacity"),  # 12 places, 5 caregivers
        ("JI-001/2025-04-19-am", INFANT, "group_cap"),  # infants capped at 3
    ],
)
def test_a_waitlisted_booking_names_the_rule_that_stopped_it(
    client: TestClient, session: str, born: str, reason: str
) -> None:
    *placed, waited = fill(client, session, "f", born)
    assert placed and all(r["reason"] is None and r["session"] == session for r in placed)
    assert waited["waitlisted"] and waited["session"] is None and waited["reason"] == reason
    st = client.get(f"/bookings/{waited['request']}", headers=BK).json()
    assert st == {**st, "waitlisted": True, "position": 1}


def test_the_reason_is_the_first_preferences_and_positions_move_up(
    client: TestClient, alloc: DurableAllocator
) -> None:
    target = "XI-000/2025-04-19-am"  # no age floor
    no_infants = "XI-000/2025-04-19-pm"  # min_months 12
    *placed, toddler = fill(client, target, "tod", TODDLER)
    *infants, infant = fill(client, target, "inf", INFANT)  # the infants' caregiver is full too
    assert toddler["reason"] == infant["reason"] == "caregivers"
    # Its first preference never takes an infant: that is the reason given, not the second's.
    r = client.post(
        "/bookings", json=body_for("late", [no_infants, target], born=INFANT), headers=BK
    )
    assert r.status_code == 201
    assert r.json()["waitlisted"] and r.json()["reason"] == "eligibility"
    order = [toddler["request"], infant["request"], "late"]
    assert alloc.waitlist() == order
    positions = [client.get(f"/bookings/{rid}", headers=BK).json()["position"] for rid in order]
    assert positions == [1, 2, 3]
    # The head leaves the waitlist (cancelled: nothing freed): everyone behind moves up.
    assert client.delete(f"/bookings/{toddler['request']}", headers=OP).status_code == 200
    positions = [client.get(f"/bookings/{rid}", headers=BK).json()["position"] for rid in order]
    assert positions == [None, 1, 2]
    gone = client.get(f"/bookings/{toddler['request']}", headers=BK).json()
    assert gone["cancelled"] and not gone["waitlisted"]
    # A place held: no position. Freeing an infant's place promotes the head (an infant that
    # fits); "late" still does not fit its first preference and moves up to the head.
    assert client.get(f"/bookings/{placed[0]['request']}", headers=BK).json()["position"] is None
    freed = client.delete(f"/bookings/{infants[0]['request']}", headers=OP).json()
    assert freed["promoted"] == [{"request": infant["request"], "session": target}]
    assert client.get(f"/bookings/{infant['request']}", headers=BK).json()["position"] is None
    assert client.get("/bookings/late", headers=BK).json()["position"] == 1


def test_a_second_cancel_is_409_and_changes_nothing(
    client: TestClient, alloc: DurableAllocator
) -> None:
    sids = alloc.session_ids
    secret = client.post("/bookings", json=body_for("c-1", sids[:2]), headers=BK).json()["secret"]
    mine = {**BK, "X-Booking-Secret": secret}
    assert client.delete("/bookings/c-1", headers=mine).status_code == 200
    before = state(client, alloc)
    again = client.delete("/bookings/c-1", headers=OP)
    assert again.status_code == 409
    assert again.json() == {"detail": "request c-1 is already cancelled"}
    assert state(client, alloc) == before
    # Never booked stays 404, and a used id still cannot be booked again.
    assert client.delete("/bookings/c-never", headers=OP).status_code == 404
    assert client.post("/bookings", json=body_for("c-1", sids[:2]), headers=OP).status_code == 409


def test_a_second_cancel_with_the_secret_is_409(
    client: TestClient, alloc: DurableAllocator
) -> None:
    """The family that cancelled retries its cancel (a lost reply): told it is done, not 404."""
    sids = alloc.session_ids
    secret = client.post("/bookings", json=body_for("c-2", sids[:2]), headers=BK).json()["secret"]
    mine = {**BK, "X-Booking-Secret": secret}
    assert client.delete("/bookings/c-2", headers=mine).status_code == 200
    again = client.delete("/bookings/c-2", headers=mine)
    assert again.status_code == 409, again.text
    assert again.json() == {"detail": "request c-2 is already cancelled"}


def test_an_ineligible_request_is_422_without_its_birth_date(
    client: TestClient, alloc: DurableAllocator
) -> None:
    before = state(client, alloc)
    r = client.post(
        "/bookings", json=body_for("young", alloc.session_ids[:10], born=TOO_YOUNG), headers=BK
    )
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "eligible" in detail
    assert TOO_YOUNG not in r.text and "2025" not in r.text
    assert state(client, alloc) == before
    # Refused: the id was never used, and the child was not kept.
    assert client.get("/bookings/young", headers=OP).status_code == 404
    assert client.get("/bookings", params={"child": "kid-young"}, headers=OP).json() == {
        "requests": []
    }


# ---------------------------------------------------------------- operator queries


def test_operator_queries_by_child_and_household(
    client: TestClient, alloc: DurableAllocator
) -> None:
    sids = alloc.session_ids
    hh = "HH-Lin-Family-Xiamen"
    a = client.post("/bookings", json=body_for("h-1", sids[:2], household=hh), headers=BK)
    b = client.post("/bookings", json=body_for("h-2", sids[2:4], household=hh), headers=BK)
    client.post("/bookings", json=body_for("h-3", sids[:2], household="HH-other"), headers=BK)
    again = {"request": {"id": "h-1b", "children": ["kid-h-1"], "preferences": sids[4:6]}}
    secret = a.json()["secret"]
    assert (
        client.post("/bookings", json=again, headers={**BK, "X-Booking-Secret": secret}).status_code
        == 201
    )
    by_child = client.get("/bookings", params={"child": "kid-h-1"}, headers=OP).json()
    assert [s["request"] for s in by_child["requests"]] == ["h-1", "h-1b"]
    assert by_child["requests"][0] == client.get("/bookings/h-1", headers=OP).json()
    by_house = client.get("/bookings", params={"household": hh}, headers=OP).json()
    assert [s["request"] for s in by_house["requests"]] == ["h-1", "h-2", "h-1b"]  # booked so
    # Cancelled requests leave the answer.
    b_secret = b.json()["secret"]
    client.delete("/bookings/h-2", headers={**BK, "X-Booking-Secret": b_secret})
    by_house = client.get("/bookings", params={"household": hh}, headers=OP).json()
    assert [s["request"] for s in by_house["requests"]] == ["h-1", "h-1b"]
    assert client.get("/bookings", params={"child": "nobody"}, headers=OP).json() == {
        "requests": []
    }
    # Operators only; exactly one of the two; nothing echoed.
    for params in ({"child": "kid-h-1"}, {"household": hh}):
        r = client.get("/bookings", params=params, headers=BK)
        assert r.status_code == 403 and hh not in r.text and "kid-h-1" not in r.text
    for params in ({}, {"child": "kid-h-1", "household": hh}, {"child": ""}, {"household": ""}):
        r = client.get("/bookings", params=params, headers=OP)
        assert r.status_code == 422, params
        assert hh not in r.text and "kid-h-1" not in r.text
    # The query route and the id route do not shadow each other.
    assert client.get("/bookings/h-1", headers=BK).json()["request"] == "h-1"
    assert client.get("/bookings/", headers=BK).status_code == 404


# ---------------------------------------------------------------- paging


def test_sessions_are_paged(
    client: TestClient, alloc: DurableAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = sample_instance()
    for ev in events()[:60]:
        if ev.pop("op") == "book":
            client.post("/bookings", json=ev, headers=OP)
    sids = alloc.session_ids
    everything = client.get("/sessions", headers=OP).json()
    assert everything["total"] == len(sids) <= DEFAULT_PAGE
    assert everything["offset"] == 0 and everything["limit"] == DEFAULT_PAGE
    assert everything["next"] is None
    assert [s["session"] for s in everything["sessions"]] == sids
    for occ, sess in zip(everything["sessions"], inst.sessions, strict=True):
        assert occ["site"] == sess.site
        assert occ["start"] == sess.start.isoformat() and occ["end"] == sess.end.isoformat()
        assert occ["waiting"] >= 0
    # Pages of 5: one call of the engine per page, concatenating to everything.
    calls: list[Any] = []
    real = alloc.session_occupancies

    def spy(ids: Any = None) -> Any:
        calls.append(list(ids) if ids is not None else None)
        return real(ids)

    monkeypatch.setattr(alloc, "session_occupancies", spy)
    monkeypatch.setattr(alloc, "session_occupancy", lambda _sid: pytest.fail("one by one"))
    pages, offset = [], 0
    while offset is not None:
        page = client.get("/sessions", params={"offset": offset, "limit": 5}, headers=OP).json()
        assert page["offset"] == offset and page["limit"] == 5 and page["total"] == len(sids)
        assert len(page["sessions"]) == min(5, len(sids) - offset)
        pages.extend(page["sessions"])
        offset = page["next"]
    assert pages == everything["sessions"]
    assert len(calls) == -(-len(sids) // 5) and all(len(c) <= 5 for c in calls)
    # Past the end: an empty last page.
    past = client.get("/sessions", params={"offset": 999}, headers=OP).json()
    assert past["sessions"] == [] and past["next"] is None and past["total"] == len(sids)
    # id= still filters (and pages over the ids given); an unknown id anywhere is 404.
    chosen = [sids[3], sids[0], sids[7]]
    r = client.get("/sessions", params={"id": chosen, "limit": 2}, headers=OP).json()
    assert [s["session"] for s in r["sessions"]] == chosen[:2]
    assert r["total"] == 3 and r["next"] == 2
    bad = client.get("/sessions", params={"id": [*chosen, "nope"], "limit": 1}, headers=OP)
    assert bad.status_code == 404 and "nope" in bad.json()["detail"]
    # Booking tokens see the counts only.
    counts = client.get("/sessions", params={"limit": 3}, headers=BK).json()
    assert counts["sessions"] and all("requests" not in s for s in counts["sessions"])
    assert any(s["requests"] for s in everything["sessions"])
    # Bounds.
    for params in ({"limit": 0}, {"limit": MAX_PAGE + 1}, {"offset": -1}, {"limit": "many"}):
        assert client.get("/sessions", params=params, headers=BK).status_code == 422, params
    assert client.get("/sessions", params={"limit": MAX_PAGE}, headers=BK).status_code == 200


# ---------------------------------------------------------------- the access log


ACCESS = re.compile(
    r"^(GET|POST|DELETE) (/\S*|<no route>) (\d{3}) \d+\.\d ms ((operator|booking)#\d+|-)$"
)


def test_the_access_log_names_templates_never_data(
    client: TestClient, alloc: DurableAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slotalloc.access")
    sids = alloc.session_ids
    child, household, rid = "kid-Wang-Fang-2023", "HH-Wang-Xiamen-Siming", "req-Wang-0001"
    body = body_for(rid, sids[:2], child=child, born="2023-06-02", household=household)
    calls = [
        ("POST", "/bookings", {"json": body, "headers": BK}),
        ("GET", f"/bookings/{rid}", {"headers": BK}),
        ("GET", "/bookings", {"params": {"child": child}, "headers": OP}),
        ("GET", "/bookings", {"params": {"household": household}, "headers": OP}),
        ("GET", "/bookings", {"params": {"household": household}, "headers": BK}),
        ("GET", "/sessions", {"params": {"id": sids[0]}}),
        ("DELETE", f"/bookings/{rid}", {"headers": OP}),
        ("GET", "/healthz", {}),
        ("GET", "/docs/assets/swagger-ui.css", {}),
    ]
    caplog.clear()
    replies = [client.request(m, url, **kw) for m, url, kw in calls]
    # A path the app does not know: its raw text is not logged either (hook-free client).
    with TestClient(client.app) as plain:
        assert plain.get(f"/nowhere/{child}", params={"h": household}).status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "slotalloc.access"]
    assert len(lines) == len(calls) + 1, lines
    parsed = [ACCESS.match(line) for line in lines]
    assert all(parsed), lines
    got = [(p.group(1), p.group(2), int(p.group(3)), p.group(4)) for p in parsed if p]
    assert got == [
        ("POST", "/bookings", 201, "booking#0"),
        ("GET", "/bookings/{request_id}", 200, "booking#0"),
        ("GET", "/bookings", 200, "operator#0"),
        ("GET", "/bookings", 200, "operator#0"),
        ("GET", "/bookings", 403, "booking#0"),
        ("GET", "/sessions", 401, "-"),
        ("DELETE", "/bookings/{request_id}", 200, "operator#0"),
        ("GET", "/healthz", 200, "-"),
        ("GET", "/docs/assets/{path}", 200, "-"),
        ("GET", "<no route>", 404, "-"),
    ]
    assert [r.status_code for r in replies] == [g[2] for g in got[:-1]]
    text = "\n".join(lines)
    secret = replies[0].json()["secret"]
    for needle in (child, household, rid, "2023-06-02", sids[0], OPERATOR, BOOKING, secret, "?"):
        assert needle not in text, needle
    # The service's other log lines of these requests (401s) name templates too. (The
    # test client's own httpx logger records the URLs it sends: not the service's.)
    everything = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for needle in (child, household, rid, "2023-06-02"):
        assert needle not in everything, needle


def test_uvicorn_keeps_its_own_access_log_off(app: FastAPI) -> None:
    """uvicorn's access log prints raw paths and query strings: ``build_server`` turns it off."""
    server = build_server(app, "127.0.0.1", free_port())
    assert server.config.access_log is False
    assert server.config.log_config is None


# ---------------------------------------------------------------- /docs


def test_docs_load_nothing_from_elsewhere(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "http:" not in html and "https:" not in html and "//" not in html
    # And the browser is told to load from this origin only; the inline script by its hash.
    csp = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'"
    (inline,) = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert all("http" not in v and "*" not in v for v in csp.values())
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    refs += re.findall(r"""url:\s*["']([^"']+)["']""", html)
    assert len(refs) >= 4, refs  # css, favicon, js, the schema
    kinds = {"/openapi.json": "application/json"}
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        got = client.get(ref)  # every asset is served by the app itself
        assert got.status_code == 200, ref
        if ref.endswith(".js"):
            assert "javascript" in got.headers["content-type"]
            # Swagger UI 5 or later: 4.x cannot render the OpenAPI 3.1 schema FastAPI makes.
            version = re.search(rb'PACKAGE_VERSION:"(\d+)\.', got.content)
            assert version and int(version.group(1)) >= 5
        elif ref.endswith(".css"):
            assert got.headers["content-type"].startswith("text/css")
        elif ref in kinds:
            assert got.headers["content-type"].startswith(kinds[ref])
    with TestClient(client.app) as plain:  # outside the API: no contract hook
        assert plain.get("/redoc").status_code == 404  # ReDoc would load from a CDN


CHROMIUM = "/usr/bin/chromium"


def test_docs_render_in_a_browser_cut_off_from_the_network(
    alloc: DurableAllocator, tmp_path: Path
) -> None:
    """Headless Chromium, every host but this one unreachable, renders every operation."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip("no headless Chromium at /usr/bin/chromium (apt-get install chromium)")
    app = create_app(alloc, AUTH)
    with live_server(app) as live:
        url = f"{live.url}/docs"
        out = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-proxy-server",
                # Any other host fails to resolve: a CDN asset would leave the page blank.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    dom = out.stdout
    assert "opblock" in dom, (out.returncode, out.stderr[-2000:])
    assert "Unable to render" not in dom
    for path in ("/bookings/{request_id}", "/sessions", "/rebalance", "/healthz"):
        assert f'data-path="{path}"' in dom, path


def test_export_and_rebalance_replies_match_their_schemas(client: TestClient) -> None:
    for ev in events()[:150]:
        if ev.pop("op") == "book":
            client.post("/bookings", json=ev, headers=OP)
    exported = client.get("/export", headers=OP).json()  # validated against ExportReply
    inst = Instance.model_validate(exported["instance"])
    assert verify(inst, Solution.model_validate(exported["solution"])).accepted
    # A rebalance that changes something: moves and placements checked against their models.
    r = client.post("/rebalance", json={"method": "auto", "time_limit": 5}, headers=OP)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["moved"] and out["placed"] and out["ledger_seq"] is not None
    assert set(out["moved"][0]) == {"request", "from", "to"}
