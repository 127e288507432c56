"""A whole weekend through the booking service: online, the batch at the deadline, late bookings.

The README's "A weekend, end to end" runs these same commands by hand:

1. ``slotalloc serve weekend.json --db online.sqlite``: bookings open; families
   book and cancel over HTTP and are answered at once (booked, or waitlisted
   with the reason).
2. At the deadline the service stops and ``slotalloc export`` turns its ledger
   into an instance whose bookings are the places held.
3. ``slotalloc solve`` re-plans the weekend (it keeps bookings unless moving
   one serves more children), ``slotalloc verify`` checks the plan.
4. ``slotalloc serve deadline.json --solution plan.json --db late.sqlite``:
   the service starts from the plan; the families it could not place wait,
   and late bookings and cancellations go on.

Each step's figures are printed; the final state is checked by the verifier.
Needs the server extra (``pip install 'slotalloc[server]'``). Writes only to a
temporary directory. Run: ``python examples/weekend_workflow.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TOKENS = {"operator": secrets.token_urlsafe(32), "booking": secrets.token_urlsafe(32)}


def slotalloc(*args: str) -> str:
    """Run one CLI command; stop with its message if it fails."""
    out = subprocess.run(
        [sys.executable, "-m", "slotalloc", *args], capture_output=True, text=True, check=False
    )
    if out.returncode not in (0,):
        sys.exit(f"slotalloc {args[0]} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """``slotalloc serve`` in a child process, and a tiny JSON client for it."""

    def __init__(self, *args: str, auth: Path) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "slotalloc", "serve", *args]
        cmd += ["--auth-file", str(auth), "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        for _ in range(300):
            try:
                self.call("GET", "/healthz")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None:
                    sys.exit(f"serve exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
                time.sleep(0.1)
        sys.exit("serve did not start")

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        role: str = "booking",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        req.add_header("Authorization", f"Bearer {TOKENS[role]}")
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # a clean shutdown: the ledger is closed
        self.proc.wait(timeout=60)


def run_events(svc: Service, lines: list[str], secrets_: dict[str, str]) -> dict[str, int]:
    """Book and cancel over HTTP as families would; count the outcomes."""
    counts = {"booked": 0, "waitlisted": 0, "refused": 0, "cancelled": 0}
    reasons: dict[str, int] = {}
    for line in lines:
        ev = json.loads(line)
        if ev["op"] == "book":
            body = {"request": ev["request"], "children": ev.get("children") or []}
            status, reply = svc.call("POST", "/bookings", body)
            if status != 201:
                counts["refused"] += 1
                continue
            secrets_[reply["request"]] = reply["secret"]
            if reply["waitlisted"]:
                counts["waitlisted"] += 1
                reasons[reply["reason"]] = reasons.get(reply["reason"], 0) + 1
            else:
                counts["booked"] += 1
        else:
            rid = ev["request"]
            hdr = {"X-Booking-Secret": secrets_.get(rid, "none")}
            status, _ = svc.call("DELETE", f"/bookings/{rid}", headers=hdr)
            counts["cancelled" if status == 200 else "refused"] += 1
    print(f"    {counts}; waitlisted because of: {reasons}")
    return counts


def main() -> None:
    lines = (DATA / "sample-events.jsonl").read_text(encoding="utf-8").splitlines()
    early, late = lines[:300], lines[300:]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        auth = d / "tokens.json"
        auth.write_text(json.dumps({k: [v] for k, v in TOKENS.items()}), encoding="utf-8")
        os.chmod(auth, 0o600)
        weekend = d / "weekend.json"
        weekend.write_bytes((DATA / "sample-events.json").read_bytes())

        print("1. bookings open online")
        svc = Service(str(weekend), "--db", str(d / "online.sqlite"), auth=auth)
        keys: dict[str, str] = {}
        run_events(svc, early, keys)
        svc.stop()

        print("2. the deadline: the live state as an instance whose bookings are the places held")
        deadline, plan = d / "deadline.json", d / "plan.json"
        print("   ", slotalloc("export", str(weekend), "--db", str(d / "online.sqlite"),
                              "-o", str(deadline)))  # fmt: skip

        print("3. the batch run, checked independently")
        slotalloc("solve", str(deadline), "-o", str(plan), "--time-limit", "5", "--quiet")
        print("   ", slotalloc("verify", str(deadline), str(plan)).splitlines()[0])

        print("4. the service from the plan: late bookings and cancellations")
        svc = Service(
            str(deadline), "--solution", str(plan), "--db", str(d / "late.sqlite"), auth=auth
        )
        status, page = svc.call("GET", "/sessions?limit=1000", role="operator")
        assert status == 200, page
        held = sum(s["taken"] for s in page["sessions"])
        print(f"    children in places after the plan: {held}")
        run_events(svc, late, keys)
        status, export = svc.call("GET", "/export", role="operator")
        svc.stop()
        assert status == 200
        (d / "final.instance.json").write_text(json.dumps(export["instance"]), encoding="utf-8")
        (d / "final.solution.json").write_text(json.dumps(export["solution"]), encoding="utf-8")
        print("   ", slotalloc("verify", str(d / "final.instance.json"),
                              str(d / "final.solution.json")).splitlines()[0])  # fmt: skip


if __name__ == "__main__":
    main()
