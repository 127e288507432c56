"""The API reference builds without a warning, and the docs' claims hold.

The reference (``docs/api``) is built with Sphinx, warnings as errors, as a
reader would build it; the guide's examples are run; the architecture's
layout and its "nothing below the CLI prints" rule are checked against the
source tree.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import slotalloc
from slotalloc.io import parse_instance
from slotalloc.models import Status
from slotalloc.solve import solve
from slotalloc.verify import verify

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "slotalloc"
GUIDE = (DOCS / "guide.md").read_text(encoding="utf-8")
ARCHITECTURE = (DOCS / "architecture.md").read_text(encoding="utf-8")

#: One page per public area.
PAGES = (
    "index",
    "slotalloc",
    "models",
    "io",
    "compile",
    "rules",
    "solver",
    "verify",
    "online",
    "service",
    "analysis",
    "scenarios",
    "exceptions",
)


@pytest.fixture(scope="module")
def api_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-html")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS / "api"),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return out


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))


def test_every_public_area_has_a_page(api_html: Path) -> None:
    missing = [name for name in PAGES if not (api_html / f"{name}.html").is_file()]
    assert not missing


@pytest.mark.parametrize(
    ("page", "target"),
    [
        ("online", "slotalloc.online.Allocator.book"),
        ("online", "slotalloc.online.Allocator.cancel"),
        ("online", "slotalloc.online.Allocator.from_result"),
        ("verify", "slotalloc.verify.verify"),
        ("solver", "slotalloc.solve.solve"),
        ("models", "slotalloc.models.Instance"),
        ("io", "slotalloc.io.load_instance"),
        ("rules", "slotalloc.rules.Rule"),
        ("exceptions", "slotalloc.exceptions.SlotallocError"),
    ],
)
def test_pages_document_the_expected_names(api_html: Path, page: str, target: str) -> None:
    assert target in _ids(api_html / f"{page}.html")


@pytest.mark.parametrize(
    ("page", "name"),
    [
        ("solver", "OptimizerParams"),
        ("service", "DurableAllocator"),
        ("service", "Ledger"),
        ("analysis", "explain"),
        ("analysis", "audit"),
        ("scenarios", "generate_xiamen"),
    ],
)
def test_pages_document_names_wherever_they_live(api_html: Path, page: str, name: str) -> None:
    # Modules inside these areas may split; the name must stay documented on the page.
    assert any(
        i.startswith("slotalloc.") and i.endswith(f".{name}")
        for i in _ids(api_html / f"{page}.html")
    )


def test_top_level_page_links_every_public_name(api_html: Path) -> None:
    text = (api_html / "slotalloc.html").read_text(encoding="utf-8")
    unlinked = [
        name
        for name in slotalloc.__all__
        if not name.startswith("__")
        and not re.search(rf'href="\w+\.html#slotalloc\.[\w.]*\b{re.escape(name)}"', text)
    ]
    assert not unlinked


def test_no_object_is_documented_twice(api_html: Path) -> None:
    seen: dict[str, str] = {}
    twice = []
    for page in PAGES:
        for i in _ids(api_html / f"{page}.html"):
            if i.startswith("slotalloc.") and i in seen:
                twice.append((i, seen[i], page))
            seen.setdefault(i, page)
    assert not twice


# ---------------------------------------------------------------- the guide


def _guide_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.DOTALL)


def test_the_guides_custom_age_groups_example_validates_and_solves() -> None:
    (block,) = _guide_blocks("json")
    instance = parse_instance(json.loads(block), "docs/guide.md")
    assert instance.policy.preset is None
    assert [g.name for g in instance.policy.age_groups or ()] == ["twos", "threes", "fours-fives"]
    result = solve(instance, method="fcfs")
    assert result.status is Status.FEASIBLE
    assert {(a.request, a.session) for a in result.assignments} == {
        ("r-1", "north/mon-am"),
        ("r-2", "north/mon-pm"),
    }
    assert verify(instance, result.to_solution()).accepted


@pytest.mark.parametrize("block", _guide_blocks("python"))
def test_the_guides_python_examples_run(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(block, "docs/guide.md", "exec"), {"__name__": "__guide__"})


def test_the_guide_defines_every_glossary_term() -> None:
    glossary = GUIDE.split("## Glossary", 1)[1].split("\n## ", 1)[0]
    terms = {t.lower() for t in re.findall(r"^\*\*([^*]+)\.\*\*", glossary, flags=re.MULTILINE)}
    wanted = {"request", "child", "household", "booking", "session", "home group"}
    wanted |= {"waitlist", "score", "bound", "locked"}
    assert wanted <= terms


# ---------------------------------------------------------------- the architecture


def test_the_architecture_names_every_top_level_module_and_package() -> None:
    names = [
        p.name if p.is_dir() else p.stem
        for p in sorted(SRC.iterdir())
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and not p.name.startswith("_"))
    ]
    missing = [
        n for n in names if f"`{n}.py`" not in ARCHITECTURE and f"`{n}/`" not in ARCHITECTURE
    ]
    assert not missing


def test_nothing_below_the_cli_prints() -> None:
    printing = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "cli.py" and path.parent == SRC:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                printing.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not printing
