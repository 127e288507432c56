"""Booking throughput and latency: in process, durable in process, and over HTTP on loopback.

Figures for the same operation stream (book each request of a generated
Xiamen weekend, cancelling one earlier booking after every fourth book):

* ``Allocator`` in process (no durability): the engine alone;
* ``DurableAllocator`` in process (SQLite WAL, one commit per operation, the
  head file synced after each): the cost of durability without grouping;
* the HTTP service (``slotalloc.service.server`` in a child process, one uvicorn
  worker, group commit) with N concurrent keep-alive clients (booking token;
  cancels present their booking's secret): the cost of HTTP on top.

``--compare-fsync ROUNDS`` runs the HTTP phase ROUNDS times with fsync on and
ROUNDS times with the ledger's fsync off (``synchronous=OFF``, head file not
synced), alternating, each on a fresh ledger, and reports the ratio of their
median bookings/s and their p99 latencies.

Optionally (``--restart-events``) it builds a ledger of that many events and
measures the restart time by a full replay and from a snapshot. Every phase
is bounded by a count and a time limit and stops by itself. Results are
written to ``benchmarks/results/server.md`` with ``--write``.

Run::

    python benchmarks/quality/http_load.py --requests 3000 --clients 32 --compare-fsync 3 --write
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import secrets
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_soak import ServerProcess, free_port

from slotalloc.exceptions import BookingError
from slotalloc.models import Instance, Request
from slotalloc.online import Allocator
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.service.ledger import DurableAllocator

log = logging.getLogger("http_load")
RESULTS = Path(__file__).resolve().parents[1] / "results" / "server.md"


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


def _answer(alloc: Allocator | DurableAllocator, kind: str, arg: Any) -> None:
    """One operation of the stream; a refusal (a request no preference could take) is an answer."""
    with contextlib.suppress(BookingError):
        alloc.book(arg) if kind == "book" else alloc.cancel(arg)


def bench_in_process(
    world: Instance, ops: list[tuple[str, Any]], workdir: Path
) -> list[dict[str, Any]]:
    out = []
    alloc = Allocator(world)
    lat = []
    t0 = time.perf_counter()
    for kind, arg in ops:
        t = time.perf_counter()
        _answer(alloc, kind, arg)
        lat.append(time.perf_counter() - t)
    out.append(summary("Allocator, in process, not durable", lat, time.perf_counter() - t0))
    for sync in ("FULL", "NORMAL"):
        da = DurableAllocator(world, workdir / f"inproc-{sync}.db", synchronous=sync)  # type: ignore[arg-type]
        lat = []
        t0 = time.perf_counter()
        for kind, arg in ops:
            t = time.perf_counter()
            _answer(da, kind, arg)
            lat.append(time.perf_counter() - t)
        out.append(
            summary(
                f"DurableAllocator, in process, one commit per operation, synchronous={sync}",
                lat,
                time.perf_counter() - t0,
            )
        )
        da.close()
    return out


def bench_http(
    world: Instance,
    ops: list[tuple[str, Any]],
    workdir: Path,
    clients: int,
    max_seconds: float,
    *,
    synchronous: str = "FULL",
    window: float = 0.002,
    tag: str = "",
) -> dict[str, Any]:
    """The HTTP phase: ``clients`` keep-alive clients on loopback, each op timed from send to reply.

    Books use a booking token allowed to set priorities; a book naming a child
    booked before presents that booking's secret, and a cancel the secret its
    booking's reply gave (a cancel whose book has not been answered yet is
    skipped, not timed).
    """
    inst_path = workdir / "world.json"
    if not inst_path.exists():
        inst_path.write_text(json.dumps(world.model_dump(mode="json")))
    db = workdir / f"http-{synchronous}{tag}.db"
    server = ServerProcess(
        inst_path,
        db,
        free_port(),
        snapshot_every=100_000,
        synchronous=synchronous,
        window=window,
        switch_interval=float(os.environ.get("BENCH_SWITCH", "0")) or None,
    )
    # The benchmark's booking token may set priorities (the generated requests have some).
    booking = secrets.token_urlsafe(32)
    server.auth.write_text(
        json.dumps(
            {
                "operator": [server.operator],
                "booking": [{"token": booking, "may_set_priority": True}],
            }
        )
    )
    server.start()
    try:
        res = asyncio.run(
            _drive(server.port, ops, clients, booking, time.perf_counter() + max_seconds)
        )
    finally:
        server.stop()
    lat, book_lat, wall, errors, skipped = res
    label = (
        "fsync on (synchronous=FULL + head file)"
        if synchronous == "FULL"
        else (
            f"fsync off (synchronous={synchronous}, head file not synced)"
            if synchronous == "OFF"
            else f"synchronous={synchronous}"
        )
    )
    out = summary(f"HTTP loopback, {clients} clients, group commit, {label}", lat, wall)
    out["bookings_per_s"] = round(len(book_lat) / wall)
    out["book_p99_ms"] = round(pct(book_lat, 0.99), 3)
    out["refused"] = errors
    out["cancels_skipped"] = skipped
    out["synchronous"] = synchronous
    return out


async def _drive(
    port: int, ops: list[tuple[str, Any]], clients: int, token: str, deadline: float
) -> tuple[list[float], list[float], float, int, int]:
    """``clients`` keep-alive HTTP/1.1 connections in one event loop, each op timed.

    A bare asyncio client: an HTTP client library costs more CPU per request
    than the server (measured: httpx in 32 threads, 2.6 ms per request against
    the server's 1.7 ms), and both share the same 2 cores, so it would measure
    itself. This one costs tens of microseconds per request.
    """
    cursor = iter(ops)
    lat: list[float] = []
    book_lat: list[float] = []
    secret_of: dict[str, str] = {}
    # A family books a child again with the secret of the booking that registered it.
    secret_of_child: dict[str, str] = {}
    in_flight: dict[str, asyncio.Event] = {}  # children whose first booking awaits its reply
    counts = {"errors": 0, "skipped": 0}
    auth = f"Authorization: Bearer {token}\r\n".encode()

    async def one(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
    ) -> tuple[int, bytes]:
        writer.write(head + body)
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                op = next(cursor, None)
                if op is None:
                    return
                kind, arg = op
                extra = b""
                claims: list[asyncio.Event] = []
                if kind == "book":
                    # As a family would: book a child again only once the booking that
                    # registered it has answered (with the secret that proves it).
                    for c in arg.children:
                        while c in in_flight:
                            await in_flight[c].wait()
                        if c in secret_of_child:
                            extra = f"X-Booking-Secret: {secret_of_child[c]}\r\n".encode()
                        else:
                            claims.append(in_flight.setdefault(c, asyncio.Event()))
                    body = json.dumps(
                        {"request": arg.model_dump(mode="json", exclude_none=True)}
                    ).encode()
                    head = (
                        b"POST /bookings HTTP/1.1\r\nHost: bench\r\n"
                        + auth
                        + extra
                        + b"Content-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                    )
                else:
                    secret = secret_of.pop(arg, None)
                    if secret is None:  # its book is not answered yet (or was refused)
                        counts["skipped"] += 1
                        continue
                    body = b""
                    head = (
                        f"DELETE /bookings/{arg} HTTP/1.1\r\nHost: bench\r\n".encode()
                        + auth
                        + f"X-Booking-Secret: {secret}\r\n\r\n".encode()
                    )
                t = time.perf_counter()
                status, reply = await one(reader, writer, head, body)
                dt = time.perf_counter() - t
                if status in (200, 201):
                    lat.append(dt)
                    if kind == "book":
                        book_lat.append(dt)
                        secret = json.loads(reply)["secret"]
                        secret_of[arg.id] = secret
                        for c in arg.children:
                            secret_of_child.setdefault(c, secret)
                else:
                    counts["errors"] += 1
                if claims:
                    for c in arg.children:
                        ev = in_flight.pop(c, None)
                        if ev is not None:
                            ev.set()
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return lat, book_lat, wall, counts["errors"], counts["skipped"]


def compare_fsync(
    world: Instance,
    ops: list[tuple[str, Any]],
    workdir: Path,
    clients: int,
    max_seconds: float,
    rounds: int,
    window: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``rounds`` rounds of fsync on, then off, alternating, each on a fresh ledger."""
    runs: list[dict[str, Any]] = []
    for i in range(rounds):
        for sync in ("FULL", "OFF"):
            r = bench_http(
                world,
                ops,
                workdir,
                clients,
                max_seconds,
                synchronous=sync,
                window=window,
                tag=f"-{i}",
            )
            r["round"] = i + 1
            log.info("%s", json.dumps(r))
            runs.append(r)
    on = [r for r in runs if r["synchronous"] == "FULL"]
    off = [r for r in runs if r["synchronous"] == "OFF"]
    med = statistics.median
    verdict = {
        "rounds": rounds,
        "clients": clients,
        "bookings_per_s_on": med(r["bookings_per_s"] for r in on),
        "bookings_per_s_off": med(r["bookings_per_s"] for r in off),
        "p99_ms_on": med(r["p99_ms"] for r in on),
        "p99_ms_off": med(r["p99_ms"] for r in off),
        "worst_p99_ms_on": max(r["p99_ms"] for r in on),
    }
    verdict["ratio_on_off"] = round(verdict["bookings_per_s_on"] / verdict["bookings_per_s_off"], 3)
    return runs, verdict


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
                    with contextlib.suppress(BookingError):  # refused: nothing logged
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


def write_results(
    cmd: str,
    rows: list[dict[str, Any]],
    restart: dict[str, Any] | None,
    fsync_runs: list[dict[str, Any]] | None = None,
    verdict: dict[str, Any] | None = None,
) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Booking service figures",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; 2 cores shared with "
        "other benchmarks, so expect noise of tens of percent. The HTTP clients are one "
        "asyncio event loop (bare HTTP/1.1 over keep-alive connections) in the benchmark's "
        "process, on the same 2 cores as the server.",
        "",
        "| setup | ops | ops/s | p50 ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['ops']} | {r['ops_per_s']} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['mean_ms']} |"
        )
    if fsync_runs and verdict:
        lines += [
            "",
            f"## Durable against not durable, {verdict['clients']} clients, alternating",
            "",
            "Each round starts a fresh server and ledger and runs the same stream; the rounds "
            "alternate fsync on (SQLite `synchronous=FULL`, head file fdatasync'd after each "
            "commit) and off (`synchronous=OFF`, head file not synced). Group commit in both.",
            "",
            "| round | fsync | ops/s | bookings/s | p50 ms | p99 ms | book p99 ms |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in fsync_runs:
            lines.append(
                f"| {r['round']} | {'on' if r['synchronous'] == 'FULL' else 'off'} "
                f"| {r['ops_per_s']} | {r['bookings_per_s']} | {r['p50_ms']} | {r['p99_ms']} "
                f"| {r['book_p99_ms']} |"
            )
        lines += [
            "",
            f"Median bookings/s: fsync on {verdict['bookings_per_s_on']}, off "
            f"{verdict['bookings_per_s_off']}: ratio **{verdict['ratio_on_off']}** (target "
            f">= 0.5). Median p99: on {verdict['p99_ms_on']} ms (worst round "
            f"{verdict['worst_p99_ms_on']} ms; target <= 50 ms), off {verdict['p99_ms_off']} ms.",
        ]
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
            "| from a snapshot at the head (clean shutdown; every row's hash still checked) "
            f"| {restart['snapshot_restore_s']} |",
        ]
    # The crash-soak section is written by hand from benchmarks/quality/crash_soak.py: keep it.
    kept = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        at = old.find("\n## Crash soak")
        kept = old[at:] if at >= 0 else ""
    RESULTS.write_text("\n".join(lines) + "\n" + kept)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="book requests in the stream")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=60.0, help="bound of each HTTP phase")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument(
        "--in-process-ops", type=int, default=1000, help="operations of the in-process phase"
    )
    p.add_argument(
        "--compare-fsync",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="alternate ROUNDS HTTP runs with fsync on and off, in this run",
    )
    p.add_argument("--commit-window-ms", type=float, default=2.0)
    p.add_argument("--restart-events", type=int, default=0)
    p.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    world, ops = world_and_ops(args.seed, args.requests)
    runs, verdict = None, None
    with tempfile.TemporaryDirectory(prefix="http-load-") as tmp:
        work = Path(tmp)
        rows = bench_in_process(world, ops[: args.in_process_ops], work)
        if args.compare_fsync:
            runs, verdict = compare_fsync(
                world,
                ops,
                work,
                args.clients,
                args.max_seconds,
                args.compare_fsync,
                args.commit_window_ms / 1000,
            )
            log.info("%s", json.dumps(verdict))
        else:
            rows.append(
                bench_http(
                    world,
                    ops,
                    work,
                    args.clients,
                    args.max_seconds,
                    window=args.commit_window_ms / 1000,
                )
            )
        for r in rows:
            log.info("%s", json.dumps(r))
        restart = None
        if args.restart_events:
            restart = bench_restart(args.restart_events, work, args.seed)
            log.info("%s", json.dumps(restart))
    if args.write:
        write_results(
            "python benchmarks/quality/http_load.py " + shlex.join(sys.argv[1:]),
            rows,
            restart,
            runs,
            verdict,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
