"""Reading and writing the v1 files, with errors that name file, place and problem.

The JSON reader is stricter than :func:`json.loads` in the ways FORMAT asks
(docs/format-notes.md): a key given twice in one object, ``NaN`` and
``Infinity``, a number too large to be finite (``1e400``), an integer literal
too long to convert, a string holding a lone surrogate, and nesting deeper than
:data:`~slotalloc.models.MAX_DEPTH` levels are all refused, with the place.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from slotalloc.exceptions import InputError
from slotalloc.models import (
    MAX_DEPTH,
    BookEvent,
    CancelEvent,
    Event,
    Id,
    Instance,
    PositiveCount,
    Solution,
    _Model,
    control_character,
    did_you_mean,
    lone_surrogate,
)

__all__ = [
    "MAX_INT_DIGITS",
    "describe_validation_error",
    "dump_json",
    "event_line_error",
    "iter_events",
    "load_instance",
    "load_recommendations",
    "load_solution",
    "parse_event",
    "parse_instance",
    "parse_solution",
    "write_json_atomic",
]

M = TypeVar("M", bound=BaseModel)

#: The longest integer literal read (Python's own int-str conversion limit).
MAX_INT_DIGITS = 4300

_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
_EVENT_TAGS: dict[str, type[BaseModel]] = {"book": BookEvent, "cancel": CancelEvent}
# A cross-reference validator names its item itself: "requests[3] (id 'r-3'): ...".
_LOCATED = re.compile(
    r"""^([a-z_]+\[\d+\] \((?:id|request) (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)): (.*)$""",
    re.DOTALL,
)
#: Keys whose values are a child's personal data: never repeated in a message.
_PERSONAL = frozenset({"birth_date", "household", "residency"})
#: A JSON escape of a surrogate: the only way a lone one gets into a decoded text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
#: What may put a control character into a decoded text (a false alarm costs a check).
_CONTROL_HINT = re.compile(r"[\x00-\x1f\x7f-\x9f]|\\[bfnrt]|\\u00[0189][0-9a-fA-F]|\\u007[fF]")
_SHOWN_CHARS = 40


# ---------------------------------------------------------------- the strict JSON reader


class _Unreadable(Exception):
    """The text is not JSON slotalloc reads; ``location`` is rendered already."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(problem)
        self.location = location
        self.problem = problem


class _BadNumber:
    """A number literal refused by the reader, left in the tree to be located."""

    __slots__ = ("private", "problem")

    def __init__(self, problem: str, private: str) -> None:
        self.problem = problem  # names the literal
        self.private = private  # says the same without it (a child's personal data)


class _DuplicateKeys(dict[str, Any]):
    """An object in which ``duplicate`` was given more than once (the last value kept)."""

    duplicate: str = ""


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


class _Refused(Exception):
    """Raised by the fast reader's hooks; the marking reader then finds the place."""


def _digits(literal: str) -> int:
    return len(literal) - literal.startswith("-")


def _fast_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(items)
    if len(obj) != len(items):
        raise _Refused
    return obj


def _fast_integer(literal: str) -> int:
    if _digits(literal) > MAX_INT_DIGITS:
        raise _Refused
    return int(literal)


def _fast_number(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused
    return value


def _fast_constant(name: str) -> Any:
    raise _Refused


_FAST = json.JSONDecoder(
    object_pairs_hook=_fast_pairs,
    parse_int=_fast_integer,
    parse_float=_fast_number,
    parse_constant=_fast_constant,
)


def _marking_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(items)
    if len(obj) == len(items):
        return obj
    marked = _DuplicateKeys(obj)
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def _marking_integer(literal: str) -> Any:
    if _digits(literal) > MAX_INT_DIGITS:
        problem = f"an integer of {_digits(literal)} digits is too long (at most {MAX_INT_DIGITS})"
        return _BadNumber(problem, problem)
    return int(literal)


def _marking_number(literal: str) -> Any:
    value = float(literal)
    if not math.isfinite(value):
        return _BadNumber(
            f"the number {_clip(literal)} is too large (not a finite number)",
            "the number is too large (not a finite number)",
        )
    return value


def _marking_constant(name: str) -> Any:
    problem = f"{name} is not a JSON number"
    return _BadNumber(problem, problem)


#: Reads what the fast reader refused, leaving marks in the tree to be located.
_MARKING = json.JSONDecoder(
    object_pairs_hook=_marking_pairs,
    parse_int=_marking_integer,
    parse_float=_marking_number,
    parse_constant=_marking_constant,
)


def _decode(text: str) -> Any:
    """``json.loads`` with FORMAT's general rules.

    Raises
    ------
    _Unreadable
        Naming the line and column, or the JSON path, and the problem.
    """
    try:
        try:
            raw = _FAST.decode(text)
        except _Refused:
            _refuse_marked(_MARKING.decode(text))
            raise RuntimeError("the marking reader found nothing to refuse") from None
    except json.JSONDecodeError as e:
        raise _Unreadable(f"line {e.lineno} column {e.colno}", f"Not JSON: {e.msg}.") from None
    except RecursionError:
        raise _Unreadable(
            _nested_too_deep_at(text), f"Nested more than {MAX_DEPTH} levels deep."
        ) from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(raw)
    return raw


def _line_column(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    return f"line {line} column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def _nested_too_deep_at(text: str) -> str:
    """Where nesting first passes MAX_DEPTH levels, as ``line L column C``."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _line_column(text, m.start())
        elif token in "]}":
            depth -= 1
    return "line 1 column 1"


def _walk(raw: Any) -> Iterator[tuple[tuple[int | str, ...], Any]]:
    """Every value of a decoded document as (location, value), in document order.

    Iterative, so that no nesting depth can exhaust the stack.
    """
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), raw)]
    while stack:
        loc, node = stack.pop()
        yield loc, node
        if isinstance(node, dict):
            stack.extend(((*loc, k), v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*loc, i), node[i]) for i in range(len(node) - 1, -1, -1))


def _refuse_marked(raw: Any) -> None:
    for loc, node in _walk(raw):
        if isinstance(node, _DuplicateKeys):
            raise _Unreadable(
                _json_path(loc, raw), f"the key {node.duplicate!r} is given more than once."
            )
        if isinstance(node, _BadNumber):
            personal = bool(loc) and loc[-1] in _PERSONAL
            problem = node.private if personal else node.problem
            raise _Unreadable(_json_path(loc, raw), problem + ".")


def _refuse_lone_surrogates(raw: Any) -> None:
    for loc, node in _walk(raw):
        texts = [("text", node)] if isinstance(node, str) else []
        if isinstance(node, dict):
            texts = [("key", k) for k in node]
        for what, text in texts:
            bad = lone_surrogate(text)
            if bad is not None:
                raise _Unreadable(
                    _json_path(loc, raw),
                    f"the {what} holds a lone surrogate (U+{ord(bad):04X}), "
                    "which cannot be written as UTF-8.",
                )


# ---------------------------------------------------------------- messages


def _json_path(loc: Sequence[int | str], raw: Any) -> str:
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
            if isinstance(node, dict) and part not in node and part in _EVENT_TAGS:
                continue  # discriminated-union tag, not a key of the document
            if part.isidentifier():
                out += f".{part}" if out else part
            else:
                out += f"[{part!r}]"
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _unwrap(tp: Any) -> Any:
    """A field's type without Annotated and without None."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) == 1:
                tp = rest[0]
                continue
        return tp


def _model_at(root: Any, loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose object sits at ``loc`` under the root type, if one does."""
    tp = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = get_args(tp)
            tp = args[0] if get_origin(tp) in (tuple, list) and args else None
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) or next(
                (f for f in tp.model_fields.values() if f.alias == part), None
            )
            tp = None if field is None else field.annotation
        elif part in _EVENT_TAGS:
            tp = _EVENT_TAGS[part]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _first_error(errors: list[Any]) -> Any:
    """The error to report: the first, but a misspelt key before the missing key it hides."""
    first = errors[0]
    if first.get("type") == "missing":
        parent = tuple(first.get("loc", ()))[:-1]
        for e in errors:
            if e.get("type") == "extra_forbidden" and tuple(e.get("loc", ()))[:-1] == parent:
                return e
    return first


def _shown(value: Any) -> str | None:
    """The value as JSON, clipped, for a message; None when it is not a plain scalar."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
            return f"an integer of {len(str(abs(value)))} digits"
        return _clip(json.dumps(value))
    return None


def describe_validation_error(err: ValidationError, raw: Any, model: Any = None) -> tuple[str, str]:
    """The first problem of a validation error as (location, one sentence).

    Parameters
    ----------
    err
        The error pydantic raised.
    raw
        The document that was validated (to name the ids on the way).
    model
        The type validated against (a model class, or :data:`~slotalloc.models.Event`);
        when given, an unknown key is told the closest known one.

    Notes
    -----
    The value of a child's ``birth_date``, ``household`` or ``residency`` is
    never repeated in the sentence.
    """
    errors = err.errors(include_url=False)
    first = _first_error(errors)
    loc = tuple(first.get("loc", ()))
    kind = first.get("type")
    msg = str(first.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    personal = bool(loc) and loc[-1] in _PERSONAL
    if kind == "extra_forbidden":
        key = loc[-1] if loc else ""
        msg = f"unknown key {key!r}" if loc else "unknown key"
        loc = loc[:-1]
        known = _model_at(model, loc) if model is not None else None
        if known is not None and isinstance(key, str):
            msg += did_you_mean(key, _keys_of(known))
    elif kind == "missing":
        msg = f"required key {loc[-1]!r} is missing" if loc else "a required key is missing"
        loc = loc[:-1]
    elif kind == "string_unicode":
        msg = "the text holds a lone surrogate, which cannot be written as UTF-8"
    elif "input" in first and not personal:
        shown = _shown(first["input"])
        if shown is not None:
            msg += f" (got {shown})"
    where = _json_path(loc, raw)
    m = _LOCATED.match(msg)
    if m and not where:
        where, msg = m.group(1), m.group(2)
    more = len(errors) - 1
    sentence = msg
    if more:
        sentence += f" ({more} more problem{'s' if more > 1 else ''} after this one)"
    if not sentence.endswith("."):
        sentence += "."
    return where, sentence


# ---------------------------------------------------------------- files


def _read_text(path: str | os.PathLike[str]) -> str:
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "No such file.") from None
    except IsADirectoryError:
        raise InputError(source, "", "Is a directory, not a file.") from None
    except UnicodeDecodeError as e:
        raise InputError(source, "", f"Not UTF-8 text (byte {e.start}).") from None
    except OSError as e:
        raise InputError(source, "", f"Cannot be read: {e.strerror}.") from None


def _read_json(path: str | os.PathLike[str]) -> tuple[str, Any]:
    source = str(path)
    text = _read_text(path)
    try:
        return source, _decode(text)
    except _Unreadable as e:
        raise InputError(source, e.location, e.problem) from None


def _validate(model: type[M], raw: Any, source: str) -> M:
    if not isinstance(raw, dict):
        raise InputError(source, "", "The document must be a JSON object.")
    try:
        return model.model_validate(raw, strict=True)
    except ValidationError as e:
        where, problem = describe_validation_error(e, raw, model)
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


# ---------------------------------------------------------------- capacity-planning rows


class _Gain(_Model):
    children: int
    score: int


class _PlanRow(_Model):
    """One row of ``slotalloc plan --json``."""

    action: Literal["add_caregiver", "add_places", "move_caregiver"]
    session: Id
    places: PositiveCount | None = None
    caregivers: PositiveCount | None = None
    source: Annotated[Id | None, Field(alias="from")] = None
    estimate: int | None = None
    gain: _Gain

    @model_validator(mode="after")
    def _amount_matches_action(self) -> _PlanRow:
        wanted = "places" if self.action == "add_places" else "caregivers"
        other = "caregivers" if wanted == "places" else "places"
        if getattr(self, wanted) is None or getattr(self, other) is not None:
            raise ValueError(f"an {self.action} row gives {wanted!r} and not {other!r}")
        return self

    @model_validator(mode="after")
    def _source_only_for_a_move(self) -> _PlanRow:
        if (self.source is not None) != (self.action == "move_caregiver"):
            raise ValueError("'from' is given exactly when the action is move_caregiver")
        return self


_PLAN_ADAPTER: TypeAdapter[list[_PlanRow]] = TypeAdapter(list[_PlanRow])


def load_recommendations(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the recommendations ``slotalloc plan --json`` writes, checking their shape.

    Returns
    -------
    list of dict
        The rows as JSON objects (``action``, ``session``, ``places`` or
        ``caregivers``, ``from`` for a move, ``estimate``, ``gain``).

    Raises
    ------
    InputError
        When the file cannot be read, is not JSON, is not a list of rows, or a
        row is not shaped as ``slotalloc plan --json`` writes it.
    """
    source, raw = _read_json(path)
    if not isinstance(raw, list):
        raise InputError(
            source, "", "A JSON list of recommendations (from slotalloc plan --json) is expected."
        )
    try:
        rows = _PLAN_ADAPTER.validate_python(raw, strict=True)
    except ValidationError as e:
        where, problem = describe_validation_error(e, raw, list[_PlanRow])
        raise InputError(source, where, problem) from None
    return [r.model_dump(by_alias=True, exclude_none=True) for r in rows]


# ---------------------------------------------------------------- events


def parse_event(line: str) -> Any:
    """Parse one events line into a :class:`BookEvent` or :class:`CancelEvent`.

    Raises
    ------
    ValueError
        With a one-sentence reason when the line is not a valid event.
    """
    try:
        raw = _decode(line)
    except _Unreadable as e:
        where = e.location.removeprefix("line 1 ")  # one line: its column is the place
        problem = e.problem
        if e.location.startswith("line "):  # "Not JSON: ..." within the event's sentence
            problem = problem[:1].lower() + problem[1:]
        raise ValueError(f"{where}: {problem}" if where else problem) from None
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    try:
        return _EVENT_ADAPTER.validate_python(raw, strict=True)
    except ValidationError as e:
        where, problem = describe_validation_error(e, raw, Event)
        raise ValueError(f"{where}: {problem}" if where else problem) from None


def event_line_error(line: str) -> str | None:
    """Why an events line breaks a general rule of FORMAT, or None.

    A cheap screen for a caller with a fast path of its own (``slotalloc
    replay``): it refuses, with the reason :func:`parse_event` gives, a line
    with a key given twice, a number that is not finite or too long, nesting
    deeper than MAX_DEPTH, a lone surrogate anywhere or a control character in
    an id. Lines that pass may still be invalid events for other reasons.
    """
    try:
        raw = _decode(line)
    except _Unreadable:
        pass  # parse_event gives the reason
    else:
        plain = "\\" not in line and line.isascii() and line.isprintable()
        if plain or not _CONTROL_HINT.search(line):
            return None
        if not _holds_control_character(raw):
            return None
        # a control character somewhere: the models say whether it is in an id
    try:
        parse_event(line)
    except ValueError as e:
        return str(e)
    return None


def _holds_control_character(raw: Any) -> bool:
    return any(isinstance(v, str) and control_character(v) is not None for _, v in _walk(raw))


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
    except IsADirectoryError:
        raise InputError(source, "", "Is a directory, not a file.") from None
    except UnicodeDecodeError as e:
        raise InputError(source, "", f"Not UTF-8 text (byte {e.start}).") from None
    except OSError as e:
        raise InputError(source, "", f"Cannot be read: {e.strerror}.") from None
    for line in lines:
        if line.strip():
            yield line


# ---------------------------------------------------------------- writing


def dump_json(model: BaseModel) -> str:
    """A model as pretty JSON text in FORMAT field order, ending in a newline."""
    return json.dumps(model.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n"


def write_json_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text to ``path`` through a temporary file, so no half-written file is left.

    The text is encoded first: one that cannot be UTF-8 raises before any file exists.
    """
    data = text.encode("utf-8")
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
