"""Named polling set-ups: a strategy plus a backoff policy, offered by the forms and compared
side by side by the compare view."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict

from client_core import BackoffPolicy, Jitter, Strategy


def policy_to_text(policy: BackoffPolicy) -> dict[str, str]:
    """The editor's text for each field of ``policy`` (its fields are the policy's own,
    client_core.policy.POLICY_FIELDS; a blank optional field means "none")."""
    return {
        name: "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
        for name, value in asdict(policy).items()
    }


def policy_from_text(fields: Mapping[str, str]) -> BackoffPolicy:
    """Build a policy from the editor's text; the ValueError names the field at fault."""

    def text(name: str) -> str:
        return fields.get(name, "").strip()

    def number(name: str) -> float:
        try:
            return float(text(name))
        except ValueError:
            raise ValueError(f"{name} must be a number (got {text(name)!r})") from None

    def optional_number(name: str) -> float | None:
        return number(name) if text(name) else None

    def optional_whole(name: str) -> int | None:
        if not text(name):
            return None
        try:
            return int(text(name))
        except ValueError:
            raise ValueError(
                f"{name} must be a whole number or blank (got {text(name)!r})"
            ) from None

    def jitter() -> Jitter:
        given = text("jitter") or Jitter.NONE.value
        try:
            return Jitter(given.lower())
        except ValueError:
            kinds = ", ".join(kind.value for kind in Jitter)
            raise ValueError(f"jitter must be one of {kinds} (got {given!r})") from None

    return BackoffPolicy(  # validates the combination
        initial_s=number("initial_s"),
        multiplier=number("multiplier"),
        max_delay_s=number("max_delay_s"),
        jitter=jitter(),
        jitter_ratio=number("jitter_ratio"),
        max_attempts=optional_whole("max_attempts"),
        deadline_s=optional_number("deadline_s"),
        seed=optional_whole("seed"),
    )


#: The most delays the policy editor lists (a budget of 1000 polls would fill the screen).
PREVIEW_MAX_DELAYS = 12


def schedule_preview(policy: BackoffPolicy, polls: int = 8) -> str:
    """The delays a policy produces and when each poll happens, in one short text.

    A policy with an attempt budget lists one delay per poll it will make (up to
    PREVIEW_MAX_DELAYS); one without lists the first ``polls``. Unseeded jitter is sampled
    with a fixed seed so the preview does not flicker."""
    budget = policy.max_attempts
    shown = min(budget, PREVIEW_MAX_DELAYS) if budget is not None else polls
    delays = policy.schedule(shown, rng=None if policy.seed is not None else random.Random(0))
    at, times = 0.0, []
    for delay in delays:
        times.append(at)
        at += delay
    sampled = " (one jitter sample)" if policy.jitter is not Jitter.NONE else ""
    more = " ..." if budget is None or budget > shown else ""
    ending = "" if budget is None else f"; gives up after poll {budget}"
    return (
        f"delays{sampled}: {' '.join(f'{d:.2f}' for d in delays)}{more} s\n"
        f"polls at: {' '.join(f'{t:.1f}' for t in times)}{more} s{ending}"
    )


def strategy_preview(strategy: Strategy, policy: BackoffPolicy) -> str:
    """What a watch with ``strategy`` and ``policy`` will do, first line first: the
    schedule only where the schedule is what times the polls.

    ``auto`` with an attempt budget polls (a budget counts status checks), long-polling
    where the server offers it; without one it waits for a push. The other push and hint
    strategies fall back to the schedule only when the server offers nothing better.
    """
    deadline = "" if policy.deadline_s is None else f"; gives up after {policy.deadline_s:g} s"
    budget = policy.max_attempts
    if strategy is Strategy.AUTO and budget is not None:
        return (
            f"auto with a budget of {budget} polls: long-polls where the server offers it "
            f"(each held poll counts), else follows its hints, else this schedule:\n"
            + schedule_preview(policy)
        )
    if strategy in (Strategy.AUTO, Strategy.STREAM):
        where = "the event stream" if strategy is Strategy.STREAM else "the event stream, "
        if strategy is Strategy.AUTO:
            where += "else held batch requests, else long-polls"
        return (
            f"no poll per job: the end is pushed on {where}{deadline}. Where the server "
            "offers no push, this schedule:\n" + schedule_preview(policy)
        )
    if strategy is Strategy.BATCH:
        return (
            f"no poll per job: one held batch request asks about every job at once{deadline}."
            " Where the server offers no batch route, this schedule:\n" + schedule_preview(policy)
        )
    if strategy is Strategy.LONG_POLL:
        return (
            "each poll is held by the server until the job ends (up to its cap); "
            "this schedule times retries after errors:\n" + schedule_preview(policy)
        )
    if strategy is Strategy.HINTED:
        return (
            "polls when the server's hint says the job ends; without a hint, this "
            "schedule:\n" + schedule_preview(policy)
        )
    return schedule_preview(policy)
