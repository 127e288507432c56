"""Booking throughput and latency: in process, durable in process, and over HTTP on loopback.

Three figures for the same operation stream (book each request of a generated
Xiamen weekend, cancelling one earlier booking after every fourth book):

* ``Allocator`` in process (no durability): the engine alone;
* ``DurableAllocator`` in process (SQLite WAL, synchronous=FULL, one commit
  per operation): the cost of durability;
* the HTTP service (``slotalloc.server`` in a child process, one uvicorn
  worker) with N concurrent keep-alive clients: the cost of HTTP on top.

Optionally (``--restart-events``) it builds a ledger of that many events and
measures the restart time by a full replay and from a snapshot. Every phase
is bounded by a count and a time limit and stops by itself. Results are
written to ``benchmarks/results/server.md`` with ``--write``.

Run: ``python benchmarks/http_load.py --requests 3000 --clients 8 --restart-events 1000000 --write``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_soak import ServerProcess, free_port
from slotalloc.generate import generate_xiamen
from slotalloc.ledger import DurableAllocator
from slotalloc.models import Instance, Request
from slotalloc.online import Allocator

log = logging.getLogger("http_load")
RESULTS = Path(__file__).resolve().parent / "results" / "server.md"


def world_and_ops(seed: int, n: int) -> tuple[Instance, list[tuple[str, Any]]]:
    """A world (sessions, children, no requests) and a seeded book/cancel stream over it."""
    full = generate_xiamen(seed, n)
    world = full.model_copy(update={"requests": (), "bookings": ()})
    rng = random.Random(seed)
    ops: list[tuple[str, Any]] = []
    booked: list[str] = []
    for i, r in enumerate(full.requests):
        ops.append(("book", r))
        booked.append(r.id)
        if i % 4 == 3:
            ops.append(("cancel", booked.pop(rng.randrange(len(booked)))))
    return world, ops


def pct(xs: list[float], q: float) -> float:
    """The q-quantile (0..1) of the latencies, in milliseconds."""
    ys = sorted(xs)
    return 1000 * ys[min(len(ys) - 1, int(q * len(ys)))]


def summary(name: str, lat: list[float], wall: float) -> dict[str, Any]:
    return {
        "setup": name,
        "ops": len(lat),
        "ops_per_s": round(len(lat) / wall),
        "p50_ms": round(pct(lat, 0.50), 3),
        "p99_ms": round(pct(lat, 0.99), 3),
        "mean_ms": round(1000 * statistics.fmean(lat), 3),
    }


def bench_in_process(
    world: Instance, ops: list[tuple[str, Any]], workdir: Path
) -> list[dict[str, Any]]:
    out = []
    alloc = Allocator(world)
    lat = []
    t0 = time.perf_counter()
    for kind, arg in ops:
        t = time.perf_counter()
        alloc.book(arg) if kind == "book" else alloc.cancel(arg)
        lat.append(time.perf_counter() - t)
    out.append(summary("Allocator, in process, not durable", lat, time.perf_counter() - t0))
    for sync in ("FULL", "NORMAL"):
        da = DurableAllocator(world, workdir / f"inproc-{sync}.db", synchronous=sync)  # type: ignore[arg-type]
        lat = []
        t0 = time.perf_counter()
        for kind, arg in ops:
            t = time.perf_counter()
            da.book(arg) if kind == "book" else da.cancel(arg)
            lat.append(time.perf_counter() - t)
        out.append(
            summary(
                f"DurableAllocator, in process, synchronous={sync}", lat, time.perf_counter() - t0
            )
        )
        da.close()
    return out


def bench_http(
    world: Instance, ops: list[tuple[str, Any]], workdir: Path, clients: int, max_seconds: float
) -> dict[str, Any]:
    inst_path = workdir / "world.json"
    inst_path.write_text(json.dumps(world.model_dump(mode="json")))
    server = ServerProcess(inst_path, workdir / "http.db", free_port(), snapshot_every=100_000)
    server.start()
    lock = threading.Lock()
    cursor = iter(ops)
    lat: list[float] = []
    errors = [0]
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            while time.perf_counter() < deadline:
                with lock:
                    op = next(cursor, None)
                if op is None:
                    return
                kind, arg = op
                t = time.perf_counter()
                if kind == "book":
                    r = http.post(
                        "/bookings",
                        json={"request": arg.model_dump(mode="json", exclude_none=True)},
                    )
                else:
                    r = http.delete(f"/bookings/{arg}")
                dt = time.perf_counter() - t
                with lock:
                    if r.status_code in (200, 201):
                        lat.append(dt)
                    else:  # a cancel may race its own book across clients: 404
                        errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(max_seconds + 30)
        wall = time.perf_counter() - t0
    finally:
        server.stop()
    res = summary(f"HTTP loopback, {clients} clients, synchronous=FULL", lat, wall)
    res["refused"] = errors[0]
    return res


def bench_restart(events: int, workdir: Path, seed: int) -> dict[str, Any]:
    """Build a ledger of ``events`` rows over a city of 20 000 requests' children, time restarts."""
    db = workdir / "restart.db"
    rng = random.Random(seed)
    city = generate_xiamen(seed, 20_000)
    world = city.model_copy(update={"requests": (), "bookings": ()})
    templates = list(city.requests)
    t0 = time.perf_counter()
    da = DurableAllocator(world, db, synchronous="OFF", snapshot_every=0)
    live: list[str] = []
    n = 0
    batch = 20_000
    while n < events:
        with da.transaction():
            for _ in range(min(batch, events - n)):
                if live and rng.random() < 0.45:
                    da.cancel(live.pop(rng.randrange(len(live))))
                else:
                    r = templates[n % len(templates)]
                    rid = f"e{n}"
                    da.book(Request.model_construct(**{**dict(r), "id": rid}))
                    live.append(rid)
                n += 1
        if n % 100_000 < batch:
            log.info("built %d events", n)
    build = time.perf_counter() - t0
    live_requests = len(live)
    da.close(snapshot=False)
    out: dict[str, Any] = {
        "events": events,
        "live_requests": live_requests,
        "build_s": round(build, 1),
    }
    t = time.perf_counter()
    full = DurableAllocator(world, db, use_snapshots=False, snapshot_every=0)
    out["full_replay_s"] = round(time.perf_counter() - t, 2)
    head = full.head
    full.snapshot()
    full.close(snapshot=False)
    t = time.perf_counter()
    snap = DurableAllocator(world, db)
    out["snapshot_restore_s"] = round(time.perf_counter() - t, 2)
    assert snap.head == head and snap.replayed_rows == 0
    snap.close(snapshot=False)
    with sqlite3.connect(db) as con:
        out["ledger_mb"] = round(db.stat().st_size / 1e6, 1)
        (blob,) = con.execute("SELECT length(state) FROM snapshots ORDER BY seq DESC").fetchone()
        out["snapshot_mb"] = round(blob / 1e6, 1)
    return out


