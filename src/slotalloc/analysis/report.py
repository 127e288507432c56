"""An HTML report of an allocation, with plots as PNG (needs the ``report`` extra).

``write_report`` writes ``DIR/index.html`` and its PNG files: fill by site and
session (heatmap), which limit binds per session (room, caregivers or a
group cap; every session in ``sessions.csv``), morning vs afternoon
utilisation, unmet demand by district,
preference ranks, the fairness table, and capacity-planning recommendations
when given. matplotlib is used through :class:`matplotlib.figure.Figure`
only, so no global pyplot state is touched.
"""

from __future__ import annotations

import html
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slotalloc.analysis.audit import fairness_report
from slotalloc.analysis.binding import SessionLimit, binding_limits
from slotalloc.analysis.fairness import FairnessRow, audit
from slotalloc.analysis.summary import summarise
from slotalloc.io import write_json_atomic
from slotalloc.models import Instance, Solution

__all__ = ["write_report"]

_STYLE = """
body { font-family: 'Noto Sans', 'DejaVu Sans', Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
.kpi { display: inline-block; margin-right: 2em; } .kpi b { font-size: 1.4em; display: block; }
"""


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _e(value: object) -> str:
    """Any value as HTML text, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def _slot_label(instance: Instance, sid: str) -> str:
    s = instance.sessions[instance.session_index[sid]]
    return f"{s.start.strftime('%a %H:%M')}-{s.end.strftime('%H:%M')}"


def _heatmap(instance: Instance, taken: Counter[str], path: Path) -> None:
    import numpy as np

    sites = sorted({s.site for s in instance.sessions})
    slots = sorted({(s.start.weekday(), s.start.time(), s.end.time()) for s in instance.sessions})
    col = {k: i for i, k in enumerate(slots)}
    row = {k: i for i, k in enumerate(sites)}
    fill = np.full((len(sites), len(slots)), np.nan)
    for s in instance.sessions:
        key = (s.start.weekday(), s.start.time(), s.end.time())
        fill[row[s.site], col[key]] = taken[s.id] / s.capacity if s.capacity else 1.0
    fig = _figure(max(6.0, 0.55 * len(slots) + 2), max(4.0, 0.13 * len(sites) + 1.5))
    ax = fig.add_subplot()
    im = ax.imshow(fill, aspect="auto", cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest")
    names = ["Sat", "Sun", "Mon", "Tue", "Wed", "Thu", "Fri"]
    ax.set_xticks(range(len(slots)))
    ax.set_xticklabels(
        [f"{names[(d + 2) % 7]} {a.strftime('%H:%M')}-{b.strftime('%H:%M')}" for d, a, b in slots],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    step = max(1, len(sites) // 40)
    ax.set_yticks(range(0, len(sites), step))
    ax.set_yticklabels(sites[::step], fontsize=6)
    ax.set_title("Fill by site and session (places taken / capacity; blank = no session)")
    fig.colorbar(im, ax=ax, shrink=0.6, label="fill")
    fig.savefig(path)


def _utilisation(instance: Instance, taken: Counter[str], path: Path) -> None:
    cap: dict[tuple[Any, int], int] = defaultdict(int)
    use: dict[tuple[Any, int], int] = defaultdict(int)
    for s in instance.sessions:
        key = (s.start.date(), 0 if s.start.hour < 12 else 1)
        cap[key] += s.capacity
        use[key] += taken[s.id]
    keys = sorted(cap)
    labels = [f"{d.strftime('%a %m-%d')} {('morning', 'afternoon')[h]}" for d, h in keys]
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    xs = range(len(keys))
    ax.bar(
        [x - 0.2 for x in xs], [cap[k] for k in keys], width=0.4, label="capacity", color="#bbbbbb"
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [use[k] for k in keys],
        width=0.4,
        label="places taken",
        color="#d95f02",
    )
    for x, k in zip(xs, keys, strict=True):
        pct = 100 * use[k] / cap[k] if cap[k] else 0
        ax.annotate(f"{pct:.0f}%", (x + 0.2, use[k]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("places")
    ax.set_title("Morning vs afternoon utilisation")
    ax.set_ylim(0, 1.2 * max(cap.values(), default=1))
    ax.legend(loc="upper right", ncols=2)
    fig.savefig(path)


def _unmet(rows: Sequence[FairnessRow], path: Path) -> None:
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    names = [r.value for r in rows]
    ax.bar(names, [r.served for r in rows], label="served", color="#1b9e77")
    ax.bar(
        names,
        [r.requesting - r.served for r in rows],
        bottom=[r.served for r in rows],
        label="not served",
        color="#e7298a",
    )
    ax.set_ylabel("children")
    ax.set_title("Unmet demand by district")
    ax.legend()
    ax.tick_params(axis="x", labelsize=8)
    fig.savefig(path)


def _ranks(overall: FairnessRow, path: Path) -> None:
    last = max((i for i, n in enumerate(overall.ranks) if n), default=0)
    fig = _figure(6, 3.2)
    ax = fig.add_subplot()
    ax.bar([f"#{k + 1}" for k in range(last + 1)], overall.ranks[: last + 1], color="#7570b3")
    ax.set_xlabel("preference obtained (1 = first choice)")
    ax.set_ylabel("children placed")
    ax.set_title("Preference ranks obtained")
    fig.savefig(path)


def _fairness_table(rows: Sequence[FairnessRow], title: str) -> str:
    out = [
        f"<h3>{_e(title)}</h3><table><tr><th class='l'>group</th>"
        "<th>requesting</th><th>served</th><th>rate</th><th>1st choice</th></tr>"
    ]
    for r in rows:
        first = r.ranks[0] / r.served if r.served else 0.0
        out.append(
            f"<tr><td class='l'>{_e(r.value)}</td><td>{_e(r.requesting)}</td>"
            f"<td>{_e(r.served)}</td><td>{_e(f'{100 * r.rate:.1f}')}%</td>"
            f"<td>{_e(f'{100 * first:.1f}')}%</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _write_csvs(instance: Instance, solution: Solution, out: Path) -> None:
    """``rosters.csv`` (per site and session, who is placed) and ``unserved.csv``.

    Both name request and child ids: they are for the operator, as the export is.
    """
    import csv

    sessions = {s.id: s for s in instance.sessions}
    requests = {r.id: r for r in instance.requests}
    with open(out / "rosters.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["site", "session", "start", "request", "children", "priority"])
        rows = sorted(
            solution.assignments,
            key=lambda a: (sessions[a.session].site, sessions[a.session].start, a.session),
        )
        for a in rows:
            sess, req = sessions[a.session], requests[a.request]
            w.writerow(
                [sess.site, sess.id, sess.start.isoformat(), req.id, " ".join(req.children),
                 req.priority]
            )  # fmt: skip
    placed = {a.request for a in solution.assignments}
    with open(out / "unserved.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["request", "children", "priority", "first_preference", "preferences"])
        for req in instance.requests:
            if req.id not in placed:
                w.writerow(
                    [req.id, " ".join(req.children), req.priority, req.preferences[0],
                     len(req.preferences)]
                )  # fmt: skip


def _limits(limits: Sequence[SessionLimit], out: Path) -> str:
    """``sessions.csv`` (every session) and the table of sessions where a limit binds."""
    import csv

    with open(out / "sessions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["site", "session", "children", "capacity", "caregivers_needed",
                    "caregivers", "binds"])  # fmt: skip
        for x in limits:
            w.writerow([x.site, x.session, x.children, x.capacity, x.caregivers_needed,
                        x.caregivers, x.binds])  # fmt: skip
    bound = [x for x in limits if x.binds]
    counts = Counter(part for x in bound for part in x.binds.split(", "))
    said = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in sorted(counts.items())) or "none"
    rows = "".join(
        f"<tr><td class='l'>{_e(x.site)}</td><td class='l'>{_e(x.session)}</td>"
        f"<td>{_e(x.children)} / {_e(x.capacity)}</td>"
        f"<td>{_e(x.caregivers_needed)} / {_e(x.caregivers)}</td>"
        f"<td class='l'>{_e(x.binds)}</td></tr>"
        for x in bound
    )
    return (
        "<h2>Which limit binds, per session</h2>"
        f"<p>{_e(len(bound))} of {_e(len(limits))} sessions cannot take one more child "
        f"of some age group. Limits that bind ({said}); every session is in "
        "<code>sessions.csv</code>.</p>"
        "<table><tr><th class='l'>site</th><th class='l'>session</th><th>children / room</th>"
        f"<th>caregivers needed / available</th><th class='l'>binds</th></tr>{rows}</table>"
    )


def _against_fcfs(instance: Instance, solution: Solution) -> str:
    """The report's opening in plain words: child places against FCFS, by age group."""
    rep = fairness_report(instance, [(a.request, a.session) for a in solution.assignments])
    if not rep.fcfs_places:
        return "<p>The instance is infeasible: there is no first-come-first-served plan.</p>"
    total, base = sum(rep.places.values()), sum(rep.fcfs_places.values())
    order = "in priority order" if rep.priority_order else "in submission order"
    rows = "".join(
        f"<tr><td>{_e(g)}</td><td>{_e(rep.places[g])}</td><td>{_e(rep.fcfs_places[g])}</td>"
        f"<td>{_e(f'{rep.places[g] - rep.fcfs_places[g]:+d}')}</td></tr>"
        for g in rep.groups
    )
    warn = ""
    if rep.below_fcfs:
        warn = (
            "<p class='warn'><b>Warning:</b> this plan serves fewer child places than first "
            f"come, first served in: {_e(', '.join(rep.below_fcfs))}. Switch on "
            '<code>"group_floor": "fcfs"</code> (FORMAT §4) to rule it out.</p>'
        )
    return (
        "<h2>Against first come, first served</h2>"
        f"<p>This plan gives {_e(total)} child places; first come, first served ({order}) "
        f"would give {_e(base)} ({_e(f'{total - base:+d}')}). Families losing a place they "
        f"wanted to a family of lower priority: {_e(rep.envy_pairs)} cases.</p>"
        f"{warn}<table><tr><th>age group</th><th>this plan</th><th>first come, first served"
        f"</th><th>difference</th></tr>{rows}</table>"
    )


