"""A comparison under a scenario as a report a colleague can open: HTML and Markdown.

The HTML is one self-contained file (inline CSS and SVG, no script, no network): a table
per set-up (requests per job, detection lag p50/p95/max, outcomes, 429 and 503 answers,
time in server-advised pauses) and two charts over the run's time, requests per second
and each job's detection lag at its finish, with the scenario's fault phases shaded.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from client_core.comparison import PolicyRun, takeaway
from client_core.scenario_compare import ScenarioComparison

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
WIDTH, HEIGHT, MARGIN = 760, 240, 44


@dataclass(frozen=True, slots=True)
class Figures:
    """One set-up's row of the report."""

    name: str
    strategy: str
    jobs: int
    requests_per_job: float
    lag_p50_s: float | None
    lag_p95_s: float | None
    lag_max_s: float | None
    outcomes: str
    answers_429: int
    answers_503: int
    no_answers: int
    advised_pause_s: float


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linearly interpolated; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def figures(run: PolicyRun) -> Figures:
    return Figures(
        name=run.name,
        strategy=run.used_label,
        jobs=run.jobs,
        requests_per_job=round(run.requests_per_job, 2),
        lag_p50_s=_rounded(percentile(run.lags, 50)),
        lag_p95_s=_rounded(percentile(run.lags, 95)),
        lag_max_s=_rounded(max(run.lags, default=None)),
        outcomes=", ".join(f"{n} {outcome}" for outcome, n in sorted(run.outcomes.items())),
        answers_429=run.refused.get(429, 0),
        answers_503=run.refused.get(503, 0),
        no_answers=run.no_answers,
        advised_pause_s=round(run.advised_pause_s, 1),
    )


HEADERS = ("set-up", "strategy used", "jobs", "requests/job", "lag p50 s", "lag p95 s",
           "lag max s", "outcomes", "429s", "503s", "no answer", "advised pauses s")  # fmt: skip


def _cells(row: Figures) -> list[str]:
    return [row.name, row.strategy, str(row.jobs), f"{row.requests_per_job:.2f}",
            _s(row.lag_p50_s), _s(row.lag_p95_s), _s(row.lag_max_s), row.outcomes,
            str(row.answers_429), str(row.answers_503), str(row.no_answers),
            f"{row.advised_pause_s:.1f}"]  # fmt: skip


def markdown(comparison: ScenarioComparison) -> str:
    scenario = comparison.scenario
    lines = [f"# {scenario.title}", "", _scenario_line(comparison), ""]
    lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(figures(run))) + " |" for run in comparison.runs]
    lines += ["", takeaway(comparison.runs), "", _how_measured(), ""]
    return "\n".join(lines)


def html_report(comparison: ScenarioComparison) -> str:
    scenario = comparison.scenario
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(figures(run))) + "</tr>"
        for run in comparison.runs
    )
    head = "".join(f"<th>{html.escape(name)}</th>" for name in HEADERS)
    length = _length_s(comparison)
    rates = _chart(
        comparison, length, "requests per second",
        {run.name: _per_second(run.request_times, length) for run in comparison.runs},
        lines=True,
    )  # fmt: skip
    lags = _chart(
        comparison, length, "detection lag s, at each job's finish",
        {run.name: list(zip(run.ends, run.lags, strict=True)) for run in comparison.runs},
        lines=False,
    )  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(scenario.title)}: videosim comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }}
