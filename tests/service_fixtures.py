"""Shared setup of the booking service's HTTP tests: tokens, the sample allocator, a live server.

A test module binds the fixtures it uses to module names (``alloc =
service_fixtures.alloc``), which is how pytest finds fixtures defined
elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from slotalloc.io import load_instance
from slotalloc.models import Instance
from slotalloc.service.auth import AuthConfig
from slotalloc.service.ledger import DurableAllocator
from slotalloc.service.server import Limits, build_server, create_app

DATA = Path(__file__).resolve().parent / "data"

OPERATOR = "operator-token-0123456789abcdef"
BOOKING = "booking-token-0123456789abcdef"
PRIORITY = "priority-token-0123456789abcdef"
AUTH = AuthConfig.from_json(
    {"operator": [OPERATOR], "booking": [BOOKING, {"token": PRIORITY, "may_set_priority": True}]}
)
OP = {"Authorization": f"Bearer {OPERATOR}"}
BK = {"Authorization": f"Bearer {BOOKING}"}
PR = {"Authorization": f"Bearer {PRIORITY}"}


def sample_instance() -> Instance:
    """tests/data/sample-events.json: the instance the sample event stream books into."""
    return load_instance(DATA / "sample-events.json")


def events() -> list[dict[str, Any]]:
    """tests/data/sample-events.jsonl, one JSON value per event."""
    return [json.loads(x) for x in (DATA / "sample-events.jsonl").read_text().splitlines()]


@pytest.fixture()
def alloc(tmp_path: Path) -> Iterator[DurableAllocator]:
    """A durable allocator of the sample instance, with a new ledger."""
    da = DurableAllocator(sample_instance(), tmp_path / "l.db")
    yield da
    da.close()


@pytest.fixture()
def client(alloc: DurableAllocator) -> Iterator[TestClient]:
    """A client of the app over ``alloc``, sending no credential unless a test adds one."""
    with TestClient(create_app(alloc, AUTH)) as c:
        yield c


def state(client: TestClient, alloc: DurableAllocator) -> tuple[Any, Any]:
    """The ledger head and the export: what a refused call must leave as it was."""
    return alloc.head, client.get("/export", headers=OP).json()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Live:
    """Where a live server listens."""

    url: str
    port: int


@contextlib.contextmanager
def live_server(app: FastAPI, limits: Limits | None = None) -> Iterator[Live]:
    """The app served by uvicorn on a free port, from a thread, until the block ends."""
    port = free_port()
    server = build_server(app, "127.0.0.1", port, limits=limits)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield Live(f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        t.join(15)
