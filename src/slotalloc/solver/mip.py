"""The same model as a MIP for HiGHS's branch-and-cut, run beside the search.

OR-Tools ships HiGHS behind MathOpt; the model goes in as a ``ModelProto``
filled straight from the formulation's arrays (no Python object per term: a
district-sized model is built in ~20 ms). The optimiser runs it in a child
process (:class:`MipProcess`) on the second core while the large-neighbourhood
search keeps the first: in-process HiGHS cannot be interrupted, a child can be
ended the moment the search proves the optimum or the budget ends
(:class:`MipThread`, which releases the GIL but runs to its time limit, is the
in-process alternative). On district-sized models HiGHS proves the optimum (or a
bound within a few points of one drop's weight) where the search alone cannot.

Its answer is not trusted: values are rounded and every row is checked again in
integers (:func:`violated_rows`), the score is recomputed from the arcs, and the
bound is HiGHS's dual bound rounded down after padding
(:func:`~slotalloc.solver.formulation.safe_floor`).
"""

from __future__ import annotations

import datetime
import logging
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.solver.formulation import INF, LinearModel, safe_floor

__all__ = ["MipProcess", "MipRun", "MipThread", "solve_mip", "violated_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MipRun:
    """Outcome of one MIP solve: checked integer values (or None), objective, safe bound."""

    values: IntArray | None
    objective: int | None
    bound: int | None
    optimal: bool


def _model_proto(m: LinearModel) -> Any:
    from ortools.math_opt import model_pb2

    p = model_pb2.ModelProto()
    n = m.n_vars
    v = p.variables
    v.ids.extend(range(n))
    v.lower_bounds.extend(m.lb.astype(np.float64).tolist())
    v.upper_bounds.extend(m.ub.astype(np.float64).tolist())
    v.integers.extend([True] * n)
    rows, cols, vals, lo, hi = [], [], [], [], []
    first = 0
    for b in m.blocks:
        rows.append(np.repeat(np.arange(first, first + b.n_rows, dtype=np.int64), np.diff(b.ptr)))
        cols.append(b.var)
        vals.append(b.coef)
        lo.append(np.where(b.lo <= -INF, -np.inf, b.lo.astype(np.float64)))
        hi.append(np.where(b.hi >= INF, np.inf, b.hi.astype(np.float64)))
        first += b.n_rows
    lc = p.linear_constraints
    lc.ids.extend(range(first))
    if first:
        r = np.concatenate(rows)
        col = np.concatenate(cols)
        val = np.concatenate(vals)
        # MathOpt wants the matrix in row-major order without repeated entries.
        order = np.lexsort((col, r))
        lc.lower_bounds.extend(np.concatenate(lo).tolist())
        lc.upper_bounds.extend(np.concatenate(hi).tolist())
        mat = p.linear_constraint_matrix
        mat.row_ids.extend(r[order].tolist())
        mat.column_ids.extend(col[order].tolist())
        mat.coefficients.extend(val[order].astype(np.float64).tolist())
    nz = np.flatnonzero(m.obj)
    p.objective.maximize = True
    p.objective.offset = float(m.offset)
    p.objective.linear_coefficients.ids.extend(nz.tolist())
    p.objective.linear_coefficients.values.extend(m.obj[nz].astype(np.float64).tolist())
    return p


def violated_rows(m: LinearModel, values: IntArray) -> int:
    """Rows of ``m`` (and variable bounds) that integer ``values`` break; 0 when feasible."""
    bad = int(np.count_nonzero((values < m.lb) | (values > m.ub)))
    for b in m.blocks:
        terms = b.coef * values[b.var]
        sums = np.add.reduceat(terms, b.ptr[:-1]) if terms.shape[0] else np.zeros(0, np.int64)
        # reduceat reads an empty row as its next entry: empty rows sum to 0.
        sums = np.where(np.diff(b.ptr) > 0, sums, 0)
        bad += int(np.count_nonzero((sums < b.lo) | (sums > b.hi)))
    return bad


def _requests(m: LinearModel, time_limit: float, hint: IntArray | None) -> tuple[Any, Any, Any]:
    """The model, solve-parameter and model-parameter protos of one HiGHS solve."""
    from ortools.math_opt import model_parameters_pb2, parameters_pb2

    params = parameters_pb2.SolveParametersProto()
    params.time_limit.FromTimedelta(datetime.timedelta(seconds=max(0.01, time_limit)))
    params.relative_gap_tolerance = 0.0
    # Values lie on a lattice of step ``objective_step``: a gap below one step is a proof.
    params.absolute_gap_tolerance = max(0.99, m.objective_step - 0.01)
    params.enable_output = False
    model_params = model_parameters_pb2.ModelSolveParametersProto()
    if hint is not None:
        h = model_params.solution_hints.add()
        h.variable_values.ids.extend(range(m.n_vars))
        h.variable_values.values.extend(np.asarray(hint, dtype=np.float64).tolist())
    return _model_proto(m), params, model_params


def _outcome(m: LinearModel, res: Any) -> MipRun:
    """The checked outcome of a ``SolveResultProto`` (see the module docstring)."""
    bound = res.termination.objective_bounds.dual_bound
    safe = safe_floor(bound, float(np.abs(m.obj).sum()) + abs(m.offset))
    if safe is not None:
        safe = m.lattice_floor(safe)
    values: IntArray | None = None
    objective: int | None = None
    for sol in res.solutions:
        if not sol.HasField("primal_solution"):
            continue
        ps = sol.primal_solution.variable_values
        x = np.zeros(m.n_vars, dtype=np.int64)
        x[np.asarray(ps.ids, dtype=np.int64)] = np.rint(np.asarray(ps.values)).astype(np.int64)
        if violated_rows(m, x) == 0:
            obj = int(m.obj @ x) + m.offset
            if objective is None or obj > objective:
                values, objective = x, obj
    if safe is not None and objective is not None and safe < objective:
        safe = None  # a bound below a checked solution is not a bound
    optimal = objective is not None and safe is not None and safe == objective
    return MipRun(values, objective, safe, optimal)


def solve_mip(
    m: LinearModel, *, time_limit: float, hint: IntArray | None = None, solver: str = "highs"
) -> MipRun:
    """Solve ``m`` (maximise) with HiGHS for at most ``time_limit`` wall seconds.

    ``solver="scip"`` runs SCIP (also shipped by OR-Tools) instead: the tests use
    it as an exact solver independent of the optimiser's.

    The search stops only at a proof (a gap below one objective step) or the time
    limit: MathOpt's HiGHS cannot be interrupted in-process (see
    :class:`MipProcess` for a run that can be ended).
    """
    from ortools.math_opt import callback_pb2
    from ortools.math_opt.core.python import solver as core
    from ortools.math_opt.python import init_arguments, mathopt

    proto, params, model_params = _requests(m, time_limit, hint)
    kind = {"highs": mathopt.SolverType.HIGHS, "scip": mathopt.SolverType.GSCIP}[solver]
    res = core.solve(
        proto,
        kind.value,
        init_arguments.StreamableSolverInitArguments().to_proto(),
        params,
        model_params,
        None,
        callback_pb2.CallbackRegistrationProto(),
        None,
        None,
    )
    return _outcome(m, res)


class MipThread:
    """:func:`solve_mip` in a background thread (the call releases the GIL).

    It cannot be stopped early: give it a time limit that ends with the caller's
    budget. :class:`MipProcess` can be ended at any moment.
    """

    def __init__(self, m: LinearModel, *, time_limit: float, hint: IntArray | None = None) -> None:
        self._result: MipRun | None = None
        self._error: BaseException | None = None
        self.done = threading.Event()
        #: Set once HiGHS has proven its solution optimal.
        self.proven = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(m, time_limit, hint), name="slotalloc-mip", daemon=True
        )
        self._thread.start()

    def _run(self, m: LinearModel, time_limit: float, hint: IntArray | None) -> None:
        try:
            self._result = solve_mip(m, time_limit=time_limit, hint=hint)
            if self._result.optimal:
                self.proven.set()
        except Exception as exc:  # reported by error; the search's answer stands
            log.warning("HiGHS failed: %s", exc)
            self._error = exc
        finally:
            self.done.set()

    def result(self) -> MipRun:
        """Wait for the solve; an empty run when it failed."""
        self._thread.join()
        return self._result if self._result is not None else MipRun(None, None, None, False)

    @property
    def error(self) -> BaseException | None:
        """The exception the solve raised, if any."""
        return self._error