th:first-child, td:first-child, td:nth-child(2), td:nth-child(8) {{ text-align: left; }}
figure {{ margin: 1.5em 0; }} figcaption {{ font-weight: 600; }}
.note {{ color: #555; max-width: 60em; }}
</style></head><body>
<h1>{html.escape(scenario.title)}</h1>
<p>{html.escape(_scenario_line(comparison))}</p>
<table id="figures"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<p>{html.escape(takeaway(comparison.runs))}</p>
<figure id="requests-chart"><figcaption>Requests per second</figcaption>{rates}</figure>
<figure id="lag-chart"><figcaption>Detection lag</figcaption>{lags}</figure>
<p class="note">{html.escape(_how_measured())}</p>
</body></html>
"""


def _scenario_line(comparison: ScenarioComparison) -> str:
    scenario = comparison.scenario
    phases = "; ".join(
        f"{phase.kind} {phase.start_s:g}-{phase.end_s:g} s" for phase in scenario.phases
    )
    return (
        f"Scenario {scenario.name} (seed {scenario.seed}): {scenario.jobs.count} jobs, "
        f"{scenario.jobs.durations.kind} durations, error rate {scenario.jobs.error_rate:g}; "
        f"phases: {phases or 'none'}. Each set-up on its own server playing the scenario."
    )


def _how_measured() -> str:
    return (
        "Requests per job and detection lag (first final answer minus the job's finish, "
        "whatever channel brought it) are the servers' own records of every job; 429/503 "
        "answers, requests that got no answer (an outage cuts connections) and advised "
        "pauses (waits a Retry-After set) are counted by the client."
    )


def _length_s(comparison: ScenarioComparison) -> float:
    ends = [t for run in comparison.runs for t in (*run.request_times, *run.ends)]
    return max([comparison.scenario.length_s, *ends, 1.0])


def _per_second(times: Sequence[float], length_s: float) -> list[tuple[float, float]]:
    counts = Counter(int(t) for t in times if t >= 0)
    return [(second + 0.5, float(counts.get(second, 0))) for second in range(int(length_s) + 1)]


def _chart(
    comparison: ScenarioComparison,
    length_s: float,
    label: str,
    series: dict[str, list[tuple[float, float]]],
    *,
    lines: bool,
) -> str:
    """An SVG chart: x is seconds from the start, phases shaded, one colour per set-up."""
    top = max([y for points in series.values() for _, y in points] + [1e-9])
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def x(seconds: float) -> float:
        return MARGIN + plot_w * min(seconds, length_s) / length_s

    def y(value: float) -> float:
        return MARGIN + plot_h * (1 - value / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'role="img" aria-label="{html.escape(label)}">']  # fmt: skip
    for phase in comparison.scenario.phases:
        parts.append(
            f'<rect class="phase" x="{x(phase.start_s):.1f}" y="{MARGIN}" '
            f'width="{x(phase.end_s) - x(phase.start_s):.1f}" height="{plot_h}" '
            f'fill="#f4c7c3" opacity="0.6"><title>{html.escape(phase.kind)}</title></rect>'
            f'<text x="{x(phase.start_s) + 3:.1f}" y="{MARGIN + 12}" font-size="11">'
            f"{html.escape(phase.kind)}</text>"
        )
    parts.append(
        f'<line x1="{MARGIN}" y1="{MARGIN + plot_h}" x2="{MARGIN + plot_w}" '
        f'y2="{MARGIN + plot_h}" stroke="#444"/><line x1="{MARGIN}" y1="{MARGIN}" '
        f'x2="{MARGIN}" y2="{MARGIN + plot_h}" stroke="#444"/>'
        f'<text x="{MARGIN}" y="{MARGIN - 8}" font-size="11">{top:.3g} (max)</text>'
        f'<text x="{MARGIN + plot_w}" y="{HEIGHT - 12}" font-size="11" text-anchor="end">'
        f"{length_s:.0f} s</text>"
    )
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        if lines and points:
            path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in points)
            parts.append(f'<polyline class="series" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5" points="{path}"/>')  # fmt: skip
        else:
            parts += [f'<circle class="series" cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" '
                      f'fill="{colour}"/>' for px, py in points]  # fmt: skip
        parts.append(
            f'<text x="{WIDTH - MARGIN - 150}" y="{MARGIN + 14 * (index + 1)}" '
            f'font-size="12" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