def write_results(cmd: str, rows: list[dict[str, Any]], restart: dict[str, Any] | None) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Booking service figures",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; 2 cores shared with "
        "other benchmarks, so expect noise of tens of percent.",
        "",
        "| setup | ops | ops/s | p50 ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['ops']} | {r['ops_per_s']} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['mean_ms']} |"
        )
    if restart:
        lines += [
            "",
            f"## Restart at {restart['events']:,} ledger events",
            "",
            f"{restart['live_requests']:,} live requests at the head; ledger file "
            f"{restart['ledger_mb']} MB, snapshot {restart['snapshot_mb']} MB (zlib JSON). "
            "Building the ledger (synchronous=OFF, 20 000 events per commit) took "
            f"{restart['build_s']} s.",
            "",
            "| restart | seconds |",
            "|---|---:|",
            "| full replay of every row (hash chain and every decision re-checked) "
            f"| {restart['full_replay_s']} |",
            f"| from a snapshot at the head (clean shutdown) | {restart['snapshot_restore_s']} |",
        ]
    # The crash-soak section is written by hand from benchmarks/crash_soak.py: keep it.
    kept = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        at = old.find("\n## Crash soak")
        kept = old[at:] if at >= 0 else ""
    RESULTS.write_text("\n".join(lines) + "\n" + kept)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="book requests in the stream")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=60.0, help="bound of the HTTP phase")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--restart-events", type=int, default=0)
    p.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    world, ops = world_and_ops(args.seed, args.requests)
    with tempfile.TemporaryDirectory(prefix="http-load-") as tmp:
        work = Path(tmp)
        rows = bench_in_process(world, ops, work)
        rows.append(bench_http(world, ops, work, args.clients, args.max_seconds))
        for r in rows:
            log.info("%s", json.dumps(r))
        restart = None
        if args.restart_events:
            restart = bench_restart(args.restart_events, work, args.seed)
            log.info("%s", json.dumps(restart))
    if args.write:
        write_results("python benchmarks/http_load.py " + shlex.join(sys.argv[1:]), rows, restart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
