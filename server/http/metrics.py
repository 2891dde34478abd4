"""Prometheus metrics, in a registry of their own per app so tests and apps never mix.

Request counts are kept as they happen; jobs by state and held long-polls are read from
the store at scrape time, so they cost nothing between scrapes.

Under ``--workers N`` the command line sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start, and prometheus-client's multiprocess mode sums the request counters of
every worker: whichever worker answers a scrape reports them all. Jobs by state come from
the shared store; held long-polls and injected faults are the answering worker's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.faults import FaultInjector
from server.models import DeliveryChannel, Result
from server.stores.base import JobStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class _StoreCollector(Collector):
    """Reads job counts and held long-polls from the store whenever Prometheus scrapes."""

    def __init__(self, store: JobStore, faults: FaultInjector) -> None:
        self._store = store
        self._faults = faults
        self.counts_by_state: dict[Result, int] = {}  # read from the store just before a scrape
        self.bodies_arriving: Callable[[], int] = lambda: 0  # the edge tells, once built

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("videosim_jobs", "Stored jobs by state", labels=["state"])
        for state, count in self.counts_by_state.items():
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "videosim_long_polls_held",
            "GET /status?wait requests being held right now",
            value=self._store.held_requests,
        )
        yield GaugeMetricFamily(
            "videosim_request_bodies_arriving",
            "Requests whose body is still being received right now",
            value=self.bodies_arriving(),
        )
        injected = CounterMetricFamily(
            "videosim_faults_injected", "Requests that got an injected fault", labels=["kind"]
        )
        for kind, count in self._faults.injected.items():
            injected.add_metric([kind], count)
        yield injected
        delivered = CounterMetricFamily(
            "videosim_final_deliveries",
            "Final job states delivered to clients, by channel (status, batch, stream, "
            "webhook); every delivery, not only a job's first",
            labels=["channel"],
        )
        for channel in get_args(DeliveryChannel):
            delivered.add_metric([channel], self._store.final_deliveries[channel])
        yield delivered


class ServerMetrics:
    """The registry of one app and the request counter the edge middleware feeds."""

    def __init__(self, store: JobStore, faults: FaultInjector) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "videosim_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "code"],
            registry=self.registry,
        )
        # One labelled child per (method, route, code), kept: Counter.labels() checks and
        # locks on every call, a dict lookup does not.
        self._request_counters: dict[tuple[str, str, int], Counter] = {}
        self._store = store
        self._store_collector = _StoreCollector(store, faults)
        self.registry.register(self._store_collector)
        self._scraped = self.registry
        shared_dir = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        if shared_dir:  # several workers: request counts from all of them
            self._scraped = CollectorRegistry()
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                self._scraped, path=shared_dir
            )
            self._scraped.register(self._store_collector)

    def watch_bodies_arriving(self, count: Callable[[], int]) -> None:
        """Report ``count()`` as the requests whose body is still arriving."""
        self._store_collector.bodies_arriving = count

    async def render(self) -> bytes:
        self._store_collector.counts_by_state = await self._store.counts_by_state()
        return generate_latest(self._scraped)

    def count_request(self, method: str, route: str, code: int) -> None:
        """One answered request, by method, route template and status code."""
        key = (method, route, code)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.requests.labels(method, route, str(code))
        counter.inc()
