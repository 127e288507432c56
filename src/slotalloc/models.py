"""Validated, frozen models of the slotalloc v1 formats (FORMAT.md).

Every model is strict: no coercion between kinds (a number given as a string, a
bool given as a number, a float for an integer). To keep the Python constructors
pleasant, dates and timestamps may be given as ISO strings and sequences as
lists; they are stored as :class:`datetime.date`, aware
:class:`datetime.datetime` and tuples.

FORMAT's general rules are built into the field types: :data:`Id` (1 to 64
code points, no control character), :data:`Text` (no lone surrogate, for every
other string), :data:`Count` and :data:`PositiveCount` (at most
:data:`MAX_COUNT`), :data:`Weight` (at most :data:`MAX_WEIGHT`); floats must be
finite. The reader (:mod:`slotalloc.io`) adds what only the JSON text shows: a
key given twice, ``NaN``, ``1e400``, over-long integers, deep nesting.

Validation happens here, once; the compiler, the solvers, the verifier and the
online engine trust a constructed :class:`Instance`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

__all__ = [
    "CN_2019",
    "INSTANCE_FORMAT",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "MAX_PREFERENCES",
    "MAX_WEIGHT",
    "SOLUTION_FORMAT",
    "AgeGroup",
    "Assignment",
    "BookDecision",
    "BookEvent",
    "Booking",
    "CancelDecision",
    "CancelEvent",
    "Child",
    "ConflictItem",
    "Decision",
    "ErrorDecision",
    "Event",
    "Fairness",
    "Instance",
    "Objective",
    "Policy",
    "Request",
    "Session",
    "Site",
    "Solution",
    "Status",
]

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


class Status(enum.StrEnum):
    """Outcome of a solve, as written in a solution file."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"


# ---------------------------------------------------------------- instance


class AgeGroup(_Model):
    """An age group: children aged [min_months, max_months) months."""

    name: Annotated[Text, StringConstraints(min_length=1)]
    min_months: Count
    max_months: Count
    ratio: PositiveCount
    max_group_size: PositiveCount

    @model_validator(mode="after")
    def _range_not_empty(self) -> AgeGroup:
        if self.min_months >= self.max_months:
            raise ValueError(
                f"age group {self.name!r} has min_months {self.min_months} "
                f">= max_months {self.max_months}"
            )
        return self


#: China's 2019 national standard for childcare institutions.
CN_2019: tuple[AgeGroup, ...] = (
    AgeGroup(name="infant", min_months=6, max_months=12, ratio=3, max_group_size=10),
    AgeGroup(name="toddler", min_months=12, max_months=24, ratio=5, max_group_size=15),
    AgeGroup(name="older", min_months=24, max_months=36, ratio=7, max_group_size=20),
)
_PRESETS: Mapping[str, tuple[AgeGroup, ...]] = MappingProxyType({"cn-2019": CN_2019})


class Fairness(_Model):
    """The opt-in fairness rules of FORMAT §4; an absent or null key is a rule that is off.

    Attributes
    ----------
    group_floor
        ``"fcfs"``: rule 8, no age group gets fewer child places (by home group)
        than first-come-first-served gives it.
    priority
        ``"no_justified_envy"``: rule 9, no request without a booking loses a
        session it ranks higher, and could take, to a lower-priority request
        without a booking; online, the waitlist is scanned by priority.
    """

    group_floor: Literal["fcfs"] | None = None
    priority: Literal["no_justified_envy"] | None = None

    @property
    def any(self) -> bool:
        """Whether some rule is on."""
        return self.group_floor is not None or self.priority is not None


