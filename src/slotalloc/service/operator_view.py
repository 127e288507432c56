"""The operator page's HTML: sessions by site and half-day, totals, the last rebalance.

Server-rendered, with no script and no external asset; every value taken from
the state is escaped with :func:`html.escape`. The ``data-*`` hooks are
described in :mod:`slotalloc.service.operator_page`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slotalloc.service.rebalance import RebalanceOutcome

__all__ = ["HEADERS", "MAX_DIFF_ROWS", "login_page", "refused_page", "render_page"]

#: Rows shown per list of the rebalance diff (the counts are always whole).
MAX_DIFF_ROWS = 200

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any) -> str:
    """A figure for reading: a pooled (fractional) caregiver need to two decimals."""
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _exact(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _cell(field: str, value: Any, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<td data-field="{field}" data-value="{_e(_exact(value))}"{klass}>{_e(_num(value))}</td>'
    )


def _start(occ: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(occ.get("start", "")))
    except ValueError:
        return None


def _half(occ: Mapping[str, Any]) -> str:
    """``morning`` when the session starts before 12:00 in its own (local) time."""
    dt = _start(occ)
    if dt is None:
        return "other"
    return "morning" if dt.hour < 12 else "afternoon"


def _when(occ: Mapping[str, Any]) -> str:
    a = _start(occ)
    try:
        b: datetime | None = datetime.fromisoformat(str(occ.get("end", "")))
    except ValueError:
        b = None
    if a is None:
        return str(occ.get("start", "")) or "?"
    out = f"{_WEEKDAYS[a.weekday()]} {a:%Y-%m-%d %H:%M}"
    if b is not None:
        out += f"–{b:%H:%M}" if b.date() == a.date() else f"–{b:%Y-%m-%d %H:%M}"
    return out


def _binds(occ: Mapping[str, Any]) -> str:
    """``short`` (more caregivers needed than there are), ``binds`` (no slack) or ``""``.

    At equality the next child of a group whose count is a multiple of its
    ratio (any child, when pooled) needs one more caregiver than the session
    has: the caregivers, not the room, are what stops it.
    """
    need, have = occ["caregivers_needed"], occ["caregivers_available"]
    if need > have:
        return "short"
    if need >= have:
        return "binds"
    return ""


_CSS = """
body{font:14px/1.35 system-ui,sans-serif;margin:1em 2em;color:#111;background:#fff}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 .8em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:top}
th{background:#f0f0f0}td.id,th.id,td.when,td.groups{text-align:left}td.id,td.when{white-space:nowrap}
tbody th.half{text-align:left;background:#e8eef6}
tr.binds td{background:#fff4d6}tr.short td{background:#fbd9d9}
tr.full td[data-field=taken]{font-weight:bold}
.at-cap{font-weight:bold}.group{white-space:nowrap;margin-right:.8em}
tfoot td,tr.total td{font-weight:bold;background:#f7f7f7}
.meta{color:#555}.warn{background:#fbd9d9;padding:.4em;border:1px solid #c33}
nav a{margin-right:.6em}form.inline{display:inline}
meter{width:6em}
"""
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
#: Nothing may load or run but the one inline stylesheet; forms post only here.
_CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: Headers of every page: nothing loads from elsewhere, nothing is cached or framed.
HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _document(title: str, body: str, refresh: int = 0) -> str:
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh > 0 else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{meta}<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def login_page(message: str = "") -> str:
    note = f'<p class="warn" data-login-error>{_e(message)}</p>' if message else ""
    body = (
        "<h1>slotalloc operator page</h1>"
        f"{note}"
        '<form method="post" action="/login" data-login>'
        '<label for="token">Operator token</label> '
        '<input type="password" id="token" name="token" autocomplete="current-password" '
        'required autofocus> <button type="submit">Sign in</button></form>'
        '<p class="meta">The token is in the service\'s auth file (<code>operator</code>).</p>'
    )
    return _document("slotalloc: sign in", body)


def _groups_cell(groups: Iterable[Mapping[str, Any]]) -> str:
    parts = []
    for g in groups:
        at_cap = " at-cap" if g["taken"] >= g["cap"] else ""
        parts.append(
            f'<span class="group{at_cap}" data-group="{_e(g["group"])}">{_e(g["group"])} '
            f'<span data-field="group_taken" data-value="{_e(g["taken"])}">{_e(g["taken"])}</span>'
            f'/<span data-field="group_cap" data-value="{_e(g["cap"])}">{_e(g["cap"])}</span>'
            "</span>"
        )
    return f'<td class="groups">{"".join(parts)}</td>'


def _session_row(occ: Mapping[str, Any]) -> str:
    flag = _binds(occ)
    classes = [c for c in (flag, "full" if occ["taken"] >= occ["capacity"] else "") if c]
    klass = f' class="{" ".join(classes)}"' if classes else ""
    cap = max(int(occ["capacity"]), 1)
    return (
        f'<tr data-session="{_e(occ["session"])}"{klass}>'
        f'<td class="id">{_e(occ["session"])}</td>'
        f'<td class="when">{_e(_when(occ))}</td>'
        + _cell("taken", occ["taken"])
        + _cell("capacity", occ["capacity"])
        + f'<td><meter min="0" max="{cap}" value="{_e(occ["taken"])}"></meter></td>'
        + _cell("caregivers_needed", occ["caregivers_needed"])
        + _cell("caregivers_available", occ["caregivers_available"])
        + f'<td data-field="binds" data-value="{flag}">{flag}</td>'
        + _groups_cell(occ.get("groups", ()))
        + _cell("waiting", occ.get("waiting", 0))
        + "</tr>"
    )


_HALVES = (("morning", "Morning"), ("afternoon", "Afternoon"), ("other", "Start time unknown"))
_COLUMNS = (
    '<tr><th class="id">Session</th><th class="id">When</th><th>Taken</th><th>Capacity</th>'
    "<th>Fill</th><th>Caregivers needed</th><th>Caregivers available</th><th>Staff</th>"
    '<th class="id">Age groups (taken/cap)</th><th>Waiting</th></tr>'
)
_NCOLS = 10


def _totals(occs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {
        "taken": sum(int(o["taken"]) for o in occs),
        "capacity": sum(int(o["capacity"]) for o in occs),
        "waiting": sum(int(o.get("waiting", 0)) for o in occs),
        "sessions": len(occs),
        "binding": sum(1 for o in occs if _binds(o)),
    }


def _total_cells(t: Mapping[str, int]) -> str:
    return "".join(_cell(k, t[k]) for k in ("taken", "capacity", "waiting", "sessions", "binding"))


def _site_section(index: int, site: str, occs: Sequence[Mapping[str, Any]]) -> str:
    bodies = []
    for key, title in _HALVES:
        rows = [o for o in occs if _half(o) == key]
        if not rows and key == "other":
            continue
        rows.sort(key=lambda o: str(o.get("start", "")))
        inner = "".join(_session_row(o) for o in rows) or (
            f'<tr><td colspan="{_NCOLS}" class="id meta">no session</td></tr>'
        )
        bodies.append(
            f'<tbody data-half="{key}"><tr><th class="half" colspan="{_NCOLS}">{title}</th></tr>'
            f"{inner}</tbody>"
        )
    t = _totals(occs)
    return (
        f'<section id="s{index}" data-site="{_e(site)}"><h2>{_e(site)}</h2>'
        f"<table><thead>{_COLUMNS}</thead>{''.join(bodies)}</table>"
        '<table><tr><th class="id">Site total</th><th>Taken</th><th>Capacity</th>'
        "<th>Waiting</th><th>Sessions</th><th>Caregivers binding</th></tr>"
        f'<tr class="total" data-site-total="{_e(site)}"><td class="id">{_e(site)}</td>'
        f"{_total_cells(t)}</tr></table></section>"
    )


def _diff_table(kind: str, heads: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return ""
    shown = rows[:MAX_DIFF_ROWS]
    head = "".join(f'<th class="id">{_e(h)}</th>' for h in heads)
    body = "".join(
        f'<tr data-{kind}="{_e(r[0])}">'
        + "".join(f'<td class="id">{_e(v)}</td>' for v in r)
        + "</tr>"
        for r in shown
    )
    more = (
        f'<p class="meta">… and {len(rows) - len(shown)} more</p>' if len(rows) > len(shown) else ""
    )
    return f"<h3>{_e(kind.capitalize())}</h3><table><tr>{head}</tr>{body}</table>{more}"


def _rebalance_section(out: RebalanceOutcome | None) -> str:
    if out is None:
        return (
            '<section data-rebalance="none"><h2>Last rebalance</h2>'
            "<p>no rebalance since start</p></section>"
        )
    counts = {
        "moved": len(out.moved),
        "dropped": len(out.dropped),
        "placed": len(out.placed),
        "promoted": len(out.promoted),
        "kept": out.kept,
    }
    summary = "".join(f"<th>{_e(k)}</th>" for k in counts)
    values = "".join(_cell(k, v) for k, v in counts.items())
    seq = "none (nothing changed)" if out.seq is None else str(out.seq)
    stats = "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(_num(v))}</dd>"
        for k, v in list(dict(out.stats).items())[:40]
        if isinstance(v, str | int | float | bool) or v is None
    )
    return (
        '<section data-rebalance="shown"><h2>Last rebalance</h2>'
        f'<p class="meta">ledger row {_e(seq)}</p>'
        f'<table><tr>{summary}</tr><tr data-rebalance-counts="">{values}</tr></table>'
        + _diff_table("moved", ("request", "from", "to"), out.moved)
        + _diff_table("dropped", ("request", "from"), out.dropped)
        + _diff_table("placed", ("request", "session"), out.placed)
        + _diff_table("promoted", ("request", "session"), [tuple(p) for p in out.promoted])
        + (f"<details><summary>solver figures</summary><dl>{stats}</dl></details>" if stats else "")
        + "</section>"
    )


def render_page(
    occupancies: Sequence[Mapping[str, Any]],
    *,
    waitlist: int,
    rebalance: RebalanceOutcome | None,
    who: str,
    signed_in: bool,
    head_seq: int,
    failure: str | None = None,
    refresh: int = 0,
) -> str:
    """The operator page's HTML.

    Parameters
    ----------
    occupancies
        :meth:`~slotalloc.service.durable.DurableAllocator.session_occupancies`, in instance order.
    waitlist
        Requests on the waitlist (each counted once, unlike the per-session sums).
    rebalance
        The last rebalance since start, or None.
    who
        The principal's label (``operator#0``): never a token.
    signed_in
        Whether the caller came with the page's cookie (then a logout button is shown).
    head_seq
        The ledger's last committed row.
    failure
        Why the allocator refuses operations, or None.
    refresh
        Seconds between automatic reloads; 0 for none.

    Returns
    -------
    str
        A whole HTML document; holders' request ids and children's data are not in it.
    """
    sites: dict[str, list[Mapping[str, Any]]] = {}
    for occ in occupancies:
        sites.setdefault(str(occ.get("site", "")), []).append(occ)
    city = _totals(occupancies)
    logout = (
        '<form class="inline" method="post" action="/logout">'
        '<button type="submit">Sign out</button></form>'
        if signed_in
        else ""
    )
    warn = (
        f'<p class="warn" data-failure>The ledger is unusable: {_e(failure)}</p>' if failure else ""
    )
    nav = "".join(f'<a href="#s{i}">{_e(s)}</a>' for i, s in enumerate(sites))
    body = (
        "<h1>slotalloc: live fill</h1>"
        f'<div class="meta">Signed in as {_e(who)} {logout} · ledger row {_e(head_seq)} · '
        f"{_e(time.strftime('%Y-%m-%d %H:%M:%S %z'))}"
        + (f" · reloads every {int(refresh)} s" if refresh > 0 else "")
        + "</div>"
        + warn
        + '<table><tr><th class="id">City</th><th>Taken</th><th>Capacity</th>'
        "<th>Waiting (sum over sessions)</th><th>Sessions</th><th>Caregivers binding</th>"
        "<th>Requests on the waitlist</th></tr>"
        f'<tr class="total" data-city-total=""><td class="id">all {len(sites)} sites</td>'
        f"{_total_cells(city)}{_cell('waitlist', waitlist)}</tr></table>"
        '<p class="meta">A request waiting for several sessions counts in each. '
        "Staff: <strong>binds</strong> = every caregiver is needed, "
        "<strong>short</strong> = more are needed than there are.</p>"
        + _rebalance_section(rebalance)
        + (f"<nav>{nav}</nav>" if nav else "")
        + "".join(_site_section(i, s, occs) for i, (s, occs) in enumerate(sites.items()))
    )
    return _document("slotalloc: operator page", body, refresh)


def refused_page() -> str:
    return _document(
        "slotalloc: operators only",
        "<h1>Operators only</h1><p>This page needs an operator token; a booking token "
        'is not enough.</p><p><a href="/">Sign in with another token</a></p>',
    )
