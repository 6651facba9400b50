"""Every place that lists model versions reads them from the catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gouache import catalogue
from gouache.cli.defaults import DEFAULT_MODELS
from gouache.db import create_engine
from services.inference.server import registry_tile_size
from services.inference.settings import InferenceSettings
from services.jobs.domain.routing import parse_seed
from services.jobs.settings import DEFAULT_SEED_MODELS, JobsSettings
from services.jobs.store import JobStore


def test_the_jobs_seed_is_the_catalogues() -> None:
    assert catalogue.jobs_seed() == DEFAULT_SEED_MODELS
    factory = JobsSettings.model_fields["seed_models"].default_factory
    assert factory is not None
    assert factory() == catalogue.jobs_seed()  # type: ignore[call-arg]


def test_jobs_accepts_the_catalogues_encoder_keys() -> None:
    versions, routes = parse_seed(catalogue.jobs_seed())
    assert {v.encoder for v in versions} == {"lite0"}
    assert {r.alias for r in routes} == set(catalogue.aliases())


def test_inference_and_the_cli_load_the_shipped_names() -> None:
    shipped = ",".join(catalogue.names())
    assert InferenceSettings.model_fields["models"].default == shipped
    assert shipped == DEFAULT_MODELS


def test_inference_reports_the_catalogues_tile_sizes() -> None:
    for entry in catalogue.entries(operator_supplied=True):
        assert registry_tile_size(entry.name) == entry.tile_size


async def test_a_database_seeded_before_keeps_its_rows(tmp_path: Path) -> None:
    store = JobStore(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"))
    await store.create_schema()
    try:
        old = catalogue.jobs_seed()
        for version in old["versions"]:
            version.update(encoder="efficientnet-lite0", description="as seeded before")
        now = datetime.now(UTC)
        assert await store.seed_models(*parse_seed(old), now) == (7, 7)
        assert await store.seed_models(*parse_seed(catalogue.jobs_seed()), now) == (0, 0)
        async with store.transaction() as uow:
            table = await uow.routing_table()
        assert {v.encoder for v in table.versions.values()} == {"efficientnet-lite0"}
        assert {v.description for v in table.versions.values()} == {"as seeded before"}
    finally:
        await store.close()
