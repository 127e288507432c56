"""Shared fixtures: the sample instances shipped in tests/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from slotalloc.io import load_instance, load_solution
from slotalloc.models import Instance, Solution

DATA = Path(__file__).parent / "data"

# CI runs on a clean clone: derandomised examples make a red run reproducible.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: sample name -> (first-come-first-served score, best known score, proven upper bound)
SAMPLE_FIGURES = {
    "sample-small": (66560, 68640, 68640),
    "sample-rebalance": (270790, 291260, 291260),
    "sample-tight": (243010, 297860, 297880),
}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def sample_instance(name: str) -> Instance:
    return load_instance(DATA / f"{name}.json")


def sample_fcfs_solution(name: str) -> Solution:
    return load_solution(DATA / f"{name}.fcfs-solution.json")
