"""Synthetic but realistic instances: a weekend of childcare sessions in Xiamen.

The scenario (documented in ``docs/generator.md``): neighbourhood childcare
points spread over Xiamen's six districts in proportion to their population,
each offering Saturday and Sunday half-day sessions plus a few one-hour
experience classes and hourly drop-in sessions on the weekend of 2025-04-19/20;
families living near a point ask for places, mostly in the mornings, so the
mornings are oversubscribed and the afternoons are quieter.

Everything random goes through :func:`numpy.random.default_rng` seeded with the
caller's seed, so equal arguments give byte-identical files. Nothing random
happens at import time.

Scenario variants (:class:`Variant`: bookings from a source plan, locked
bookings, caregiver cuts, pooled staffing, more overlapping classes, scarce
caregivers, a heavier priority mix) are keyword-only options of the public
functions; with none of them the output is exactly the plain scenario's.

This module is the generator's public face and assembles the document; the
tables it is drawn from live beside it: :mod:`.places` (districts, sites,
sessions), :mod:`.families` (families, children, requests) and
:mod:`.variants` (the variant options and what they change).

Examples
--------
>>> from slotalloc.scenarios.xiamen import SIZES, generate_xiamen
>>> n_requests, n_sites = SIZES["district"]
>>> instance = generate_xiamen(seed=1, requests=n_requests, sites=n_sites)
>>> len(instance.requests)
3000
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from slotalloc.models import Instance
from slotalloc.scenarios.families import make_families, make_requests
from slotalloc.scenarios.places import DISTRICTS, WEEKEND, District, make_sessions, make_sites
from slotalloc.scenarios.variants import (
    TAG_OVERLAP,
    Variant,
    bookings_of,
    cut_caregivers,
    stream,
    tight_caregivers,
)

__all__ = [
    "DISTRICTS",
    "SIZES",
    "WEEKEND",
    "District",
    "Variant",
    "generate_xiamen",
    "generate_xiamen_document",
    "generate_xiamen_json",
]

#: Named sizes for the command line: name -> (requests, sites).
SIZES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"district": (3000, 12), "city": (25000, 91), "ten-cities": (250000, 910)}
)


# ---------------------------------------------------------------- public API


def generate_xiamen(
    seed: int,
    requests: int,
    sites: int = 91,
    *,
    staffing: str = "per_group",
    bookings: float = 0.0,
    bookings_from: str = "fcfs",
    locked: float = 0.0,
    cut: int = 0,
    overlap: bool = False,
    tight: bool = False,
    priorities: str = "default",
) -> Instance:
    """Generate a validated Xiamen weekend instance.

    Parameters
    ----------
    seed
        Non-negative integer seed of :func:`numpy.random.default_rng`.
    requests
        Exact number of requests (second and third requests of a family
        included), at least 1.
    sites
        Number of childcare points, at least 1, spread over the six districts
        in proportion to their population (91 for the city scenario).
    staffing
        ``"per_group"`` or ``"pooled"``, written in the policy.
    bookings
        Share in [0, 1] of the placements of a source plan (computed on the
        same instance without bookings) that become ``bookings`` (default 0:
        none).
    bookings_from
        The source plan: ``"fcfs"`` (first come, first served, default) or
        ``"plan"`` (``slotalloc.solve`` with a 2-unit deterministic budget).
    locked
        Share in [0, 1] of the bookings marked ``"locked": true`` (default 0).
    cut
        One caregiver less at the ``cut`` sessions holding the most booked
        children, skipping sessions where the locked bookings would no longer
        fit (default 0).
    overlap
        More one-hour classes overlapping the half-days and more same-day
        class requests, so that the overlap rule binds often.
    tight
        Scarce caregivers: every session's caregivers scaled to about 60 %
        (at least 1).
    priorities
        ``"default"`` or ``"mix"`` (a heavier priority mix).

    Returns
    -------
    Instance
        The validated instance; equal arguments give equal instances. Its
        locked bookings are consistent, so it is feasible.

    Raises
    ------
    ValueError
        When an argument is out of range, or ``locked`` or ``cut`` is set
        without bookings.

    See Also
    --------
    Variant : the variant options, validated together.
    """
    v = Variant(staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities)
    return Instance.model_validate(_document(seed, requests, sites, v), strict=True)


def generate_xiamen_json(
    seed: int,
    requests: int,
    sites: int = 91,
    *,
    staffing: str = "per_group",
    bookings: float = 0.0,
    bookings_from: str = "fcfs",
    locked: float = 0.0,
    cut: int = 0,
    overlap: bool = False,
    tight: bool = False,
    priorities: str = "default",
) -> str:
    """Generate a Xiamen weekend instance as the exact text of its file.

    The text is compact JSON (UTF-8 safe, no ASCII escaping) ending in a
    newline. It is validated as an :class:`~slotalloc.models.Instance` before
    it is returned.

    Parameters
    ----------
    seed, requests, sites
        As for :func:`generate_xiamen`.
    staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities
        The variant, as for :func:`generate_xiamen`.

    Returns
    -------
    str
        The file's text; equal arguments give identical text.

    Raises
    ------
    ValueError
        When an argument is out of range, or ``locked`` or ``cut`` is set
        without bookings.
    """
    v = Variant(staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities)
    doc = _document(seed, requests, sites, v)
    Instance.model_validate(doc, strict=True)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


def generate_xiamen_document(
    seed: int,
    requests: int,
    sites: int = 91,
    *,
    staffing: str = "per_group",
    bookings: float = 0.0,
    bookings_from: str = "fcfs",
    locked: float = 0.0,
    cut: int = 0,
    overlap: bool = False,
    tight: bool = False,
    priorities: str = "default",
) -> dict[str, Any]:
    """Generate a Xiamen weekend instance as a plain JSON document (not validated).

    Optional keys whose value would be the default are left out, to keep the
    files small. (With bookings, the instance without them is validated to
    compute the source plan.)

    Parameters
    ----------
    seed, requests, sites
        As for :func:`generate_xiamen`.
    staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities
        The variant, as for :func:`generate_xiamen`.

    Returns
    -------
    dict
        A JSON-ready document following ``slotalloc.instance/1``.

    Raises
    ------
    ValueError
        When an argument is out of range, or ``locked`` or ``cut`` is set
        without bookings.
    """
    v = Variant(staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities)
    return _document(seed, requests, sites, v)


def _document(seed: int, requests: int, sites: int, v: Variant) -> dict[str, Any]:
    _check_args(seed, requests, sites, v.staffing)
    site_rng, family_rng = np.random.default_rng(seed).spawn(2)
    site_table = make_sites(site_rng, sites)
    overlap_rng = stream(seed, TAG_OVERLAP) if v.overlap else None
    session_table = make_sessions(site_rng, site_table, overlap_rng)
    families = make_families(family_rng, requests, site_table, **v.family_draws())
    rows = make_requests(family_rng, families, site_table, session_table, **v.request_draws())
    session_docs = session_table.documents
    if v.tight:
        for doc in session_docs:
            doc["caregivers"] = tight_caregivers(doc["caregivers"])
    out: dict[str, Any] = {
        "format": "slotalloc.instance/1",
        "name": f"xiamen-weekend-{WEEKEND[0]}-seed{seed}-{requests}r-{sites}s{v.suffix}",
        "policy": {"preset": "cn-2019", "staffing": v.staffing, "max_sessions_per_child": 2},
        "sites": site_table.documents(),
        "sessions": session_docs,
        "children": families.child_documents(),
        "requests": rows.documents(families, session_table),
    }
    if v.bookings > 0:
        out["bookings"] = bookings_of(out, seed, v)
        if v.cut > 0:
            cut_caregivers(out, v.cut)
    return out


# ---------------------------------------------------------------- arguments


def _check_args(seed: Any, requests: Any, sites: Any, staffing: Any) -> None:
    for name, value, low in (("seed", seed, 0), ("requests", requests, 1), ("sites", sites, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if staffing not in ("per_group", "pooled"):
        raise ValueError(f"staffing must be 'per_group' or 'pooled', got {staffing!r}")
