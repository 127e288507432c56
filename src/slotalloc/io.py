"""Reading and writing the v1 files, with errors that name file, place and problem."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from slotalloc.exceptions import InputError
from slotalloc.models import Event, Instance, Solution

__all__ = [
    "describe_validation_error",
    "dump_json",
    "iter_events",
    "load_instance",
    "load_solution",
    "parse_event",
    "parse_instance",
    "parse_solution",
    "write_json_atomic",
]

M = TypeVar("M", bound=BaseModel)

_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
_LOCATED = re.compile(r"^([a-z_]+\[\d+\] \([^)]*\)): (.*)$", re.DOTALL)


def _json_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic location as a JSON path, naming ids met on the way."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                out += f" (id {node['id']!r})"
        else:
            if isinstance(node, dict) and part not in node and part in {"book", "cancel"}:
                continue  # discriminated-union tag, not a key of the document
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def describe_validation_error(err: ValidationError, raw: Any) -> tuple[str, str]:
    """The first problem of a validation error as (location, one sentence)."""
    first = err.errors(include_url=False)[0]
    loc = tuple(first.get("loc", ()))
    msg = str(first.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if first.get("type") == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}" if loc else "unknown key"
        loc = loc[:-1]
    elif first.get("type") == "missing":
        msg = f"required key {loc[-1]!r} is missing" if loc else "a required key is missing"
        loc = loc[:-1]
    if "input" in first and first.get("type") not in {"missing", "extra_forbidden"}:
        shown = first["input"]
        if isinstance(shown, (str, int, float, bool)) or shown is None:
            msg += f" (got {json.dumps(shown)})"
    where = _json_path(loc, raw)
    # Cross-reference validators name their item themselves: "requests[3] (id 'r'): ...".
    m = _LOCATED.match(msg)
    if m and not where:
        where, msg = m.group(1), m.group(2)
    more = len(err.errors()) - 1
    sentence = msg
    if more:
        sentence += f" ({more} more problem{'s' if more > 1 else ''} after this one)"
    if not sentence.endswith("."):
        sentence += "."
    return where, sentence


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _read_json(path: str | os.PathLike[str]) -> tuple[str, Any]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "No such file.") from None
    except IsADirectoryError:
        raise InputError(source, "", "Is a directory, not a file.") from None
    except UnicodeDecodeError as e:
        raise InputError(source, "", f"Not UTF-8 text (byte {e.start}).") from None
    except OSError as e:
        raise InputError(source, "", f"Cannot be read: {e.strerror}.") from None
    try:
        return source, json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise InputError(
            source, f"line {e.lineno} column {e.colno}", f"Not JSON: {e.msg}."
        ) from None


def _validate(model: type[M], raw: Any, source: str) -> M:
    if not isinstance(raw, dict):
        raise InputError(source, "", "The document must be a JSON object.")
    try:
        return model.model_validate(raw, strict=True)
    except ValidationError as e:
        where, problem = describe_validation_error(e, raw)
        raise InputError(source, where, problem) from None


def parse_instance(raw: Any, source: str = "<instance>") -> Instance:
    """Validate an already parsed JSON document as an instance.

    Raises
    ------
    InputError
        Naming ``source``, the JSON path and the problem.
    """
    return _validate(Instance, raw, source)


def parse_solution(raw: Any, source: str = "<solution>") -> Solution:
    """Validate an already parsed JSON document as a solution.

    Raises
    ------
    InputError
        Naming ``source``, the JSON path and the problem.
    """
    return _validate(Solution, raw, source)


def load_instance(path: str | os.PathLike[str]) -> Instance:
    """Read and validate an instance file (FORMAT §1).

    Raises
    ------
    InputError
        When the file cannot be read, is not JSON or breaks a rule of FORMAT §1;
        the message names the file, the JSON path and the problem.
    """
    source, raw = _read_json(path)
    return parse_instance(raw, source)


def load_solution(path: str | os.PathLike[str]) -> Solution:
    """Read and validate a solution file (FORMAT §2).

    Raises
    ------
    InputError
        When the file cannot be read, is not JSON or is not shaped as a solution.
    """
    source, raw = _read_json(path)
    return parse_solution(raw, source)


def parse_event(line: str) -> Any:
    """Parse one events line into a :class:`BookEvent` or :class:`CancelEvent`.

    Raises
    ------
    ValueError
        With a one-sentence reason when the line is not a valid event.
    """
    try:
        raw = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    try:
        return _EVENT_ADAPTER.validate_python(raw, strict=True)
    except ValidationError as e:
        where, problem = describe_validation_error(e, raw)
        raise ValueError(f"{where}: {problem}" if where else problem) from None


def iter_events(path: str | os.PathLike[str]) -> Iterator[str]:
    """The non-blank lines of an events file, in order (numbered from 0 by the caller).

    Raises
    ------
    InputError
        When the file cannot be read as UTF-8 text.
    """
    source = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError(source, "", "No such file.") from None
    except UnicodeDecodeError as e:
        raise InputError(source, "", f"Not UTF-8 text (byte {e.start}).") from None
    except OSError as e:
        raise InputError(source, "", f"Cannot be read: {e.strerror}.") from None
    for line in lines:
        if line.strip():
            yield line


def dump_json(model: BaseModel) -> str:
    """A model as pretty JSON text in FORMAT field order, ending in a newline."""
    return json.dumps(model.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n"


def write_json_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text to ``path`` through a temporary file, so no half-written file is left."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
