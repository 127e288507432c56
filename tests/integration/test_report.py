"""The HTML report: its files, its sections, and (where a browser exists) a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DATA
from slotalloc.cli import main

pytest.importorskip("matplotlib", reason="the report extra (matplotlib) is not installed")

SECTIONS = [
    "Fill by site and session",
    "Morning vs afternoon utilisation",
    "Unmet demand by district",
    "Preference ranks",
    "Fairness",
    "Capacity planning",
]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert (
        main(
            [
                "report",
                str(DATA / "sample-tight.json"),
                str(DATA / "sample-tight.fcfs-solution.json"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_report_writes_html_and_plots(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in html
    for png in ("fill_heatmap.png", "utilisation.png", "unmet_by_district.png", "ranks.png"):
        data = (report_dir / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000
        assert f"src='{png}'" in html
    assert "By residency" in html and "non_local" in html


def test_report_renders_in_a_headless_browser(report_dir: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless Chromium on this machine (apt-get install chromium)")
    shot = report_dir / "screenshot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={report_dir / 'chrome'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            (report_dir / "index.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 20000


def test_the_report_opens_against_fcfs_and_exports_csvs(report_dir: Path) -> None:
    import csv

    html = (report_dir / "index.html").read_text(encoding="utf-8")
    assert "Against first come, first served" in html
    rosters = list(csv.reader((report_dir / "rosters.csv").open(encoding="utf-8")))
    unserved = list(csv.reader((report_dir / "unserved.csv").open(encoding="utf-8")))
    assert rosters[0][:2] == ["site", "session"] and unserved[0][0] == "request"
    assert len(rosters) > 1
    sessions = list(csv.reader((report_dir / "sessions.csv").open(encoding="utf-8")))
    assert sessions[0][-1] == "binds" and len(sessions) > 1
    assert "Which limit binds, per session" in html


def test_a_plan_below_fcfs_for_a_group_is_warned(tmp_path: Path) -> None:
    from slotalloc import solve
    from slotalloc.analysis.report import write_report
    from slotalloc.io import load_instance

    inst = load_instance(DATA / "sample-tight.json")
    res = solve(inst, time_limit=3, seed=0, deterministic=True)
    write_report(inst, res.to_solution(), tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    from slotalloc.analysis.audit import fairness_report

    rep = fairness_report(inst, [(a.request, a.session) for a in res.assignments])
    assert ("Warning:" in html) == bool(rep.below_fcfs)
