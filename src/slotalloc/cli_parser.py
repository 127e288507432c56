"""The arguments of the ``slotalloc`` command line: every command and option, with its help.

:func:`build_parser` states each command's options, their choices, units and
defaults; :mod:`slotalloc.cli` runs the commands. The interface a user reads
in ``--help`` is kept apart from the commands' code so that each can be read
whole. Every option carries help text (``tests/integration/test_cli_help.py``
runs ``--help`` for every command).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import get_args

from slotalloc.solve import Method

__all__ = ["METHODS", "build_parser"]

#: The values ``solve --method`` accepts: those of :data:`slotalloc.solve.Method`.
METHODS: tuple[str, ...] = get_args(Method)

Command = Callable[[argparse.Namespace], int]
Subparsers = argparse._SubParsersAction  # its parameter is spelt in the annotations

_WALL_OR_UNITS = "wall seconds; with --deterministic, CP-SAT deterministic work units instead"


def _rate(text: str) -> float:
    """A rate in [0, 1] for ``--min-group-rate``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _add_solve(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    s = sub.add_parser(
        "solve",
        help="allocate an instance and write a solution",
        description="Allocate an instance's requests to sessions (the optimiser by default) "
        "and write a FORMAT §2 solution file; progress lines go to stderr.",
    )
    s.add_argument("instance", help="instance file (FORMAT §1)")
    s.add_argument("-o", "--output", required=True, help="solution file to write")
    s.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        help=f"budget of the whole solve, compiling included: {_WALL_OR_UNITS} "
        "(default %(default)s)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the search (default %(default)s)")
    s.add_argument(
        "--deterministic",
        action="store_true",
        help="same input and seed give the same solution (the time limit becomes a work "
        "budget; only the *_seconds stats vary)",
    )
    s.add_argument(
        "--method",
        default=None,
        metavar="{" + ",".join(METHODS) + "}",
        help="solver: auto or cp-sat, the optimiser (LP bound, rounding, CP-SAT and "
        "large-neighbourhood search); fcfs, first come, first served (FORMAT §2 baseline). "
        "Default: the optimiser",
    )
    s.add_argument("--quiet", action="store_true", help="no progress lines, no summary line")
    s.add_argument(
        "--executor",
        choices=["inprocess", "process", "ray"],
        default=None,
        help="solve by parts on an executor: in this process, a local process pool, or Ray "
        "(docs/scale_out.md; default: one whole solve in this process)",
    )
    s.add_argument(
        "--address",
        default=None,
        help="Ray cluster address, e.g. auto or ray://host:10001 (with --executor ray; "
        "default: a running Ray, else a local one)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parts solved at once (with --executor; default: the CPUs)",
    )
    s.add_argument(
        "--min-group-rate",
        type=_rate,
        default=None,
        metavar="RATE",
        help="fairness: every age group's service rate at least RATE (0..1) times the overall "
        "rate (docs/fairness.md; default: no such rule)",
    )
    s.set_defaults(run=run)


