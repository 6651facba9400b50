"""`gouache up --backend postgres`: its own PostgreSQL and MinIO, supervised, kept across runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gouache.cli.local_minio import LocalMinio, MinioUnavailable
from gouache.cli.local_postgres import LocalPostgres, PostgresUnavailable, unprivileged_account
from gouache.cli.mesh import UNLIMITED_PLANS
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.fixtures.gouache_up import GouacheUp, mesh_ports, reachable_state_dir
from tests.fixtures.required import missing_server

pytestmark = [pytest.mark.postgres, pytest.mark.minio]


@pytest.fixture(autouse=True)
def _installed() -> None:
    try:
        LocalPostgres.locate(Path("unused"), 0, "")
        LocalMinio.locate(Path("unused"), 0, "", "")
    except (PostgresUnavailable, MinioUnavailable) as exc:
        missing_server(str(exc))


def _up(state: Path) -> GouacheUp:
    up = GouacheUp(
        state,
        mesh_ports(),
        extra_args=[
            "--models",
            "wct.lite0-v1",
            "--rate-limit-plans",
            UNLIMITED_PLANS,
            "--backend",
            "postgres",
        ],
    )
    up.wait_for(r"^ready", 300)
    return up


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_killed_postgres_comes_back_and_a_second_run_finds_the_first_runs_jobs() -> None:
    with reachable_state_dir() as base:
        state = base / "state"
        up = _up(state)
        try:
            started = [line.split()[1] for line in up.lines if line.strip().startswith("✓")]
            assert started[:3] == ["postgres", "minio", "nats"], up.output
            key = json.loads((state / "credentials.json").read_text())["api_key"]
            with GouacheClient(up.base_url, key) as client:
                content = client.upload(small("astronaut", 64), filename="c.png")
                style = client.upload(small("coffee", 64), filename="s.png", kind="style")
                first = client.create_job(content, [style], model_version="adain")["job_id"]
                assert client.wait(first, timeout_s=120).status == "succeeded"

                mark = len(up.lines)
                killed = up.kill("postgres")
                up.wait_for(r"✓ postgres back after", 120, after=mark)
                assert up.children()["postgres"] != killed
                # no_cache: the second job must run through the restarted database, not be
                # answered from the result cache by the first one.
                second = client.create_job(content, [style], model_version="adain", no_cache=True)[
                    "job_id"
                ]
                assert client.wait(second, timeout_s=120).status == "succeeded"
            postgres = up.children()["postgres"]
            minio = up.children()["minio"]
        finally:
            assert up.stop() == 0, up.output
        # Stopped with the mesh, PostgreSQL after a clean shutdown; no SQLite, no blob files.
        assert not _alive(postgres)
        assert not _alive(minio)
        log = (state / "logs" / "postgres.log").read_text()
        assert log.rstrip().endswith("database system is shut down"), log[-2000:]
        assert not list(state.glob("*.db"))
        assert not (state / "blobs").exists()
        if unprivileged_account() is not None:
            assert (state / "postgres").stat().st_uid != 0

        again = _up(state)
        try:
            # The same cluster, database and bucket serve the new run.
            with GouacheClient(again.base_url, key) as client:
                for job_id in (first, second):
                    job = client.get_job(job_id)
                    assert job["status"] == "succeeded", job
                    assert client.download(job["result_url"]).startswith(b"\x89PNG")
        finally:
            assert again.stop() == 0, again.output


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another account only under root")
def test_under_root_a_state_dir_postgres_cannot_reach_is_a_clear_error(tmp_path: Path) -> None:
    # pytest's tmp_path is under /tmp/pytest-of-root, mode 0700.
    postgres = LocalPostgres.locate(tmp_path / "postgres", 0, "secret")
    with pytest.raises(PostgresUnavailable, match=r"cannot reach .* choose a --state-dir"):
        postgres.initialize()