class Policy(_Model):
    """Age groups, staffing mode, per-child cap and the opt-in fairness rules."""

    preset: Text | None = None
    age_groups: Annotated[tuple[AgeGroup, ...] | None, BeforeValidator(_to_tuple)] = None
    staffing: Literal["per_group", "pooled"] = "per_group"
    max_sessions_per_child: PositiveCount | None = None
    fairness: Fairness | None = None

    @model_serializer(mode="wrap")
    def _fairness_only_when_given(self, handler: Any) -> Any:
        # An instance without fairness rules dumps without the key: the file a
        # generator writes, and a ledger's digest of it, do not depend on it.
        data = handler(self)
        if self.fairness is None and isinstance(data, dict):
            data.pop("fairness", None)
        return data

    @property
    def envy_free(self) -> bool:
        """Whether rule 9 (``priority: "no_justified_envy"``) is on."""
        return self.fairness is not None and self.fairness.priority is not None

    @property
    def group_floor(self) -> bool:
        """Whether rule 8 (``group_floor: "fcfs"``) is on."""
        return self.fairness is not None and self.fairness.group_floor is not None

    @model_validator(mode="after")
    def _exactly_one_of_preset_and_groups(self) -> Policy:
        if (self.preset is None) == (self.age_groups is None):
            raise ValueError("exactly one of preset and age_groups must be given")
        return self

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in _PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {', '.join(sorted(_PRESETS))}")
        return value

    @field_validator("age_groups")
    @classmethod
    def _at_least_one_group(cls, value: tuple[AgeGroup, ...] | None) -> tuple[AgeGroup, ...] | None:
        if value is not None and not value:
            raise ValueError("age_groups must hold at least one group")
        return value

    @field_validator("age_groups")
    @classmethod
    def _group_names_unique(cls, value: tuple[AgeGroup, ...] | None) -> tuple[AgeGroup, ...] | None:
        if value is not None:
            dup = [n for n, k in Counter(g.name for g in value).items() if k > 1]
            if dup:
                raise ValueError(f"age group name {dup[0]!r} is used more than once")
        return value

    @field_validator("age_groups")
    @classmethod
    def _groups_do_not_overlap(
        cls, value: tuple[AgeGroup, ...] | None
    ) -> tuple[AgeGroup, ...] | None:
        if value is not None:
            ordered = sorted(value, key=lambda g: g.min_months)
            for a, b in itertools.pairwise(ordered):
                if b.min_months < a.max_months:
                    raise ValueError(f"age groups {a.name!r} and {b.name!r} overlap")
        return value

    @property
    def groups(self) -> tuple[AgeGroup, ...]:
        """The age groups in force (the preset's or the explicit ones)."""
        if self.age_groups is not None:
            return self.age_groups
        assert self.preset is not None
        return _PRESETS[self.preset]

    @property
    def span(self) -> tuple[int, int]:
        """The default [min_months, max_months) of a session: the groups' span."""
        groups = self.groups
        return min(g.min_months for g in groups), max(g.max_months for g in groups)


class Objective(_Model):
    """Weights of the FORMAT §2 score."""

    serve: Weight = 1000
    priority: Weight = 100
    rank: Weight = 10
    move: Weight = 500
    drop: Weight = 100000


class Site(_Model):
    """A neighbourhood service point; informational apart from its id."""

    id: Id
    name: Text | None = None
    district: Text | None = None
    lat: float | None = None
    lon: float | None = None
    area_m2: Annotated[float | None, Field(gt=0)] = None


class Session(_Model):
    """A session of a site: a time interval with places and caregivers."""

    id: Id
    site: Id
    start: Timestamp
    end: Timestamp
    capacity: Count
    caregivers: Count
    min_months: Count | None = None
    max_months: Count | None = None
    group_caps: Mapping[Text, Count] = Field(default_factory=dict)
    kind: Text | None = None
    course: Text | None = None

    @field_validator("start", "end")
    @classmethod
    def _has_offset(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps must carry an offset (Z or +HH:MM)")
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> Session:
        if self.start >= self.end:
            raise ValueError(f"session {self.id!r} has start >= end")
        return self

    @model_validator(mode="after")
    def _age_range_not_empty(self) -> Session:
        lo, hi = self.min_months, self.max_months
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"session {self.id!r} has min_months {lo} >= max_months {hi}")
        return self


class Child(_Model):
    """A child, identified by id, with a birth date."""

    id: Id
    birth_date: Date
    residency: Text | None = None
    household: Text | None = None


