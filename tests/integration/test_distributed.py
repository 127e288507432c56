"""Distributed solving: decomposition properties, executors, Ray retries."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_FIGURES, sample_instance
from slotalloc.compile import compile_instance
from slotalloc.distributed import PartAnswer, PartTask, executors, solve_distributed
from slotalloc.distributed.decompose import (
    _union_find,
    components,
    decompose,
    repair,
)
from slotalloc.models import Instance, Status
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solve import solve
from slotalloc.verify import verify


def _accepted(instance: Instance, result: object) -> None:
    report = verify(instance, result.to_solution())  # type: ignore[attr-defined]
    assert report.accepted, str(report)


def _same(a: object, b: object) -> None:
    for attr in ("status", "score", "bound", "assignments"):
        assert getattr(a, attr) == getattr(b, attr), attr


# ---------------------------------------------------------------- decomposition


def test_union_find_matches_a_plain_search() -> None:
    rng = np.random.default_rng(7)
    n = 300
    u = rng.integers(0, n, 220)
    v = rng.integers(0, n, 220)
    root = _union_find(n, u, v)
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        adj[a].add(b)
        adj[b].add(a)
    seen = np.full(n, -1)
    for s in range(n):
        if seen[s] >= 0:
            continue
        stack, comp = [s], []
        seen[s] = s
        while stack:
            x = stack.pop()
            comp.append(x)
            for y in adj[x]:
                if seen[y] < 0:
                    seen[y] = s
                    stack.append(y)
        assert len({int(root[x]) for x in comp}) == 1
        assert int(root[s]) == min(comp)


@pytest.mark.parametrize("name", ["sample-rebalance", "sample-tight"])
def test_components_share_no_session_and_no_child(name: str) -> None:
    c = compile_instance(sample_instance(name))
    labels = components(c)
    assert (labels[np.diff(c.req_arc_ptr) > 0] >= 0).all()
    assert (labels[np.diff(c.req_arc_ptr) == 0] == -1).all()
    per_session = defaultdict(set)
    for r, s in zip(c.arc_req.tolist(), c.arc_sess.tolist(), strict=True):
        per_session[s].add(int(labels[r]))
    assert all(len(v) == 1 for v in per_session.values())
    per_child = defaultdict(set)
    for r in np.flatnonzero(labels >= 0).tolist():
        for ch in c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist():
            per_child[ch].add(int(labels[r]))
    assert all(len(v) == 1 for v in per_child.values())


def test_city_has_several_components_and_parts_are_valid_instances() -> None:
    inst = generate_xiamen(1, 3000, 24)
    c = compile_instance(inst)
    dec = decompose(inst, c, part_requests=400)
    assert dec.n_components >= 1 and len(dec.parts) >= 4 and dec.giant
    seen: set[int] = set()
    for p in dec.parts:
        Instance.model_validate(p.document, strict=True)
        ids = set(p.requests.tolist())
        assert not ids & seen  # every request in at most one part
        seen |= ids
    # geographic parts of one component never share a session
    sess = [set(p.sessions.tolist()) for p in dec.parts]
    assert all(not (a & b) for i, a in enumerate(sess) for b in sess[i + 1 :])


def test_sub_instance_scores_like_the_whole() -> None:
    # Placeholders keep each preference's position, so a part scores an
    # assignment exactly as the whole instance does.
    inst = sample_instance("sample-rebalance")
    c = compile_instance(inst)
    dec = decompose(inst, c, part_requests=60)
    for p in dec.parts:
        sub = Instance.model_validate(p.document, strict=True)
        res = solve(sub, method="fcfs")
        if res.score is None:
            continue
        from slotalloc.verify import score_of

        pairs = [(a.request, a.session) for a in res.assignments]
        # booked requests outside the part are not in it: compare on the part's requests
        whole = score_of(inst, pairs) - score_of(inst, [])
        sub_delta = res.score - score_of(sub, [])
        assert whole == sub_delta


def test_repair_makes_any_arc_set_valid() -> None:
    inst = sample_instance("sample-tight")
    c = compile_instance(inst)
    arcs, dropped = repair(c, np.arange(c.n_arcs))
    assert dropped > 0
    from slotalloc.verify import check_assignment

    pairs = [
        (c.request_ids[r], c.session_ids[s])
        for r, s in zip(c.arc_req[arcs].tolist(), c.arc_sess[arcs].tolist(), strict=True)
    ]
    assert check_assignment(inst, pairs) == []
    assert len(pairs) > 0


# ---------------------------------------------------------------- merged results


@pytest.mark.parametrize("name", sorted(SAMPLE_FIGURES))
@pytest.mark.parametrize("part_requests", [40, 100_000])
def test_merged_solution_valid_and_bound_above_optimum(name: str, part_requests: int) -> None:
    inst = sample_instance(name)
    _, best, _proven = SAMPLE_FIGURES[name]
    res = solve_distributed(inst, time_limit=2.0, deterministic=True, part_requests=part_requests)
    _accepted(inst, res)
    assert res.score is not None and res.bound is not None
    assert res.score <= best <= res.bound
    assert res.bound >= res.score
    if part_requests > len(inst.requests):
        # one component or packed components: the bound is the parts' own
        assert res.stats.figures["bound_source"] == "sum of independent parts"


def test_independent_components_bounds_add_up() -> None:
    inst = generate_xiamen(2, 1500, 18)
    c = compile_instance(inst)
    labels = components(c)
    assert labels.max() >= 1, "the generator's districts should give several components"
    whole = solve(inst, time_limit=3.0, deterministic=True)
    res = solve_distributed(inst, time_limit=3.0, deterministic=True, part_requests=300)
    _accepted(inst, res)
    assert res.bound is not None and whole.bound is not None
    assert res.bound >= res.score
    if whole.status is Status.OPTIMAL:
        assert res.bound >= whole.score
    assert res.stats.figures["parts"] >= 2


def test_progress_reports_and_stats() -> None:
    inst = sample_instance("sample-tight")
    seen = []
    res = solve_distributed(
        inst, time_limit=1.0, deterministic=True, part_requests=90, callback=seen.append
    )
    assert seen and seen[-1].score == res.score and seen[-1].bound == res.bound
    assert res.stats.solver == "distributed" and res.stats.solve_seconds is not None
    for key in ("executor", "workers", "parts", "components", "part_seconds"):
        assert key in res.stats.figures


def test_bad_arguments() -> None:
    inst = sample_instance("sample-small")
    with pytest.raises(ValueError, match="executor"):
        solve_distributed(inst, executor="mpi")
    with pytest.raises(ValueError, match="address"):
        solve_distributed(inst, executor="process", address="auto")


def test_solve_routes_an_executor_config_to_the_parts() -> None:
    from slotalloc import ExecutorConfig

    inst = sample_instance("sample-rebalance")
    kw = {"time_limit": 1.0, "deterministic": True}
    got = solve(inst, executor=ExecutorConfig("inprocess"), **kw)
    assert got.stats.solver == "distributed"
    _same(solve_distributed(inst, **kw), got)
    with pytest.warns(DeprecationWarning, match="ExecutorConfig"):
        old = solve(inst, executor="inprocess", **kw)
    _same(got, old)
    with pytest.raises(ValueError, match="go in the ExecutorConfig"):
        solve(inst, executor=ExecutorConfig("process"), workers=2)
    with pytest.raises(ValueError, match="need an executor"):
        solve(inst, workers=2)
    with pytest.raises(ValueError, match="needs the optimiser"):
        solve(inst, method="fcfs", executor=ExecutorConfig())


def test_tasks_and_answers_are_plain_data() -> None:
    # Typed payloads cross process and Ray boundaries by pickling: plain fields only.
    import pickle

    doc = json.loads((Path(__file__).parents[1] / "data" / "sample-small.json").read_text())
    task = PartTask(doc, 0.5, 3, True, hint=(("r000000", "HU-002/2025-04-19-pm"),))
    assert pickle.loads(pickle.dumps(task)) == task
    answer = executors.run_task(task)
    assert isinstance(answer, PartAnswer) and answer.pid == os.getpid()
    assert answer.score is not None and answer.lp_seconds is not None
    assert pickle.loads(pickle.dumps(answer)) == answer


@pytest.fixture
def first_worker_killed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Kill the pool's first worker right after the first submit, as a crashed machine would.

    Every task then on the pool fails with a broken pool, so the executor's retry
    path runs; the list holds the killed worker's pid.
    """
    killed: list[int] = []
    submit = executors.ProcessExecutor.submit

    def submit_then_kill(
        self: executors.ProcessExecutor, task_id: int, task: PartTask, cpus: int = 1
    ) -> None:
        submit(self, task_id, task, cpus)
        if not killed:
            # Give the worker time to start: a worker killed while the pool is still
            # starting it can leave ProcessPoolExecutor.shutdown waiting forever
            # (seen once in a full run); a crash mid-task is what is tested.
            time.sleep(1.0)
            pid = next(iter(self._pool._processes))  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    monkeypatch.setattr(executors.ProcessExecutor, "submit", submit_then_kill)
    return killed


