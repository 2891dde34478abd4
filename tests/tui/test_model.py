"""The dashboard's model and pure helpers, without a terminal or a server."""

from __future__ import annotations

import random
from dataclasses import replace

import msgspec
import pytest

from client_core import BackoffPolicy, DelayReason, Jitter, Outcome, Strategy
from client_core.comparison import (
    CLIENT_CLOCK,
    BatchJob,
    PolicyRun,
    WatchedJob,
    draw_batch,
    presets,
    takeaway,
)
from tests.tui.conftest import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_HELD,
    JOB_WAITING,
    poll,
    synthetic_batch,
)
from tui.model import (
    FILTER_CYCLE,
    JobBoard,
    JobSpec,
    JobStarted,
    JobState,
    RequestRate,
    RowUpdate,
    SortColumn,
    SpawnRequest,
    WatchEvent,
    merge_row,
    parse_duration,
    row_update,
    row_values,
    sort_key,
)
from tui.policies import policy_from_text, policy_to_text, schedule_preview
from tui.widgets.job_table import cell_text, progress_text, short_id


def board_from_synthetic() -> JobBoard:
    board = JobBoard()
    for item in synthetic_batch(start=0.0).items:
        if isinstance(item, JobStarted):
            board.add(item.key, item.job_id, item.spec, item.at)
        elif isinstance(item, WatchEvent):
            board.apply(item.key, item.event, item.at)
    return board


def test_events_fold_into_the_job_view() -> None:
    board = board_from_synthetic()
    done = board[JOB_DONE]
    assert (done.status, done.attempt, done.outcome) == ("completed", 3, Outcome.COMPLETED)
    assert done.requests == 4  # POST /start + 3 status requests
    assert done.state is JobState.COMPLETED
    assert done.elapsed(now=100.0) == pytest.approx(3.1)  # frozen at the end
    assert done.countdown(now=100.0) is None
    assert [record.attempt for record in done.history] == [1, 2, 3]

    waiting = board[JOB_WAITING]
    assert waiting.state is JobState.PENDING
    assert waiting.countdown(now=4.1) == pytest.approx(5.5)  # polled at 3.1, next in 6.5
    assert waiting.countdown(now=50.0) == 0.0
    assert waiting.elapsed(now=6.0) == pytest.approx(5.0)


def test_counts_and_filters_group_outcomes() -> None:
    board = board_from_synthetic()
    counts = board.counts()
    assert counts[JobState.PENDING] == 3
    assert counts[JobState.COMPLETED] == 1
    assert counts[JobState.ERROR] == 1
    assert counts[JobState.FAILED] == 2  # unreachable + timed out
    assert board.matching(JobState.FAILED) == [
        "deadbeef-0000-4000-8000-000000000001",
        "special-pending-job",
    ]
    assert board.matching(None) == list(board.jobs)
    assert FILTER_CYCLE[0] is None and set(FILTER_CYCLE[1:]) == set(JobState)


def test_events_after_the_end_are_ignored() -> None:
    board = JobBoard()
    board.add("a", "a", JobSpec(), now=0.0)
    board.apply("a", poll("a", 1, "pending"), now=1.0)
    assert board.cancel("a", now=2.0)
    assert not board.cancel("a", now=3.0)
    late = poll("a", 2, "completed", outcome=Outcome.COMPLETED)
    assert not board.apply("a", late, now=3.0)
    assert board["a"].outcome is Outcome.CANCELLED
    assert board["a"].attempt == 1
    assert not board.apply("unknown", late, now=3.0)


def test_short_circuited_polls_are_skipped_not_attempts() -> None:
    board = JobBoard()
    board.add("a", "a", JobSpec(), now=0.0, started_by_us=False)
    event = poll("a", 1, "", reason=DelayReason.CIRCUIT_OPEN, http_status=None)
    board.apply("a", replace(event, sent=False), now=1.0)
    board.apply("a", poll("a", 2, "pending", http_status=200), now=2.0)
    view = board["a"]
    assert (view.attempt, view.skipped, view.requests) == (1, 1, 1)