def _add_plan(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    pl = sub.add_parser(
        "plan",
        help="rank capacity changes by the unmet demand they serve",
        description="Rank one-at-a-time capacity changes (a caregiver more, places more, a "
        "caregiver moved from an afternoon to a morning) by the children they would serve, "
        "each measured against a control (docs/planning.md). Every solve is deterministic.",
    )
    pl.add_argument("instance", help="instance file (FORMAT §1)")
    pl.add_argument(
        "--top",
        type=int,
        default=10,
        help="recommendations to print, at most (default %(default)s)",
    )
    pl.add_argument(
        "--json", action="store_true", help="print a JSON list for `slotalloc report --plan`"
    )
    pl.add_argument(
        "--time-limit",
        type=float,
        default=1.0,
        help="budget of every solve (the base, each change and each control): CP-SAT "
        "deterministic work units, not seconds (default %(default)s)",
    )
    pl.add_argument("--seed", type=int, default=0, help="seed of every solve (default %(default)s)")
    pl.add_argument(
        "--places",
        type=int,
        default=5,
        help="places added by an add_places change (default %(default)s)",
    )
    pl.add_argument(
        "--min-group-rate",
        type=_rate,
        default=None,
        metavar="RATE",
        help="fairness rule passed to every solve, as for `solve` (0..1; default: none)",
    )
    pl.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    pl.set_defaults(run=run)


def _add_verify(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    v = sub.add_parser(
        "verify",
        help="check a solution against an instance",
        description="Check a solution independently of the solvers. Exit status 0 when it is "
        "accepted, 1 when it is not (each broken rule printed), 2 on malformed input.",
    )
    v.add_argument("instance", help="instance file (FORMAT §1)")
    v.add_argument("solution", help="solution file (FORMAT §2)")
    v.set_defaults(run=run)


def _add_generate(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    g = sub.add_parser(
        "generate",
        help="generate a scenario instance",
        description="Write a synthetic instance of a documented scenario (docs/generator.md). "
        "Same arguments, same bytes.",
    )
    g.add_argument(
        "scenario",
        choices=["xiamen", "xiamen-season"],
        help="the scenario: xiamen, a city weekend; xiamen-season, weekends in a row "
        "(docs/season.md)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed, >= 0 (default %(default)s)")
    g.add_argument(
        "--requests",
        type=int,
        default=25000,
        help="requests written, >= 1 (default %(default)s, a city)",
    )
    g.add_argument(
        "--sites", type=int, default=91, help="service points, >= 1 (default %(default)s)"
    )
    g.add_argument(
        "--staffing",
        choices=["per_group", "pooled"],
        default="per_group",
        help="policy staffing: caregivers per age group, or shared (default %(default)s)",
    )
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
        help="source plan of the bookings: first come, first served, or a deterministic "
        "batch plan (default %(default)s)",
    )
    g.add_argument(
        "--locked",
        type=float,
        default=0.0,
        metavar="F",
        help="share (0..1) of bookings locked (needs --bookings; default 0)",
    )
    g.add_argument(
        "--cut",
        type=int,
        default=0,
        metavar="K",
        help="one caregiver less at the K most booked sessions (needs --bookings; default 0)",
    )
    g.add_argument(
        "--overlap",
        action="store_true",
        help="more one-hour classes overlapping the half-days, and more families asking "
        "for a class and a half-day on the same day",
    )
    g.add_argument(
        "--tight", action="store_true", help="caregivers scaled to about 60%% (at least 1)"
    )
    g.add_argument(
        "--priorities",
        choices=["default", "mix"],
        default="default",
        help="priority draw: default (88%% at priority 0) or mix (60%% at 0, the rest "
        "at 1, 3, 5 or 9); default: %(default)s",
    )
    g.add_argument(
        "--weeks",
        type=int,
        default=None,
        metavar="N",
        help="xiamen-season only: number of weekends, >= 1 (default 8)",
    )
    g.add_argument(
        "-o",
        "--output",
        required=True,
        help="instance file to write; for xiamen-season a folder, which gets week01.json "
        "... one file per weekend",
    )
    g.set_defaults(run=run)


def _add_carryover(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    co = sub.add_parser(
        "carryover",
        help="raise the priority of households that asked last weekend and got no place",
        description="Write the next weekend's instance with the priority of every request "
        "of a household that asked on the previous weekend and got no place raised by "
        "--step, never above --cap (docs/season.md). Prints one line per count.",
    )
    co.add_argument("previous_instance", help="the previous weekend's instance (FORMAT §1)")
    co.add_argument("previous_solution", help="its solution (FORMAT §2)")
    co.add_argument("next_instance", help="the next weekend's instance (FORMAT §1)")
    co.add_argument(
        "-o", "--output", required=True, help="the next instance, priorities raised, to write"
    )
    co.add_argument(
        "--step", type=int, default=1, help="priority added, 1..9 (default %(default)s)"
    )
    co.add_argument(
        "--cap", type=int, default=9, help="highest priority given, 0..9 (default %(default)s)"
    )
    co.add_argument(
        "--explain",
        default=None,
        metavar="FILE",
        help="also write the rule, the counts and one entry per request raised or capped "
        "(JSON; household and request ids, no birth date)",
    )
    co.set_defaults(run=run)


def _add_demo(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    d = sub.add_parser(
        "demo",
        help="allocate a generated Xiamen city weekend and summarise it",
        description="Generate a Xiamen weekend, allocate it first come, first served and with "
        "the optimiser, and print both summaries. Writes no file.",
    )
    d.add_argument("--seed", type=int, default=0, help="scenario and search seed (default 0)")
    d.add_argument(
        "--requests", type=int, default=25000, help="requests generated (default %(default)s)"
    )
    d.add_argument("--sites", type=int, default=91, help="service points (default %(default)s)")
    d.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        help="budget of the optimiser: wall seconds (default %(default)s)",
    )
    d.set_defaults(run=run)


def _add_schema(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    sc = sub.add_parser("schema", help="print the JSON Schema of a format")
    sc.add_argument(
        "kind",
        nargs="?",
        default="all",
        choices=["all", "instance", "solution", "event", "decision"],
        help="the format (default %(default)s: one object holding the four schemas)",
    )
    sc.set_defaults(run=run)


def _add_replay(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    r = sub.add_parser(
        "replay",
        help="apply online book/cancel events and write decisions",
        description="Apply FORMAT §3 events in order to a starting instance and write one "
        "decision line per event.",
    )
    r.add_argument("instance", help="starting instance (FORMAT §1; its bookings are held)")
    r.add_argument("events", help="events file (FORMAT §3, JSON Lines)")
    r.add_argument("-o", "--output", required=True, help="decisions file to write (JSON Lines)")
    r.set_defaults(run=run)


def _add_explain(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    e = sub.add_parser(
        "explain",
        help="why unplaced requests got no place",
        description="For each unplaced request and each preference, every rule that blocks "
        "it in this solution, and whom it could displace.",
    )
    e.add_argument("instance", help="instance file (FORMAT §1)")
    e.add_argument("solution", help="a valid solution of it (FORMAT §2)")
    e.add_argument(
        "--request", default=None, help="explain this request only (default: every request)"
    )
    e.add_argument(
        "--json", action="store_true", help="print JSON, with the fairness audit, not text"
    )
    e.set_defaults(run=run)


def _add_diff(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    df = sub.add_parser("diff", help="who moves, is dropped or newly placed between solutions")
    df.add_argument("instance", help="instance file (FORMAT §1)")
    df.add_argument("old", help="the earlier solution (FORMAT §2)")
    df.add_argument("new", help="the later solution (FORMAT §2)")
    df.add_argument("--json", action="store_true", help="print JSON, not text")
    df.set_defaults(run=run)


def _add_report(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    rp = sub.add_parser("report", help="write an HTML report with plots (report extra)")
    rp.add_argument("instance", help="instance file (FORMAT §1)")
    rp.add_argument("solution", help="a valid solution of it (FORMAT §2)")
    rp.add_argument("-o", "--output", required=True, help="folder for index.html and PNGs")
    rp.add_argument(
        "--plan", default=None, help="recommendations file from `slotalloc plan --json`"
    )
    rp.add_argument(
        "--top",
        type=int,
        default=10,
        help="recommendations shown, at most (default %(default)s)",
    )
    rp.set_defaults(run=run)


def _add_serve(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    sv = sub.add_parser(
        "serve",
        help="HTTP booking service with a durable ledger (server extra)",
        description="Serve online bookings over HTTP (docs/server.md); every accepted "
        "operation is committed to the ledger before the reply.",
    )
    sv.add_argument("instance", help="starting instance (FORMAT §1; its bookings are held)")
    sv.add_argument(
        "--solution",
        default=None,
        help="start from this batch plan of the instance: its assignments are the places "
        "held, the other requests wait in file order (Allocator.from_result)",
    )
    sv.add_argument("--db", required=True, help="SQLite ledger file (created if missing)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    sv.add_argument("--port", type=int, default=8000, help="port to bind (default %(default)s)")
    sv.add_argument(
        "--auth-file",
        default=None,
        help='bearer tokens, JSON {"operator": [...], "booking": [...]} (docs/server.md); '
        "default DB.auth.json beside the ledger, generated (mode 0600) when absent",
    )
    sv.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level (default %(default)s)",
    )
    sv.add_argument(
        "--recover",
        action="store_true",
        help="start on a damaged ledger: keep its longest valid prefix (damaged files "
        "copied to DB.damaged-TIME) and log what was kept",
    )
    _add_limits(sv)
    sv.set_defaults(run=run)


def _add_limits(sv: argparse.ArgumentParser) -> None:
    """The service's connection limits and group-commit window."""
    sv.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="wall seconds for a request's headers (default %(default)s)",
    )
    sv.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        help="wall seconds for a request body (default %(default)s)",
    )
    sv.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        help="wall seconds an idle connection is kept (default %(default)s)",
    )
    sv.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open connections at most (default %(default)s)",
    )
    sv.add_argument(
        "--commit-window-ms",
        type=float,
        default=2.0,
        help="group commit: longest wait for more bookings, in milliseconds (default 2)",
    )


def _add_export(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    ex = sub.add_parser(
        "export",
        help="the live state of a ledger as an instance whose bookings are the places held",
        description="Turn a stopped service's ledger into an instance for the batch run: "
        "the places held become unlocked bookings (or locked, with --locked).",
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
    ex.set_defaults(run=run)


def _add_compact(sub: Subparsers[argparse.ArgumentParser], run: Command) -> None:
    cp = sub.add_parser(
        "compact",
        help="rewrite a ledger without cancelled requests and unused children",
        description="Rewrite a ledger as one base row holding the current state, erasing the "
        "data of cancelled families (docs/server.md). The service must be stopped.",
    )
    cp.add_argument("instance", help="the instance the service was started with")
    cp.add_argument("--db", required=True, help="the ledger (the service must be stopped)")
    cp.set_defaults(run=run)


_ADDERS = {
    "solve": _add_solve,
    "plan": _add_plan,
    "verify": _add_verify,
    "generate": _add_generate,
    "carryover": _add_carryover,
    "demo": _add_demo,
    "schema": _add_schema,
    "replay": _add_replay,
    "explain": _add_explain,
    "diff": _add_diff,
    "report": _add_report,
    "serve": _add_serve,
    "export": _add_export,
    "compact": _add_compact,
}


def build_parser(commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    """The ``slotalloc`` parser; each command's namespace carries its function as ``run``.

    Parameters
    ----------
    commands
        The function running each command, by command name; every command of
        the command line must be given.

    Returns
    -------
    argparse.ArgumentParser
        Commands in the order of ``--help``.

    Raises
    ------
    KeyError
        When ``commands`` lacks a command.
    """
    p = argparse.ArgumentParser(
        prog="slotalloc",
        description="Allocate young children to childcare sessions (FORMAT v1). "
        "Exit status: 0 success; 1 a solution checked and not accepted; 2 bad input "
        "(one line naming the file, the place and the problem; nothing written).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add in _ADDERS.items():
        add(sub, commands[name])
    return p
