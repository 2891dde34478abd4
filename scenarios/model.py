"""What a scenario says, validated: the jobs of a run and the faults on its timeline.

A scenario is a small TOML file: job durations (a distribution, or observed durations
replayed), the outcome mix, how the jobs arrive, and phases of misbehaviour with a start
and a length. The server plays its timeline; a comparison starts its jobs under every
set-up; both draw from the scenario's seed, so two runs of one scenario give the same jobs
and the same faults.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME = r"^[a-z0-9][a-z0-9-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- durations ------------------------------------------------------------------------


class Constant(Strict):
    kind: Literal["constant"]
    seconds: float = Field(gt=0, le=86_400)

    def draw(self, rng: random.Random) -> float:
        return self.seconds


class Uniform(Strict):
    kind: Literal["uniform"]
    low_s: float = Field(gt=0)
    high_s: float = Field(gt=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high_s < self.low_s:
            raise ValueError(f"high_s ({self.high_s}) is below low_s ({self.low_s})")
        return self

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low_s, self.high_s)


class LogNormal(Strict):
    """A long tail: most jobs near the median, a few many times longer; clipped."""

    kind: Literal["lognormal"]
    median_s: float = Field(gt=0)
    sigma: float = Field(gt=0, le=4)
    min_s: float = Field(default=0.001, gt=0)
    max_s: float = Field(default=3600.0, gt=0, le=86_400)

    def draw(self, rng: random.Random) -> float:
        drawn = rng.lognormvariate(math.log(self.median_s), self.sigma)
        return min(self.max_s, max(self.min_s, drawn))


#: A duration: a number of seconds, or ``[low, high]`` drawn uniformly.
Span = (
    Annotated[float, Field(gt=0, le=86_400)]
    | tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0, le=86_400)]]
)


def _draw_span(span: float | tuple[float, float], rng: random.Random) -> float:
    return rng.uniform(*span) if isinstance(span, tuple) else span


class Bimodal(Strict):
    """Two kinds of job: ``long_share`` of them ``long_s``, the rest ``short_s`` (each a
    number of seconds or a ``[low, high]`` range)."""

    kind: Literal["bimodal"]
    short_s: Span
    long_s: Span
    long_share: float = Field(ge=0, le=1)

    def draw(self, rng: random.Random) -> float:
        return _draw_span(self.long_s if rng.random() < self.long_share else self.short_s, rng)


class Replay(Strict):
    """Durations observed on a real API, replayed in order (and again from the top):
    listed in ``seconds``, or the first column of a CSV file (``csv``, relative to the
    scenario file; a header line is skipped)."""

    kind: Literal["replay"]
    seconds: list[Annotated[float, Field(gt=0, le=86_400)]] = Field(default_factory=list)
    csv: str | None = None

    @model_validator(mode="after")
    def _some_durations(self) -> Replay:
        if not self.seconds and self.csv is None:
            raise ValueError("replay needs `seconds` or `csv`")
        return self


Durations = Annotated[
    Constant | Uniform | LogNormal | Bimodal | Replay, Field(discriminator="kind")
]


# --- arrivals -------------------------------------------------------------------------


class AtOnce(Strict):
    kind: Literal["at-once"]


class Rate(Strict):
    kind: Literal["rate"]
    per_s: float = Field(gt=0, le=100_000)


class Ramp(Strict):
    """From ``from_per_s`` to ``to_per_s``, linearly, over ``over_s`` seconds."""

    kind: Literal["ramp"]
    from_per_s: float = Field(gt=0, le=100_000)
    to_per_s: float = Field(gt=0, le=100_000)
    over_s: float = Field(gt=0)


Arrivals = Annotated[AtOnce | Rate | Ramp, Field(discriminator="kind")]


class Jobs(Strict):
    count: int = Field(ge=1, le=100_000)
    durations: Durations
    error_rate: float = Field(default=0.5, ge=0, le=1)
    arrivals: Arrivals = AtOnce(kind="at-once")


# --- the fault timeline ---------------------------------------------------------------


class Phase(Strict):
    """One span of misbehaviour: ``start_s`` and ``length_s`` from the scenario's start.

    ``unavailable``: ``share`` of requests answered 503 with ``retry_after_s``;
    ``rate-limit``: ``rps`` per client, 429 with Retry-After beyond it; ``latency``:
    ``latency_ms`` added to every answer; ``outage``: the API is gone (the server cuts
    every connection; in process, where there are none, it answers 503); ``no-hints``,
    ``no-long-poll``, ``no-push``: the server stops offering that for the phase."""

    kind: Literal[
        "unavailable", "rate-limit", "latency", "outage", "no-hints", "no-long-poll", "no-push"
    ]
    start_s: float = Field(ge=0)
    length_s: float = Field(gt=0)
    share: float = Field(default=1.0, ge=0, le=1)
    retry_after_s: int = Field(default=1, ge=1, le=3600)
    rps: float = Field(default=1.0, gt=0)
    latency_ms: float = Field(default=0.0, ge=0, le=60_000)

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s

    def active_at(self, elapsed_s: float) -> bool:
        return self.start_s <= elapsed_s < self.end_s


class FaultState(Strict):
    """The faults in force at one moment of the timeline (every phase active combined)."""

    unavailable_rate: float = 0.0
    retry_after_s: int = 1
    rate_limit_rps: float = 0.0
    latency_ms: float = 0.0
    phases: tuple[str, ...] = ()  # the kinds active, for GET /admin/scenario


class Scenario(Strict):
    name: str = Field(pattern=NAME)
    title: str
    seed: int = 1
    jobs: Jobs
    phases: list[Phase] = Field(default_factory=list)

    @property
    def length_s(self) -> float:
        """When the last phase ends (0 with no phase)."""
        return max((phase.end_s for phase in self.phases), default=0.0)

    def boundaries(self) -> list[float]:
        """Every moment the faults change, in order, from the start."""
        return sorted({0.0, *(p.start_s for p in self.phases), *(p.end_s for p in self.phases)})

    def faults_at(self, elapsed_s: float) -> FaultState:
        active = [phase for phase in self.phases if phase.active_at(elapsed_s)]
        unavailable = [p for p in active if p.kind in ("unavailable", "outage")]
        limits = [p.rps for p in active if p.kind == "rate-limit"]
        shares = [1.0 if p.kind == "outage" else p.share for p in unavailable]
        return FaultState(
            unavailable_rate=max(shares, default=0.0),
            retry_after_s=max((p.retry_after_s for p in unavailable), default=1),
            rate_limit_rps=min(limits, default=0.0),
            latency_ms=sum(p.latency_ms for p in active if p.kind == "latency"),
            phases=tuple(p.kind for p in active),
        )

    def next_change_after(self, elapsed_s: float) -> float | None:
        return next((b for b in self.boundaries() if b > elapsed_s), None)

    def durations(self) -> list[float]:
        """Every job's duration, in start order, from the scenario's seed."""
        rng = random.Random(f"{self.name}:{self.seed}")
        spec = self.jobs.durations
        if isinstance(spec, Replay):
            observed = spec.seconds
            return [observed[n % len(observed)] for n in range(self.jobs.count)]
        return [round(spec.draw(rng), 3) for _ in range(self.jobs.count)]

    def outcomes(self) -> list[str]:
        """Every job's fate ("completed" or "error"), in start order, from the seed."""
        rng = random.Random(f"{self.name}:{self.seed}:outcomes")
        share = self.jobs.error_rate
        return ["error" if rng.random() < share else "completed" for _ in range(self.jobs.count)]

    def with_jobs(self, count: int, seed: int) -> Scenario:
        """The same scenario with ``count`` jobs drawn from ``seed`` (benchmark rounds)."""
        jobs = self.jobs.model_copy(update={"count": count})
        return self.model_copy(update={"jobs": jobs, "seed": seed})

    def arrival_times(self) -> list[float]:
        """When each job starts, in seconds from the scenario's start."""
        count, arrivals = self.jobs.count, self.jobs.arrivals
        if isinstance(arrivals, AtOnce):
            return [0.0] * count
        if isinstance(arrivals, Rate):
            return [n / arrivals.per_s for n in range(count)]
        times, at = [], 0.0
        slope = (arrivals.to_per_s - arrivals.from_per_s) / arrivals.over_s
        for _ in range(count):
            times.append(round(at, 6))
            rate = arrivals.from_per_s + slope * min(at, arrivals.over_s)
            at += 1.0 / rate
        return times
