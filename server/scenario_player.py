"""The server playing a scenario's timeline (``videosim-server --scenario NAME|PATH``).

At each moment the scenario's faults change, the player sets the server's faults to what
the timeline says (a 503 share, an outage, a rate limit, latency), on the process's one
schedule and the server's clock, so a test moving a fake clock sees every phase exactly on
time. An outage cuts every connection as it is made or speaks (served by uvicorn; in
process, where there are no connections, its requests are answered 503) and ends the open
event streams. Jobs started without a duration get the scenario's, drawn from its
seed in start order, so two runs of one scenario give the same jobs and the same faults.
The timeline begins when the server starts, or again at ``POST /admin/scenario/start``.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from scenarios import Scenario
from server.faults import FaultInjector, Offers
from server.jobs.clock import Clock
from server.jobs.schedule import Schedule, Timer
from server.models import Faults


class ScenarioStatus(BaseModel):
    """GET /admin/scenario: where the timeline is and what comes next."""

    name: str
    title: str
    started: bool
    elapsed_s: float | None
    length_s: float
    phases: list[str]  # the kinds in force now
    faults: Faults
    next_change_in_s: float | None
    next_phases: list[str] | None  # the kinds in force after that change
    jobs_started: int
    jobs_planned: int


class ScenarioPlayer:
    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        schedule: Schedule,
        faults: FaultInjector,
        offers: Offers,
        on_outage: Callable[[bool], None] = lambda began: None,
        on_push_off: Callable[[], None] = lambda: None,
    ) -> None:
        self.scenario = scenario
        self._offers = offers
        self._offered = Offers(offers.hints, offers.long_poll_max_s, offers.push)  # unfaulted
        self._on_push_off = on_push_off  # push switched off: end the open event streams
        self._on_outage = on_outage  # an outage begins (True) or ends (False)
        self._in_outage = False
        self._clock = clock
        self._schedule = schedule
        self._faults = faults
        self._durations = scenario.durations()
        self._drawn = 0
        self._started_at: float | None = None
        self._timers: list[Timer] = []

    def start(self) -> None:
        """Begin the timeline now (again, if it ran before); durations start over too."""
        for timer in self._timers:
            timer.cancel()
        self._started_at = self._clock.now()
        self._drawn = 0
        self._timers = [
            self._schedule.call_at(self._started_at + moment, self._apply)
            for moment in self.scenario.boundaries()
            if moment > 0
        ]
        self._apply()

    def next_duration(self) -> float:
        """The next job's duration (the scenario's list, again from the top when spent)."""
        duration = self._durations[self._drawn % len(self._durations)]
        self._drawn += 1
        return duration

    def status(self) -> ScenarioStatus:
        elapsed = self._elapsed()
        next_change = None if elapsed is None else self.scenario.next_change_after(elapsed)
        after = None if next_change is None else self.scenario.faults_at(next_change)
        now = self.scenario.faults_at(elapsed) if elapsed is not None else None
        return ScenarioStatus(
            name=self.scenario.name,
            title=self.scenario.title,
            started=elapsed is not None,
            elapsed_s=None if elapsed is None else round(elapsed, 3),
            length_s=self.scenario.length_s,
            phases=list(now.phases) if now else [],
            faults=self._faults.faults,
            next_change_in_s=None
            if next_change is None or elapsed is None
            else round(next_change - elapsed, 3),
            next_phases=None if after is None else list(after.phases),
            jobs_started=self._drawn,
            jobs_planned=self.scenario.jobs.count,
        )

    def _elapsed(self) -> float | None:
        return None if self._started_at is None else self._clock.now() - self._started_at

    def _apply(self) -> None:
        elapsed = self._elapsed()
        if elapsed is None:
            return
        state = self.scenario.faults_at(elapsed)
        outage = "outage" in state.phases
        if outage != self._in_outage:
            self._in_outage = outage
            self._on_outage(outage)
        offered, offers = self._offered, self._offers
        offers.hints = offered.hints and "no-hints" not in state.phases
        offers.long_poll_max_s = 0.0 if "no-long-poll" in state.phases else offered.long_poll_max_s
        push = offered.push and "no-push" not in state.phases
        if offers.push and not push:
            self._on_push_off()
        offers.push = push
        self._faults.faults = Faults(
            latency_ms=state.latency_ms,
            unavailable_rate=state.unavailable_rate,
            retry_after_s=state.retry_after_s,
            rate_limit_rps=state.rate_limit_rps,
        )
