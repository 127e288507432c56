"""The operator page at ``/``: live fill, waitlists, caregivers, the last rebalance.

Server-rendered HTML (no script, no external asset: the city's network is
closed), installed on the booking app by :func:`install` and rendered by
:mod:`slotalloc.service.operator_view`. Every value taken from the state is
escaped with :func:`html.escape`.

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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import Request as HTTPRequest
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from slotalloc.service.auth import bearer_token
from slotalloc.service.operator_view import HEADERS, login_page, refused_page, render_page

if TYPE_CHECKING:
    from fastapi import FastAPI

    from slotalloc.service.auth import AuthConfig, Principal
    from slotalloc.service.durable import DurableAllocator

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

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_FORM_TYPE = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store"}


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


# ---------------------------------------------------------------- routes


def _html(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={**HEADERS, **(headers or {})})


class _Page:
    """The page's route handlers, with what they share: the store, the cookie, the state."""

    def __init__(
        self,
        allocator: DurableAllocator,
        auth: AuthConfig,
        sessions: OperatorSessions,
        *,
        secure: bool,
        refresh: int,
    ) -> None:
        self.allocator = allocator
        self.auth = auth
        self.sessions = sessions
        self.secure = secure
        # The __Host- prefix makes browsers refuse the cookie unless it is Secure, Path=/ and
        # host-only, so another subdomain cannot plant or shadow it.
        self.cookie = f"__Host-{COOKIE_NAME}" if secure else COOKIE_NAME
        self.refresh = refresh

    def _who(self, request: HTTPRequest) -> tuple[Principal | None, bool, bool]:
        """(principal, came by cookie, a booking token was shown)."""
        bearer = self.auth.authenticate(bearer_token(request.headers.get("authorization")))
        if bearer is not None and bearer.is_operator:
            return bearer, False, False
        by_cookie = self.sessions.lookup(request.cookies.get(self.cookie))
        if by_cookie is not None:
            return by_cookie, True, False
        return None, False, bearer is not None

    def _clear(self, response: Response) -> Response:
        response.delete_cookie(
            self.cookie, path="/", secure=self.secure, httponly=True, samesite="strict"
        )
        return response

    def page(self, request: HTTPRequest) -> Response:
        """``GET /``: the page, or the login form (401), or a refusal for a booking token (403)."""
        principal, by_cookie, booking = self._who(request)
        if principal is None:
            if booking:
                log.info("403 for a booking token on the operator page")
                return _html(refused_page(), 403)
            resp = _html(login_page(), 401, {"WWW-Authenticate": "Bearer"})
            return self._clear(resp) if self.cookie in request.cookies else resp
        allocator = self.allocator
        text = render_page(
            allocator.session_occupancies(),
            waitlist=len(allocator.waitlist()),
            rebalance=allocator.last_rebalance,
            who=principal.label,
            signed_in=by_cookie,
            head_seq=allocator.head[0],
            failure=allocator.failure,
            refresh=self.refresh,
        )
        return _html(text)

    async def login(self, request: HTTPRequest) -> Response:
        """``POST /login``: the form's token for a cookie (303 to ``/``), or the form again."""
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != _FORM_TYPE:
            return _html(login_page(f"the form must be sent as {_FORM_TYPE}"), 415)
        raw = await request.body()
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            return _html(login_page("the form could not be read"), 400)
        token = (fields.get("token") or [""])[0].strip()
        principal = self.auth.authenticate(token)
        if principal is None:
            log.info("401: operator page login with an unknown token")
            return _html(
                login_page("that token is not recognised"), 401, {"WWW-Authenticate": "Bearer"}
            )
        if not principal.is_operator:
            log.info("403: operator page login with %s", principal.label)
            return _html(refused_page(), 403)
        log.info("operator page login by %s", principal.label)
        resp = RedirectResponse("/", status_code=303, headers=_NO_STORE)
        resp.set_cookie(
            self.cookie,
            self.sessions.create(principal),
            max_age=int(self.sessions.ttl),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        return resp

    def login_form(self) -> Response:
        """``GET /login``: 303 to ``/``."""
        # A bookmarked or reloaded /login lands on the one page that decides what to show.
        return RedirectResponse("/", status_code=303)

    async def logout(self, request: HTTPRequest) -> Response:
        """``POST /logout``: the session closed, the cookie cleared, 303 to ``/``."""
        if self.sessions.drop(request.cookies.get(self.cookie)):
            log.info("operator page logout")
        resp = RedirectResponse("/", status_code=303, headers=_NO_STORE)
        return self._clear(resp)


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
    sessions = OperatorSessions(ttl=session_ttl)
    app.state.operator_sessions = sessions
    page = _Page(allocator, auth, sessions, secure=secure, refresh=max(0, int(refresh_seconds)))
    app.get("/", include_in_schema=False)(page.page)
    app.post("/login", include_in_schema=False)(page.login)
    app.get("/login", include_in_schema=False)(page.login_form)
    app.post("/logout", include_in_schema=False)(page.logout)
    return sessions
