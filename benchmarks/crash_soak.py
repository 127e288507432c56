"""Crash soak: concurrent clients book and cancel over HTTP while the server is SIGKILLed.

The server (``slotalloc.server``) runs in a child process on 127.0.0.1 over a
fresh ledger. Client threads book new requests (copies of the sample stream's
book events, fresh ids) and cancel requests they booked; at seeded random
moments the server gets SIGKILL and is restarted on the same ledger, while the
clients retry. Afterwards, with the server running:

* every booking that got a 2xx reply is still known: held where it was told
  (or, if it was waitlisted, waitlisted or promoted), cancelled exactly when a
  cancel got a 2xx reply (operations whose reply was lost may have happened or
  not, and are only checked for consistency);
* every 2xx reply's ``X-Ledger-Seq`` names a row of the ledger holding that very
  operation (the receipt);
* ``GET /export`` is accepted by the verifier and equals the state rebuilt by a
  full replay of the ledger (no snapshot), which re-checks every stored
  decision, and the ledger's book/cancel rows replayed through
  :func:`slotalloc.online.replay` (FORMAT §3 serial semantics) give the stored
  decisions.

Run: ``python benchmarks/crash_soak.py --kills 50 --seed 7``; the test suite runs
the same code with 5 kills.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from slotalloc.io import load_instance
from slotalloc.ledger import DurableAllocator, Ledger
from slotalloc.models import Instance, Solution
from slotalloc.online import replay
from slotalloc.verify import verify

log = logging.getLogger("crash_soak")

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "tests" / "data" / "sample-events.json"
EVENTS = ROOT / "tests" / "data" / "sample-events.jsonl"

_SERVER_CODE = """
import sys, uvicorn
from slotalloc.io import load_instance
from slotalloc.ledger import DurableAllocator
from slotalloc.server import create_app
inst = load_instance(sys.argv[1])
alloc = DurableAllocator(inst, sys.argv[2], snapshot_every=int(sys.argv[4]))
uvicorn.run(create_app(alloc), host="127.0.0.1", port=int(sys.argv[3]), log_level="error")
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """The booking server in a child process, on loopback, startable again on the same ledger."""

    def __init__(self, instance: Path, db: Path, port: int, snapshot_every: int = 0) -> None:
        self.instance, self.db, self.port = instance, db, port
        self.snapshot_every = snapshot_every
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait until ``/healthz`` answers; returns the seconds it took."""
        t0 = time.perf_counter()
        argv = [
            sys.executable,
            "-c",
            _SERVER_CODE,
            str(self.instance),
            str(self.db),
            str(self.port),
            str(self.snapshot_every),
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited with {self.proc.returncode}: {err[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return time.perf_counter() - t0
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@dataclass
class Ack:
    """A reply the client got: what the server confirmed."""

    op: str  # "book" or "cancel"
    request: str
    seq: int
    reply: dict[str, Any]


@dataclass
class ClientLog:
    """What one client saw."""

    acks: list[Ack] = field(default_factory=list)
    in_doubt: list[tuple[str, str]] = field(default_factory=list)  # (op, request)
    refused: int = 0


def _templates() -> list[dict[str, Any]]:
    out = []
    for line in EVENTS.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("op") == "book":
            ev.pop("op")
            out.append(ev)
    return out


def client(
    url: str, cid: int, seed: int, stop: threading.Event, logbook: ClientLog, pace: float
) -> None:
    """Book and cancel until ``stop``; retry through server restarts."""
    rng = random.Random(seed * 1000 + cid)
    templates = _templates()
    mine: list[str] = []
    n = 0
    with httpx.Client(base_url=url, timeout=5.0) as http:
        while not stop.is_set():
            if mine and rng.random() < 0.4:
                rid = mine.pop(rng.randrange(len(mine)))
                op = "cancel"
                call = lambda rid=rid: http.delete(f"/bookings/{rid}")  # noqa: E731
            else:
                body = json.loads(json.dumps(rng.choice(templates)))
                rid = f"k{cid}-{n}"
                n += 1
                body["request"]["id"] = rid
                op = "book"
                call = lambda body=body: http.post("/bookings", json=body)  # noqa: E731
            try:
                r = call()
            except httpx.HTTPError:
                # The reply is lost: the operation may or may not have happened.
                logbook.in_doubt.append((op, rid))
                time.sleep(0.05)
                continue
            if r.status_code in (200, 201):
                logbook.acks.append(Ack(op, rid, int(r.headers["x-ledger-seq"]), r.json()))
                if op == "book":
                    mine.append(rid)
            else:
                logbook.refused += 1
            if pace:
                time.sleep(pace)


def check(instance: Instance, db: Path, url: str, logs: list[ClientLog]) -> dict[str, Any]:
    """All the post-conditions; raises AssertionError at the first broken one."""
    http = httpx.Client(base_url=url, timeout=30.0)
    exported = http.get("/export").json()
    inst = Instance.model_validate(exported["instance"])
    sol = Solution.model_validate(exported["solution"])
    report = verify(inst, sol)
    assert report.accepted, str(report)
    held = {a.request: a.session for a in sol.assignments}

    acks = [a for lg in logs for a in lg.acks]
    doubt = {(op, rid) for lg in logs for op, rid in lg.in_doubt}
    booked = {a.request: a for a in acks if a.op == "book"}
    cancelled = {a.request for a in acks if a.op == "cancel"}
    cancel_tried = cancelled | {rid for op, rid in doubt if op == "cancel"}
    promoted = {
        p["request"]: p["session"] for a in acks if a.op == "cancel" for p in a.reply["promoted"]
    }
    for rid, ack in booked.items():
        st = http.get(f"/bookings/{rid}")
        assert st.status_code == 200, f"acknowledged booking {rid} is lost"
        s = st.json()
        if rid in cancelled:
            assert s["cancelled"], f"{rid}: cancel acknowledged, but {s}"
        elif rid not in cancel_tried:
            assert not s["cancelled"], f"{rid}: never cancelled, but {s}"
            if ack.reply["session"] is not None:
                assert s["session"] == ack.reply["session"], f"{rid}: was told {ack.reply}, is {s}"
                assert held.get(rid) == ack.reply["session"], f"{rid} missing from the export"
            elif not s["waitlisted"]:
                assert s["session"] is not None, f"{rid}: waitlisted, now {s}"
                if rid in promoted:
                    assert s["session"] == promoted[rid]
    head = http.get("/healthz").json()["ledger_seq"]
    http.close()

    # Receipts: the row at each acknowledged seq is that operation.
    led = Ledger(db, instance)
    rows = {r.seq: r for r in led.rows()}
    led.close()
    for a in acks:
        assert a.seq <= head, f"receipt seq {a.seq} beyond the ledger head {head}"
        row = rows[a.seq]
        assert row.kind == a.op, (a, row)
        body = json.loads(row.body)
        rid = body["request"]["id"] if a.op == "book" else body["request"]
        assert rid == a.request, (a, row)
        assert json.loads(row.result) == a.reply, (a, row.result)

    # The serial FORMAT §3 decisions: feed the ledger's events to the reference replay.
    lines, stored = [], []
    for r in rows.values():
        body = json.loads(r.body)
        lines.append(json.dumps({"op": r.kind, **body}))
        stored.append(json.loads(r.result))
    decisions = list(replay(instance, lines))
    for i, (d, s) in enumerate(zip(decisions, stored, strict=True)):
        d = dict(d)
        assert d.pop("event") == i
        assert d == s, f"row {i}: serial replay {d} != ledger {s}"
    return {
        "acknowledged": len(acks),
        "in_doubt": len(doubt),
        "refused": sum(lg.refused for lg in logs),
        "ledger_rows": head + 1,
        "held": len(held),
        "export": exported,
    }


def full_replay_export(instance: Instance, db: Path) -> dict[str, Any]:
    """The export of a state rebuilt from every ledger row (snapshots ignored)."""
    da = DurableAllocator(instance, db, use_snapshots=False)
    try:
        inst, sol = da.export()
        return {"instance": inst.model_dump(mode="json"), "solution": sol.model_dump(mode="json")}
    finally:
        da.close(snapshot=False)


def run(
    kills: int,
    seed: int,
    *,
    clients: int = 4,
    workdir: Path | None = None,
    min_up: float = 0.2,
    max_up: float = 0.8,
    snapshot_every: int = 40,
    pace: float = 0.0,
) -> dict[str, Any]:
    """Soak with ``kills`` SIGKILLs; returns figures (raises AssertionError on a failure)."""
    rng = random.Random(seed)
    instance = load_instance(INSTANCE)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="crash-soak-")
        workdir = Path(tmp.name)
    db = workdir / "ledger.db"
    server = ServerProcess(INSTANCE, db, free_port(), snapshot_every)
    stop = threading.Event()
    logs = [ClientLog() for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(server.url, i, seed, stop, logs[i], pace))
        for i in range(clients)
    ]
    t0 = time.perf_counter()
    starts: list[float] = []
    try:
        starts.append(server.start())
        for t in threads:
            t.start()
        for k in range(kills):
            time.sleep(rng.uniform(min_up, max_up))
            server.kill()
            log.info("kill %d/%d", k + 1, kills)
            starts.append(server.start())
        time.sleep(rng.uniform(min_up, max_up))
        stop.set()
        for t in threads:
            t.join(30)
        figures = check(instance, db, server.url, logs)
        exported = figures.pop("export")
        server.stop()
        assert full_replay_export(instance, db) == exported, "export != full replay of the ledger"
    finally:
        stop.set()
        server.kill()
        for t in threads:
            if t.is_alive():
                t.join(30)
        if tmp is not None:
            tmp.cleanup()
    figures.update(
        kills=kills,
        seconds=round(time.perf_counter() - t0, 1),
        max_restart_seconds=round(max(starts), 2),
    )
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--clients", type=int, default=4)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    figures = run(args.kills, args.seed, clients=args.clients)
    log.info("%s", json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
