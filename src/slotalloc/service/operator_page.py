"""The operator page at ``/``: live fill, waitlists, caregivers, the last rebalance.

Server-rendered HTML (no script, no external asset: the city's network is
closed), installed on the booking app by :func:`install`. Every value taken
from the state is escaped with :func:`html.escape`.

Access: an operator's bearer token (``Authorization: Bearer TOKEN``, for
``curl``) or the page's own session cookie, got by posting the token to the
login form (``POST /login``). The cookie holds a random session id signed with
a per-process HMAC key, never the token; sessions live in memory for
:data:`SESSION_TTL` seconds (a restart signs everybody out). It is
``HttpOnly``, ``SameSite=Strict`` and ``Path=/``, ``Secure`` when configured.
Only the page's routes read it: the JSON API keeps accepting bearer tokens
only, so a cross-site request can never act with an operator's cookie.

Machine-readable hooks (used by the tests, stable for scripts): each session
row is ``<tr data-session="ID">``; its cells carry ``data-field`` (``taken``,
``capacity``, ``caregivers_needed``, ``caregivers_available``, ``binds``,
``waiting``) and ``data-value`` (the exact figure: a pooled caregiver need is
a float shown rounded); each age group is ``<span data-group="NAME">`` with
``data-field`` ``group_taken`` and ``group_cap``. Totals are ``<tr
data-site-total="SITE">`` and ``<tr data-city-total>``; the last rebalance is
``<section data-rebalance="none|shown">``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import Request as HTTPRequest
from fastapi.responses import HTMLResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from fastapi import FastAPI

    from slotalloc.service.auth import AuthConfig, Principal
    from slotalloc.service.ledger import DurableAllocator, RebalanceOutcome

__all__ = [
    "COOKIE_NAME",
    "SECURE_COOKIE_ENV",
    "SESSION_TTL",
    "OperatorSessions",
    "install",
    "render_page",
]

log = logging.getLogger(__name__)

#: Name of the page's session cookie (``__Host-`` prefixed when ``Secure``).
COOKIE_NAME = "slotalloc_operator"
#: Environment variable turning on the cookie's ``Secure`` flag (``1``/``true``/``yes``/``on``).
SECURE_COOKIE_ENV = "SLOTALLOC_OPERATOR_SECURE_COOKIE"
#: Lifetime of a page session, in seconds, from its login (not extended by use).
SESSION_TTL = 12 * 3600.0
#: Page sessions kept at most; the oldest is signed out beyond this.
MAX_SESSIONS = 256
#: Rows shown per list of the rebalance diff (the counts are always whole).
MAX_DIFF_ROWS = 200

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FORM_TYPE = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------- sessions


class OperatorSessions:
    """The page's signed-in browsers: signed random ids, in memory, with an expiry.

    A cookie is ``ID.MAC`` where ``ID`` is 24 random bytes and ``MAC`` their
    HMAC-SHA256 under a key drawn at start: a forged or altered cookie is
    refused before any lookup, and the token never leaves the login request.

    Parameters
    ----------
    ttl
        Seconds a session lives after its login.
    max_sessions
        Sessions kept at most (the oldest goes first), so a stream of logins
        cannot grow memory without bound.
    clock
        Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        ttl: float = SESSION_TTL,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.ttl = ttl
        self._max = max_sessions
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._live: dict[str, tuple[Principal, float]] = {}  # insertion order = login order
        self._lock = threading.Lock()

    def _mac(self, sid: str) -> str:
        d = hmac.new(self._key, sid.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode("ascii")

    def create(self, principal: Principal) -> str:
        """Open a session for a principal.

        Returns
        -------
        str
            The cookie value.
        """
        sid = secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            self._purge(now)
            while len(self._live) >= self._max:
                del self._live[next(iter(self._live))]
            self._live[sid] = (principal, now + self.ttl)
        return f"{sid}.{self._mac(sid)}"

    def lookup(self, cookie: str | None) -> Principal | None:
        """The principal of a live session's cookie, or None (absent, forged, expired)."""
        sid = self._verified(cookie)
        if sid is None:
            return None
        now = self._clock()
        with self._lock:
            entry = self._live.get(sid)
            if entry is None:
                return None
            if entry[1] <= now:
                del self._live[sid]
                return None
            return entry[0]

    def drop(self, cookie: str | None) -> bool:
        """Close a session (logout); whether there was one."""
        sid = self._verified(cookie)
        if sid is None:
            return False
        with self._lock:
            return self._live.pop(sid, None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._live)

    def _verified(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200:
            return None
        sid, dot, mac = cookie.partition(".")
        if not dot or not sid.isascii() or not mac.isascii():
            return None
        if not hmac.compare_digest(mac.encode("ascii"), self._mac(sid).encode("ascii")):
            return None
        return sid

    def _purge(self, now: float) -> None:
        for sid in [s for s, (_p, exp) in self._live.items() if exp <= now]:
            del self._live[sid]


def _secure_from_env() -> bool:
    raw = os.environ.get(SECURE_COOKIE_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{SECURE_COOKIE_ENV} must be 1/true/yes/on or 0/false/no/off")


# ---------------------------------------------------------------- formatting


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
_HEADERS = {
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


def _login_page(message: str = "") -> str:
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
        :meth:`slotalloc.service.ledger.DurableAllocator.session_occupancies`, in instance order.
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


# ---------------------------------------------------------------- routes


def _bearer(request: HTTPRequest) -> str | None:
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _html(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={**_HEADERS, **(headers or {})})


def _refused_page() -> str:
    return _document(
        "slotalloc: operators only",
        "<h1>Operators only</h1><p>This page needs an operator token; a booking token "
        'is not enough.</p><p><a href="/">Sign in with another token</a></p>',
    )


def install(
    app: FastAPI,
    allocator: DurableAllocator,
    auth: AuthConfig,
    *,
    secure_cookie: bool | None = None,
    session_ttl: float = SESSION_TTL,
    refresh_seconds: int = 30,
) -> OperatorSessions:
    """Add the operator page's routes to the booking app.

    ``GET /`` (the page; 401 with the login form without an operator
    credential, 403 with a booking token), ``GET /login`` (303 to ``/``),
    ``POST /login`` (form field
    ``token``; 303 to ``/`` with the cookie set, 401 form for an unknown token,
    403 for a booking token, 415 for a body that is not a form), ``POST
    /logout`` (303 to ``/``, cookie cleared). None of them appears in the
    OpenAPI schema.

    Parameters
    ----------
    app
        From :func:`slotalloc.service.server.create_app`; its ``state.operator_sessions``
        is set to the session store.
    allocator
        The engine read by the page.
    auth
        The tokens accepted at login and in a bearer header.
    secure_cookie
        Mark the cookie ``Secure`` (and name it ``__Host-...``), for a service
        reached over HTTPS; None reads :data:`SECURE_COOKIE_ENV` (default off:
        browsers drop a ``Secure`` cookie over plain HTTP, even on localhost
        in some of them).
    session_ttl
        Seconds a login lasts.
    refresh_seconds
        The page reloads itself this often (a ``<meta>`` refresh, no script);
        0 turns it off.

    Returns
    -------
    OperatorSessions
        The session store.

    Raises
    ------
    ValueError
        :data:`SECURE_COOKIE_ENV` holds something other than a yes or a no,
        or ``session_ttl`` is not positive.
    """
    secure = _secure_from_env() if secure_cookie is None else secure_cookie
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure, Path=/ and
    # host-only, so another subdomain cannot plant or shadow it.
    name = f"__Host-{COOKIE_NAME}" if secure else COOKIE_NAME
    sessions = OperatorSessions(ttl=session_ttl)
    app.state.operator_sessions = sessions
    refresh = max(0, int(refresh_seconds))

    def _who(request: HTTPRequest) -> tuple[Principal | None, bool, bool]:
        """(principal, came by cookie, a booking token was shown)."""
        bearer = auth.authenticate(_bearer(request))
        if bearer is not None and bearer.is_operator:
            return bearer, False, False
        by_cookie = sessions.lookup(request.cookies.get(name))
        if by_cookie is not None:
            return by_cookie, True, False
        return None, False, bearer is not None

    def _clear(response: Response) -> Response:
        response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="strict")
        return response

    @app.get("/", include_in_schema=False)
    def page(request: HTTPRequest) -> Response:
        principal, by_cookie, booking = _who(request)
        if principal is None:
            if booking:
                log.info("403 for a booking token on the operator page")
                return _html(_refused_page(), 403)
            resp = _html(_login_page(), 401, {"WWW-Authenticate": "Bearer"})
            return _clear(resp) if name in request.cookies else resp
        text = render_page(
            allocator.session_occupancies(),
            waitlist=len(allocator.waitlist()),
            rebalance=allocator.last_rebalance,
            who=principal.label,
            signed_in=by_cookie,
            head_seq=allocator.head[0],
            failure=allocator.failure,
            refresh=refresh,
        )
        return _html(text)

    @app.post("/login", include_in_schema=False)
    async def login(request: HTTPRequest) -> Response:
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != _FORM_TYPE:
            return _html(_login_page(f"the form must be sent as {_FORM_TYPE}"), 415)
        raw = await request.body()
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            return _html(_login_page("the form could not be read"), 400)
        token = (fields.get("token") or [""])[0].strip()
        principal = auth.authenticate(token)
        if principal is None:
            log.info("401: operator page login with an unknown token")
            return _html(
                _login_page("that token is not recognised"), 401, {"WWW-Authenticate": "Bearer"}
            )
        if not principal.is_operator:
            log.info("403: operator page login with %s", principal.label)
            return _html(_refused_page(), 403)
        log.info("operator page login by %s", principal.label)
        resp = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        resp.set_cookie(
            name,
            sessions.create(principal),
            max_age=int(sessions.ttl),
            path="/",
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        return resp

    @app.get("/login", include_in_schema=False)
    def login_form() -> Response:
        # A bookmarked or reloaded /login lands on the one page that decides what to show.
        return RedirectResponse("/", status_code=303)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: HTTPRequest) -> Response:
        if sessions.drop(request.cookies.get(name)):
            log.info("operator page logout")
        resp = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        return _clear(resp)

    return sessions