def test_a_start_that_failed_gets_a_row_with_its_reason() -> None:
    board = JobBoard()
    spec = JobSpec(duration_s=3.0)
    key = board.record_start_failure(spec, "HTTP 429: slow down", now=1.0)
    view = board[key]
    assert view.spec == spec and view.status == "not started"
    assert view.outcome is Outcome.REJECTED and view.last_error == "HTTP 429: slow down"
    assert board.start_failures == 1
    assert board.record_start_failure(spec, "again", now=2.0) != key


def test_the_pending_filter_shows_cancelled_watches_of_pending_jobs() -> None:
    board = JobBoard()
    board.add("a", "a", JobSpec(), now=0.0)
    board.apply("a", poll("a", 1, "pending"), now=1.0)
    board.cancel("a", now=2.0)
    board.add("b", "b", JobSpec(), now=0.0)
    board.apply("b", poll("b", 1, "completed", outcome=Outcome.COMPLETED), now=1.0)
    assert board.matching(JobState.PENDING) == ["a"]
    assert board.matching(JobState.CANCELLED) == ["a"]


def test_a_row_travels_whole_then_as_its_changed_fields() -> None:
    engine_side, ui_side = JobBoard(), JobBoard()
    engine_side.add("a", "a", JobSpec(duration_s=2.0), now=5.0)
    first = row_values(engine_side["a"])
    whole = row_update(first, None)
    assert whole is not None
    merge_row(ui_side, "a", msgspec.msgpack.decode(msgspec.msgpack.encode(whole), type=RowUpdate),
              now=5.0)  # fmt: skip
    engine_side.apply("a", poll("a", 1, "pending", http_status=503), now=6.0)
    second = row_values(engine_side["a"])
    changed = row_update(second, first)
    assert row_update(second, second) is None  # nothing changed: nothing to send
    assert changed is not None and isinstance(changed.job_id, msgspec.UnsetType)
    wire = msgspec.msgpack.encode(changed)
    assert len(wire) < len(msgspec.msgpack.encode(whole)) / 2  # only what changed travels
    merge_row(ui_side, "a", msgspec.msgpack.decode(wire, type=RowUpdate), now=6.0)
    view = ui_side["a"]
    assert (view.job_id, view.spec.duration_s, view.started_at) == ("a", 2.0, 5.0)
    assert (view.attempt, view.requests, view.http_status) == (1, 2, 503)
    assert ui_side.rate.per_second(7.0) == 1.0  # the poll sent at 6 s; the start at 5 s


def test_changes_are_handed_out_once() -> None:
    board = JobBoard()
    board.add("a", "a", JobSpec(), now=0.0)
    board.add("b", "b", JobSpec(), now=0.0)
    assert board.take_changes() == (["a", "b"], set())
    assert board.take_changes() == ([], set())
    board.apply("a", poll("a", 1, "completed", outcome=Outcome.COMPLETED), now=1.0)
    assert board.clear_finished() == ["a"]
    assert board.take_changes() == ([], {"a"})
    assert list(board.jobs) == ["b"]


def test_unique_keys_for_watching_the_same_job_again() -> None:
    board = JobBoard()
    assert board.unique_key("special-pending-job") == "special-pending-job"
    board.add("special-pending-job", "special-pending-job", JobSpec(), now=0.0)
    assert board.unique_key("special-pending-job") == "special-pending-job#2"
    board.add("special-pending-job#2", "special-pending-job", JobSpec(), now=0.0)
    assert board.unique_key("special-pending-job") == "special-pending-job#3"
    with pytest.raises(ValueError, match="already on the board"):
        board.add("special-pending-job", "special-pending-job", JobSpec(), now=0.0)
    assert short_id(board["special-pending-job#2"]) == "special#2"


def test_sort_keys_order_by_column_then_insertion() -> None:
    board = board_from_synthetic()
    views = list(board)
    by_requests = sorted(views, key=lambda v: sort_key(v, SortColumn.REQUESTS, 10.0))
    assert [v.requests for v in by_requests] == sorted(v.requests for v in views)
    by_next = sorted(views, key=lambda v: sort_key(v, SortColumn.NEXT, 4.2))
    # held long-poll (0 s), then the one due at 6.6 s, then the one due at 9.6 s
    assert [v.job_id for v in by_next[:3]] == [JOB_HELD, JOB_CANCELLED, JOB_WAITING]
    assert all(v.finished for v in by_next[3:])
    ties = [v.seq for v in sorted(views, key=lambda v: sort_key(v, SortColumn.ADDED, 0.0))]
    assert ties == sorted(ties)
    assert SortColumn.ELAPSED.time_dependent and not SortColumn.STATUS.time_dependent