class Request(_Model):
    """A family's request: children placed together in one of the preferences."""

    id: Id
    children: IdTuple
    preferences: IdTuple
    priority: Annotated[int, Field(ge=0, le=9)] = 0
    submitted_at: Timestamp | None = None

    @field_validator("children")
    @classmethod
    def _children_present_and_distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a request needs at least one child")
        if len(set(value)) != len(value):
            raise ValueError("children are not distinct")
        return value

    @field_validator("preferences")
    @classmethod
    def _preferences_distinct_and_few(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not 1 <= len(value) <= MAX_PREFERENCES:
            raise ValueError(f"{len(value)} preferences given; 1 to {MAX_PREFERENCES} are allowed")
        if len(set(value)) != len(value):
            raise ValueError("preferences are not distinct")
        return value


class Booking(_Model):
    """A place confirmed before this run."""

    request: Id
    session: Id
    locked: bool = False


def _where(kind: str, index: int, item_id: str) -> str:
    return f"{kind}[{index}] (id {item_id!r})"


def _first_duplicate(ids: list[str]) -> tuple[int, str] | None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            return i, x
        seen.add(x)
    return None


class Instance(_Model):
    """A validated instance (``slotalloc.instance/1``).

    Raises
    ------
    pydantic.ValidationError
        When any rule of FORMAT §1 is broken; the message names the item by its
        JSON path and id.
    """

    format: Literal["slotalloc.instance/1"] = INSTANCE_FORMAT
    name: Text | None = None
    policy: Policy = Field(default_factory=lambda: Policy(preset="cn-2019"))
    objective: Objective = Field(default_factory=Objective)
    sites: Annotated[tuple[Site, ...], BeforeValidator(_to_tuple)] = ()
    sessions: Annotated[tuple[Session, ...], BeforeValidator(_to_tuple)]
    children: Annotated[tuple[Child, ...], BeforeValidator(_to_tuple)]
    requests: Annotated[tuple[Request, ...], BeforeValidator(_to_tuple)]
    bookings: Annotated[tuple[Booking, ...], BeforeValidator(_to_tuple)] = ()

    # One validator per cross-reference invariant.

    @model_validator(mode="after")
    def _site_ids_unique(self) -> Instance:
        return self._unique("sites", [s.id for s in self.sites])

    @model_validator(mode="after")
    def _session_ids_unique(self) -> Instance:
        return self._unique("sessions", [s.id for s in self.sessions])

    @model_validator(mode="after")
    def _child_ids_unique(self) -> Instance:
        return self._unique("children", [c.id for c in self.children])

    @model_validator(mode="after")
    def _request_ids_unique(self) -> Instance:
        return self._unique("requests", [r.id for r in self.requests])

    @model_validator(mode="after")
    def _session_sites_known(self) -> Instance:
        if self.sites:
            known = {s.id for s in self.sites}
            for i, s in enumerate(self.sessions):
                if s.site not in known:
                    raise ValueError(
                        f"{_where('sessions', i, s.id)}: unknown site {s.site!r}"
                        + did_you_mean(s.site, known)
                    )
        return self

    @model_validator(mode="after")
    def _session_ages_within_reason(self) -> Instance:
        lo_default, hi_default = self.policy.span
        for i, s in enumerate(self.sessions):
            lo = lo_default if s.min_months is None else s.min_months
            hi = hi_default if s.max_months is None else s.max_months
            if lo >= hi:
                raise ValueError(
                    f"{_where('sessions', i, s.id)}: min_months {lo} >= max_months {hi}"
                )
        return self

    @model_validator(mode="after")
    def _group_caps_name_groups(self) -> Instance:
        names = {g.name for g in self.policy.groups}
        for i, s in enumerate(self.sessions):
            for g in s.group_caps:
                if g not in names:
                    raise ValueError(
                        f"{_where('sessions', i, s.id)}: group_caps names unknown age group {g!r}"
                        + did_you_mean(g, names)
                    )
        return self

    @model_validator(mode="after")
    def _request_children_known(self) -> Instance:
        known = self.child_index
        for i, r in enumerate(self.requests):
            for c in r.children:
                if c not in known:
                    raise ValueError(
                        f"{_where('requests', i, r.id)}: unknown child {c!r}"
                        + did_you_mean(c, known)
                    )
        return self

    @model_validator(mode="after")
    def _request_preferences_known(self) -> Instance:
        known = self.session_index
        for i, r in enumerate(self.requests):
            for s in r.preferences:
                if s not in known:
                    raise ValueError(
                        f"{_where('requests', i, r.id)}: unknown session {s!r}"
                        + did_you_mean(s, known)
                    )
        return self

    @model_validator(mode="after")
    def _bookings_name_known_requests(self) -> Instance:
        known = self.request_index
        for i, b in enumerate(self.bookings):
            if b.request not in known:
                raise ValueError(
                    f"bookings[{i}] (request {b.request!r}): unknown request {b.request!r}"
                    + did_you_mean(b.request, known)
                )
        return self

    @model_validator(mode="after")
    def _bookings_are_preferences(self) -> Instance:
        for i, b in enumerate(self.bookings):
            r = self.requests[self.request_index[b.request]]
            if b.session not in r.preferences:
                raise ValueError(
                    f"bookings[{i}] (request {b.request!r}): session {b.session!r} "
                    "is not one of the request's preferences"
                    + did_you_mean(b.session, r.preferences)
                )
        return self

    @model_validator(mode="after")
    def _one_booking_per_request(self) -> Instance:
        dup = _first_duplicate([b.request for b in self.bookings])
        if dup is not None:
            i, rid = dup
            raise ValueError(f"bookings[{i}] (request {rid!r}): a second booking for {rid!r}")
        return self

    def _unique(self, kind: str, ids: list[str]) -> Instance:
        dup = _first_duplicate(ids)
        if dup is not None:
            i, x = dup
            raise ValueError(f"{_where(kind, i, x)}: duplicate id {x!r}")
        return self

    # Lookups (computed once; the model is frozen).

    @cached_property
    def session_index(self) -> Mapping[str, int]:
        """Session id -> position in :attr:`sessions`."""
        return MappingProxyType({s.id: i for i, s in enumerate(self.sessions)})

    @cached_property
    def child_index(self) -> Mapping[str, int]:
        """Child id -> position in :attr:`children`."""
        return MappingProxyType({c.id: i for i, c in enumerate(self.children)})

    @cached_property
    def request_index(self) -> Mapping[str, int]:
        """Request id -> position in :attr:`requests`."""
        return MappingProxyType({r.id: i for i, r in enumerate(self.requests)})

    @cached_property
    def site_index(self) -> Mapping[str, int]:
        """Site id -> position in :attr:`sites`."""
        return MappingProxyType({s.id: i for i, s in enumerate(self.sites)})

    def session_age_range(self, session: Session) -> tuple[int, int]:
        """The [min_months, max_months) a session accepts, defaults applied."""
        lo, hi = self.policy.span
        return (
            lo if session.min_months is None else session.min_months,
            hi if session.max_months is None else session.max_months,
        )


# ---------------------------------------------------------------- solution


class Assignment(_Model):
    """A request placed in a session."""

    request: Id
    session: Id


class ConflictItem(_Model):
    """One entry of an infeasibility explanation.

    ``bookings`` names the conflicting locked bookings by their request ids.
    """

    rule: Text
    message: Text
    sessions: IdTuple = ()
    bookings: IdTuple = ()
    children: IdTuple = ()


class Solution(_Model):
    """A solution file (``slotalloc.solution/1``).

    Raises
    ------
    pydantic.ValidationError
        When the file's shape is wrong (for example an infeasible status with a
        score). Whether the solution is valid and accepted is the verifier's job.
    """

    format: Literal["slotalloc.solution/1"] = SOLUTION_FORMAT
    instance: Text | None = None
    status: Status
    score: int | None = None
    bound: int | None = None
    assignments: Annotated[tuple[Assignment, ...], BeforeValidator(_to_tuple)] = ()
    explanation: Annotated[tuple[ConflictItem, ...] | None, BeforeValidator(_to_tuple)] = None
    stats: dict[str, Any] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status_from_text(cls, value: Any) -> Any:
        # Strict enums refuse their own values given as text; the file gives text.
        return (
            Status(value)
            if isinstance(value, str) and value in Status._value2member_map_
            else value
        )

    @model_validator(mode="after")
    def _infeasible_has_no_score(self) -> Solution:
        if self.status is Status.INFEASIBLE:
            if self.score is not None or self.bound is not None or self.assignments:
                raise ValueError(
                    "an infeasible solution has null score and bound and no assignments"
                )
            if not self.explanation:
                raise ValueError("an infeasible solution needs an explanation")
        return self

    @model_validator(mode="after")
    def _stats_text_encodable(self) -> Solution:
        for path, node, _depth in _nodes(self.stats):
            bad = lone_surrogate(node) if isinstance(node, str) else None
            if bad is not None:
                raise ValueError(
                    f"stats{path} holds a lone surrogate (U+{ord(bad):04X}), "
                    "which cannot be written as UTF-8"
                )
        return self

    @model_validator(mode="after")
    def _stats_numbers_finite(self) -> Solution:
        for path, node, _depth in _nodes(self.stats):
            if isinstance(node, float) and not math.isfinite(node):
                raise ValueError(f"stats{path} is not a finite number")
        return self

    @model_validator(mode="after")
    def _stats_not_too_deep(self) -> Solution:
        for path, node, depth in _nodes(self.stats):
            # Levels of the file: the solution object is level 1, stats level 2.
            if isinstance(node, (Mapping, list, tuple)) and depth + 2 > MAX_DEPTH:
                raise ValueError(f"stats{path} is nested more than {MAX_DEPTH} levels deep")
        return self

    @model_validator(mode="after")
    def _feasible_has_score(self) -> Solution:
        if self.status is not Status.INFEASIBLE and self.score is None:
            raise ValueError(f"a {self.status.value} solution needs an integer score")
        return self


def _nodes(value: Any) -> Iterator[tuple[str, Any, int]]:
    """Every node of a JSON-shaped value (keys included) as (path, node, depth), depth first.

    Iterative, so that no nesting depth can exhaust the stack.
    """
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node, depth
        if isinstance(node, Mapping):
            items = list(node.items())
            for k, v in reversed(items):
                step = f".{k}" if isinstance(k, str) and k.isidentifier() else f"[{k!r}]"
                stack.append((path + step, v, depth + 1))
            for k, _v in items:
                yield path, k, depth + 1
        elif isinstance(node, (list, tuple)):
            for i in range(len(node) - 1, -1, -1):
                stack.append((f"{path}[{i}]", node[i], depth + 1))


# ---------------------------------------------------------------- online events and decisions


class BookEvent(_Model):
    """``{"op": "book", "request": {...}, "children": [...]}``."""

    op: Literal["book"]
    request: Request
    children: Annotated[tuple[Child, ...] | None, BeforeValidator(_to_tuple)] = None


class CancelEvent(_Model):
    """``{"op": "cancel", "request": "r-9"}``."""

    op: Literal["cancel"]
    request: Id


Event = Annotated[BookEvent | CancelEvent, Field(discriminator="op")]


class BookDecision(_Model):
    """The outcome of a book event."""

    event: NonNegInt
    request: Id
    session: Id | None
    waitlisted: bool


class CancelDecision(_Model):
    """The outcome of a cancel event."""

    event: NonNegInt
    request: Id
    cancelled: Literal[True] = True
    promoted: Annotated[tuple[Assignment, ...], BeforeValidator(_to_tuple)] = ()


class ErrorDecision(_Model):
    """An event that was refused; nothing changed."""

    event: NonNegInt
    error: Text


Decision = BookDecision | CancelDecision | ErrorDecision
