"""Job metrics: outcomes and latency per model version, jobs not yet final, the result cache."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from services.jobs.domain.jobs import FINAL_STATUSES, Job, JobStatus

logger = logging.getLogger(__name__)

# End to end: queueing, tiling and inference. Seconds for one-pass models on a GPU, minutes
# for optimisation (gatys) on a CPU.
JOB_DURATION_BUCKETS = (0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 600, 1800)

JOBS_FINISHED = Counter(
    "gouache_jobs_finished_total",
    "Jobs that reached a final state, by model version and outcome (succeeded, failed, "
    "canceled); counted once, by the replica that made the change, so sum over replicas.",
    ["model_version", "outcome"],
)
JOB_DURATION = Histogram(
    "gouache_job_duration_seconds",
    "Time from a job's creation to its success, end to end (queueing included), by model "
    "version; failed and canceled jobs are not observed.",
    ["model_version"],
    buckets=JOB_DURATION_BUCKETS,
)
JOBS_IN_FLIGHT = Gauge(
    "gouache_jobs_in_flight",
    "Jobs not yet in a final state, by state, counted in the jobs database every interval; "
    "every replica reports the same count, so aggregate with max.",
    ["state"],
)

RESULT_CACHE_REQUESTS = Counter(
    "gouache_result_cache_requests_total",
    "CreateJob requests looked up in the result cache, by outcome: hit (answered from it), "
    "miss (the job runs), bypass (the request set no_cache); none while the cache is off.",
    ["outcome"],
)
RESULT_CACHE_ENTRIES = Gauge(
    "gouache_result_cache_entries",
    "Answers the result cache holds, counted in the jobs database every interval; every "
    "replica reports the same count, so aggregate with max.",
)
RESULT_CACHE_EVICTIONS = Counter(
    "gouache_result_cache_evictions_total",
    "Entries dropped from the result cache, by reason: capacity (least recently used beyond "
    "the bound), expired (older than the TTL), missing (the result image is gone).",
    ["reason"],
)

UNFINISHED_STATUSES = tuple(status for status in JobStatus if status not in FINAL_STATUSES)
DEFAULT_IN_FLIGHT_INTERVAL_S = 15.0

CountUnfinished = Callable[[], Awaitable[Mapping[JobStatus, int]]]
CountEntries = Callable[[], Awaitable[int]]


def record_final(job: Job) -> None:
    """Counts a job that just entered a final state, and its latency when it succeeded."""
    if not job.status.is_final:
        return
    JOBS_FINISHED.labels(job.model_version, job.status.value).inc()
    # A job answered from the result cache ran nothing: its 0 ms says nothing of the model.
    if job.status is JobStatus.SUCCEEDED and job.latency_ms is not None and not job.cached:
        JOB_DURATION.labels(job.model_version).observe(job.latency_ms / 1000)


class InFlightSampler:
    """Sets gouache_jobs_in_flight (and, given count_cache_entries, gouache_result_cache_entries)
    from a count in the database every interval_s.

    A count from the shared database is right whatever the number of replicas, where a
    gauge moved on each transition would only know this replica's changes. When the
    count fails the series are removed (unknown) rather than left stale.
    """

    def __init__(
        self,
        count: CountUnfinished,
        *,
        interval_s: float = DEFAULT_IN_FLIGHT_INTERVAL_S,
        count_cache_entries: CountEntries | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._count = count
        self._count_cache_entries = count_cache_entries
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def sample(self) -> dict[str, int] | None:
        """Counts once and sets the gauge; the counts by state, or None when they failed."""
        try:
            counts = await self._count()
            if self._count_cache_entries is not None:
                RESULT_CACHE_ENTRIES.set(await self._count_cache_entries())
        except Exception:
            self._forget()
            if not self._failing:
                logger.warning("cannot count the jobs in flight", exc_info=True)
            self._failing = True
            return None
        self._failing = False
        by_state = {status.value: int(counts.get(status, 0)) for status in UNFINISHED_STATUSES}
        for state, count in by_state.items():
            JOBS_IN_FLIGHT.labels(state).set(count)
        return by_state

    async def start(self) -> None:
        """Counts now and then every interval_s, until stop()."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="jobs-in-flight")

    async def stop(self) -> None:
        """Stops counting and removes the series."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._forget()

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval_s)

    @staticmethod
    def _forget() -> None:
        for status in UNFINISHED_STATUSES:
            with contextlib.suppress(KeyError):
                JOBS_IN_FLIGHT.remove(status.value)