def test_cells_show_countdown_long_poll_and_transport_errors() -> None:
    board = board_from_synthetic()
    assert cell_text(board[JOB_WAITING], SortColumn.NEXT, now=4.1) == "5.5s"
    assert cell_text(board[JOB_WAITING], SortColumn.NEXT, now=20.0) == "now"
    assert cell_text(board[JOB_HELD], SortColumn.NEXT, now=4.1) == "held"
    lost = board["deadbeef-0000-4000-8000-000000000001"]
    assert cell_text(lost, SortColumn.STATUS, 5.0) == "no answer"
    assert cell_text(lost, SortColumn.OUTCOME, 5.0) == "unreachable"
    assert cell_text(board[JOB_DONE], SortColumn.NEXT, 5.0) == "-"


def test_request_rate_buckets_by_second() -> None:
    rate = RequestRate(window_s=10)
    rate.record(100.2)
    rate.record(100.7, count=2)
    rate.record(101.5)
    assert rate.per_second(101.9) == 3.0
    assert rate.series(102.0, seconds=3) == [0.0, 3.0, 1.0]
    rate.record(200.0)  # old buckets fall out of the window
    assert rate.series(102.0, seconds=3) == [0.0, 0.0, 0.0]


def test_spawn_request_draws_durations_from_the_range() -> None:
    request = SpawnRequest(count=50, duration_min_s=1.0, duration_max_s=2.0, outcome="error")
    specs = request.specs(random.Random(3))
    assert len(specs) == 50
    assert all(1.0 <= spec.duration_s <= 2.0 for spec in specs)  # type: ignore[operator]
    assert len({spec.duration_s for spec in specs}) > 5
    assert specs == request.specs(random.Random(3))
    assert {spec.outcome for spec in specs} == {"error"}
    fixed = SpawnRequest(count=2, duration_min_s=3.0, duration_max_s=3.0).specs(random.Random())
    assert [spec.duration_s for spec in fixed] == [3.0, 3.0]
    default = SpawnRequest(count=1).specs(random.Random())
    assert default[0].duration_s is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", (None, None)), ("3", (3.0, 3.0)), (" 1.5-4 ", (1.5, 4.0))],
)
def test_parse_duration_accepts(text: str, expected: tuple[float | None, float | None]) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("abc", "a number of seconds"), ("0", "greater than 0"), ("5-1", "from low to high")],
)
def test_parse_duration_rejects_with_a_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_policy_text_round_trip_and_errors() -> None:
    policy = BackoffPolicy(initial_s=0.5, multiplier=2.0, max_attempts=7, seed=3)
    assert policy_from_text(policy_to_text(policy)) == policy
    fields = policy_to_text(BackoffPolicy())
    with pytest.raises(ValueError, match="multiplier must be a number"):
        policy_from_text({**fields, "multiplier": "fast"})
    with pytest.raises(ValueError, match="multiplier must be >= 1"):
        policy_from_text({**fields, "multiplier": "0.5"})
    with pytest.raises(ValueError, match="max_attempts must be a whole number"):
        policy_from_text({**fields, "max_attempts": "2.5"})
    assert policy_from_text({**fields, "max_attempts": "", "deadline_s": ""}).max_attempts is None


def test_schedule_preview_is_stable_and_shows_the_budget() -> None:
    original = schedule_preview(BackoffPolicy.original())
    assert original.splitlines() == [
        "delays: 1.00 2.00 4.00 8.00 16.00 s",
        "polls at: 0.0 1.0 3.0 7.0 15.0 s; gives up after poll 5",
    ]
    unbounded = schedule_preview(BackoffPolicy(jitter=Jitter.NONE, max_attempts=None))
    assert len(unbounded.splitlines()[0].split()) == 1 + 8 + 2  # "delays:", 8, "...", "s"
    long_budget = schedule_preview(BackoffPolicy(jitter=Jitter.NONE, max_attempts=500))
    assert long_budget.endswith("... s; gives up after poll 500")
    jittered = BackoffPolicy(jitter=Jitter.FULL)
    assert schedule_preview(jittered) == schedule_preview(jittered)
    assert "one jitter sample" in schedule_preview(jittered)


