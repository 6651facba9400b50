"""The result cache over real JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import grpc
from prometheus_client import REGISTRY
from sqlalchemy import select

from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id, utc_now
from services.jobs.domain.cache import CacheEntry, CachePolicy
from services.jobs.store import jobs_table, result_cache_table
from tests.integration.jobs.conftest import Mesh, wait_until
from tests.unit.jobs.helpers import expect_error


def _requests(outcome: str) -> float:
    value = REGISTRY.get_sample_value("gouache_result_cache_requests_total", {"outcome": outcome})
    return value or 0.0


class Inputs:
    """One user's content and style images, with fixed bytes (sha256s) another may share."""

    def __init__(self, mesh: Mesh, user: str, content_sha: str, style_sha: str) -> None:
        self.user = user
        self.content_url = mesh.images.add(user, sha256=content_sha)
        self.style_url = mesh.images.add(user, sha256=style_sha)

    def request(self, **fields: object) -> jobs_pb2.CreateJobRequest:
        fields.setdefault("model_version", "adain.lite0-v1.1")
        return jobs_pb2.CreateJobRequest(
            content_url=self.content_url,
            style_urls=[self.style_url],
            **fields,  # type: ignore[arg-type]
        )


def _digests() -> tuple[str, str]:
    """sha256s of a fresh content and style, as storage would report them."""
    return tuple(hashlib.sha256(new_id(kind).encode()).hexdigest() for kind in ("c", "s"))  # type: ignore[return-value]


async def _create(
    mesh: Mesh, request: jobs_pb2.CreateJobRequest, user: str = "usr_alice"
) -> jobs_pb2.CreateJobResponse:
    response: jobs_pb2.CreateJobResponse = await mesh.stub.CreateJob(
        request, metadata=mesh.auth(user), timeout=10
    )
    return response


async def _run(mesh: Mesh, job_id: str, user: str = "usr_alice") -> str:
    """Finishes a job as a worker would; returns its result image id."""
    result = mesh.images.add_result(user)
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(
            event_id=new_id("evt"), job_id=job_id, result_image_id=result, compute_ms=40
        ),
    )

    async def stored() -> bool:
        async with mesh.service.store.sessions() as session:
            query = select(result_cache_table.c.source_job_id)
            return job_id in set((await session.execute(query)).scalars())

    await wait_until(stored, what=f"the result of {job_id} in the cache")
    return result


async def _get(mesh: Mesh, job_id: str, user: str = "usr_alice") -> jobs_pb2.Job:
    job: jobs_pb2.Job = await mesh.stub.GetJob(
        jobs_pb2.GetJobRequest(job_id=job_id), metadata=mesh.auth(user), timeout=10
    )
    return job


async def test_a_repeated_request_is_answered_from_the_cache(mesh: Mesh) -> None:
    alice = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, alice.request())
    assert not first.cached
    assert first.status == "pending"
    result = await _run(mesh, first.job_id)
    hits, misses = _requests("hit"), _requests("miss")

    # Other URLs naming the same bytes: the key is the content, not the URL.
    again = Inputs(
        mesh, "usr_alice", *(mesh.images.digests[u] for u in (alice.content_url, alice.style_url))
    )
    second = await _create(mesh, again.request())
    assert second.cached
    assert second.status == "succeeded"
    assert second.job_id != first.job_id
    assert _requests("hit") == hits + 1
    assert _requests("miss") == misses

    job = await _get(mesh, second.job_id)
    assert job.cached
    assert job.status == "succeeded"
    assert job.result_image_id == result
    assert job.result_url.endswith(f"{result}?expires=3600&sig=test")
    assert job.latency_ms == 0
    assert job.progress == 1.0
    assert job.content_url == again.content_url
    assert not (await _get(mesh, first.job_id)).cached

    # Clients see a normal job: JobSucceeded (saying cached), no JobCreated for a worker.
    async def published() -> bool:
        return bool(await mesh.job_events(subjects.JOBS_SUCCEEDED, second.job_id))

    await wait_until(published, what="JobSucceeded of the cached job")
    (done,) = await mesh.job_events(subjects.JOBS_SUCCEEDED, second.job_id)
    assert isinstance(done, events_pb2.JobSucceeded)
    assert done.cached
    assert done.result_image_id == result
    assert done.latency_ms == 0
    assert (
        await mesh.job_events(subjects.job_created_subject("export", "free"), second.job_id) == []
    )

    async with mesh.service.store.sessions() as session:
        row = (await session.execute(select(result_cache_table))).one()
    assert (row.source_job_id, row.result_image_id, row.hits) == (first.job_id, result, 1)
    assert row.last_hit_at is not None


async def test_another_users_identical_request_is_not_a_hit(mesh: Mesh) -> None:
    content_sha, style_sha = _digests()
    alice = Inputs(mesh, "usr_alice", content_sha, style_sha)
    first = await _create(mesh, alice.request())
    await _run(mesh, first.job_id)
    misses = _requests("miss")

    bob = Inputs(mesh, "usr_bob", content_sha, style_sha)
    theirs = await _create(mesh, bob.request(), user="usr_bob")
    assert not theirs.cached
    assert theirs.status == "pending"
    assert _requests("miss") == misses + 1
    # Bob's own run is then his to reuse, and leaves Alice's entry alone.
    bobs_result = await _run(mesh, theirs.job_id, user="usr_bob")
    again = await _create(mesh, bob.request(), user="usr_bob")
    assert again.cached
    assert (await _get(mesh, again.job_id, user="usr_bob")).result_image_id == bobs_result
    async with mesh.service.store.sessions() as session:
        owners = sorted((await session.execute(select(result_cache_table.c.owner_id))).scalars())
    assert owners == ["usr_alice", "usr_bob"]


