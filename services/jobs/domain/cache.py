"""The result cache's rules: which requests are the same job, and when a stored answer holds.

Two requests are the same job when the same model version (name, family and config) runs on
the same content bytes and the same style bytes, in the same order and with the same weights,
with every parameter that changes the output equal. The key is a sha256 over a canonical JSON
of exactly that; URLs, image ids, the alias asked for, the idempotency key and `no_cache` are
not in it. Entries are scoped to one owner, so a hit never hands out another user's result
nor tells that someone else ran the same thing.

Every family is deterministic for given inputs: adain, feedforward and wct have no randomness
(the seed drives nothing, so it is left out of their key), and gatys starts from content plus
noise drawn from a private generator seeded with `params.seed` (inference uses 0 when it is
unset, so unset and 0 are the same key). A family this module does not know keeps its seed
in the key as sent. Bits may differ between runtimes (ONNX Runtime or PyTorch, CPU or GPU);
the cached answer is one valid rendering of that version, as a rerun elsewhere would be.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from services.jobs.domain.jobs import Job, JobStatus
from services.jobs.domain.requests import StylizeParams
from services.jobs.domain.routing import ModelVersion

# Bumped whenever what goes into the key changes, so old entries can never match.
KEY_SCHEME = 1

# Families whose output does not depend on the seed (no random draw anywhere).
SEED_FREE_FAMILIES = frozenset({"adain", "feedforward", "wct"})
# Families that draw from a generator seeded with params.seed, 0 when unset (inference).
SEEDED_FAMILIES = frozenset({"gatys"})
DEFAULT_SEED = 0


def _canonical_params(family: str, params: StylizeParams) -> dict[str, Any]:
    """The parameters that change the output, in one spelling per meaning."""
    data = params.to_dict()
    data.pop("weights", None)  # paired with each style below
    if family in SEED_FREE_FAMILIES:
        data.pop("seed", None)
    elif family in SEEDED_FAMILIES:
        data["seed"] = DEFAULT_SEED if params.seed is None else params.seed
    return data


def result_cache_key(
    version: ModelVersion,
    content_sha256: str,
    style_sha256s: Sequence[str],
    params: StylizeParams,
) -> str:
    """The cache key of a validated request once routing chose `version` (hex sha256).

    `params` must be normalised (validate_job_request). Weights travel with their style:
    none given means equal weights, which is a different spelling from explicit ones and
    so, conservatively, a different key.
    """
    weights: Sequence[float | None] = params.weights or [None] * len(style_sha256s)
    canonical = json.dumps(
        {
            "scheme": KEY_SCHEME,
            "model": {
                "name": version.name,
                "family": version.family,
                "encoder": version.encoder,
                "tile_size": version.tile_size,
                "config": json.loads(version.config_json),
            },
            "content": content_sha256,
            "styles": [
                [sha256, weight] for sha256, weight in zip(style_sha256s, weights, strict=True)
            ],
            "params": _canonical_params(version.family, params),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CachePolicy:
    """How many entries the cache keeps (0: off) and how long one answers."""

    max_entries: int = 10_000
    ttl_s: int = 7 * 24 * 3600
    # At most one trim (expired entries, then the least recently used beyond max_entries)
    # per this many seconds and replica.
    trim_interval_s: float = 1.0

    @property
    def enabled(self) -> bool:
        """Whether jobs may be answered from, and results written to, the cache."""
        return self.max_entries > 0

    def fresh_since(self, now: datetime) -> datetime:
        """Entries created before this are stale: a miss, and dropped."""
        return now - timedelta(seconds=self.ttl_s)


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer: the result image an owner's earlier job made for a key."""

    key: str
    owner_id: str
    model_version: str
    result_image_id: str
    source_job_id: str
    created_at: datetime
    last_hit_at: datetime | None = None
    hits: int = 0


def entry_for(job: Job, now: datetime) -> CacheEntry | None:
    """The entry a job's success stores; None when it must not (a hit, no key, no result)."""
    if (
        job.status is not JobStatus.SUCCEEDED
        or job.cached
        or not job.cache_key
        or not job.result_image_id
    ):
        return None
    return CacheEntry(
        key=job.cache_key,
        owner_id=job.owner_id,
        model_version=job.model_version,
        result_image_id=job.result_image_id,
        source_job_id=job.job_id,
        created_at=now,
    )


def answered_from(job: Job, entry: CacheEntry) -> Job:
    """A new pending job answered by an entry: succeeded at once with the stored result.

    Nothing ran, so progress is 1, it started and finished when it was created, its latency
    and eta are 0, and it says it is cached.
    """
    if entry.owner_id != job.owner_id or entry.key != job.cache_key:
        raise ValueError(f"entry {entry.key} of {entry.owner_id} does not answer job {job.job_id}")
    return replace(
        job,
        status=JobStatus.SUCCEEDED,
        progress=1.0,
        result_image_id=entry.result_image_id,
        started_at=job.created_at,
        finished_at=job.created_at,
        updated_at=job.created_at,
        latency_ms=0,
        eta_seconds=0,
        cached=True,
    )
