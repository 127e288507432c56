"""Sphinx configuration of the slotalloc API reference.

Build it from the repository's root (``pip install -e '.[docs]'`` first)::

    sphinx-build -W --keep-going -b html docs/api build/api

The pages document the public modules from their numpydoc docstrings, read by
``sphinx.ext.napoleon`` (which turns them into the field lists that
``autodoc_typehints = "description"`` fills with the annotated types). The
top-level page's table of ``slotalloc.__all__`` is generated from the package
when the page is read, so it cannot drift from it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import slotalloc

project = "slotalloc"
author = "slotalloc authors"
release = slotalloc.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "Childcare session allocation", "fixed_sidebar": True}
html_show_copyright = False

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
# Bases are shown where they matter (the exceptions page); elsewhere they are
# ``object`` or the models' private frozen base.
autodoc_default_options = {"members": True}

# References to what this reference does not document (numpy, pydantic, the
# standard library, private helpers) stay plain text: no offline inventory of
# those projects exists here, and a missing link is not an error of the docs.
nitpicky = False

_HERE = Path(__file__).resolve().parent
_AUTOMODULE = re.compile(r"^\.\. automodule:: (\S+)", re.MULTILINE)


@functools.cache
def _documented_modules() -> tuple[str, ...]:
    """Every module an ``automodule`` directive of these pages documents."""
    found: list[str] = []
    for page in sorted(_HERE.glob("*.rst")):
        found.extend(_AUTOMODULE.findall(page.read_text(encoding="utf-8")))
    return tuple(found)


# Every documented module is imported before autodoc reads any: autodoc adds
# the annotations it finds in source to the classes it inspects (pydantic's
# BaseModel included, from its TYPE_CHECKING block), after which a pydantic
# model class created later (FastAPI's, on the server module's first import)
# fails to build.
for _module in _documented_modules():
    importlib.import_module(_module)


def _exports(module_name: str, name: str, obj: Any) -> bool:
    module = importlib.import_module(module_name)
    return getattr(module, name, None) is obj


def _home(name: str, obj: Any) -> str | None:
    """The documented module that owns ``obj``: the shortest one above its definition."""
    owner = getattr(obj, "__module__", None) or ""
    parts = owner.split(".")
    for depth in range(2, len(parts) + 1):
        candidate = ".".join(parts[:depth])
        if candidate in _documented_modules() and _exports(candidate, name, obj):
            return candidate
    return None


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n", 1)[0].replace("\n", " ")


def _public_table() -> str:
    """A list-table of ``slotalloc.__all__``: each name, linked, and its summary line."""
    rows = [".. list-table::", "   :header-rows: 1", "   :widths: 25 75", ""]
    rows += ["   * - name", "     - what it is"]
    for name in slotalloc.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(slotalloc, name)
        home = _home(name, obj)
        target = f"{home}.{name}" if home else f"slotalloc.{name}"
        rows.append(f"   * - :py:obj:`{name} <{target}>`")
        rows.append(f"     - {_summary(obj) or ' '}")
    return "\n".join(rows) + "\n"


def _fill_public_table(app: Any, docname: str, source: list[str]) -> None:
    if docname == "slotalloc":
        source[0] = source[0].replace(".. slotalloc-public-table::\n", _public_table())


# The module autodoc is documenting. Its members are filtered right after its
# own docstring is processed, so the docstring event tells the skip hook whose
# members it is filtering (every documented module has a docstring).
_current_module = [""]


def _note_module(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what == "module":
        _current_module[0] = name


def _skip_member(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Skip a re-export when another page documents the object at its home.

    ``slotalloc.service.ledger`` re-exports ``RequestStatus``, which the online
    engine's page documents: listing it twice would give one object two
    targets. A re-export whose home no page documents stays where it is.
    """
    if what != "module" or not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return None
    here = _current_module[0]
    home = _home(name, obj)
    if home is not None and here and home != here and not home.startswith(here + "."):
        return True
    return None


_SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")
_NAMES = re.compile(r"^(\s*)([A-Za-z_]\w*(?:, [A-Za-z_]\w*)+)\s*$")


def _split_attribute_names(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Give each of ``a, b`` in an Attributes section its own entry.

    numpydoc allows one description for several names; napoleon reads
    ``a, b`` there as one name with a type. Parameters sections need no help.
    """
    out: list[str] = []
    in_attributes = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _SECTION_RULE.match(lines[i + 1]) and line.strip():
            in_attributes = line.strip() == "Attributes"
        match = _NAMES.match(line) if in_attributes else None
        if match is None:
            out.append(line)
            i += 1
            continue
        indent = match.group(1)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith(indent + " ")):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            body.pop()
        for each in match.group(2).split(", "):
            out.append(indent + each)
            out.extend(body)
        if j < len(lines):
            out.append("")
        i = j
    lines[:] = out


def setup(app: Any) -> None:
    app.connect("source-read", _fill_public_table)
    # Before napoleon (priority 500), which turns the sections into fields.
    app.connect("autodoc-process-docstring", _split_attribute_names, priority=400)
    app.connect("autodoc-process-docstring", _note_module)
    app.connect("autodoc-skip-member", _skip_member)
