"""Solve a sample instance with the baseline, then check it with the verifier."""

from __future__ import annotations

from pathlib import Path

import slotalloc

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def main() -> None:
    instance = slotalloc.load_instance(DATA / "sample-rebalance.json")
    result = slotalloc.solve(instance, method="fcfs")
    report = slotalloc.verify(instance, result.to_solution())
    print(f"{result.status.value}: score {result.score}; verifier: {report.verdict}")


if __name__ == "__main__":
    main()
