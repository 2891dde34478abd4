"""Poll efficiency: what each polling policy costs in requests and in detection lag.

The question a user asks before adopting the library instead of a hand-written loop:
how many status requests does it save, and how much sooner does it notice a job ended?

Method. Each workload is a fixed, seeded list of jobs (arrival time, duration, fated
outcome, 20 % of them errors). Every policy gets its own copy of every job, started at
the same moment against the same server, so all policies see identical work. Request
counts and detection lag come from the server's own record of each job
(``GET /jobs/{id}``: ``status_requests``, ``detection_lag_s`` = first final answer minus
the finish time, and the log of request times), not from the client.

Time is scaled down (1/10; --quick 1/40) so a workload of minutes runs in seconds: job
durations, arrival times, every policy's delays (initial, cap, deadline), the server's
long-poll cap and the client's small hint margins are all divided by the same factor,
and lags are multiplied back. Fixed costs that cannot be scaled (a loopback round trip,
event-loop scheduling, ~1 ms) are thereby magnified by the factor in the reported lags,
which makes the figures for the fast policies pessimistic, never flattering.

``Retry-After`` is whole seconds (``ceil(eta)``, at least 1), which would mean 10 real
seconds at 1/10. The client's hinted and auto strategies do not use it on a pending
answer: they time the next poll from ``eta_s``, a float in milliseconds, which scales
exactly. ``Retry-After`` only drives retries after 429/503, and these workloads inject
no faults, so it never comes into play here.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.report import (
    Column,
    SectionResult,
    Table,
    over_rounds,
    ratio,
    spread_column,
)
from bench.server_process import ServerProcess
from client_core import (
    BackoffPolicy,
    Outcome,
    PollEvent,
    PollTiming,
    StartSpec,
    Strategy,
    VideoSimClient,
    WatchResult,
)
from client_core.comparison_report import percentile
from scenarios import Scenario, load_scenario

LONG_POLL_MAX_S = 30.0  # the server's default cap, in real seconds
IN_FLIGHT_PER_POLICY = 256  # so long-poll never falls back for lack of hold slots


# --- workloads --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job of a workload, in real (unscaled) seconds."""

    index: int
    arrives_at_s: float
    duration_s: float
    outcome: str  # "completed" or "error"


@dataclass(frozen=True, slots=True)
class Workload:
    """A scenario file of bench/scenarios: its job durations and outcome mix, one
    definition shared with ``videosim-client compare`` and the server's ``--scenario``."""

    scenario: Scenario

    @property
    def name(self) -> str:
        return self.scenario.title.split(": ", 1)[0]

    @property
    def description(self) -> str:
        return self.scenario.title.split(": ", 1)[-1]

    def jobs(self, count: int, arrival_window_s: float, seed: int) -> list[PlannedJob]:
        """The same jobs for every policy: arrivals spread over the window, seeded."""
        drawn = self.scenario.with_jobs(count, seed)
        rng = random.Random(f"{self.name}:{seed}:arrivals")
        arrivals = sorted(rng.uniform(0, arrival_window_s) for _ in range(count))
        return [
            PlannedJob(index=index, arrives_at_s=arrives_at, duration_s=duration, outcome=fate)
            for index, (arrives_at, duration, fate) in enumerate(
                zip(arrivals, drawn.durations(), drawn.outcomes(), strict=True)
            )
        ]


SCENARIOS = Path(__file__).resolve().parent / "scenarios"
WORKLOADS = tuple(
    Workload(load_scenario(str(SCENARIOS / f"{name}.toml")))
    for name in ("constant-5s", "uniform-1-60s", "lognormal", "bimodal")
)


# --- policies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollingPolicy:
    """A strategy plus a backoff policy, stated in real seconds."""

    name: str
    strategy: Strategy
    policy: BackoffPolicy

    def scaled(self, factor: float, seed: int) -> BackoffPolicy:
        """The same policy with every duration divided by ``factor``, jitter seeded."""
        deadline = self.policy.deadline_s
        return self.policy.replace(
            initial_s=self.policy.initial_s / factor,
            max_delay_s=self.policy.max_delay_s / factor,
            deadline_s=None if deadline is None else deadline / factor,
            seed=seed,
        )