def test_process_pool_matches_in_process_and_survives_a_killed_worker(
    first_worker_killed: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    inst = sample_instance("sample-rebalance")
    kw = {"time_limit": 1.0, "deterministic": True, "part_requests": 60}
    ref = solve_distributed(inst, **kw)
    with caplog.at_level(logging.WARNING, logger="slotalloc.distributed.executors"):
        got = solve_distributed(inst, executor="process", workers=2, **kw)
    assert first_worker_killed
    assert any("retrying" in r.getMessage() for r in caplog.records)
    _same(ref, got)
    _accepted(inst, got)


# ---------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'slotalloc[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_matches_in_process_in_deterministic_mode(ray_local: object) -> None:
    inst = generate_xiamen(3, 1200, 12)
    kw = {"time_limit": 2.0, "deterministic": True, "part_requests": 300, "seed": 5}
    ref = solve_distributed(inst, **kw)
    got = solve_distributed(inst, executor="ray", workers=2, **kw)
    _same(ref, got)
    assert got.stats.figures["executor"] == "ray"
    _accepted(inst, got)


def _dies_on_first_attempt(marker: Path) -> Callable[[PartTask], PartAnswer]:
    """A task function whose first attempt anywhere (no marker yet) kills its worker.

    A closure: Ray ships it by value, so the workers need not import the tests.
    """

    def task(t: PartTask) -> PartAnswer:
        if not marker.exists():
            marker.write_text(str(os.getpid()), encoding="utf-8")
            os.kill(os.getpid(), signal.SIGKILL)
        from slotalloc.distributed.executors import run_task  # the worker's, unpatched

        return run_task(t)

    return task


def test_ray_retries_a_killed_worker(
    ray_local: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = sample_instance("sample-rebalance")
    marker = tmp_path / "killed"
    kw = {"time_limit": 1.0, "deterministic": True, "part_requests": 60}
    # Read when the executor is built: its remote function is this one.
    monkeypatch.setattr(executors, "run_task", _dies_on_first_attempt(marker))
    got = solve_distributed(inst, executor="ray", **kw)
    monkeypatch.undo()
    assert marker.exists()  # the first attempt did die
    _accepted(inst, got)
    _same(solve_distributed(inst, **kw), got)
