"""Child process of :class:`slotalloc.solver.mip.MipProcess`: one HiGHS solve.

Reads three length-prefixed protos from stdin (model, solve parameters, model
parameters), solves with HiGHS through MathOpt and writes the serialised
``SolveResultProto`` to stdout. It imports nothing but OR-Tools, so it starts in
a fraction of a second, and the parent can end it at any moment (MathOpt's
HiGHS ignores interrupters and callbacks).
"""

from __future__ import annotations

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
    out = res.SerializeToString()
    sys.stdout.buffer.write(struct.pack("<Q", len(out)) + out)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
