"""Crash soak: concurrent clients book and cancel over HTTP while the server is SIGKILLed.

The server (``slotalloc.service.server``: the app, its group-committing writer thread,
uvicorn) runs in a child process on 127.0.0.1 over a fresh ledger, with an auth
file. Client threads (booking token) book new requests (copies of the sample
stream's book events, fresh ids) and cancel requests they booked, with each
booking's secret. The server is killed with SIGKILL in two ways:

* **inside a batch** (``--kills``): the child process SIGKILLs itself while
  committing a group of at least two operations, at a seeded phase: after the
  batch was applied in memory but before its transaction (``before-commit``),
  after the SQLite commit but before the head file was written
  (``after-commit``), or after the head file but before any reply
  (``after-head``). Each such kill leaves a marker line, so the count is what
  happened, not what was asked;
* **at a random moment** (``--random-kills``), by the parent.

After each kill the server is restarted on the same ledger (it must start:
the ledger check refuses nothing here), while the clients retry. Afterwards,
with the server running:

* every booking that got a 2xx reply is still known: held where it was told
  (or, if it was waitlisted, waitlisted or promoted), cancelled exactly when a
  cancel got a 2xx reply;
* every operation whose reply was lost (in doubt) either happened whole or
  not at all: a booking in doubt is either unknown (404) or present with its
  row in the ledger;
* every 2xx reply's ``X-Ledger-Seq`` and ``X-Ledger-Hash`` name a row of the
  ledger holding that very operation with that hash (the receipt);
* the head file records the ledger's head;
* ``GET /export`` (operator token) is accepted by the verifier and equals the
  state rebuilt by a full replay of the ledger (no snapshot), which re-checks
  every stored decision, and the ledger's book/cancel rows replayed through
  :func:`slotalloc.online.replay` (FORMAT §3 serial semantics) give the stored
  decisions.

Run: ``python benchmarks/quality/crash_soak.py --kills 30 --seed 7``; the test suite runs
the same code with 5 kills.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import secrets
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
from slotalloc.models import Instance, Solution
from slotalloc.online import replay
from slotalloc.service.ledger import DurableAllocator, Ledger
from slotalloc.verify import verify

log = logging.getLogger("crash_soak")

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = ROOT / "tests" / "data" / "sample-events.json"
EVENTS = ROOT / "tests" / "data" / "sample-events.jsonl"
PHASES = ("before-commit", "after-commit", "after-head")

# The child: what `slotalloc serve` does, plus the optional crash hook and the
# benchmark's settings (synchronous=OFF, snapshot period) that serve does not expose.
_SERVER_CODE = """
import json, os, signal, sys
cfg = json.loads(sys.argv[1])
from slotalloc.service.auth import AuthConfig
from slotalloc.io import load_instance
from slotalloc.service.ledger import DurableAllocator, HeadFile, Ledger
from slotalloc.service.server import build_server, configure_logging, create_app
from slotalloc.service.server import run_server, tune_gc
configure_logging(cfg["log_level"])
if cfg.get("switch_interval"):
    sys.setswitchinterval(cfg["switch_interval"])
crash = cfg.get("crash")
if crash:
    state = {"batches": 0, "rows": 0}
    def hit(phase):
        if phase == crash["phase"] and state["rows"] >= 2 and state["batches"] >= crash["after"]:
            with open(crash["marker"], "a") as f:
                f.write(f"{phase} {state['rows']}\\n")
            os.kill(os.getpid(), signal.SIGKILL)
    real_append, real_write = Ledger.append, HeadFile.write
    def append(self, rows, head, prev):
        state["rows"] = len(rows)
        if len(rows) >= 2:
            state["batches"] += 1
        hit("before-commit")
        real_append(self, rows, head, prev)
        hit("after-commit")
    def write(self, seq, h):
        real_write(self, seq, h)
        hit("after-head")
        state["rows"] = 0
    Ledger.append, HeadFile.write = append, write
inst = load_instance(cfg["instance"])
alloc = DurableAllocator(
    inst,
    cfg["db"],
    snapshot_every=cfg["snapshot_every"],
    synchronous=cfg["synchronous"],
    exclusive=True,
    background_checkpoint=True,
)
app = create_app(alloc, AuthConfig.load(cfg["auth"]), commit_window=cfg["window"])
server = build_server(app, "127.0.0.1", cfg["port"])
tune_gc()  # as serve() does
try:
    run_server(server, app)
finally:
    alloc.close()
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_auth(path: Path) -> tuple[str, str]:
    """An auth file with one operator and one booking token; returns (operator, booking)."""
    op, bk = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    path.write_text(json.dumps({"operator": [op], "booking": [bk]}))
    path.chmod(0o600)
    return op, bk