ORIGINAL = "original 1,2,4,8,16 s"
FIXED = "fixed 1 s"
POLICIES = (
    PollingPolicy(ORIGINAL, Strategy.BACKOFF, BackoffPolicy.original()),
    PollingPolicy(FIXED, Strategy.BACKOFF, BackoffPolicy.fixed(1.0)),
    PollingPolicy("backoff (default policy)", Strategy.BACKOFF, BackoffPolicy()),
    PollingPolicy("hinted", Strategy.HINTED, BackoffPolicy()),
    PollingPolicy("long-poll", Strategy.LONG_POLL, BackoffPolicy()),
    PollingPolicy("auto", Strategy.AUTO, BackoffPolicy()),
    PollingPolicy("stream", Strategy.STREAM, BackoffPolicy()),
    PollingPolicy("batch", Strategy.BATCH, BackoffPolicy()),
)
AUTO = "auto"
IDEAL = "ideal"
PUSHED = frozenset({Strategy.STREAM, Strategy.BATCH})
# The push rows start jobs with start_many: jobs arriving within this many real seconds of
# the first of a group are started together, when the last of them arrives (one request).
GATHER_S = 0.5


def scaled_timing(factor: float) -> PollTiming:
    """The client's fixed margins (e.g. 20 ms after eta) divided by the time factor.

    Left unscaled, a 20 ms margin would count as 0.2 real seconds of lag at 1/10.
    Every client of the run gets this value; nothing global is changed.
    """
    return PollTiming().scaled(factor)


def margins_in_seconds(timing: PollTiming) -> dict[str, float]:
    """The margins that are durations (the ratios need no scaling), for the report."""
    return {name: value for name, value in asdict(timing).items() if name.endswith("_s")}


# --- running one workload -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollSizes:
    jobs: int  # per workload (each policy watches its own copy of each)
    arrival_window_s: float  # real seconds over which jobs arrive
    time_scale: float  # real seconds per benchmark second
    rounds: int  # the same seeded workloads run again; figures are medians of the rounds


FULL = PollSizes(jobs=36, arrival_window_s=30.0, time_scale=10.0, rounds=3)
QUICK = PollSizes(jobs=8, arrival_window_s=10.0, time_scale=40.0, rounds=2)


Watched = tuple[str, WatchResult, float | None]  # job id, result, wall time of the final event


