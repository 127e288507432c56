"""The general rules of FORMAT as field types, and the strict frozen base model.

Part of :mod:`slotalloc.models`: the limits (:data:`MAX_COUNT`,
:data:`MAX_WEIGHT`, :data:`MAX_ID_LENGTH`, :data:`MAX_DEPTH`, ...), the text
checks (:func:`lone_surrogate`, :func:`control_character`), the constrained
types every model uses (:data:`Id`, :data:`Text`, :data:`Count`,
:data:`PositiveCount`, :data:`Weight`, dates and timestamps) and ``_Model``,
the strict frozen base in which an explicit null means an absent key.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

INSTANCE_FORMAT: Final = "slotalloc.instance/1"
SOLUTION_FORMAT: Final = "slotalloc.solution/1"
MAX_PREFERENCES = 10
#: The largest count (capacity, caregivers, months, ratios, group sizes and caps,
#: ``max_sessions_per_child``) FORMAT allows.
MAX_COUNT: Final = 1_000_000
#: The largest objective weight FORMAT allows (so every score fits in 64 bits).
MAX_WEIGHT: Final = 1_000_000_000
#: The most code points an id may hold.
MAX_ID_LENGTH: Final = 64
#: The deepest nesting of arrays and objects read (docs/format-notes.md).
MAX_DEPTH: Final = 100

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.ASCII)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _parse_date(value: Any) -> Any:
    # The value is not repeated here: the reader shows it where it may (never a birth date).
    if isinstance(value, str):
        if not _DATE.match(value):
            raise ValueError("not a date of the form YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("not a calendar date") from None
    if isinstance(value, dt.datetime):
        raise ValueError("a date is required, not a timestamp")
    return value


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise ValueError(
                "not an RFC 3339 timestamp with an offset "
                "(YYYY-MM-DDTHH:MM:SS[.fraction] then Z or +HH:MM)"
            )
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not a valid timestamp") from None
    return value


def _to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate (U+D800-U+DFFF) in ``text``, or None.

    A Python string can hold one (JSON's ``"\\ud800"`` escape makes one), but
    it cannot be written as UTF-8.
    """
    if text.isascii():
        return None
    m = _SURROGATE.search(text)
    return None if m is None else m.group()


def control_character(text: str) -> str | None:
    """The first control character (U+0000-U+001F, U+007F-U+009F) in ``text``, or None."""
    if text.isprintable():
        return None
    m = _CONTROL.search(text)
    return None if m is None else m.group()


def _no_lone_surrogate(value: str) -> str:
    bad = lone_surrogate(value)
    if bad is not None:
        raise ValueError(
            f"the text holds a lone surrogate (U+{ord(bad):04X}), which cannot be written as UTF-8"
        )
    return value


def _no_control_character(value: str) -> str:
    bad = control_character(value)
    if bad is not None:
        raise ValueError(f"an id must not hold a control character (U+{ord(bad):04X})")
    return value


#: Any string of the formats: no lone surrogate.
Text = Annotated[str, AfterValidator(_no_lone_surrogate)]
#: An id: 1 to 64 code points, no lone surrogate, no control character.
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_lone_surrogate),
    AfterValidator(_no_control_character),
]
IdTuple = Annotated[tuple[Id, ...], BeforeValidator(_to_tuple)]
Date = Annotated[dt.date, BeforeValidator(_parse_date)]
Timestamp = Annotated[dt.datetime, BeforeValidator(_parse_timestamp)]
#: A count (capacity, caregivers, months, group caps): 0 to MAX_COUNT.
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
#: A count that must be at least 1 (ratio, group size, per-child cap).
PositiveCount = Annotated[int, Field(ge=1, le=MAX_COUNT)]
#: An objective weight: 0 to MAX_WEIGHT.
Weight = Annotated[int, Field(ge=0, le=MAX_WEIGHT)]
NonNegInt = Annotated[int, Field(ge=0)]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``known``, or the empty string."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _nulls_mean_absent(cls, data: Any) -> Any:
        # FORMAT: an explicit null for an optional key means the key is absent.
        if isinstance(data, dict):
            defaulted = _defaulted_fields(cls)
            if defaulted and any(data.get(k, 0) is None for k in defaulted):
                return {k: v for k, v in data.items() if not (v is None and k in defaulted)}
        return data


def _defaulted_fields(cls: type[BaseModel]) -> frozenset[str]:
    """Optional fields whose default is not null."""
    cached = cls.__dict__.get("_slotalloc_defaulted")
    if cached is None:
        cached = frozenset(
            name
            for name, f in cls.model_fields.items()
            if not f.is_required() and f.get_default(call_default_factory=True) is not None
        )
        type.__setattr__(cls, "_slotalloc_defaulted", cached)
    return cached
