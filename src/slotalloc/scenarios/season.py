"""A season of Xiamen weekends: the same households asking week after week.

Weekend 1 is exactly :func:`slotalloc.scenarios.xiamen.generate_xiamen` with
the same arguments. Every following weekend is derived from it (the rules are
specified in ``docs/season.md``):

* the same sites and the same sessions, seven days later per weekend (start,
  end and the date in the session id shift; places, caregivers and age limits
  stay);
* the same households: before each weekend a household of the season leaves
  for good with probability 0.04 and skips that weekend with probability
  0.10 (it asks with probability 0.86); as many new households join as have
  left, so the season keeps weekend 1's number of households. Newcomers come
  from a reserve of other families of the same city (generated with the same
  seed and sites) moved forward to the weekend they join;
* the same children with the same birth dates, so a week older; a child aged
  36 months or more on the Saturday has left (its household's requests go on
  without it, a request left without children is gone, and so is a household
  left without children);
* the same requests (same children, same priority, same sessions seven days
  later), their preference order lightly perturbed (one adjacent pair swapped
  in 20 % of the requests), and their submission times partly reshuffled (half
  the households take one another's time of the week), so that file order,
  which is first come first served, is not the same every weekend.

Ids: household and child ids are identical across weekends (a newcomer's
carry an ``n``: ``hn000123``, ``cn000045``). From weekend 2 on a request id is
``w<week>-`` and the household's weekend-1 request id, e.g. ``w03-r000123b``,
so it is unique within its weekend and stable across weekends.

Every random draw of weekend ``k`` comes from
``numpy.random.default_rng([seed, 7, k])``, so equal arguments give equal
instances, and the first weekends of a season of up to 20 weekends do not
depend on how many follow.

Examples
--------
>>> from slotalloc.scenarios.season import generate_season
>>> weeks = generate_season(seed=1, weeks=3, requests=300, sites=3)
>>> [w.sessions[0].id for w in weeks]
['SI-000/2025-04-19-am', 'SI-000/2025-04-26-am', 'SI-000/2025-05-03-am']
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import WEEKEND, Variant, generate_xiamen_document
from slotalloc.verify import age_in_months

__all__ = ["LEAVE_P", "SKIP_P", "generate_season", "generate_season_json", "weekend_dates"]

#: Probability that a household of the season leaves for good before a weekend.
LEAVE_P = 0.04
#: Probability that a household of the season skips a weekend (and stays).
SKIP_P = 0.10
#: Share of requests whose preference order is perturbed (one adjacent pair swapped).
_SWAP_P = 0.2
#: Share of households that take another household's submission time each weekend.
_RESHUFFLE_P = 0.5
#: Age in months at which a child has left the service (the cn-2019 span ends there).
_LEAVE_MONTHS = 36
#: Tag of the season's random streams, distinct from the weekend generator's.
_TAG_SEASON = 7


@dataclass
class _Household:
    """A household of the season: its weekend-1 (or reserve) requests and children."""

    id: str
    requests: list[dict[str, Any]]  # as in the weekend-1 document, session ids of weekend 1
    children: dict[str, dict[str, Any]]  # child id -> child document
    birth: dict[str, dt.date]


def weekend_dates(week: int) -> tuple[str, str]:
    """The Saturday and Sunday of weekend ``week`` (1 is 2025-04-19/20).

    Parameters
    ----------
    week
        The weekend's number, from 1.

    Returns
    -------
    tuple of str
        The two dates as ``YYYY-MM-DD``.

    Raises
    ------
    ValueError
        When ``week`` is not an integer >= 1.
    """
    _check_int("week", week, 1)
    days = 7 * (week - 1)
    sat, sun = (dt.date.fromisoformat(d) + dt.timedelta(days=days) for d in WEEKEND)
    return sat.isoformat(), sun.isoformat()


def generate_season(
    seed: int, weeks: int, requests: int, sites: int = 91, **variant: Any
) -> list[Instance]:
    """Generate a season of validated Xiamen weekend instances.

    Parameters
    ----------
    seed
        Non-negative integer seed.
    weeks
        Number of weekends, at least 1.
    requests
        Exact number of requests of weekend 1; later weekends have about 90 %
        as many (households skip, leave and join; children age out).
    sites
        Number of childcare points, at least 1.
    **variant
        Keyword options of :func:`~slotalloc.scenarios.xiamen.generate_xiamen`
        (``staffing``, ``overlap``, ``tight``, ``priorities`` shape every
        weekend; ``bookings``, ``bookings_from``, ``locked`` and ``cut``
        describe a rebalancing of weekend 1 only: later weekends have no
        bookings and the sessions as they were before the cut).

    Returns
    -------
    list of Instance
        One validated instance per weekend; the first equals
        ``generate_xiamen(seed, requests, sites, **variant)``. Equal
        arguments give equal instances.

    Raises
    ------
    ValueError
        When an argument is out of range (as for ``generate_xiamen``, and
        ``weeks`` below 1).
    TypeError
        When ``variant`` names an unknown option.
    """
    return [
        Instance.model_validate(d, strict=True)
        for d in _documents(seed, weeks, requests, sites, variant)
    ]


def generate_season_json(
    seed: int, weeks: int, requests: int, sites: int = 91, **variant: Any
) -> list[str]:
    """Generate a season as the exact text of one instance file per weekend.

    Each text is compact JSON (UTF-8, no ASCII escaping) ending in a newline,
    validated as an :class:`~slotalloc.models.Instance` before it is returned;
    the first is ``generate_xiamen_json(seed, requests, sites, **variant)``.

    Parameters
    ----------
    seed, weeks, requests, sites, **variant
        As for :func:`generate_season`.

    Returns
    -------
    list of str
        The files' texts, weekend 1 first; equal arguments give identical texts.

    Raises
    ------
    ValueError
        When an argument is out of range.
    TypeError
        When ``variant`` names an unknown option.
    """
    out: list[str] = []
    for d in _documents(seed, weeks, requests, sites, variant):
        Instance.model_validate(d, strict=True)
        out.append(json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n")
    return out


# ---------------------------------------------------------------- construction


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _documents(
    seed: int, weeks: int, requests: int, sites: int, variant: dict[str, Any]
) -> list[dict[str, Any]]:
    _check_int("weeks", weeks, 1)
    v = Variant(**variant)  # validates the options (TypeError for an unknown one)
    first = generate_xiamen_document(seed, requests, sites, **variant)
    shape = {k: getattr(v, k) for k in ("staffing", "overlap", "tight", "priorities")}
    # Later weekends start from the plain weekend: no bookings, no caregiver cut.
    base = first if v.bookings == 0 else generate_xiamen_document(seed, requests, sites, **shape)
    docs = [first]
    if weeks == 1:
        return docs

    households = _households(base["requests"], base["children"], new=False)
    # The reserve of newcomers: families of the same city (same seed and sites,
    # hence the same sessions) drawn for a larger request count, so that they
    # are other families; about twice as many households as needed per 20 weekends.
    factor = 2 + (weeks - 1) // 20
    reserve_doc = generate_xiamen_document(seed, factor * requests, sites, **shape)
    if [s["id"] for s in reserve_doc["sessions"]] != [s["id"] for s in base["sessions"]]:
        raise AssertionError("the reserve's sessions differ from the season's")
    reserve = _households(reserve_doc["requests"], reserve_doc["children"], new=True)

    members = households
    unused = list(range(len(reserve)))
    for week in range(2, weeks + 1):
        rng = np.random.default_rng([int(seed), _TAG_SEASON, week])
        days = 7 * (week - 1)
        sat = dt.date.fromisoformat(weekend_dates(week)[0])
        # A household whose every child has aged out has left the service.
        members = [h for h in members if _young(h.birth.values(), sat)]
        u = rng.random(len(members)).tolist()
        staying = [h for h, x in zip(members, u, strict=True) if x >= LEAVE_P]
        asking = [h for h, x in zip(members, u, strict=True) if x >= LEAVE_P + SKIP_P]
        # As many households join as have left, so the season keeps its size. A
        # newcomer is a reserve family moved forward to this weekend (birth dates
        # included), so it is a family of the weekend generator's mix.
        wanted = len(households) - len(staying)
        shift = dt.timedelta(days=days)
        fit = [i for i in unused if _young((b + shift for b in reserve[i].birth.values()), sat)]
        picks = rng.choice(len(fit), size=min(wanted, len(fit)), replace=False).tolist()
        chosen = sorted(fit[i] for i in picks)
        joining = [_arrive(reserve[i], shift) for i in chosen]
        taken = set(chosen)
        unused = [i for i in unused if i not in taken]
        members = staying + joining
        docs.append(_weekend(rng, base, week, asking + joining))
    return docs


def _young(births: Iterable[dt.date], saturday: dt.date) -> bool:
    """Whether some child born on one of ``births`` is under 36 months on ``saturday``."""
    return any(age_in_months(b, saturday) < _LEAVE_MONTHS for b in births)


def _arrive(h: _Household, shift: dt.timedelta) -> _Household:
    """A reserve household moved forward by ``shift``: its children born that much later."""
    birth = {c: b + shift for c, b in h.birth.items()}
    children = {c: {**doc, "birth_date": birth[c].isoformat()} for c, doc in h.children.items()}
    return _Household(h.id, h.requests, children, birth)


def _households(
    requests: list[dict[str, Any]], children: list[dict[str, Any]], *, new: bool
) -> list[_Household]:
    """The households of a generated document, in the order of their first request.

    The generator gives every child of a family the family's household, so a
    request's household is its first child's. ``new`` marks a reserve family:
    its ids get an ``n`` after their first letter, so they never collide with
    weekend 1's.
    """

    def mark(x: str) -> str:
        return f"{x[0]}n{x[1:]}" if new else x

    child_docs = {c["id"]: c for c in children}
    out: dict[str, _Household] = {}
    for r in requests:
        first = child_docs[r["children"][0]]
        hid = mark(first["household"])
        h = out.get(hid)
        if h is None:
            h = out[hid] = _Household(hid, [], {}, {})
        kids = [mark(c) for c in r["children"]]
        h.requests.append({**r, "id": mark(r["id"]), "children": kids})
        for old, cid in zip(r["children"], kids, strict=True):
            c = child_docs[old]
            h.children[cid] = {**c, "id": cid, "household": hid}
            h.birth[cid] = dt.date.fromisoformat(c["birth_date"])
    return list(out.values())


def _shift(stamp: str, days: int) -> str:
    return (dt.datetime.fromisoformat(stamp) + dt.timedelta(days=days)).isoformat()


def _weekend(
    rng: np.random.Generator,
    base: dict[str, Any],
    week: int,
    asking: list[_Household],
) -> dict[str, Any]:
    """Weekend ``week``'s document: the asking households' requests, in order of arrival.

    Their session ids and submission times are weekend 1's; children aged 36
    months or more on the Saturday are left out, and so is a request left
    without children.
    """
    days = 7 * (week - 1)
    saturday, _ = weekend_dates(week)
    sat = dt.date.fromisoformat(saturday)
    session_id: dict[str, str] = {}
    sessions: list[dict[str, Any]] = []
    for s in base["sessions"]:
        old_date = s["start"][:10]
        new_date = (dt.date.fromisoformat(old_date) + dt.timedelta(days=days)).isoformat()
        new = {**s, "id": s["id"].replace(old_date, new_date, 1)}
        new["start"], new["end"] = _shift(s["start"], days), _shift(s["end"], days)
        session_id[s["id"]] = new["id"]
        sessions.append(new)

    # Who still asks, with which children (the older ones have left).
    rows: list[tuple[_Household, list[tuple[dict[str, Any], list[str]]]]] = []
    for h in asking:
        kept = []
        for r in h.requests:
            kids = [c for c in r["children"] if age_in_months(h.birth[c], sat) < _LEAVE_MONTHS]
            if kids:
                kept.append((r, kids))
        if kept:
            rows.append((h, kept))

    # Submission times: half the households (seeded) take one another's time
    # of the week, so that the order of arrival changes but its profile does not.
    times = [h.requests[0]["submitted_at"] for h, _ in rows]
    mixed = np.nonzero(rng.random(len(rows)) < _RESHUFFLE_P)[0]
    shuffled = list(times)
    for i, j in zip(mixed.tolist(), rng.permutation(mixed).tolist(), strict=True):
        shuffled[i] = times[j]
    stamps = [_shift(t, days) for t in shuffled]
    instants = [dt.datetime.fromisoformat(t) for t in stamps]
    order = sorted(range(len(rows)), key=instants.__getitem__)

    # Light noise in the preference order: one adjacent pair swapped now and then.
    n_requests = sum(len(kept) for _, kept in rows)
    swap_u = rng.random(n_requests).tolist()
    pos_u = rng.random(n_requests).tolist()
    flat = [(i, r, kids) for i, (_, kept) in enumerate(rows) for r, kids in kept]
    docs_by_row: dict[int, list[dict[str, Any]]] = {}
    for (i, r, kids), su, pu in zip(flat, swap_u, pos_u, strict=True):
        prefs = [session_id[p] for p in r["preferences"]]
        if len(prefs) >= 2 and su < _SWAP_P:
            j = int(pu * (len(prefs) - 1))
            prefs[j], prefs[j + 1] = prefs[j + 1], prefs[j]
        doc: dict[str, Any] = {
            "id": f"w{week:02d}-{r['id']}",
            "children": kids,
            "preferences": prefs,
        }
        if r.get("priority"):
            doc["priority"] = r["priority"]
        doc["submitted_at"] = stamps[i]
        docs_by_row.setdefault(i, []).append(doc)

    requests: list[dict[str, Any]] = []
    children: dict[str, dict[str, Any]] = {}
    for i in order:
        h = rows[i][0]
        for doc in docs_by_row[i]:
            requests.append(doc)
            for c in doc["children"]:
                children.setdefault(c, h.children[c])
    name = base["name"].replace(WEEKEND[0], saturday, 1) + f"-w{week:02d}"
    out: dict[str, Any] = {
        "format": base["format"],
        "name": name,
        "policy": dict(base["policy"]),
        "sites": base["sites"],
        "sessions": sessions,
        "children": list(children.values()),
        "requests": requests,
    }
    return out
