"""The instance format (``slotalloc.instance/1``, FORMAT §1) and its parts.

Part of :mod:`slotalloc.models`: age groups and the :data:`CN_2019` preset,
the policy (with the opt-in fairness rules of FORMAT §4) and objective, sites,
sessions, children, requests, bookings, and the :class:`Instance` that checks
every cross-reference between them.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from slotalloc.models.common import (
    INSTANCE_FORMAT,
    MAX_PREFERENCES,
    Count,
    Date,
    Id,
    IdTuple,
    PositiveCount,
    Text,
    Timestamp,
    Weight,
    _Model,
    _to_tuple,
    did_you_mean,
)

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
