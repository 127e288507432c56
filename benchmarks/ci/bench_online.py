"""pytest-benchmark: the online engine on a city-scale state, beside the plain reference.

The state: a Xiamen city (91 sites) holding ~2k bookings, then filled online
with tens of thousands of late requests, most of them waitlisted. The reference
model (tests/reference_online.py) is benchmarked on the same state; its
cancellation scans the whole waitlist with a full rule recomputation per
request, so it runs on the first 200 waitlisted requests only (it would take
minutes per cancellation on the full waitlist).

Run::

    python -m pytest benchmarks/ci/bench_online.py --benchmark-only -p no:randomly
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "quality"))
sys.path.insert(0, str(Path(__file__).parents[2] / "tests"))

from online_speed import city_state

from reference_online import ReferenceOnline
from slotalloc.models import Child, Request
from slotalloc.online import Allocator

REQUESTS = 30000


@pytest.fixture(scope="module")
def city() -> dict[str, Any]:
    inst, late = city_state(7, REQUESTS)
    alloc = Allocator(inst)
    for request, kids in late:
        alloc.book(request, kids)
    return {"instance": inst, "late": late, "alloc": alloc}


def _copies(late: list[tuple[Request, tuple[Child, ...]]], tag: str) -> Iterator[Any]:
    for n in itertools.count():
        request, kids = late[n % len(late)]
        new_kids = tuple(Child(id=f"{tag}{n}-{k.id}", birth_date=k.birth_date) for k in kids)
        yield (
            Request(
                id=f"{tag}{n}-{request.id}",
                children=[k.id for k in new_kids],
                preferences=request.preferences,
            ),
            new_kids,
        )


def _reference_of(alloc: Allocator, waitlist_limit: int | None = None) -> ReferenceOnline:
    """The reference in the engine's state (set directly: its own checks are quadratic)."""
    inst, _ = alloc.export()
    ref = ReferenceOnline.__new__(ReferenceOnline)
    ref.instance = inst
    ref.sessions = {s.id: s for s in inst.sessions}
    ref.births = {c.id: c.birth_date for c in inst.children}
    ref.requests = {r.id: r for r in inst.requests}
    ref.used = set(ref.requests)
    ref.held = list(alloc.held().items())
    ref.waitlist = alloc.waitlist()[:waitlist_limit]
    return ref


def test_book_engine(benchmark: Any, city: dict[str, Any]) -> None:
    alloc = city["alloc"]
    pool = _copies(city["late"], "bE")
    items = [next(pool) for _ in range(20000)]
    it = iter(items)

    def book() -> None:
        request, kids = next(it)
        alloc.book(request, kids)

    benchmark.extra_info["waitlisted"] = len(alloc.waitlist())
    benchmark.pedantic(book, rounds=len(items), iterations=1)


def test_cancel_with_promotion_engine(benchmark: Any, city: dict[str, Any]) -> None:
    alloc = city["alloc"]
    held = iter(list(alloc.held())[::2])
    promoted = []

    def cancel() -> None:
        promoted.append(len(alloc.cancel(next(held)).promoted))

    benchmark.extra_info["waitlisted"] = len(alloc.waitlist())
    benchmark.pedantic(cancel, rounds=1500, iterations=1)
    benchmark.extra_info["promoted"] = sum(promoted)
    assert sum(promoted) > 0


def test_book_reference(benchmark: Any, city: dict[str, Any]) -> None:
    ref = _reference_of(city["alloc"])
    pool = _copies(city["late"], "bR")

    def book() -> None:
        request, kids = next(pool)
        ref.book(request, kids)

    benchmark.extra_info["held"] = len(ref.held)
    benchmark.pedantic(book, rounds=5, iterations=1)


def test_cancel_with_promotion_reference_200_waitlisted(
    benchmark: Any, city: dict[str, Any]
) -> None:
    ref = _reference_of(city["alloc"], waitlist_limit=200)
    held = iter([rid for rid, _ in ref.held][1::2])
    benchmark.extra_info["waitlisted"] = len(ref.waitlist)
    benchmark.pedantic(lambda: ref.cancel(next(held)), rounds=3, iterations=1)
