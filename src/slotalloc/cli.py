"""The ``slotalloc`` command line. The only module that prints.

Exit status: 0 success; 1 a solution was checked and not accepted; 2 bad input
(one line on stderr naming the file, the place and the problem; nothing written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from slotalloc.exceptions import InputError, InvalidStateError

__all__ = ["main"]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_BAD_INPUT = 2


class _Fail(Exception):
    """Abort a command with a one-line message and an exit status."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


_C1_OR_SEPARATOR = re.compile("[\x7f-\x9f\u2028\u2029]")


def _safe(text: str) -> str:
    """``text`` with every non-printable character escaped as ``repr`` would write it.

    Ids are printed through this, so that no id can move the cursor, clear the
    screen or break the one-line-per-item output.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _say(text: str = "", **kwargs: Any) -> None:
    """Print one human-readable line, non-printable characters escaped."""
    print(_safe(text), **kwargs)


def _json_text(doc: Any, indent: int = 1) -> str:
    """JSON for the terminal: UTF-8 kept, C1 controls and line separators escaped."""
    text = json.dumps(doc, ensure_ascii=False, indent=indent)
    # Outside strings JSON text is ASCII, so these can only be inside strings.
    return _C1_OR_SEPARATOR.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _time_limit(command: str, seconds: float) -> float:
    """Refuse a time limit that is not a finite number of seconds >= 0."""
    if not math.isfinite(seconds) or seconds < 0:
        raise _Fail(
            f"slotalloc {command}: --time-limit: must be a finite number of seconds >= 0, "
            f"not {seconds}."
        )
    return seconds


def _out_path_ok(path: str) -> None:
    """Refuse early an output path whose folder is missing, before any work."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _Fail(f"{path}: the folder {folder} does not exist.")
    if os.path.isdir(path):
        raise _Fail(f"{path}: is a directory, not a file.")


def _write(path: str, text: str) -> None:
    from slotalloc.io import write_json_atomic

    try:
        write_json_atomic(path, text)
    except OSError as e:
        raise _Fail(f"{path}: cannot be written: {e.strerror}.") from None


# ---------------------------------------------------------------- solve


def _cmd_solve(args: argparse.Namespace) -> int:
    from slotalloc.io import dump_json, load_instance
    from slotalloc.solve import Progress, solve

    _out_path_ok(args.output)
    _time_limit("solve", args.time_limit)
    instance = load_instance(args.instance)
    live = not args.quiet and sys.stderr.isatty()

    def progress(p: Progress) -> None:
        if args.quiet:
            return
        gap = "" if p.gap is None else f"  gap {100 * p.gap:.3f}%"
        bound = "" if p.bound is None else f"  bound {p.bound}"
        line = f"[{p.elapsed:7.2f}s] score {p.score}{bound}{gap}"
        print(
            ("\r" + line) if live else line, end="" if live else "\n", file=sys.stderr, flush=True
        )

    kwargs: dict[str, Any] = {
        "time_limit": args.time_limit,
        "seed": args.seed,
        "deterministic": args.deterministic,
        "callback": progress,
    }
    if args.method is not None:
        kwargs["method"] = args.method
    if args.executor is not None:
        kwargs.update(executor=args.executor, address=args.address, workers=args.workers)
    elif args.address is not None or args.workers is not None:
        raise _Fail("slotalloc solve: --address and --workers need --executor.")
    if args.min_group_rate is not None:
        kwargs["min_group_rate"] = args.min_group_rate
    try:
        result = solve(instance, **kwargs)
    except ValueError as e:
        raise _Fail(f"slotalloc solve: {e}.") from None
    except ImportError as e:
        raise _Fail(
            f"slotalloc solve: {e}; for --executor ray: pip install 'slotalloc[ray]'."
        ) from None
    if live:
        print(file=sys.stderr)
    _write(args.output, dump_json(result.to_solution()))
    if not args.quiet:
        print(
            f"{result.status.value}: score {result.score}, bound {result.bound}, "
            f"{len(result.assignments)} of {len(instance.requests)} requests placed "
            f"-> {args.output}",
            file=sys.stderr,
        )
    return EXIT_OK


# ---------------------------------------------------------------- plan