def test_presets_cover_the_strategies() -> None:
    names = [preset.name for preset in presets()]
    assert names == [
        "original",
        "fixed 1s",
        "backoff",
        "hinted",
        "long-poll",
        "batch",
        "stream",
        "auto",
    ]
    assert {preset.strategy for preset in presets()} == set(Strategy)


def test_compare_batch_is_seeded_and_takeaway_names_the_costs() -> None:
    batch = draw_batch(20, seed=7, low_s=1.0, high_s=4.0)
    assert batch == draw_batch(20, seed=7, low_s=1.0, high_s=4.0)
    assert batch != draw_batch(20, seed=8, low_s=1.0, high_s=4.0)
    assert all(isinstance(job, BatchJob) and 1.0 <= job.duration_s <= 4.0 for job in batch)
    blind = PolicyRun("fixed 1s", "backoff", [4, 5], [0.5, 0.7], [0.0, 1.0, 2.0])
    blind.used.update(backoff=2)
    helped = PolicyRun("long-poll", "long-poll", [1, 1], [0.01, 0.01], [0.0, 0.1])
    helped.outcomes.update(completed=1, timed_out=1)
    helped.used.update({"long-poll": 2})
    line = takeaway([blind, helped])
    assert line.startswith("fixed 1s paid 4.5 requests per job")
    assert "long-poll needed 1.0 and was 0.01s late" in line
    assert "long-poll gave up on 1" in line
    assert "With the server's help (long-poll) long-poll needed 1.0 requests per job" in line
    assert "blind polling needed at least 4.5" in line
    assert blind.cumulative_requests() == ([0.0, 1.0, 2.0], [1, 2, 3])
    assert "at least two" in takeaway([blind])


def test_the_takeaway_says_when_every_set_up_fell_back_to_polling() -> None:
    """Against the original simulation nothing but polling exists: the sentence says so
    and never claims that hints or pushes cut anything; lags there are bounds."""
    runs = []
    for name, strategy in (("backoff", "backoff"), ("stream", "stream"), ("hinted", "hinted")):
        run = PolicyRun(name, strategy, [7, 7], [0.9, 1.0], measured_by=CLIENT_CLOCK)
        run.used.update(backoff=2)
        runs.append(run)
    line = takeaway(runs)
    assert "The server offered no help: stream, hinted fell back to the backoff schedule" in line
    assert "cut" not in line
    assert "at most 0.95s late" in line
    assert runs[1].fell_back and not runs[0].fell_back
    assert runs[1].used_label == "backoff"


def test_a_mixed_set_up_names_what_each_watch_used() -> None:
    run = PolicyRun("auto", "auto", [0, 0, 3], [0.01, 0.01, 0.4])
    run.used.update(stream=2, backoff=1)
    assert run.used_label == "stream 2, backoff 1"
    assert not run.fell_back


def test_the_lag_bound_runs_from_the_last_pending_answer() -> None:
    """The original ignores the duration asked for (every job lasts 5 s): a lag from the
    asked duration was seconds off; the bound only uses what the answers said."""
    job = WatchedJob("j", duration_s=1.0, started_at=100.0)
    assert job.lag_bound is None
    job.last_pending_at = 104.5
    job.end_seen_at = 105.2
    assert job.lag_bound == pytest.approx(0.7)
    no_pending = WatchedJob("k", duration_s=1.0, started_at=100.0, end_seen_at=100.4)
    assert no_pending.lag_bound == pytest.approx(0.4)


def test_a_job_that_ended_badly_shows_no_progress_bar() -> None:
    board = JobBoard()
    for key in ("done", "failed", "running"):
        board.add(key, key, JobSpec(), 0.0)
        board.apply(key, poll(key, 1, "pending", progress=0.6), 1.0)
    board.apply("done", poll("done", 2, "completed", outcome=Outcome.COMPLETED), 2.0)
    board.apply("failed", poll("failed", 2, "error", outcome=Outcome.ERROR), 2.0)
    assert cell_text(board["running"], SortColumn.PROGRESS, 2.0) == progress_text(0.6)
    assert cell_text(board["done"], SortColumn.PROGRESS, 2.0) == progress_text(1.0)
    assert cell_text(board["failed"], SortColumn.PROGRESS, 2.0) == progress_text(None)
