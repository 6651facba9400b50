"""Feedback rules: rating validation, job outcomes, and per model version aggregates."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.feedback.limits import MAX_ID_CHARS, validate_since
from services.feedback.usage import UsageQuery, UsageRecord, usage_query

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SUCCEEDED = "succeeded"
FAILED = "failed"
# Job statuses after which nothing more happens to a job.
FINISHED = (SUCCEEDED, FAILED, "canceled")
MIN_RATING = 1
MAX_RATING = 5
MAX_COMMENT_CHARS = 2000
MAX_DEVICE_CHARS = 16
# The device kind whose compute is GPU time (inference's device names).
GPU_DEVICE = "cuda"


def utc_now() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)


class InvalidOutcome(ValueError):
    """A job outcome event that can never be recorded (missing ids, negative latency)."""


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended, as the jobs service announced it.

    owner_id is the project the job belongs to (a user's own id: their personal project);
    user_id the user who created it ("": the owner, as in events from before projects).
    """

    job_id: str
    owner_id: str
    model_version: str
    status: str
    latency_ms: int
    finished_at: datetime
    # Answered from jobs' result cache: no model ran, so it is left out of version stats.
    cached: bool = False
    # The result's width x height as its worker reported it; 0 when unknown (a failure, a
    # cached result, an event from before workers said).
    output_pixels: int = 0
    # The worker's time on the job and the device kind its model ran on ("cuda" is GPU
    # time); 0 and "" when unknown (a failure, a cached result, an older event).
    compute_ms: int = 0
    device: str = ""
    user_id: str = ""

    def __post_init__(self) -> None:
        if not self.user_id:
            # An event from before projects: its owner was the user who created the job.
            object.__setattr__(self, "user_id", self.owner_id)
        for name in ("job_id", "owner_id", "model_version"):
            value = getattr(self, name)
            if not value or len(value) > MAX_ID_CHARS:
                raise InvalidOutcome(f"{name} must have 1 to {MAX_ID_CHARS} characters")
        if self.status not in (SUCCEEDED, FAILED):
            raise InvalidOutcome(f"status must be {SUCCEEDED} or {FAILED}, got {self.status!r}")
        if self.latency_ms < 0:
            raise InvalidOutcome(f"latency_ms must not be negative, got {self.latency_ms}")
        if self.output_pixels < 0:
            raise InvalidOutcome(f"output_pixels must not be negative, got {self.output_pixels}")
        if self.compute_ms < 0:
            raise InvalidOutcome(f"compute_ms must not be negative, got {self.compute_ms}")
        if len(self.device) > MAX_DEVICE_CHARS:
            raise InvalidOutcome(f"device must have at most {MAX_DEVICE_CHARS} characters")
        if len(self.user_id) > MAX_ID_CHARS:
            raise InvalidOutcome(f"user_id must have at most {MAX_ID_CHARS} characters")


@dataclass(frozen=True)
class Rating:
    """One owner's rating of one job; a later rating replaces it under the same id."""

    feedback_id: str
    job_id: str
    owner_id: str
    rating: int
    comments: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionRecords:
    """What the store holds about one model version, for aggregation."""

    model_version: str
    jobs_succeeded: int
    jobs_failed: int
    # Latencies of succeeded jobs only: a failure's time to fail says nothing about speed.
    latencies_ms: Sequence[float]
    ratings_count: int
    ratings_sum: int

    @classmethod
    def empty(cls, model_version: str) -> VersionRecords:
        """A known version with nothing in the window asked about."""
        return cls(model_version, 0, 0, (), 0, 0)


@dataclass(frozen=True)
class ModelVersionStats:
    """The aggregates of one model version that the operator compares during a rollout."""

    model_version: str
    jobs_succeeded: int
    jobs_failed: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    ratings_count: int
    rating_mean: float


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default and PostgreSQL's percentile_cont; 0.0 for no
    values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    fraction = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


def aggregate(records: VersionRecords) -> ModelVersionStats:
    """Error rate, latency p50/p95/p99 and mean rating of one model version."""
    finished = records.jobs_succeeded + records.jobs_failed
    return ModelVersionStats(
        model_version=records.model_version,
        jobs_succeeded=records.jobs_succeeded,
        jobs_failed=records.jobs_failed,
        error_rate=records.jobs_failed / finished if finished else 0.0,
        latency_p50_ms=percentile(records.latencies_ms, 50),
        latency_p95_ms=percentile(records.latencies_ms, 95),
        latency_p99_ms=percentile(records.latencies_ms, 99),
        ratings_count=records.ratings_count,
        rating_mean=(records.ratings_sum / records.ratings_count if records.ratings_count else 0.0),
    )