class MipProcess:
    """:func:`solve_mip` in a child process, so that it can be ended at any moment.

    The child (``python -m slotalloc.solver._mip_child``) imports only OR-Tools
    and starts in ~0.2 s; the model goes over a pipe as protos. A reader thread
    waits for the answer, so :attr:`done` and :attr:`proven` are events as with
    :class:`MipThread`.
    """

    def __init__(self, m: LinearModel, *, time_limit: float, hint: IntArray | None = None) -> None:
        self._m = m
        self._result: MipRun | None = None
        self._error: BaseException | None = None
        self.done = threading.Event()
        #: Set once HiGHS has proven its solution optimal.
        self.proven = threading.Event()
        blobs = [b.SerializeToString() for b in _requests(m, time_limit, hint)]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "slotalloc.solver._mip_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._thread = threading.Thread(
            target=self._run, args=(blobs,), name="slotalloc-mip", daemon=True
        )
        self._thread.start()

    def _run(self, blobs: list[bytes]) -> None:
        from ortools.math_opt import result_pb2

        proc = self._proc
        try:
            assert proc.stdin is not None and proc.stdout is not None
            with proc.stdin:
                for b in blobs:
                    proc.stdin.write(struct.pack("<Q", len(b)) + b)
            head = proc.stdout.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
                res = result_pb2.SolveResultProto.FromString(proc.stdout.read(n))
                self._result = _outcome(self._m, res)
                if self._result.optimal:
                    self.proven.set()
        except (OSError, ValueError) as exc:  # killed or broken pipe: no answer
            self._error = exc
        except Exception as exc:  # reported by error; the search's answer stands
            log.warning("HiGHS failed: %s", exc)
            self._error = exc
        finally:
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            self.done.set()

    def stop(self) -> None:
        """End the child now; :meth:`result` is then empty unless it had answered."""
        if self._proc.poll() is None:
            self._proc.kill()

    def result(self, timeout: float | None = None) -> MipRun:
        """Wait (at most ``timeout`` seconds, then end it) for the answer."""
        if not self.done.wait(timeout):
            self.stop()
        self._thread.join()
        return self._result if self._result is not None else MipRun(None, None, None, False)

    @property
    def error(self) -> BaseException | None:
        """The exception the solve raised, if any."""
        return self._error