def _rate(text: str) -> float:
    """A rate in [0, 1] for ``--min-group-rate``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _plan_progress(p: Any) -> None:
    best = "none yet" if p.best_gain is None else f"+{p.best_gain}"
    print(
        f"plan: {p.done}/{p.total} changes measured, {p.elapsed:.0f} s, best gain {best}",
        file=sys.stderr,
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    from slotalloc.analysis.plan import as_json, plan
    from slotalloc.io import load_instance

    _time_limit("plan", args.time_limit)
    instance = load_instance(args.instance)
    if args.top < 1:
        raise _Fail("slotalloc plan: --top must be at least 1.")
    t0 = time.perf_counter()
    try:
        recs = plan(
            instance,
            top=args.top,
            time_limit=args.time_limit,
            seed=args.seed,
            places=args.places,
            min_group_rate=args.min_group_rate,
            on_progress=None if args.quiet else _plan_progress,
        )
    except ValueError as e:
        raise _Fail(f"slotalloc plan: {e}.") from None
    if args.json:
        print(_json_text(as_json(recs), indent=2))
        return EXIT_OK
    if not recs:
        print("no change found that serves more children")
    for i, r in enumerate(recs, 1):
        ch = r.change
        what = {
            "add_caregiver": f"+{ch.amount} caregiver at {ch.session}",
            "add_places": f"+{ch.amount} places at {ch.session}",
            "move_caregiver": f"move {ch.amount} caregiver {ch.source} -> {ch.session}",
        }[ch.action]
        _say(f"{i:2d}. {what}: +{r.children} children, +{r.score} score (estimate {r.estimate})")
    print(f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- verify


def _cmd_verify(args: argparse.Namespace) -> int:
    from slotalloc.io import load_instance, load_solution
    from slotalloc.verify import verify

    instance = load_instance(args.instance)
    solution = load_solution(args.solution)
    report = verify(instance, solution)
    verdict = "accepted" if report.accepted else "not accepted"
    print(f"{verdict}; recomputed score {report.score}; claimed score {solution.score}")
    for v in report.violations:
        _say(f"  [{v.rule}] {v.message}")
    return EXIT_OK if report.accepted else EXIT_REJECTED


# ---------------------------------------------------------------- generate


def _cmd_generate(args: argparse.Namespace) -> int:
    from slotalloc.scenarios.xiamen import generate_xiamen_json

    _out_path_ok(args.output)
    if args.requests < 1 or args.sites < 1:
        raise _Fail("slotalloc generate: --requests and --sites must be at least 1.")
    try:
        text = generate_xiamen_json(
            args.seed,
            args.requests,
            args.sites,
            staffing=args.staffing,
            bookings=args.bookings,
            bookings_from=args.bookings_from,
            locked=args.locked,
            cut=args.cut,
            overlap=args.overlap,
            tight=args.tight,
            priorities=args.priorities,
        )
    except ValueError as e:
        raise _Fail(f"slotalloc generate: {e}.") from None
    _write(args.output, text)
    return EXIT_OK


# ---------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from slotalloc.analysis.summary import summarise
    from slotalloc.scenarios.xiamen import generate_xiamen
    from slotalloc.solve import solve

    _time_limit("demo", args.time_limit)
    t0 = time.perf_counter()
    instance = generate_xiamen(args.seed, args.requests, args.sites)
    t_gen = time.perf_counter() - t0
    print(
        f"Xiamen weekend (seed {args.seed}): {len(instance.sites)} sites, "
        f"{len(instance.sessions)} sessions, {len(instance.requests)} requests, "
        f"{len(instance.children)} children; generated in {t_gen:.1f}s"
    )
    t1 = time.perf_counter()
    base = solve(instance, method="fcfs")
    t_base = time.perf_counter() - t1
    t2 = time.perf_counter()
    result = solve(instance, time_limit=args.time_limit, seed=args.seed)
    t_opt = time.perf_counter() - t2
    for label, res, secs in (
        ("first-come-first-served", base, t_base),
        (f"slotalloc ({res_solver(result)})", result, t_opt),
    ):
        s = summarise(instance, res.assignments)
        print(
            f"\n{label}: {res.status.value}, score {res.score}"
            + (f", bound {res.bound}" if res.bound is not None else "")
            + f", {secs:.1f}s"
        )
        print(
            f"  children served {s.children_served} of {s.children_requesting} "
            f"({100 * s.children_served / max(1, s.children_requesting):.1f}%); "
            f"requests placed {s.requests_served} of {s.requests}"
        )
        if res is result:
            print("  by district:")
            for d, n, k in s.by_district:
                print(f"    {d:<10} {k:6d} / {n:6d}  {100 * k / max(1, n):5.1f}%")
            print("  by residency:")
            for d, n, k in s.by_residency:
                print(f"    {d:<10} {k:6d} / {n:6d}  {100 * k / max(1, n):5.1f}%")
        am, pm = s.morning_fill, s.afternoon_fill
        print(
            f"  morning fill {am[0]}/{am[1]} ({100 * am[0] / max(1, am[1]):.1f}%), "
            f"afternoon fill {pm[0]}/{pm[1]} ({100 * pm[0] / max(1, pm[1]):.1f}%)"
        )
    print(f"\ntotal time {time.perf_counter() - t0:.1f}s")
    return EXIT_OK


def res_solver(result: Any) -> str:
    return str(result.stats.get("solver", "solver"))


# ---------------------------------------------------------------- schema


def _cmd_schema(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter

    from slotalloc.models import Decision, Event, Instance, Solution

    schemas: dict[str, Any] = {
        "instance": Instance.model_json_schema(),
        "solution": Solution.model_json_schema(),
        "event": TypeAdapter(Event).json_schema(),
        "decision": TypeAdapter(Decision).json_schema(),
    }
    chosen = schemas if args.kind == "all" else {args.kind: schemas[args.kind]}
    print(json.dumps(chosen if args.kind == "all" else chosen[args.kind], indent=1))
    return EXIT_OK


# ---------------------------------------------------------------- replay


def _cmd_replay(args: argparse.Namespace) -> int:
    from slotalloc.io import iter_events, load_instance
    from slotalloc.online import replay

    _out_path_ok(args.output)
    instance = load_instance(args.instance)
    lines = list(iter_events(args.events))
    try:
        # A line breaking a general rule of FORMAT is an error decision that
        # changes nothing (the engine screens every line).
        decisions = list(replay(instance, lines))
    except InvalidStateError as e:
        raise _Fail(f"{args.instance}: {e}") from None
    _write(args.output, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in decisions))
    return EXIT_OK


# ---------------------------------------------------------------- explain and diff


def _load_pair(instance_path: str, solution_path: str) -> tuple[Any, Any]:
    from slotalloc.io import load_instance, load_solution
    from slotalloc.verify import verify

    instance = load_instance(instance_path)
    solution = load_solution(solution_path)
    report = verify(instance, solution)
    if not report.valid:
        first = report.violations[0] if report.violations else None
        raise _Fail(
            f"{solution_path}: not a valid solution of {instance_path}"
            + (f": {first.message}" if first else ".")
        )
    return instance, solution


def _cmd_explain(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from slotalloc.analysis.explain import explain

    instance, solution = _load_pair(args.instance, args.solution)
    wanted = None
    if args.request is not None:
        if args.request not in instance.request_index:
            from slotalloc.models import did_you_mean

            raise _Fail(
                f"{args.instance}: --request: unknown request {args.request!r}"
                f"{did_you_mean(args.request, instance.request_index)}."
            )
        wanted = [args.request]
    found = explain(instance, solution, wanted)
    if args.json:
        from slotalloc.analysis.fairness import audit

        doc = {
            "requests": [asdict(e) for e in found],
            "fairness": audit(instance, solution.assignments).to_dict(),
        }
        print(_json_text(doc))
        return EXIT_OK
    placed = {a.request: a.session for a in solution.assignments}
    for e in found:
        if e.request in placed:
            _say(f"{e.request}: placed in {placed[e.request]}")
            continue
        _say(f"{e.request} ({', '.join(e.children)}): not placed")
        for p in e.preferences:
            head = f"  #{p.rank} {_safe(p.session)}: "
            if not p.blockers:
                _say(head + "nothing blocks it (the solution could add it)")
            for i, b in enumerate(p.blockers):
                _say((head if i == 0 else " " * len(head)) + f"[{b.rule}] {b.message}")
            if p.displace:
                _say(
                    " " * len(head) + f"could displace {', '.join(p.displace)} "
                    f"(score +{p.displace_gain})"
                )
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    from slotalloc.analysis.diff import diff_solutions

    instance, old = _load_pair(args.instance, args.old)
    _, new = _load_pair(args.instance, args.new)
    d = diff_solutions(instance, old, new)
    if args.json:
        print(
            _json_text(
                {"counts": d.counts(), "moved": d.moved, "dropped": d.dropped, "placed": d.placed}
            )
        )
        return EXIT_OK
    for rid, b, a in d.moved:
        _say(f"moved    {rid}: {b} -> {a}")
    for rid, b in d.dropped:
        _say(f"dropped  {rid}: {b}")
    for rid, a in d.placed:
        _say(f"placed   {rid}: {a}")
    c = d.counts()
    print(
        f"{c['moved']} moved, {c['dropped']} dropped, {c['placed']} newly placed, {c['kept']} kept"
    )
    return EXIT_OK


# ---------------------------------------------------------------- report


def _cmd_report(args: argparse.Namespace) -> int:
    import importlib.util

    from slotalloc.analysis.report import write_report  # matplotlib itself is imported lazily

    if importlib.util.find_spec("matplotlib") is None:
        raise _Fail("slotalloc report needs the report extra: pip install 'slotalloc[report]'.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise _Fail(f"{args.output}: is a file, not a folder.")
    if args.top < 0:
        raise _Fail("slotalloc report: --top must be at least 0.")
    instance, solution = _load_pair(args.instance, args.solution)
    recs: list[dict[str, Any]] = []
    if args.plan is not None:
        from slotalloc.io import load_recommendations

        recs = load_recommendations(args.plan)
    try:
        index = write_report(instance, solution, args.output, recommendations=recs[: args.top])
    except OSError as e:
        raise _Fail(f"{args.output}: cannot be written: {e.strerror}.") from None
    _say(f"wrote {index}")
    return EXIT_OK


# ---------------------------------------------------------------- serve


def _cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise _Fail("slotalloc serve needs the server extra: pip install 'slotalloc[server]'.")
    from slotalloc.io import load_instance, load_solution
    from slotalloc.service.ledger import LedgerError
    from slotalloc.service.server import Limits, serve

    load_instance(args.instance)  # bad input: exit 2 before anything is opened
    if args.solution:
        load_solution(args.solution)
    try:
        limits = Limits(
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            keep_alive=args.keep_alive,
            max_connections=args.max_connections,
        )
    except ValueError as e:
        raise _Fail(f"serve: {e}") from None
    try:
        serve(
            args.instance,
            args.db,
            args.host,
            args.port,
            auth_file=args.auth_file,
            log_level=args.log_level,
            recover=args.recover,
            limits=limits,
            commit_window=max(0.0, args.commit_window_ms) / 1000,
            solution_path=args.solution,
        )
    except LedgerError as e:
        raise _Fail(_ledger_message(args.db, e)) from None
    except InvalidStateError as e:
        where = args.solution or args.instance
        raise _Fail(f"{where}: {e}") from None
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from slotalloc.io import dump_json, load_instance, load_solution
    from slotalloc.online import held_as_bookings
    from slotalloc.service.ledger import DurableAllocator, LedgerError

    instance = load_instance(args.instance)
    start = load_solution(args.solution) if args.solution else None
    if not os.path.exists(args.db):
        raise _Fail(f"{args.db}: no such ledger")
    for path in (args.output, args.held):
        if path:
            _out_path_ok(path)
    try:
        da = DurableAllocator(instance, args.db, exclusive=True, start=start)
        try:
            state, held = da.export()
        finally:
            da.close(snapshot=False)  # a read: the ledger is left as it was
    except LedgerError as e:
        raise _Fail(_ledger_message(args.db, e)) from None
    out = held_as_bookings(state, held, locked=args.locked)
    if args.held:
        _write(args.held, dump_json(held))
    _write(args.output, dump_json(out))
    print(
        f"{args.output}: {len(out.requests)} requests, {len(out.bookings)} places held as "
        f"{'locked ' if args.locked else ''}bookings"
    )
    return EXIT_OK


def _ledger_message(db: str, e: Exception) -> str:
    text = str(e)
    return text if text.startswith(db) else f"{db}: {text}"


def _cmd_compact(args: argparse.Namespace) -> int:
    from slotalloc.io import load_instance
    from slotalloc.service.ledger import LedgerError, compact

    instance = load_instance(args.instance)
    try:
        rep = compact(instance, args.db)
    except LedgerError as e:
        raise _Fail(_ledger_message(args.db, e)) from None
    print(
        f"{args.db}: rows {rep.old_first}-{rep.old_head} compacted into base row {rep.base_seq} "
        f"(hash {rep.base_hash}, chained from {rep.old_head_hash}); "
        f"{rep.erased_children} children and {rep.erased_requests} cancelled requests erased"
    )
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slotalloc",
        description="Allocate young children to childcare sessions (FORMAT v1).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("solve", help="allocate an instance and write a solution")
    s.add_argument("instance")
    s.add_argument("-o", "--output", required=True, help="solution file to write")
    s.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        help="seconds of wall time (with --deterministic: deterministic work units)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--deterministic", action="store_true", help="same input and seed give the same solution"
    )
    s.add_argument("--method", default=None, help="solver (default: the optimiser)")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.add_argument(
        "--executor",
        choices=["inprocess", "process", "ray"],
        default=None,
        help="solve by parts on an executor (default: one process)",
    )
    s.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    s.add_argument("--workers", type=int, default=None, help="parts solved at once")
    s.add_argument(
        "--min-group-rate",
        type=_rate,
        default=None,
        help="fairness: every age group's service rate at least this share of the overall "
        "rate (0..1; see docs/fairness.md)",
    )
    s.set_defaults(run=_cmd_solve)

    pl = sub.add_parser("plan", help="rank capacity changes by the unmet demand they serve")
    pl.add_argument("instance")
    pl.add_argument("--top", type=int, default=10)
    pl.add_argument("--json", action="store_true", help="JSON list for `slotalloc report --plan`")
    pl.add_argument(
        "--time-limit", type=float, default=1.0, help="deterministic work units per solve"
    )
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--places", type=int, default=5, help="places added by an add_places change")
    pl.add_argument("--min-group-rate", type=_rate, default=None)
    pl.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    pl.set_defaults(run=_cmd_plan)

    v = sub.add_parser("verify", help="check a solution against an instance")
    v.add_argument("instance")
    v.add_argument("solution")
    v.set_defaults(run=_cmd_verify)

    g = sub.add_parser("generate", help="generate a scenario instance")
    g.add_argument("scenario", choices=["xiamen"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--requests", type=int, default=25000)
    g.add_argument("--sites", type=int, default=91)
    g.add_argument("--staffing", choices=["per_group", "pooled"], default="per_group")
    g.add_argument(
        "--bookings",
        type=float,
        default=0.0,
        metavar="F",
        help="share (0..1) of a source plan's placements written as bookings (default 0)",
    )
    g.add_argument(
        "--bookings-from",
        choices=["fcfs", "plan"],
        default="fcfs",
        help="source plan of the bookings: first come, first served, or a batch plan",
    )
    g.add_argument(
        "--locked", type=float, default=0.0, metavar="F", help="share (0..1) of bookings locked"
    )
    g.add_argument(
        "--cut",
        type=int,
        default=0,
        metavar="K",
        help="one caregiver less at the K most booked sessions (needs --bookings)",
    )
    g.add_argument("--overlap", action="store_true", help="more classes overlapping the half-days")
    g.add_argument("--tight", action="store_true", help="caregivers scaled to about 60%%")
    g.add_argument(
        "--priorities",
        choices=["default", "mix"],
        default="default",
        help="priority draw: the default one, or a heavier mix",
    )
    g.add_argument("-o", "--output", required=True)
    g.set_defaults(run=_cmd_generate)

    d = sub.add_parser("demo", help="allocate a generated Xiamen city weekend and summarise it")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--requests", type=int, default=25000)
    d.add_argument("--sites", type=int, default=91)
    d.add_argument("--time-limit", type=float, default=10.0)
    d.set_defaults(run=_cmd_demo)

    sc = sub.add_parser("schema", help="print the JSON Schema of a format")
    sc.add_argument(
        "kind",
        nargs="?",
        default="all",
        choices=["all", "instance", "solution", "event", "decision"],
    )
    sc.set_defaults(run=_cmd_schema)

    r = sub.add_parser("replay", help="apply online book/cancel events and write decisions")
    r.add_argument("instance")
    r.add_argument("events")
    r.add_argument("-o", "--output", required=True, help="decisions file (JSON Lines)")
    r.set_defaults(run=_cmd_replay)

    e = sub.add_parser("explain", help="why unplaced requests got no place")
    e.add_argument("instance")
    e.add_argument("solution")
    e.add_argument("--request", default=None, help="explain this request only")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=_cmd_explain)

    df = sub.add_parser("diff", help="who moves, is dropped or newly placed between solutions")
    df.add_argument("instance")
    df.add_argument("old")
    df.add_argument("new")
    df.add_argument("--json", action="store_true")
    df.set_defaults(run=_cmd_diff)

    rp = sub.add_parser("report", help="write an HTML report with plots (report extra)")
    rp.add_argument("instance")
    rp.add_argument("solution")
    rp.add_argument("-o", "--output", required=True, help="folder for index.html and PNGs")
    rp.add_argument("--plan", default=None, help="recommendations from `slotalloc plan --json`")
    rp.add_argument("--top", type=int, default=10)
    rp.set_defaults(run=_cmd_report)

    sv = sub.add_parser("serve", help="HTTP booking service with a durable ledger (server extra)")
    sv.add_argument("instance")
    sv.add_argument(
        "--solution",
        default=None,
        help="start from this batch plan of the instance: its assignments are the places "
        "held, the other requests wait in file order (Allocator.from_result)",
    )
    sv.add_argument("--db", required=True, help="SQLite ledger file (created if missing)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument(
        "--auth-file",
        default=None,
        help='bearer tokens, JSON {"operator": [...], "booking": [...]} (docs/server.md); '
        "default DB.auth.json beside the ledger, generated (mode 0600) when absent",
    )
    sv.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    sv.add_argument(
        "--recover",
        action="store_true",
        help="start on a damaged ledger: keep its longest valid prefix (damaged files "
        "copied to DB.damaged-TIME) and log what was kept",
    )
    sv.add_argument("--header-timeout", type=float, default=10.0, help="seconds for headers")
    sv.add_argument("--body-timeout", type=float, default=10.0, help="seconds for a request body")
    sv.add_argument("--keep-alive", type=float, default=5.0, help="idle connection seconds")
    sv.add_argument("--max-connections", type=int, default=1000)
    sv.add_argument(
        "--commit-window-ms",
        type=float,
        default=2.0,
        help="group commit: longest wait for more bookings (default 2)",
    )
    sv.set_defaults(run=_cmd_serve)

    ex = sub.add_parser(
        "export",
        help="the live state of a ledger as an instance whose bookings are the places held",
    )
    ex.add_argument("instance", help="the instance the service was started with")
    ex.add_argument("--db", required=True, help="the ledger (the service must be stopped)")
    ex.add_argument(
        "--solution", default=None, help="the batch plan the service was started from, if any"
    )
    ex.add_argument("-o", "--output", required=True, help="instance file to write")
    ex.add_argument("--held", default=None, help="also write the places held as a solution file")
    ex.add_argument(
        "--locked", action="store_true", help="mark the bookings locked (never moved or dropped)"
    )
    ex.set_defaults(run=_cmd_export)

    cp = sub.add_parser(
        "compact", help="rewrite a ledger without cancelled requests and unused children"
    )
    cp.add_argument("instance")
    cp.add_argument("--db", required=True, help="the ledger (the service must be stopped)")
    cp.set_defaults(run=_cmd_compact)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except InputError as e:
        _say(str(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    except _Fail as e:
        _say(str(e), file=sys.stderr)
        return e.status
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); not an error of ours.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