async def run_workload(
    base_url: str, jobs: list[PlannedJob], sizes: PollSizes, seed: int, timing: PollTiming
) -> dict[str, list[dict[str, Any]]]:
    """Every policy watches its own copy of every job; returns the server's job records.

    Each run also carries ``requests``: every request the policy's client sent for the
    workload (starts, status, batch status, the event stream), after its warm-up.
    """
    scale = sizes.time_scale
    longest_s = max(job.arrives_at_s + job.duration_s for job in jobs)
    time_cap_s = (longest_s + 2 * LONG_POLL_MAX_S) / scale + 30  # generous, but bounded
    clients = {
        policy.name: VideoSimClient(base_url, max_in_flight=IN_FLIGHT_PER_POLICY, timing=timing)
        for policy in POLICIES
    }
    await asyncio.gather(*(_warm_up(clients[policy.name], policy.strategy) for policy in POLICIES))
    sent_before = {name: client.stats.requests_sent for name, client in clients.items()}
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def watch(policy: PollingPolicy, job: PlannedJob, job_id: str) -> Watched:
        client = clients[policy.name]
        backoff = policy.scaled(scale, seed=seed * 100_000 + job.index)
        final_at: list[float] = []

        def on_event(event: PollEvent) -> None:
            if event.final:
                final_at.append(time.time())  # the server's clock is epoch seconds too

        result = await client.wait(job_id, backoff, policy.strategy, on_event=on_event)
        return job_id, result, final_at[0] if final_at else None

    async def start_and_watch(policy: PollingPolicy, job: PlannedJob) -> Watched:
        await asyncio.sleep(max(0.0, began + job.arrives_at_s / scale - loop.time()))
        job_id = await clients[policy.name].start(job.duration_s / scale, job.outcome)
        return await watch(policy, job, job_id)

    async def start_many_and_watch(policy: PollingPolicy, group: list[PlannedJob]) -> list[Watched]:
        await asyncio.sleep(max(0.0, began + group[-1].arrives_at_s / scale - loop.time()))
        specs = [StartSpec(job.duration_s / scale, job.outcome) for job in group]
        started = await clients[policy.name].start_many(specs)
        job_ids = [result.job_id for result in started]
        if None in job_ids:
            raise RuntimeError(f"{policy.name}: a start failed: {started}")
        return list(
            await asyncio.gather(
                *(
                    watch(policy, job, str(job_id))
                    for job, job_id in zip(group, job_ids, strict=True)
                )
            )
        )

    async def run_policy(policy: PollingPolicy) -> list[Watched]:
        if policy.strategy in PUSHED:
            groups = await asyncio.gather(
                *(start_many_and_watch(policy, group) for group in arrival_groups(jobs))
            )
            return [watched for group in groups for watched in group]
        return list(await asyncio.gather(*(start_and_watch(policy, job) for job in jobs)))

    try:
        async with asyncio.timeout(time_cap_s):
            by_policy = await asyncio.gather(*(run_policy(policy) for policy in POLICIES))
        sent = {
            name: client.stats.requests_sent - sent_before[name] for name, client in clients.items()
        }
    finally:
        await asyncio.gather(*(client.aclose() for client in clients.values()))

    watched = [one for policy_watched in by_policy for one in policy_watched]
    records = await _job_records(base_url, [job_id for job_id, _, _ in watched])
    runs: dict[str, list[dict[str, Any]]] = {policy.name: [] for policy in POLICIES}
    for policy, policy_watched in zip(POLICIES, by_policy, strict=True):
        for job, (job_id, result, final_at) in zip(jobs, policy_watched, strict=True):
            runs[policy.name].append(
                {
                    "job": job,
                    "outcome": result.outcome,
                    "record": records[job_id],
                    "final_seen_at": final_at,
                    "client_requests": sent[policy.name],
                }
            )
    return runs


def arrival_groups(jobs: list[PlannedJob]) -> list[list[PlannedJob]]:
    """Jobs in arrival order, grouped: each group spans at most GATHER_S real seconds."""
    groups: list[list[PlannedJob]] = []
    for job in sorted(jobs, key=lambda j: j.arrives_at_s):
        if groups and job.arrives_at_s - groups[-1][0].arrives_at_s <= GATHER_S:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


async def _warm_up(client: VideoSimClient, strategy: Strategy, connections: int = 8) -> None:
    """Open pooled connections and run every code path once before the clock starts.

    Without it the first jobs of a workload pay for TCP handshakes and cold code, which
    the time scale would magnify into seconds of lag. These jobs are not reported. A push
    policy also watches one of them its way, which opens its event stream.
    """
    job_ids = await asyncio.gather(*(client.start(0.001, "completed") for _ in range(connections)))
    await asyncio.gather(*(client.status(job_id) for job_id in job_ids))
    if strategy in PUSHED:
        await client.wait(job_ids[0], BackoffPolicy(deadline_s=5.0), strategy)