def validate_rating(job_id: str, rating: int, comments: str) -> tuple[str, str]:
    """The trimmed job id and comments of a valid rating, or INVALID_ARGUMENT naming the field."""
    job = job_id.strip()
    if not job:
        raise InvalidArgument("job_id is required", field="job_id", reason="missing")
    if len(job) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"job_id must have at most {MAX_ID_CHARS} characters",
            field="job_id",
            reason="job_id_too_long",
        )
    if not MIN_RATING <= rating <= MAX_RATING:
        raise InvalidArgument(
            f"rating must be an integer from {MIN_RATING} (worst) to {MAX_RATING} (best), "
            f"got {rating}",
            field="rating",
            reason="rating_out_of_range",
        )
    text = comments.strip()
    if len(text) > MAX_COMMENT_CHARS:
        raise InvalidArgument(
            f"comments must have at most {MAX_COMMENT_CHARS} characters, got {len(text)}",
            field="comments",
            reason="comments_too_long",
        )
    bad = next(
        (c for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs")), None
    )
    if bad is not None:
        # PostgreSQL cannot store NUL in text, and the other controls are never prose.
        raise InvalidArgument(
            f"comments must be text (lines and tabs allowed); they contain U+{ord(bad):04X}, "
            "a control or unpaired surrogate character",
            field="comments",
            reason="comments_invalid",
        )
    return job, text


def validate_model_version(model_version: str) -> str:
    """A non-empty model version name of sane length, or INVALID_ARGUMENT."""
    value = model_version.strip()
    if not value:
        raise InvalidArgument(
            "model_version is required, e.g. gatys.lite0-v1",
            field="model_version",
            reason="missing",
        )
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"model_version must have at most {MAX_ID_CHARS} characters",
            field="model_version",
            reason="model_version_too_long",
        )
    return value


# The owner of the outcomes of erased users (feedback's EraseUser).
ERASED_USER = "erased"


class FeedbackStore(Protocol):
    """What the use cases need from the database (store.FeedbackDatabase implements it)."""

    async def outcome(self, job_id: str) -> JobOutcome | None: ...

    async def save_rating(
        self, *, job_id: str, owner_id: str, rating: int, comments: str, at: datetime
    ) -> Rating:
        """Inserts the job's rating, or replaces rating and comments of the existing one."""
        ...

    async def version_records(
        self, model_version: str | None, *, since: datetime | None = None
    ) -> list[VersionRecords]:
        """Records of one model version (None: of every version seen), by name.

        With since, only jobs that finished at or after it and the ratings of those jobs;
        a version with none of them is left out.
        """
        ...

    async def knows_version(self, model_version: str) -> bool:
        """Whether any job of the version has finished, ever."""
        ...

    async def erase_user(self, user_id: str, anonymous_id: str) -> tuple[int, int]:
        """Deletes the user's ratings and hands their outcomes to `anonymous_id`: as
        creator, and as owner of their personal project's."""
        ...

    async def usage(self, query: UsageQuery) -> list[UsageRecord]:
        """Finished jobs per project, user and model version in the query's window (and per
        period when grouped), in that order; those without jobs are left out."""
        ...


class JobLookup(Protocol):
    """Asks the jobs service about a job as the caller (clients.JobsClient implements it)."""

    async def job_status(self, job_id: str) -> str | None:
        """The job's status, or None when the caller's project has no such job (jobs checks
        the caller's token, so another project's job is None too). Unavailable when jobs
        cannot say."""
        ...


@dataclass(frozen=True)
class OutcomeWait:
    """How long a rating waits for the outcome event of a job jobs says has just succeeded.

    Jobs answers `succeeded` as soon as its transaction commits; the outcome event reaches
    feedback through the outbox and JetStream a moment later (milliseconds when idle, longer
    under load), so a rating sent right after GetJob would otherwise miss it.
    """

    timeout_s: float = 10.0
    poll_s: float = 0.05


def _no_job(job: str) -> NotFound:
    return NotFound(
        f"no finished job {job} in this project; a job can be rated once GetJob says it "
        "succeeded, with a token of the project it belongs to",
        reason="job_not_found",
    )


