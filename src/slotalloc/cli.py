"""The ``slotalloc`` command line: each command's run. The only module that prints.

The commands' arguments, choices, units and defaults are stated in
:mod:`slotalloc.cli_parser`.

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
from typing import TYPE_CHECKING, Any

from slotalloc.cli_parser import build_parser
from slotalloc.exceptions import InputError, InvalidStateError

if TYPE_CHECKING:
    from slotalloc.models import Instance
    from slotalloc.result import Result

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

    if args.scenario == "xiamen-season":
        return _generate_season(args)
    if args.weeks is not None:
        raise _Fail("slotalloc generate: --weeks is for the xiamen-season scenario only.")
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


def _generate_season(args: argparse.Namespace) -> int:
    from slotalloc.scenarios.season import generate_season_json

    weeks = 8 if args.weeks is None else args.weeks
    folder = args.output
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(parent):
        raise _Fail(f"{folder}: the folder {parent} does not exist.")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise _Fail(f"{folder}: is a file; xiamen-season writes one file per weekend there.")
    if args.requests < 1 or args.sites < 1 or weeks < 1:
        raise _Fail("slotalloc generate: --requests, --sites and --weeks must be at least 1.")
    try:
        texts = generate_season_json(
            args.seed,
            weeks,
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
    os.makedirs(folder, exist_ok=True)  # only once every weekend is generated and valid
    width = max(2, len(str(weeks)))
    for k, text in enumerate(texts, 1):
        _write(os.path.join(folder, f"week{k:0{width}d}.json"), text)
    return EXIT_OK


# ---------------------------------------------------------------- carryover


def _cmd_carryover(args: argparse.Namespace) -> int:
    from slotalloc.analysis.carryover import carry_over
    from slotalloc.io import dump_json, load_instance, load_solution

    _out_path_ok(args.output)
    if args.explain is not None:
        _out_path_ok(args.explain)
    previous = load_instance(args.previous_instance)
    solution = load_solution(args.previous_solution)
    following = load_instance(args.next_instance)
    try:
        out = carry_over(previous, solution, following, step=args.step, cap=args.cap)
    except ValueError as e:
        raise _Fail(f"slotalloc carryover: {e}.") from None
    _write(args.output, dump_json(out.instance))
    if args.explain is not None:
        _write(args.explain, _json_text(out.to_dict()) + "\n")
    print(f"households that asked on the previous weekend: {out.households_asked}")
    print(f"of them, households that got no place: {out.households_unserved}")
    print(f"requests raised: {out.requests_raised}")
    print(f"requests held by the cap {out.cap}: {out.requests_capped}")
    print(f"requests without a household (never matched): {out.requests_unmatched}")
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
            _print_against_fcfs(instance, res)
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


def _print_against_fcfs(instance: Instance, res: Result) -> None:
    from slotalloc.analysis.audit import fairness_report

    rep = fairness_report(instance, [(a.request, a.session) for a in res.assignments])
    print("  child places by age group (home group), against first come, first served:")
    for g in rep.groups:
        mine, base = rep.places[g], rep.fcfs_places.get(g, 0)
        flag = "  below FCFS" if mine < base else ""
        print(f"    {g:<10} {mine:6d} vs {base:6d}  {mine - base:+6d}{flag}")
    print(f"  justified-envy pairs (a place lost to a lower priority): {rep.envy_pairs}")


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
        from slotalloc.analysis.audit import fairness_report
        from slotalloc.analysis.fairness import audit

        pairs = [(a.request, a.session) for a in solution.assignments]
        doc = {
            "requests": [asdict(e) for e in found],
            "fairness": audit(instance, solution.assignments).to_dict(),
            "against_fcfs": fairness_report(instance, pairs).to_dict(),
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
            # A full session may have dozens of holders: the first few (lower
            # priorities first, explain's order) say enough; JSON has them all.
            shown = 5
            for h in p.holders[:shown]:
                _say(" " * len(head) + f"holder [{h.why}] {h.message}")
            if len(p.holders) > shown:
                _say(" " * len(head) + f"and {len(p.holders) - shown} more holders")
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

_COMMANDS = {
    "solve": _cmd_solve,
    "plan": _cmd_plan,
    "verify": _cmd_verify,
    "generate": _cmd_generate,
    "carryover": _cmd_carryover,
    "demo": _cmd_demo,
    "schema": _cmd_schema,
    "replay": _cmd_replay,
    "explain": _cmd_explain,
    "diff": _cmd_diff,
    "report": _cmd_report,
    "serve": _cmd_serve,
    "export": _cmd_export,
    "compact": _cmd_compact,
}


def _parser() -> argparse.ArgumentParser:
    """The command line's parser (its options and help: :mod:`slotalloc.cli_parser`)."""
    return build_parser(_COMMANDS)


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