def write_report(
    instance: Instance,
    solution: Solution,
    out_dir: str | os.PathLike[str],
    *,
    recommendations: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write ``out_dir/index.html`` and its PNG plots; returns the HTML path.

    Parameters
    ----------
    instance, solution
        The instance and a valid solution of it.
    out_dir
        Folder to write into (created if missing).
    recommendations
        Capacity-planning recommendations (``slotalloc plan --json`` rows) to list.

    Raises
    ------
    ImportError
        When matplotlib (the ``report`` extra) is not installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = {r.id: len(r.children) for r in instance.requests}
    taken: Counter[str] = Counter()
    for a in solution.assignments:
        taken[a.session] += size[a.request]
    fair = audit(instance, solution.assignments)
    summ = summarise(instance, solution.assignments)
    _write_csvs(instance, solution, out)

    from matplotlib import rc_context

    # Labels are ids and names, never TeX: a "$" in an id must not be parsed as mathtext.
    with rc_context({"text.parse_math": False, "text.usetex": False}):
        _heatmap(instance, taken, out / "fill_heatmap.png")
        _utilisation(instance, taken, out / "utilisation.png")
        _unmet(fair.dimension("district"), out / "unmet_by_district.png")
        _ranks(fair.overall, out / "ranks.png")

    title = _e(instance.name or "allocation")
    served_pct = 100 * summ.children_served / max(1, summ.children_requesting)
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>slotalloc report: {title}</h1>",
        f"<div class='kpi'>status<b>{_e(solution.status.value)}</b></div>",
        f"<div class='kpi'>score<b>{_e(solution.score)}</b></div>",
        f"<div class='kpi'>bound<b>{_e(solution.bound if solution.bound is not None else '-')}"
        "</b></div>",
        f"<div class='kpi'>children served<b>{_e(summ.children_served)} / "
        f"{_e(summ.children_requesting)} ({_e(f'{served_pct:.1f}')}%)</b></div>",
        f"<div class='kpi'>requests placed<b>{_e(summ.requests_served)} / "
        f"{_e(summ.requests)}</b></div>",
        _against_fcfs(instance, solution),
        _limits(binding_limits(instance, solution), out),
        "<h2>Fill by site and session</h2><img src='fill_heatmap.png' alt='fill heatmap'>",
        "<h2>Morning vs afternoon utilisation</h2><img src='utilisation.png' alt='utilisation'>",
        "<h2>Unmet demand by district</h2><img src='unmet_by_district.png' alt='unmet demand'>",
        "<h2>Preference ranks</h2><img src='ranks.png' alt='preference ranks'>",
        "<h2>Fairness</h2>",
        "<p>The service is universal: residency must not change outcomes. Age groups differ "
        "in caregiver ratio (1:3 infants, 1:5 toddlers, 1:7 older children).</p>",
        _fairness_table([fair.overall], "Overall"),
        _fairness_table(fair.dimension("residency"), "By residency"),
        _fairness_table(fair.dimension("age_group"), "By age group"),
        _fairness_table(fair.dimension("district"), "By district"),
        "<h2>Capacity planning: top recommendations</h2>",
    ]
    if recommendations:
        parts.append(
            "<table><tr><th class='l'>action</th><th class='l'>session</th>"
            "<th class='l'>detail</th><th>+children</th><th>+score</th></tr>"
        )
        for rec in recommendations:
            detail = ", ".join(
                f"{k}={v}" for k, v in rec.items() if k not in {"action", "session", "gain"}
            )
            gain = rec.get("gain")
            if not isinstance(gain, dict):
                gain = {}
            parts.append(
                f"<tr><td class='l'>{_e(rec.get('action'))}</td>"
                f"<td class='l'>{_e(rec.get('session'))}</td>"
                f"<td class='l'>{_e(detail)}</td>"
                f"<td>{_e(gain.get('children', ''))}</td><td>{_e(gain.get('score', ''))}</td>"
                "</tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>No recommendations were computed for this report.</p>")
    parts.append("</body></html>\n")
    index = out / "index.html"
    write_json_atomic(index, "".join(parts))  # any text: no half-written page is left
    return index
