"""The operator page at ``/``: access, the login cookie, escaping, figures, and a real browser."""

from __future__ import annotations

import json
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx
from fastapi.testclient import TestClient

import service_fixtures
from service_fixtures import AUTH, BK, BOOKING, DATA, OP, OPERATOR, events, live_server
from slotalloc.models import Instance
from slotalloc.service.ledger import DurableAllocator
from slotalloc.service.operator_page import COOKIE_NAME, OperatorSessions
from slotalloc.service.server import create_app

NASTY = "XI-000/<b>&\"am'</b>"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# ---------------------------------------------------------------- fixtures and helpers

alloc = service_fixtures.alloc
client = service_fixtures.client


def replay_events(http: Any) -> None:
    """Send tests/data/sample-events.jsonl as bookings and cancellations (operator)."""
    for ev in events():
        op = ev.pop("op", None) if isinstance(ev, dict) else None
        if op == "cancel" and isinstance(ev.get("request"), str) and len(ev) == 1:
            r = http.delete(f"/bookings/{ev['request']}", headers=OP)
        else:
            r = http.post("/bookings", json=ev, headers=OP)
        assert r.status_code in (200, 201, 404, 409, 422), r.text


def login(c: TestClient, token: str = OPERATOR) -> httpx.Response:
    return c.post(
        "/login",
        content=f"token={token}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


class PageFigures(HTMLParser):
    """The figures of the page's ``data-*`` hooks (see :mod:`slotalloc.service.operator_page`)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.site_of: dict[str, str] = {}
        self.half_of: dict[str, str] = {}
        self.site_totals: dict[str, dict[str, Any]] = {}
        self.city: dict[str, Any] = {}
        self.rebalance: str | None = None
        self.counts: dict[str, Any] = {}
        self.diff: dict[str, list[list[str]]] = {}
        self._row: dict[str, Any] | None = None
        self._diff_row: list[str] | None = None
        self._cell = False
        self._site = ""
        self._half = ""
        self._group: str | None = None
        self._spans = 0  # open <span> elements
        self._group_at = 0  # the depth at which the current group's <span> opened

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and "data-site" in a:
            self._site = a["data-site"]
        if tag == "section" and "data-rebalance" in a:
            self.rebalance = a["data-rebalance"]
        if tag == "tbody" and "data-half" in a:
            self._half = a["data-half"]
        if tag == "tr":
            if "data-session" in a:
                sid = a["data-session"]
                self._row = self.sessions[sid] = {"groups": {}}
                self.site_of[sid], self.half_of[sid] = self._site, self._half
            elif "data-site-total" in a:
                self._row = self.site_totals[a["data-site-total"]] = {}
            elif "data-city-total" in a:
                self._row = self.city
            elif "data-rebalance-counts" in a:
                self._row = self.counts
            else:
                for kind in ("moved", "dropped", "placed", "promoted"):
                    if f"data-{kind}" in a:
                        self._diff_row = []
                        self.diff.setdefault(kind, []).append(self._diff_row)
        if tag == "span":
            self._spans += 1
            if "data-group" in a and self._row is not None:
                self._group, self._group_at = a["data-group"], self._spans
                self._row["groups"][self._group] = {}
        field = a.get("data-field")
        if field and self._row is not None:
            if self._group is not None:
                self._row["groups"][self._group][field[len("group_") :]] = number(a["data-value"])
            elif field == "binds":
                self._row[field] = a["data-value"]
            else:
                self._row[field] = number(a["data-value"])
        if tag == "td" and self._diff_row is not None:
            self._cell = True
            self._diff_row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = self._diff_row = None
        elif tag == "td":
            self._cell = False
        elif tag == "span":
            if self._spans == self._group_at:
                self._group = None
            self._spans -= 1
        elif tag == "section":
            self._site = ""

    def handle_data(self, data: str) -> None:
        if self._cell and self._diff_row is not None:
            self._diff_row[-1] += data


def figures(html_text: str) -> PageFigures:
    p = PageFigures()
    p.feed(html_text)
    p.close()
    return p


def half_of(start: str) -> str:
    return "morning" if datetime.fromisoformat(start).hour < 12 else "afternoon"


def expected_figures(sessions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        s["session"]: {
            "taken": s["taken"],
            "capacity": s["capacity"],
            "caregivers_needed": s["caregivers_needed"],
            "caregivers_available": s["caregivers_available"],
            "waiting": s["waiting"],
            "binds": (
                "short"
                if s["caregivers_needed"] > s["caregivers_available"]
                else "binds"
                if s["caregivers_needed"] >= s["caregivers_available"]
                else ""
            ),
            "groups": {g["group"]: {"taken": g["taken"], "cap": g["cap"]} for g in s["groups"]},
        }
        for s in sessions
    }


def assert_page_matches(page: PageFigures, sessions: list[dict[str, Any]], waitlist: int) -> None:
    """Every figure of the page equals the JSON API's ``GET /sessions``."""
    assert page.sessions == expected_figures(sessions)
    for s in sessions:
        assert page.site_of[s["session"]] == s["site"]
        assert page.half_of[s["session"]] == half_of(s["start"])
    sites: dict[str, list[dict[str, Any]]] = {}
    for s in sessions:
        sites.setdefault(s["site"], []).append(s)
    for site, rows in sites.items():
        t = page.site_totals[site]
        assert t["taken"] == sum(r["taken"] for r in rows)
        assert t["capacity"] == sum(r["capacity"] for r in rows)
        assert t["waiting"] == sum(r["waiting"] for r in rows)
        assert t["sessions"] == len(rows)
    assert set(page.site_totals) == set(sites)
    assert page.city["taken"] == sum(s["taken"] for s in sessions)
    assert page.city["capacity"] == sum(s["capacity"] for s in sessions)
    assert page.city["waiting"] == sum(s["waiting"] for s in sessions)
    assert page.city["sessions"] == len(sessions)
    assert page.city["waitlist"] == waitlist


def assert_diff_matches(page: PageFigures, reply: dict[str, Any]) -> None:
    """The page's rebalance section equals the ``POST /rebalance`` reply."""
    assert page.rebalance == "shown"
    assert page.counts == {
        "moved": len(reply["moved"]),
        "dropped": len(reply["dropped"]),
        "placed": len(reply["placed"]),
        "promoted": len(reply["promoted"]),
        "kept": reply["kept"],
    }
    assert page.diff.get("moved", []) == [
        [m["request"], m["from"], m["to"]] for m in reply["moved"]
    ]
    assert page.diff.get("dropped", []) == [[d["request"], d["from"]] for d in reply["dropped"]]
    assert page.diff.get("placed", []) == [[p["request"], p["session"]] for p in reply["placed"]]
    assert page.diff.get("promoted", []) == [
        [p["request"], p["session"]] for p in reply["promoted"]
    ]


# ---------------------------------------------------------------- access


def test_the_page_needs_an_operator(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/login"' in r.text and 'name="token"' in r.text
    assert "data-session" not in r.text
    r = client.get("/", headers={"Authorization": "Bearer not-a-valid-token-at-all-000"})
    assert r.status_code == 401 and "data-session" not in r.text
    r = client.get("/", headers=BK)
    assert r.status_code == 403 and "data-session" not in r.text
    r = client.get("/", headers=OP)
    assert r.status_code == 200 and "data-session" in r.text and "data-city-total" in r.text
    assert "Sign out" not in r.text  # a bearer caller has no page session to close
    for resp in (r, client.get("/")):
        assert resp.headers["cache-control"] == "no-store"
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "<script" not in resp.text and "http://" not in resp.text
    assert "/" not in client.get("/openapi.json", headers=OP).json()["paths"]


def test_login_sets_a_signed_session_cookie_and_logout_clears_it(client: TestClient) -> None:
    back = client.get("/login", follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == "/"
    assert login(client, "not-a-valid-token-at-all-000").status_code == 401
    refused = login(client, BOOKING)
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    r = login(client)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    value = r.cookies[COOKIE_NAME]
    assert OPERATOR not in cookie and OPERATOR not in value
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "path", "samesite", "max-age"} <= attrs and "secure" not in attrs
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    page = client.get("/")
    assert page.status_code == 200 and "data-session" in page.text and "Sign out" in page.text
    assert "operator#0" in page.text
    # An altered cookie is refused (the MAC no longer matches).
    sid, _, mac = value.partition(".")
    client.cookies.set(COOKIE_NAME, f"{sid}.{mac[::-1]}")
    assert client.get("/").status_code == 401
    client.cookies.set(COOKIE_NAME, value)
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/"
    assert "max-age=0" in out.headers["set-cookie"].lower()
    # The session is gone server-side: replaying the old cookie does not work.
    client.cookies.set(COOKIE_NAME, value)
    assert client.get("/").status_code == 401


def test_login_form_bodies(client: TestClient) -> None:
    as_json = client.post("/login", json={"token": OPERATOR}, follow_redirects=False)
    assert as_json.status_code == 415 and "set-cookie" not in as_json.headers
    bad = client.post(
        "/login",
        content=b"token=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert bad.status_code == 400
    many = "&".join(f"f{i}=x" for i in range(50)) + f"&token={OPERATOR}"
    r = client.post(
        "/login",
        content=many.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        follow_redirects=False,
    )
    assert r.status_code == 400
    ok = client.post("/login", data={"token": OPERATOR, "x": "1"}, follow_redirects=False)
    assert ok.status_code == 303
    huge = client.post(
        "/login",
        content=b"token=" + b"x" * (70 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert huge.status_code == 413  # the app's body limit covers the form too


def test_the_cookie_is_not_accepted_by_the_json_api(
    client: TestClient, alloc: DurableAllocator
) -> None:
    assert login(client).status_code == 303
    assert client.get("/").status_code == 200
    assert client.get("/sessions").status_code == 401
    assert client.get("/export").status_code == 401
    assert client.post("/rebalance").status_code == 401
    body = json.loads((DATA / "sample-events.jsonl").read_text().splitlines()[0])
    body.pop("op")
    head = alloc.head
    assert client.post("/bookings", json=body).status_code == 401
    assert client.delete("/bookings/q000000").status_code == 401
    assert alloc.head == head


def test_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    store = OperatorSessions(ttl=60, max_sessions=3, clock=lambda: now[0])
    p = AUTH.authenticate(OPERATOR)
    assert p is not None
    first = store.create(p)
    assert store.lookup(first) == p
    assert store.lookup(first + "x") is None and store.lookup("") is None
    assert store.lookup("no-dot") is None and store.lookup("é.é") is None
    now[0] += 61
    assert store.lookup(first) is None
    cookies = [store.create(p) for _ in range(5)]
    assert len(store) == 3
    assert store.lookup(cookies[0]) is None and store.lookup(cookies[-1]) == p
    assert store.drop(cookies[-1]) and not store.drop(cookies[-1])
    with pytest.raises(ValueError):
        OperatorSessions(ttl=0)


def test_secure_cookie_is_configurable(
    alloc: DurableAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTALLOC_OPERATOR_SECURE_COOKIE", "1")
    with TestClient(create_app(alloc, AUTH), base_url="https://testserver") as c:
        r = login(c)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"__Host-{COOKIE_NAME}=") and "secure" in cookie.lower()
        assert c.get("/").status_code == 200
    monkeypatch.setenv("SLOTALLOC_OPERATOR_SECURE_COOKIE", "perhaps")
    with pytest.raises(ValueError, match="SLOTALLOC_OPERATOR_SECURE_COOKIE"):
        create_app(alloc, AUTH)


# ---------------------------------------------------------------- content


def test_session_ids_are_escaped(tmp_path: Path) -> None:
    data = json.loads((DATA / "sample-events.json").read_text())
    old = data["sessions"][0]["id"]
    text = json.dumps(data).replace(json.dumps(old), json.dumps(NASTY))
    inst = Instance.model_validate(json.loads(text))
    assert inst.sessions[0].id == NASTY
    da = DurableAllocator(inst, tmp_path / "nasty.db")
    try:
        with TestClient(create_app(da, AUTH), headers=OP) as c:
            r = c.get("/")
            assert r.status_code == 200
            assert NASTY not in r.text and "<b>" not in r.text
            assert 'data-session="XI-000/&lt;b&gt;&amp;&quot;am&#x27;&lt;/b&gt;"' in r.text
            page = figures(r.text)
            assert NASTY in page.sessions  # the parser unescapes it back: the same id
            assert_page_matches(page, c.get("/sessions").json()["sessions"], len(da.waitlist()))
    finally:
        da.close()


def test_no_personal_data_on_the_page(client: TestClient, alloc: DurableAllocator) -> None:
    replay_events(client)
    text = client.get("/", headers=OP).text
    export = client.get("/export", headers=OP).json()["instance"]
    for child in export["children"]:
        assert child["id"] not in text and child["birth_date"] not in text
    # Holders are not listed per session: only counts.
    held = [
        r for s in client.get("/sessions", headers=OP).json()["sessions"] for r in s["requests"]
    ]
    assert held and not any(f">{rid}<" in text for rid in held)


def test_page_figures_equal_the_api_after_bookings_and_a_rebalance(
    client: TestClient, alloc: DurableAllocator
) -> None:
    first = client.get("/", headers=OP)
    assert figures(first.text).rebalance == "none" and "no rebalance since start" in first.text
    replay_events(client)
    sessions = client.get("/sessions", headers=OP).json()["sessions"]
    assert sum(s["taken"] for s in sessions) > 0 and sum(s["waiting"] for s in sessions) > 0
    page = figures(client.get("/", headers=OP).text)
    assert_page_matches(page, sessions, len(alloc.waitlist()))
    assert page.rebalance == "none"
    assert {v["binds"] for v in page.sessions.values()} >= {"", "binds"}

    reply = client.post("/rebalance", json={"method": "auto", "time_limit": 5}, headers=OP)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert out["moved"] or out["placed"], "the sample should give the optimiser something to do"
    text = client.get("/", headers=OP).text
    page = figures(text)
    assert_page_matches(
        page, client.get("/sessions", headers=OP).json()["sessions"], len(alloc.waitlist())
    )
    assert_diff_matches(page, out)
    assert f"ledger row {out['ledger_seq']}" in text


def test_pooled_staffing_shows_fractions(tmp_path: Path) -> None:
    data = json.loads((DATA / "sample-events.json").read_text())
    data["policy"]["staffing"] = "pooled"
    da = DurableAllocator(Instance.model_validate(data), tmp_path / "pooled.db")
    try:
        with TestClient(create_app(da, AUTH), headers=OP) as c:
            sessions = c.get("/sessions").json()["sessions"]
            assert any(isinstance(s["caregivers_needed"], float) for s in sessions)
            page = figures(c.get("/").text)
            assert_page_matches(page, sessions, len(da.waitlist()))
    finally:
        da.close()


# ---------------------------------------------------------------- a real browser


def chromium_driver(profile: Path) -> Any:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "no headless Chromium and ChromeDriver at /usr/bin "
            "(apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--window-size=1280,1600",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def dom_figures(driver: Any) -> PageFigures:
    """The figures as the browser parsed the page (its DOM, not the bytes sent)."""
    from selenium.webdriver.common.by import By

    html_text = driver.find_element(By.TAG_NAME, "html").get_attribute("outerHTML")
    page = figures(html_text)
    # And read a few straight from the DOM API, so the parser above is not all we trust.
    for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-session]")[:5]:
        sid = row.get_attribute("data-session")
        for field in ("taken", "capacity", "caregivers_needed", "caregivers_available", "waiting"):
            cell = row.find_element(By.CSS_SELECTOR, f'[data-field="{field}"]')
            assert number(cell.get_attribute("data-value")) == page.sessions[sid][field]
    return page


def test_a_browser_logs_in_and_reads_the_figures(alloc: DurableAllocator, tmp_path: Path) -> None:
    driver = chromium_driver(tmp_path / "chrome-profile")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        with (
            live_server(create_app(alloc, AUTH)) as live,
            httpx.Client(base_url=live.url, timeout=60) as http,
        ):
            replay_events(http)
            driver.set_page_load_timeout(60)
            driver.get(live.url + "/")
            assert driver.find_elements(By.CSS_SELECTOR, "form[data-login]")
            assert not driver.find_elements(By.CSS_SELECTOR, "tr[data-session]")
            driver.find_element(By.NAME, "token").send_keys(OPERATOR)
            driver.find_element(By.CSS_SELECTOR, "form[data-login] button").click()
            WebDriverWait(driver, 30).until(
                ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-city-total]"))
            )
            cookies = {c["name"]: c for c in driver.get_cookies()}
            assert cookies[COOKIE_NAME]["httpOnly"] is True
            assert cookies[COOKIE_NAME]["sameSite"] == "Strict"
            # The inline stylesheet passed the page's Content-Security-Policy (its hash matches).
            table = driver.find_element(By.CSS_SELECTOR, "table")
            assert table.value_of_css_property("border-collapse") == "collapse"

            sessions = http.get("/sessions", headers=OP).json()["sessions"]
            page = dom_figures(driver)
            assert_page_matches(page, sessions, len(alloc.waitlist()))
            assert page.rebalance == "none"

            reply = http.post("/rebalance", json={"method": "auto", "time_limit": 5}, headers=OP)
            assert reply.status_code == 200, reply.text
            driver.get(live.url + "/")
            page = dom_figures(driver)
            assert_page_matches(
                page, http.get("/sessions", headers=OP).json()["sessions"], len(alloc.waitlist())
            )
            assert_diff_matches(page, reply.json())

            driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
            WebDriverWait(driver, 30).until(
                ec.presence_of_element_located((By.CSS_SELECTOR, "form[data-login]"))
            )
            assert COOKIE_NAME not in {c["name"] for c in driver.get_cookies()}
    finally:
        driver.quit()
