"""Child process of :class:`slotalloc.solver.mip.MipProcess`: one HiGHS solve.

Reads three length-prefixed protos from stdin (model, solve parameters, model
parameters), solves with HiGHS through MathOpt and writes the serialised
``SolveResultProto`` to stdout. It imports nothing but OR-Tools, so it starts in
a fraction of a second, and the parent can end it at any moment (MathOpt's
HiGHS ignores interrupters and callbacks).
"""

from __future__ import annotations

import os
import struct
import sys


def _read(stream: object) -> bytes:
    head = stream.read(8)  # type: ignore[attr-defined]
    (n,) = struct.unpack("<Q", head)
    return stream.read(n)  # type: ignore[attr-defined]


def main() -> int:
    """Solve the model read from stdin; the result goes to stdout."""
    from ortools.math_opt import callback_pb2, model_parameters_pb2, model_pb2, parameters_pb2
    from ortools.math_opt.core.python import solver as core
    from ortools.math_opt.python import init_arguments, mathopt

    # HiGHS sometimes prints to stdout from C++ (seen: a line from
    # transformNewIntegerFeasibleSolution), which would corrupt the answer's
    # frame: the answer goes to a copy of stdout, and fd 1 to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    model = model_pb2.ModelProto.FromString(_read(inp))
    params = parameters_pb2.SolveParametersProto.FromString(_read(inp))
    model_params = model_parameters_pb2.ModelSolveParametersProto.FromString(_read(inp))
    res = core.solve(
        model,
        mathopt.SolverType.HIGHS.value,
        init_arguments.StreamableSolverInitArguments().to_proto(),
        params,
        model_params,
        None,
        callback_pb2.CallbackRegistrationProto(),
        None,
        None,
    )
    blob = res.SerializeToString()
    out.write(struct.pack("<Q", len(blob)) + blob)
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