async def test_no_cache_runs_the_model_and_replaces_the_answer(mesh: Mesh) -> None:
    alice = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, alice.request())
    await _run(mesh, first.job_id)
    bypasses = _requests("bypass")

    fresh = await _create(mesh, alice.request(no_cache=True))
    assert not fresh.cached
    assert fresh.status == "pending"
    assert _requests("bypass") == bypasses + 1
    newer = await _run(mesh, fresh.job_id)

    hit = await _create(mesh, alice.request())
    assert hit.cached
    assert (await _get(mesh, hit.job_id)).result_image_id == newer


async def test_a_changed_parameter_is_a_miss(mesh: Mesh) -> None:
    alice = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, alice.request())
    await _run(mesh, first.job_id)
    params = alice.request().params
    params.alpha = 0.5
    other = await _create(mesh, alice.request(params=params))
    assert not other.cached
    model = await _create(mesh, alice.request(model_version="wct"))
    assert not model.cached


async def test_a_deleted_result_is_a_miss_and_the_entry_goes(mesh: Mesh) -> None:
    alice = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, alice.request())
    result = await _run(mesh, first.job_id)
    mesh.images.delete(result)

    again = await _create(mesh, alice.request())
    assert not again.cached
    assert again.status == "pending"
    async with mesh.service.store.sessions() as session:
        assert (await session.execute(select(result_cache_table))).first() is None


async def test_an_expired_entry_is_a_miss_and_goes(mesh: Mesh) -> None:
    alice = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, alice.request())
    result = await _run(mesh, first.job_id)
    async with mesh.service.store.sessions() as session:
        key = (await session.execute(select(jobs_table.c.cache_key))).scalar_one()
    store = mesh.service.store
    ttl = mesh.service.app._config.result_cache.ttl_s
    old = CacheEntry(
        key=key,
        owner_id="usr_alice",
        model_version="adain.lite0-v1.1",
        result_image_id=result,
        source_job_id=first.job_id,
        created_at=utc_now() - timedelta(seconds=ttl + 60),
    )
    async with store.transaction() as uow:
        await uow.remember_result(old, max_entries=10, stale_before=old.created_at)

    again = await _create(mesh, alice.request())
    assert not again.cached
    assert await store.find_cache_entry("usr_alice", key) is None


async def test_an_idempotent_retry_of_a_hit_returns_the_same_job(mesh: Mesh) -> None:
    alice = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, alice.request())
    await _run(mesh, first.job_id)
    hit = await _create(mesh, alice.request(idempotency_key="k1"))
    retry = await _create(mesh, alice.request(idempotency_key="k1"))
    assert hit.cached
    assert retry.cached
    assert retry.job_id == hit.job_id
    # The same key for a different request is still refused.
    params = alice.request().params
    params.alpha = 0.5
    await expect_error(
        mesh.stub.CreateJob(
            alice.request(idempotency_key="k1", params=params), metadata=mesh.auth(), timeout=10
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        field="idempotency_key",
    )


async def test_the_cache_keeps_its_bound_least_recently_used_first(mesh: Mesh) -> None:
    store = mesh.service.store
    now = utc_now()

    def entry(n: int) -> CacheEntry:
        return CacheEntry(
            key=f"{n:064x}",
            owner_id="usr_alice",
            model_version="adain.lite0-v1.1",
            result_image_id=f"img_{n}",
            source_job_id=f"job_{n}",
            created_at=now + timedelta(seconds=n),
        )

    stale = now - timedelta(days=30)
    for n in range(3):
        async with store.transaction() as uow:
            assert await uow.remember_result(entry(n), max_entries=3, stale_before=stale) == (0, 0)
    async with store.transaction() as uow:
        # Entry 0 is used again, so 1 is now the least recently used.
        assert await uow.record_cache_hit(entry(0), now + timedelta(seconds=10))
    async with store.transaction() as uow:
        assert await uow.remember_result(entry(3), max_entries=3, stale_before=stale) == (0, 1)
    assert await store.count_cache_entries() == 3
    assert await store.find_cache_entry("usr_alice", entry(1).key) is None
    assert (await store.find_cache_entry("usr_alice", entry(0).key)) is not None
    # An entry older than the TTL goes when the next one is stored.
    async with store.transaction() as uow:
        assert await uow.remember_result(
            entry(4), max_entries=3, stale_before=now + timedelta(seconds=2.5)
        ) == (2, 0)
    assert await store.count_cache_entries() == 2


async def test_results_are_stored_at_once_and_trimmed_at_most_once_per_interval(
    mesh: Mesh,
) -> None:
    app = mesh.service.app
    app._config = dataclasses.replace(
        app._config, result_cache=CachePolicy(max_entries=2, trim_interval_s=3600)
    )
    store = mesh.service.store
    for _ in range(3):
        inputs = Inputs(mesh, "usr_alice", *_digests())
        await _run(mesh, (await _create(mesh, inputs.request())).job_id)
    # Stored with each success; trimmed after the first only (the interval has not passed).
    assert await store.count_cache_entries() == 3
    app._next_cache_trim = 0.0
    inputs = Inputs(mesh, "usr_alice", *_digests())
    await _run(mesh, (await _create(mesh, inputs.request())).job_id)

    # The trim runs after the job's waiters wake (it never delays a result), so it may
    # finish after the new entry is visible.
    async def trimmed() -> bool:
        return await store.count_cache_entries() == 2

    await wait_until(trimmed, what="the cache trimmed to its 2 entries")
