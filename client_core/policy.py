"""How long to wait between polls: a small immutable value with a pure schedule.

A ``BackoffPolicy`` never sleeps and never looks at the clock. It answers "after
attempt ``n``, how long until the next one?" from its parameters and an RNG, so
the whole schedule (jitter included, given a seed) is checked in tests without
waiting. Attempts are 1-based: ``delay(1)`` is the wait after the first poll.

The un-jittered delay after attempt ``n`` is
``min(max_delay_s, initial_s * multiplier ** (n - 1))``; the jitter kinds then
spread it (always staying within ``[0, max_delay_s]``):

- ``NONE``: exactly the base delay.
- ``FULL``: uniform in ``[0, base]`` (spreads the most, halves the mean).
- ``EQUAL``: uniform in ``[base / 2, base]``.
- ``DECORRELATED``: uniform in ``[initial_s, 3 * previous]`` (AWS "decorrelated
  jitter"); ignores the multiplier, needs the previous delay.
- ``PROPORTIONAL``: uniform in ``base * [1 - ratio, 1 + ratio]`` (keeps the mean).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace
from enum import StrEnum

# No preset waits longer than this between polls unless asked to: the seed's doubling
# schedule would otherwise reach 524,288 s after 20 retries.
PRESET_MAX_DELAY_S = 60.0


_UNSEEDED = random.Random()  # shared by every unseeded policy: jitter needs no secrecy


class Jitter(StrEnum):
    """How a delay is randomised around the exponential schedule."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"
    PROPORTIONAL = "proportional"


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays between polls, plus when to give up.

    The defaults are the library's recommended policy (see docs/client.md):
    start fast (0.25 s) so short jobs are noticed quickly, grow by 1.6x so a
    long job costs few requests, never wait more than 10 s so detection lag
    stays bounded, and spread watchers by +/-20% so jobs started together do
    not poll together. No attempt budget and no deadline: a watch ends when the
    job does (set ``max_attempts`` or ``deadline_s`` to give up earlier).

    ``max_attempts`` counts status requests, not time. Under long-poll each
    request after the first may be held for the server's whole cap (30 s by
    default), and neither ``max_delay_s`` nor the schedule shortens a hold, so
    a budget of N polls can last up to N times that cap. ``deadline_s`` is the
    way to bound time in every strategy.
    """

    initial_s: float = 0.25
    multiplier: float = 1.6
    max_delay_s: float = 10.0  # caps sleeps between polls; a long-poll hold is not a sleep
    jitter: Jitter = Jitter.PROPORTIONAL
    jitter_ratio: float = 0.2
    max_attempts: int | None = None  # status requests per watch (not time); None = no budget
    deadline_s: float | None = None  # seconds from the first poll; None = no deadline
    seed: int | None = None  # fixes the jitter sequence; None = fresh randomness

    def __post_init__(self) -> None:
        if not isinstance(self.jitter, Jitter):
            try:
                object.__setattr__(self, "jitter", Jitter(str(self.jitter).lower()))
            except ValueError:
                kinds = ", ".join(kind.value for kind in Jitter)
                raise ValueError(f"jitter must be one of {kinds} (got {self.jitter!r})") from None
        self.validate()

    # -- presets -----------------------------------------------------------------

    @classmethod
    def original(cls, retries: int = 5, backoff_factor: float = 1.0) -> BackoffPolicy:
        """The seed client: ``RETRIES`` checks, ``BACKOFF_FACTOR * 2**i`` between them.

        With the defaults the schedule is exactly 1, 2, 4, 8, 16 seconds over 5
        attempts, no jitter. Delays are capped at ``PRESET_MAX_DELAY_S`` (60 s), or
        at the first delay if that is longer.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries must be an integer >= 1 (got {retries!r})")
        _check_positive("backoff_factor", backoff_factor)
        return cls(
            initial_s=float(backoff_factor),
            multiplier=2.0,
            max_delay_s=_capped_growth(float(backoff_factor), retries),
            jitter=Jitter.NONE,
            jitter_ratio=0.0,
            max_attempts=retries,
        )

    @classmethod
    def fixed(
        cls,
        interval_s: float,
        *,
        max_attempts: int | None = None,
        deadline_s: float | None = None,
    ) -> BackoffPolicy:
        """The same wait every time: the naive poller, kept as a baseline."""
        return cls(
            initial_s=interval_s,
            multiplier=1.0,
            max_delay_s=interval_s,
            jitter=Jitter.NONE,
            jitter_ratio=0.0,
            max_attempts=max_attempts,
            deadline_s=deadline_s,
        )

    @classmethod
    def default(cls) -> BackoffPolicy:
        """The library default, spelled out for readers of calling code."""
        return cls()

    # -- validation --------------------------------------------------------------

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad parameter."""
        _check_positive("initial_s", self.initial_s)
        if not _is_number(self.multiplier) or not math.isfinite(self.multiplier):
            raise ValueError(f"multiplier must be a finite number (got {self.multiplier!r})")
        if self.multiplier < 1:
            raise ValueError(
                f"multiplier must be >= 1 so delays never shrink (got {self.multiplier})"
            )
        _check_positive("max_delay_s", self.max_delay_s)
        if self.max_delay_s < self.initial_s:
            raise ValueError(
                f"max_delay_s ({self.max_delay_s}) must be >= initial_s ({self.initial_s})"
            )
        if not _is_number(self.jitter_ratio) or not 0 <= self.jitter_ratio <= 1:
            raise ValueError(f"jitter_ratio must be between 0 and 1 (got {self.jitter_ratio!r})")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(
                f"max_attempts must be an integer >= 1 or None (got {self.max_attempts!r})"
            )
        if self.deadline_s is not None:
            _check_positive("deadline_s", self.deadline_s)
        seed_ok = self.seed is None or (
            isinstance(self.seed, int) and not isinstance(self.seed, bool)
        )
        if not seed_ok:
            raise ValueError(f"seed must be an integer or None (got {self.seed!r})")

    # -- the schedule --------------------------------------------------------------

    def rng(self) -> random.Random:
        """A fresh RNG for one watch when seeded (replays the same jitter), else a shared one.

        Seeding a new ``Random`` from the OS costs ~35 us, a lot per job at 10,000 jobs.
        """
        return _UNSEEDED if self.seed is None else random.Random(self.seed)

    def base_delay(self, attempt: int) -> float:
        """The un-jittered delay after ``attempt`` (1-based), capped at ``max_delay_s``."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based (got {attempt})")
        try:
            raw = self.initial_s * self.multiplier ** (attempt - 1)
        except OverflowError:  # a huge attempt number: the cap applies anyway
            return self.max_delay_s
        return min(self.max_delay_s, raw)

    def delay(
        self,
        attempt: int,
        previous: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """The wait after ``attempt``; ``previous`` is the last delay (for DECORRELATED)."""
        base = self.base_delay(attempt)
        draw = (rng or random).uniform
        match self.jitter:
            case Jitter.NONE:
                return base
            case Jitter.FULL:
                return draw(0.0, base)
            case Jitter.EQUAL:
                return draw(base / 2, base)
            case Jitter.DECORRELATED:
                upper = max(self.initial_s, 3.0 * (previous or self.initial_s))
                return min(self.max_delay_s, draw(self.initial_s, upper))
            case Jitter.PROPORTIONAL:
                low = max(0.0, base * (1 - self.jitter_ratio))
                high = min(self.max_delay_s, base * (1 + self.jitter_ratio))
                return draw(low, high)
        raise AssertionError(f"unhandled jitter {self.jitter!r}")  # pragma: no cover

    def schedule(self, n: int, rng: random.Random | None = None) -> list[float]:
        """The first ``n`` delays, in order (the policy's own seed unless ``rng`` given)."""
        if n < 0:
            raise ValueError(f"n must be >= 0 (got {n})")
        rng = rng or self.rng()
        delays: list[float] = []
        previous: float | None = None
        for attempt in range(1, n + 1):
            previous = self.delay(attempt, previous, rng)
            delays.append(previous)
        return delays

    # -- giving up -------------------------------------------------------------------

    def budget_spent(self, attempts: int) -> bool:
        """True once ``attempts`` status requests have used the whole budget."""
        return self.max_attempts is not None and attempts >= self.max_attempts

    def time_left(self, elapsed_s: float) -> float | None:
        """Seconds until the deadline (<= 0 once passed), or None without one."""
        return None if self.deadline_s is None else self.deadline_s - elapsed_s

    def replace(self, **changes: object) -> BackoffPolicy:
        """A copy with some parameters changed (validated like any new policy)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        """One line for logs and tables."""
        budget = "no budget" if self.max_attempts is None else f"{self.max_attempts} attempts"
        deadline = "no deadline" if self.deadline_s is None else f"deadline {self.deadline_s:g}s"
        jitter = self.jitter.value
        if self.jitter is Jitter.PROPORTIONAL:
            jitter += f" +/-{self.jitter_ratio:.0%}"
        return (
            f"{self.initial_s:g}s x{self.multiplier:g} up to {self.max_delay_s:g}s, "
            f"jitter {jitter}, {budget}, {deadline}"
        )


#: The parameters of a policy, in the order the forms and tables show them: the one list
#: the settings, the policy editor and the remembered settings read.
POLICY_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(BackoffPolicy))


def _capped_growth(backoff_factor: float, retries: int) -> float:
    """The original schedule's largest delay, capped (but never below the first delay)."""
    largest = backoff_factor * 2.0 ** min(retries - 1, 64)
    return max(backoff_factor, min(largest, PRESET_MAX_DELAY_S))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_positive(name: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite number of seconds (got {value!r})")
    if value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be > 0 (got {value})")