async def _job_records(base_url: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``GET /jobs/{id}`` for each job (with its request log), a few at a time."""
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def fetch(job_id: str) -> dict[str, Any]:
            async with gate:
                response = await http.get(f"/jobs/{job_id}")
                response.raise_for_status()
                record: dict[str, Any] = response.json()
                return record

        records = await asyncio.gather(*(fetch(job_id) for job_id in job_ids))
    return dict(zip(job_ids, records, strict=True))


# --- from records to figures ----------------------------------------------------------------


def detection_lag_s(run: dict[str, Any]) -> float | None:
    """The server's lag (its first final answer minus the finish) when it answered a
    request that saw the final state; for a pushed state (an SSE event: the server keeps no
    record of it) the final event's arrival at the client minus the server's finish time,
    both epoch seconds on this machine."""
    record = run["record"]
    if record["detection_lag_s"] is not None:
        return float(record["detection_lag_s"])
    if run.get("final_seen_at") is not None and record.get("finishes_at") is not None:
        return max(0.0, float(run["final_seen_at"]) - float(record["finishes_at"]))
    return None


def summarise(runs: list[dict[str, Any]], scale: float) -> dict[str, Any]:
    """Requests per job, detection lag (real seconds), peak requests per real second."""
    requests = [run["record"]["status_requests"] for run in runs]
    raw_lags = [lag for run in runs if (lag := detection_lag_s(run)) is not None]
    lags = [lag * scale for lag in raw_lags]
    resolved = [run for run in runs if run["outcome"] in (Outcome.COMPLETED, Outcome.ERROR)]
    wrong = [run for run in resolved if run["outcome"].value != run["job"].outcome]
    # Bins of one real second: at 1/10, 100 ms of benchmark time.
    per_real_second = Counter(
        math.floor(request["at"] * scale) for run in runs for request in run["record"]["requests"]
    )
    truncated = sum(
        run["record"]["status_requests"] > len(run["record"]["requests"]) for run in runs
    )
    return {
        "jobs": len(runs),
        "requests_total": sum(requests),
        "requests_mean": sum(requests) / len(requests),
        # Every request of the policy's client (starts included) over its jobs.
        "all_requests_per_job": runs[0]["client_requests"] / len(runs) if runs else None,
        "requests_p95": percentile(requests, 95),
        "lag_p50_s": percentile(lags, 50),
        "lag_p95_s": percentile(lags, 95),
        "lag_p99_s": percentile(lags, 99),
        # The same lag on the benchmark's own clock, not multiplied back: for long-poll
        # and the push strategies the lag is a fixed cost (a round trip, a wake-up), which
        # the time scale would otherwise magnify.
        "lag_p95_raw_ms": _ms(percentile(raw_lags, 95)),
        "peak_rps": max(per_real_second.values(), default=0),
        "unresolved": len(runs) - len(resolved),
        "wrong_outcome": len(wrong),
        "request_logs_truncated": truncated,
        "outcomes": dict(Counter(str(run["outcome"]) for run in runs)),
        "requests": requests,
        "lags_s": [round(lag, 4) for lag in lags],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def ideal(runs: list[dict[str, Any]], scale: float) -> dict[str, Any]:
    """One request per job, arriving exactly when it finishes (from any policy's records)."""
    finishes = Counter(math.floor(run["record"]["finishes_at"] * scale) for run in runs)
    return {
        "jobs": len(runs),
        "requests_total": len(runs),
        "requests_mean": 1.0,
        "all_requests_per_job": 1.0,
        "requests_p95": 1.0,
        "lag_p50_s": 0.0,
        "lag_p95_s": 0.0,
        "lag_p99_s": 0.0,
        "lag_p95_raw_ms": 0.0,
        "peak_rps": max(finishes.values(), default=0),
        "unresolved": 0,
    }


def across_rounds(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One row per policy: every figure the median of the rounds, with its rounds kept
    (a figure that moved more than 25 % prints as a range, see bench.report)."""
    combined: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        row: dict[str, Any] = {}
        for key in (*table_keys(), "requests_vs_fixed", "jobs"):
            row.update(over_rounds(key, [figures[name].get(key) for figures in rounds]))
        combined[name] = row
    return combined


def with_ratio_to_fixed(figures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each policy's mean requests per job over fixed 1 s's, within one round."""
    fixed_mean = figures[FIXED]["requests_mean"]
    for row in figures.values():
        row["requests_vs_fixed"] = ratio(row["requests_mean"], fixed_mean)
    return figures


def workload_table(workload: Workload, figures: dict[str, dict[str, Any]], jobs: int) -> Table:
    table = Table(
        title=f"{workload.name}: {workload.description}; {jobs} jobs per policy",
        columns=[
            Column("policy", "policy"),
            Column("all_requests_per_job", "all req/job incl. start", "{:.2f}"),
            Column("requests_mean", "status req/job mean", "{:.1f}"),
            Column("requests_p95", "req/job p95", "{:.0f}"),
            Column("requests_vs_fixed", "req vs fixed 1 s", "{:.2f}x"),
            Column("lag_p50_s", "lag p50 s", "{:.2f}"),
            Column("lag_p95_s", "lag p95 s", "{:.2f}"),
            spread_column("lag_p95_s", "p95 spread"),
            Column("lag_p99_s", "lag p99 s", "{:.2f}"),
            Column("lag_p95_raw_ms", "lag p95 ms unscaled", "{:.1f}"),
            Column("peak_rps", "peak req/s", "{:,.0f}"),
            Column("unresolved", "never resolved", "{}"),
        ],
        caption="all req/job: every request of the policy's client (starts, status, batch "
        "status, event stream) over its jobs; status req/job: the server's count per job (a "
        "batch request counts once for each job it names); lag: first final answer minus "
        "finish time (server clock, real seconds; for a state pushed on the event stream, "
        "its arrival at the client), over resolved jobs; never resolved: the watch gave up "
        "(attempt budget) while the job was pending; ideal: one request exactly at the "
        "finish; lag p95 ms unscaled: the same p95 on the benchmark's clock, not multiplied by "
        "the time scale (for long-poll and push the lag is a fixed cost, which the scale "
        "magnifies); medians of the rounds, a range where they moved > 25 %",
    )
    for name, row in figures.items():
        table.add(policy=name, **row)
    return table


def table_keys() -> tuple[str, ...]:
    return (
        "all_requests_per_job",
        "requests_mean",
        "requests_p95",
        "lag_p50_s",
        "lag_p95_s",
        "lag_p99_s",
        "lag_p95_raw_ms",
        "peak_rps",
        "unresolved",
    )


def summary_table(rounds: list[dict[str, dict[str, dict[str, Any]]]]) -> Table:
    table = Table(
        title="Summary: auto against the two hand-written pollers, per workload",
        columns=[
            Column("workload", "workload"),
            Column("requests_auto", "req/job auto", "{:.1f}"),
            Column("requests_fixed", "req/job fixed 1 s", "{:.1f}"),
            Column("saved_vs_fixed", "requests saved vs fixed", "{:.0%}"),
            Column("lag_p95_auto", "p95 lag auto s", "{:.2f}"),
            spread_column("lag_p95_auto", "auto p95 spread"),
            Column("lag_p95_fixed", "p95 lag fixed s", "{:.2f}"),
            Column("lag_p95_original", "p95 lag original s", "{:.2f}"),
            Column("unresolved_original", "original: never resolved", "{:.0%}"),
        ],
    )
    for workload in rounds[0]:
        per_round = [by_workload[workload] for by_workload in rounds]
        auto_requests = _each(per_round, AUTO, "requests_mean")
        fixed_requests = _each(per_round, FIXED, "requests_mean")
        saved = [
            1 - auto / fixed for auto, fixed in zip(auto_requests, fixed_requests, strict=True)
        ]
        never = _each(per_round, ORIGINAL, "unresolved")
        jobs = _each(per_round, ORIGINAL, "jobs")
        table.add(
            workload=workload,
            **over_rounds("requests_auto", auto_requests),
            **over_rounds("requests_fixed", fixed_requests),
            **over_rounds("saved_vs_fixed", saved),
            **over_rounds("lag_p95_auto", _each(per_round, AUTO, "lag_p95_s")),
            **over_rounds("lag_p95_fixed", _each(per_round, FIXED, "lag_p95_s")),
            **over_rounds("lag_p95_original", _each(per_round, ORIGINAL, "lag_p95_s")),
            **over_rounds("unresolved_original", [n / j for n, j in zip(never, jobs, strict=True)]),
        )
    return table


def _each(per_round: list[dict[str, dict[str, Any]]], policy: str, key: str) -> list[Any]:
    """One policy's figure in every round."""
    return [figures[policy][key] for figures in per_round]


# --- the section ------------------------------------------------------------------------------


def run(quick: bool = False, seed: int = 1) -> SectionResult:
    sizes = QUICK if quick else FULL
    scale = sizes.time_scale
    result = SectionResult(
        name="poll",
        title=f"Poll efficiency: requests and detection lag per policy (time scaled 1/{scale:g})",
        parameters={
            "jobs_per_workload": sizes.jobs,
            "arrival_window_s": sizes.arrival_window_s,
            "time_scale": scale,
            "workloads": {w.name: str(SCENARIOS / f"{w.scenario.name}.toml") for w in WORKLOADS},
            "error_share": {w.name: w.scenario.jobs.error_rate for w in WORKLOADS},
            "seed": seed,
            "server_long_poll_max_s": LONG_POLL_MAX_S / scale,
            "policies": {p.name: f"{p.strategy.value}: {p.policy.describe()}" for p in POLICIES},
        },
    )
    timing = scaled_timing(scale)
    result.parameters["planner_margins_scaled_s"] = margins_in_seconds(timing)
    flags = ("--long-poll-max", f"{LONG_POLL_MAX_S / scale:g}", "--seed", str(seed))
    # Every round runs the same seeded jobs on a fresh server: what moves between rounds
    # is the machine, not the workload.
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    for round_number in range(sizes.rounds):
        per_workload: dict[str, dict[str, dict[str, Any]]] = {}
        with ServerProcess.videosim(*flags) as server:
            for number, workload in enumerate(WORKLOADS):
                jobs = workload.jobs(sizes.jobs, sizes.arrival_window_s, seed + number)
                runs = asyncio.run(run_workload(server.url, jobs, sizes, seed + number, timing))
                figures = {name: summarise(runs_, scale) for name, runs_ in runs.items()}
                figures[IDEAL] = ideal(runs[FIXED], scale)
                per_workload[workload.name] = with_ratio_to_fixed(figures)
                result.details.setdefault(workload.name, {"rounds": []})["rounds"].append(
                    {"durations_s": [job.duration_s for job in jobs], "policies": figures}
                )
                _check(f"round {round_number + 1}, {workload.name}", figures, result)
        rounds.append(per_workload)
    for workload in WORKLOADS:
        combined = across_rounds([per_workload[workload.name] for per_workload in rounds])
        result.tables.append(workload_table(workload, combined, sizes.jobs))
    result.tables.append(summary_table(rounds))
    result.notes += [
        f"time scaled 1/{scale:g}: jobs, arrivals, policy delays, the server's long-poll cap "
        f"({LONG_POLL_MAX_S:g} s -> {LONG_POLL_MAX_S / scale:g} s) and the client's hint "
        "margins divided by it; lags and rates reported in real (unscaled) seconds",
        "fixed costs (a loopback round trip, a loop wake-up) are magnified by the same "
        f"factor: each 1 ms of benchmark time shows as {scale:g} ms of lag",
        "hinted/auto time polls from eta_s (milliseconds), not from the whole-second "
        "Retry-After, so they scale exactly; no faults are injected, so Retry-After is unused",
        f"{IN_FLIGHT_PER_POLICY} in-flight requests per client, so long-poll never falls "
        "back to hinted for lack of hold slots",
        f"{sizes.rounds} rounds of the same seeded jobs, a fresh server each; with "
        f"{sizes.jobs} jobs a p95 is decided by the two slowest, so one stall of the "
        f"(shared) machine, magnified {scale:g}x, moves it: such figures print as a range",
    ]
    return result


def _check(workload: str, figures: dict[str, dict[str, Any]], result: SectionResult) -> None:
    """Anything that would make the figures wrong is said next to them."""
    for name, row in figures.items():
        if row.get("wrong_outcome"):
            result.notes.append(f"{workload}/{name}: {row['wrong_outcome']} wrong outcomes")
        if row.get("request_logs_truncated"):
            result.notes.append(
                f"{workload}/{name}: {row['request_logs_truncated']} jobs had more requests "
                "than the server's 200-entry log keeps; peak req/s undercounts them"
            )
        if name not in (ORIGINAL, IDEAL) and row.get("unresolved"):
            result.notes.append(f"{workload}/{name}: {row['unresolved']} jobs never resolved")