class ServerProcess:
    """The booking server in a child process, on loopback, startable again on the same ledger."""

    def __init__(
        self,
        instance: Path,
        db: Path,
        port: int,
        snapshot_every: int = 0,
        *,
        synchronous: str = "FULL",
        window: float = 0.002,
        log_level: str = "warning",
        switch_interval: float | None = None,
    ) -> None:
        self.instance, self.db, self.port = instance, db, port
        self.snapshot_every = snapshot_every
        self.synchronous, self.window, self.log_level = synchronous, window, log_level
        self.switch_interval = switch_interval
        self.auth = db.parent / (db.name + ".test-auth.json")
        self.operator, self.booking = write_auth(self.auth)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = db.parent / (db.name + ".server.log")

    def headers(self, role: str = "booking") -> dict[str, str]:
        """The Authorization header of a role."""
        token = self.operator if role == "operator" else self.booking
        return {"Authorization": f"Bearer {token}"}

    def start(self, timeout: float = 30.0, crash: dict[str, Any] | None = None) -> float:
        """Start and wait until ``/healthz`` answers; returns the seconds it took."""
        t0 = time.perf_counter()
        cfg = {
            "instance": str(self.instance),
            "db": str(self.db),
            "port": self.port,
            "snapshot_every": self.snapshot_every,
            "synchronous": self.synchronous,
            "window": self.window,
            "auth": str(self.auth),
            "log_level": self.log_level,
            "switch_interval": self.switch_interval,
            "crash": crash,
        }
        argv = [sys.executable, "-c", _SERVER_CODE, json.dumps(cfg)]
        # stderr to a file, never a pipe nobody reads (a full pipe would block the server).
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                if crash is not None and self.proc.returncode == -signal.SIGKILL:
                    return time.perf_counter() - t0  # up, then killed by its hook already
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server exited with {self.proc.returncode}: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return time.perf_counter() - t0
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("server did not become healthy")

    def wait_exit(self, timeout: float) -> bool:
        """Wait for the process to end by itself; True when it did."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self.proc = None
        return True

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
    hash: str
    reply: dict[str, Any]


@dataclass
class ClientLog:
    """What one client saw."""

    acks: list[Ack] = field(default_factory=list)
    in_doubt: list[tuple[str, str]] = field(default_factory=list)  # (op, request)
    refused: int = 0
    unreachable: int = 0


def _templates() -> list[dict[str, Any]]:
    out = []
    for line in EVENTS.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("op") == "book":
            ev.pop("op")
            ev["request"]["priority"] = 0  # a booking token may not set a priority
            out.append(ev)
    return out


def client(
    server: ServerProcess,
    cid: int,
    seed: int,
    stop: threading.Event,
    logbook: ClientLog,
    pace: float,
) -> None:
    """Book and cancel until ``stop``; retry through server restarts."""
    rng = random.Random(seed * 1000 + cid)
    templates = _templates()
    mine: list[tuple[str, str]] = []  # (request, secret)
    n = 0
    with httpx.Client(base_url=server.url, timeout=5.0, headers=server.headers()) as http:
        while not stop.is_set():
            if mine and rng.random() < 0.4:
                rid, secret = mine.pop(rng.randrange(len(mine)))
                op = "cancel"
                call = lambda rid=rid, s=secret: http.delete(  # noqa: E731
                    f"/bookings/{rid}", headers={"X-Booking-Secret": s}
                )
            else:
                body = json.loads(json.dumps(rng.choice(templates)))
                rid = f"k{cid}-{n}"
                n += 1
                body["request"]["id"] = rid
                # Fresh children per booking: a child declared by another client's
                # booking may only be booked again with that booking's secret.
                ren = {ch["id"]: f"{ch['id']}-{rid}" for ch in body.get("children") or ()}
                for ch in body.get("children") or ():
                    ch["id"] = ren[ch["id"]]
                body["request"]["children"] = [ren.get(c, c) for c in body["request"]["children"]]
                op = "book"
                call = lambda body=body: http.post("/bookings", json=body)  # noqa: E731
            try:
                r = call()
            except httpx.ConnectError:
                # Never sent (the server is restarting): nothing can have happened.
                if op == "cancel":
                    mine.append((rid, secret))
                logbook.unreachable += 1
                time.sleep(0.05)
                continue
            except httpx.HTTPError:
                # The reply is lost: the operation may or may not have happened.
                logbook.in_doubt.append((op, rid))
                time.sleep(0.05)
                continue
            if r.status_code in (200, 201):
                reply = r.json()
                secret = reply.pop("secret", None)
                reply.pop("reason", None)  # explains the reply; the ledger row has no reason
                h = r.headers["x-ledger-hash"]
                logbook.acks.append(Ack(op, rid, int(r.headers["x-ledger-seq"]), h, reply))
                if op == "book":
                    mine.append((rid, secret))
            elif r.status_code == 503:
                logbook.in_doubt.append((op, rid))  # not committed; treated as in doubt
            else:
                logbook.refused += 1
            if pace:
                time.sleep(pace)


def check(instance: Instance, server: ServerProcess, logs: list[ClientLog]) -> dict[str, Any]:
    """All the post-conditions; raises AssertionError at the first broken one."""
    http = httpx.Client(base_url=server.url, timeout=30.0, headers=server.headers("operator"))
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
    health = http.get("/healthz").json()
    head = health["ledger_seq"]
    doubtful_books = {rid for op, rid in doubt if op == "book" and rid not in booked}
    present_in_doubt = set()
    for rid in doubtful_books:
        st = http.get(f"/bookings/{rid}")
        assert st.status_code in (200, 404), (rid, st.status_code)
        if st.status_code == 200:
            present_in_doubt.add(rid)
    http.close()

    # Receipts: the row at each acknowledged seq is that operation, with that hash.
    led = Ledger(server.db, instance)
    rows = {r.seq: r for r in led.rows()}
    head_file = led.head_file.read()
    file_head = led.head()
    led.close()
    assert head_file == file_head, f"head file {head_file} != ledger head {file_head}"
    for a in acks:
        assert a.seq <= head, f"receipt seq {a.seq} beyond the ledger head {head}"
        row = rows[a.seq]
        assert row.kind == a.op, (a, row)
        assert row.hash.hex() == a.hash, f"receipt hash of row {a.seq} differs"
        body = json.loads(row.body)
        rid = body["request"]["id"] if a.op == "book" else body["request"]
        assert rid == a.request, (a, row)
        assert json.loads(row.result) == a.reply, (a, row.result)
    # In doubt, but applied: whole (its row is in the ledger) - never half.
    booked_rows = {json.loads(r.body)["request"]["id"] for r in rows.values() if r.kind == "book"}
    assert present_in_doubt <= booked_rows, "a booking is known but has no ledger row"
    assert (doubtful_books - present_in_doubt).isdisjoint(booked_rows), "a row without state"

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
        "in_doubt_applied": len(present_in_doubt),
        "refused": sum(lg.refused for lg in logs),
        "unreachable": sum(lg.unreachable for lg in logs),
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
    random_kills: int = 0,
    clients: int = 4,
    workdir: Path | None = None,
    min_up: float = 0.2,
    max_up: float = 0.8,
    snapshot_every: int = 40,
    pace: float = 0.0,
) -> dict[str, Any]:
    """Soak with ``kills`` SIGKILLs inside batches and ``random_kills`` at random moments.

    Returns figures; raises AssertionError on a failure.
    """
    rng = random.Random(seed)
    instance = load_instance(INSTANCE)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="crash-soak-")
        workdir = Path(tmp.name)
    db = workdir / "ledger.db"
    marker = workdir / "kills.txt"
    server = ServerProcess(INSTANCE, db, free_port(), snapshot_every)
    stop = threading.Event()
    logs = [ClientLog() for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(server, i, seed, stop, logs[i], pace))
        for i in range(clients)
    ]
    plan = ["batch"] * kills + ["random"] * random_kills
    rng.shuffle(plan)
    t0 = time.perf_counter()
    starts: list[float] = []
    missed = 0

    def armed(k: int) -> dict[str, Any] | None:
        """The crash hook of a start followed by plan[k], or None (a plain start)."""
        if k >= len(plan) or plan[k] != "batch":
            return None
        return {
            "phase": PHASES[k % len(PHASES)],
            "after": rng.randint(1, 25),
            "marker": str(marker),
        }

    try:
        # Each start is armed for the kill that follows it: the server kills itself
        # inside its n-th commit of at least two operations.
        starts.append(server.start(crash=armed(0)))
        for t in threads:
            t.start()
        for k, how in enumerate(plan):
            if how == "random":
                time.sleep(rng.uniform(min_up, max_up))
                server.kill()
            elif not server.wait_exit(30):
                missed += 1
                log.warning("kill %d: no batch of two came in 30 s", k + 1)
                server.kill()
            starts.append(server.start(crash=armed(k + 1)))
            log.info("kill %d/%d (%s)", k + 1, len(plan), how)
        time.sleep(rng.uniform(min_up, max_up))
        stop.set()
        for t in threads:
            t.join(30)
        figures = check(instance, server, logs)
        exported = figures.pop("export")
        server.stop()
        assert full_replay_export(instance, db) == exported, "export != full replay of the ledger"
    finally:
        stop.set()
        server.kill()
        for t in threads:
            if t.is_alive():
                t.join(30)
        in_batch = marker.read_text().splitlines() if marker.exists() else []
        if tmp is not None:
            tmp.cleanup()
    figures.update(
        kills_in_batches=len(in_batch),
        kills_by_phase={p: sum(1 for x in in_batch if x.startswith(p)) for p in PHASES},
        mean_batch_at_kill=round(
            sum(int(x.split()[1]) for x in in_batch) / max(1, len(in_batch)), 1
        ),
        random_kills=random_kills,
        kills_missed=missed,
        seconds=round(time.perf_counter() - t0, 1),
        max_restart_seconds=round(max(starts), 2),
    )
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=30, help="SIGKILLs inside commit batches")
    p.add_argument("--random-kills", type=int, default=0, help="SIGKILLs at random moments")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--clients", type=int, default=4)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    figures = run(args.kills, args.seed, random_kills=args.random_kills, clients=args.clients)
    log.info("%s", json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
