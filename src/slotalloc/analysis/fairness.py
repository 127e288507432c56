"""Fairness audit: service rates and preference ranks by residency, district and age group.

The service is universal (no household-registration or residence
restriction), so outcomes should not depend on residency; and maximising the
number of children served favours older children (1 caregiver per 7) over
infants (1 per 3). This audit makes both visible.

A child is *requesting* when it is in at least one request and *served* when
it is in at least one placed request. Ranks count each placed child once per
placement, by the rank of its session in the request.
A child's district is that of the site of its first request's first
preference; its age group is the policy group its age falls in on the date of
that session (``outside`` when in none).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from slotalloc.models import Assignment, Instance
from slotalloc.rules import age_months, group_at_age, month_groups

__all__ = ["FairnessAudit", "FairnessRow", "audit"]

MAX_RANKS = 10


@dataclass(frozen=True)
class FairnessRow:
    """One value of one dimension (e.g. residency = non_local)."""

    dimension: str
    value: str
    requesting: int
    served: int
    ranks: tuple[int, ...]  # child placements at rank 0, 1, ...

    @property
    def rate(self) -> float:
        """Share of requesting children served."""
        return self.served / self.requesting if self.requesting else 0.0


@dataclass(frozen=True)
class FairnessAudit:
    """Rows by residency, district and age group, plus the overall row."""

    overall: FairnessRow
    rows: tuple[FairnessRow, ...]

    def dimension(self, name: str) -> tuple[FairnessRow, ...]:
        """The rows of one dimension."""
        return tuple(r for r in self.rows if r.dimension == name)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""

        def row(r: FairnessRow) -> dict[str, object]:
            return {
                "value": r.value,
                "requesting": r.requesting,
                "served": r.served,
                "rate": round(r.rate, 6),
                "ranks": list(r.ranks),
            }

        out: dict[str, object] = {"overall": row(self.overall)}
        for dim in ("residency", "district", "age_group"):
            out[dim] = [row(r) for r in self.dimension(dim)]
        return out


def audit(instance: Instance, assignments: tuple[Assignment, ...]) -> FairnessAudit:
    """Audit an allocation for fairness across residency, district and age group."""
    sessions = instance.sessions
    sidx = instance.session_index
    children = instance.children
    cidx = instance.child_index
    sites = {s.id: s for s in instance.sites}
    groups = instance.policy.groups
    month_group = month_groups(groups)
    placed = {a.request: a.session for a in assignments}

    attrs: dict[str, tuple[str, str, str]] = {}
    served: set[str] = set()
    rank_of_child: dict[str, list[int]] = {}
    for r in instance.requests:
        first = sessions[sidx[r.preferences[0]]]
        site = sites.get(first.site)
        district = (site.district if site is not None else None) or "unknown"
        d = first.start.date()
        for cid in r.children:
            if cid not in attrs:
                ch = children[cidx[cid]]
                b = ch.birth_date
                g = group_at_age(
                    age_months(b.year, b.month, b.day, d.year, d.month, d.day), month_group
                )
                group = groups[g].name if g >= 0 else "outside"
                attrs[cid] = (ch.residency or "unknown", district, group)
        if r.id in placed:
            k = r.preferences.index(placed[r.id])
            for cid in r.children:
                served.add(cid)
                rank_of_child.setdefault(cid, []).append(k)

    def rows(dim: str, pos: int) -> list[FairnessRow]:
        req: Counter[str] = Counter()
        srv: Counter[str] = Counter()
        ranks: dict[str, list[int]] = {}
        for cid, values in attrs.items():
            v = values[pos]
            req[v] += 1
            ranks.setdefault(v, [0] * MAX_RANKS)
            if cid in served:
                srv[v] += 1
                for k in rank_of_child[cid]:
                    ranks[v][k] += 1
        return [FairnessRow(dim, v, req[v], srv[v], tuple(ranks[v])) for v in sorted(req)]

    all_ranks = [0] * MAX_RANKS
    for ks in rank_of_child.values():
        for k in ks:
            all_ranks[k] += 1
    overall = FairnessRow("overall", "all", len(attrs), len(served), tuple(all_ranks))
    return FairnessAudit(
        overall,
        tuple(rows("residency", 0) + rows("district", 1) + rows("age_group", 2)),
    )