class FeedbackService:
    """The feedback use cases over a store."""

    def __init__(
        self,
        store: FeedbackStore,
        *,
        clock: Clock = utc_now,
        jobs: JobLookup | None = None,
        outcome_wait: OutcomeWait = OutcomeWait(),
    ) -> None:
        self._store = store
        self._clock = clock
        self._jobs = jobs
        self._outcome_wait = outcome_wait

    async def submit(self, actor: Principal, *, job_id: str, rating: int, comments: str) -> Rating:
        """Records a rating of a succeeded job of the caller's project; a second replaces the
        first. A job jobs calls succeeded whose outcome event is still on its way is waited for."""
        job, text = validate_rating(job_id, rating, comments)
        outcome = await self._store.outcome(job)
        if outcome is None:
            outcome = await self._outcome_on_its_way(actor, job)
        if outcome.owner_id != actor.project_id:
            raise _no_job(job)
        if outcome.status != SUCCEEDED:
            raise FailedPrecondition(
                f"job {job} {outcome.status}; only succeeded jobs can be rated",
                reason="job_not_succeeded",
            )
        saved = await self._store.save_rating(
            job_id=job, owner_id=actor.user_id, rating=rating, comments=text, at=self._clock()
        )
        logger.info(
            "rating saved",
            extra={
                "job_id": job,
                "feedback_id": saved.feedback_id,
                "rating": rating,
                "model_version": outcome.model_version,
            },
        )
        return saved

    async def _outcome_on_its_way(self, actor: Principal, job: str) -> JobOutcome:
        """The outcome of a job feedback has not heard of yet, once its event arrives.

        Jobs is asked first, as the caller, so that an unknown job, another project's job or
        one still running is answered at once; only a job that has succeeded is waited for.
        """
        status = None if self._jobs is None else await self._jobs.job_status(job)
        if status is None:
            raise _no_job(job)
        if status != SUCCEEDED:
            later = "" if status in FINISHED else ", so rate it once GetJob says succeeded"
            raise FailedPrecondition(
                f"job {job} is {status}; only succeeded jobs can be rated{later}",
                reason="job_not_succeeded",
            )
        deadline = time.monotonic() + self._outcome_wait.timeout_s
        while True:
            outcome = await self._store.outcome(job)
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(self._outcome_wait.poll_s)
        logger.warning(
            "job outcome not yet recorded",
            extra={"job_id": job, "waited_s": self._outcome_wait.timeout_s},
        )
        raise Unavailable(
            f"job {job} has finished but its outcome has not reached feedback within "
            f"{self._outcome_wait.timeout_s:g} s; retry in a few seconds",
            reason="outcome_pending",
            retry_after_s=2.0,
        )

    async def stats(
        self, model_version: str, *, since: datetime | None = None
    ) -> ModelVersionStats:
        """Aggregates of one model version; NOT_FOUND when no job of it has ever finished.

        With since, only the jobs that finished at or after it count (and their ratings);
        a version with finished jobs but none in the window gets zeros, not NOT_FOUND (an
        operator asking how a canary did in the last minute gets an answer).
        """
        version = validate_model_version(model_version)
        start = None if since is None else validate_since(since, self._clock())
        records = await self._store.version_records(version, since=start)
        if records:
            return aggregate(records[0])
        if start is not None and await self._store.knows_version(version):
            return aggregate(VersionRecords.empty(version))
        raise NotFound(
            f"no finished jobs of model version {version}; ListModelVersionStats shows "
            "the versions seen",
            reason="model_version_not_found",
        )

    async def all_stats(self) -> list[ModelVersionStats]:
        """Aggregates of every model version with a finished job, by name."""
        return [aggregate(records) for records in await self._store.version_records(None)]

    async def erase_user(self, user_id: str) -> tuple[int, int]:
        """A user's erasure: ratings and comments deleted, outcomes kept as ERASED_USER's
        (version statistics and totals stay right; nothing ties them to the person): those
        they created in shared projects stay the project's, with ERASED_USER as creator.
        Returns (ratings deleted, outcomes anonymised); idempotent."""
        if not user_id.strip():
            raise InvalidArgument("user_id is required: the user to erase", field="user_id")
        if user_id == ERASED_USER:
            raise InvalidArgument(f"user_id {ERASED_USER!r} is reserved", field="user_id")
        return await self._store.erase_user(user_id, ERASED_USER)

    async def usage(
        self,
        actor: Principal,
        *,
        user_id: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: str = "",
        project_id: str = "",
    ) -> list[UsageRecord]:
        """Jobs succeeded, failed and cached per project, user and model version (usage_query
        says whose), with their output megapixels and compute, per period when group_by is
        set; jobs answered from the cache count, unlike in version stats: the user got the
        image (and they cost no compute)."""
        query = usage_query(
            actor,
            user_id=user_id,
            since=since,
            until=until,
            now=self._clock(),
            group_by=group_by,
            project_id=project_id,
        )
        return await self._store.usage(query)
