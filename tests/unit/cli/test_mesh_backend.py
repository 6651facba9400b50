"""`gouache up --backend postgres`: what the services are told, the secrets, the ports, and the
errors when PostgreSQL or MinIO is missing (no process is started here)."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path

import pytest

from gouache.cli import local_minio, local_postgres
from gouache.cli import mesh as mesh_module
from gouache.cli.local_minio import LocalMinio
from gouache.cli.local_postgres import LocalPostgres, find_postgres_bin
from gouache.cli.main import _mesh_config, build_parser, main
from gouache.cli.mesh import SERVICES, BackendUnavailable, Mesh, MeshConfig, MeshPorts
from gouache.secretbox import SecretBox


def _postgres_mesh(state: Path) -> Mesh:
    mesh = Mesh(MeshConfig(state_dir=state, ports=MeshPorts(), backend="postgres"))
    secrets = json.loads((state / "secrets.json").read_text())
    ports = mesh.config.ports
    mesh.postgres = LocalPostgres(
        state / "postgres", ports.postgres, secrets["postgres_password"], Path("/pg/bin"), None
    )
    mesh.minio = LocalMinio(
        state / "minio",
        ports.minio,
        secrets["minio_root_user"],
        secrets["minio_root_password"],
        Path("/bin/minio"),
    )
    return mesh


def test_services_share_one_postgres_database_and_storage_uses_the_minio_bucket(
    tmp_path: Path,
) -> None:
    mesh = _postgres_mesh(tmp_path)
    secrets = json.loads((tmp_path / "secrets.json").read_text())
    port = mesh.config.ports.postgres
    url = f"postgresql+asyncpg://gouache:{secrets['postgres_password']}@127.0.0.1:{port}/gouache"
    for name in SERVICES:
        assert mesh._service_env(name)[f"GOUACHE_{name.upper()}_DATABASE_URL"] == url
    storage = mesh._service_env("storage")
    assert "GOUACHE_STORAGE_BLOB_ROOT" not in storage
    assert {k: v for k, v in storage.items() if k.startswith("GOUACHE_STORAGE_S3_")} == {
        "GOUACHE_STORAGE_S3_ENDPOINT": f"127.0.0.1:{mesh.config.ports.minio}",
        "GOUACHE_STORAGE_S3_BUCKET": "gouache",
        "GOUACHE_STORAGE_S3_ACCESS_KEY": secrets["minio_root_user"],
        "GOUACHE_STORAGE_S3_SECRET_KEY": secrets["minio_root_password"],
        "GOUACHE_STORAGE_S3_SECURE": "false",
        "GOUACHE_STORAGE_S3_CREATE_BUCKET": "true",
    }
    assert storage["GOUACHE_STORAGE_BLOB_BACKEND"] == "s3"
    # The address shown in gouache up's list carries no password.
    assert mesh.postgres is not None
    assert secrets["postgres_password"] not in mesh.postgres.address


def test_local_backend_keeps_sqlite_files_and_the_blob_directory(tmp_path: Path) -> None:
    mesh = Mesh(MeshConfig(state_dir=tmp_path, ports=MeshPorts()))
    env = mesh._service_env("storage")
    assert env["GOUACHE_STORAGE_DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
    assert env["GOUACHE_STORAGE_BLOB_ROOT"] == str(tmp_path / "blobs")
    assert "GOUACHE_STORAGE_BLOB_BACKEND" not in env
    assert "PostgreSQL" not in mesh.planned_ports().values()
    kept = json.loads((tmp_path / "secrets.json").read_text())
    assert set(kept) == {"url_signing_key", "key_encryption_secret", "jobs_secrets_key"}
    # jobs gets the webhook-secret key from there, an AES-256 key it accepts.
    jobs = mesh._service_env("jobs")
    assert jobs["GOUACHE_JOBS_SECRETS_KEY"] == kept["jobs_secrets_key"]
    SecretBox.from_setting(kept["jobs_secrets_key"], variable="GOUACHE_JOBS_SECRETS_KEY")


def test_a_local_state_dir_gains_the_stores_secrets_and_keeps_its_own(tmp_path: Path) -> None:
    Mesh(MeshConfig(state_dir=tmp_path, ports=MeshPorts()))
    before = json.loads((tmp_path / "secrets.json").read_text())
    _postgres_mesh(tmp_path)
    after = json.loads((tmp_path / "secrets.json").read_text())
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {
        "postgres_password",
        "minio_root_user",
        "minio_root_password",
    }
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    # A second start reads them back unchanged (the cluster was initialised with them).
    _postgres_mesh(tmp_path)
    assert json.loads((tmp_path / "secrets.json").read_text()) == after


def test_free_ports_are_chosen_for_the_stores_and_port_checked(tmp_path: Path) -> None:
    mesh = _postgres_mesh(tmp_path)
    ports = mesh.config.ports
    assert ports.postgres > 0
    assert ports.minio > 0
    assert ports.postgres != ports.minio
    planned = mesh.planned_ports()
    assert planned[ports.postgres] == "PostgreSQL"
    assert planned[ports.minio] == "MinIO, S3 API"
    given = Mesh(
        MeshConfig(
            state_dir=tmp_path, ports=MeshPorts(postgres=15432, minio=19000), backend="postgres"
        )
    )
    assert (given.config.ports.postgres, given.config.ports.minio) == (15432, 19000)


def test_postgres_and_minio_never_get_a_port_the_mesh_will_listen_on_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Free right now is not enough: the services' metrics ports are bound only later.
    ports = MeshPorts.from_base(31000)
    later = [ports.metrics["auth"], ports.grpc["jobs"]]

    def drawn(count: int) -> list[int]:
        return [*later, 41001, 41002, *range(42000, 42000 + count)][:count]

    monkeypatch.setattr(mesh_module, "free_ports", drawn)
    mesh = Mesh(MeshConfig(state_dir=tmp_path, ports=ports, backend="postgres"))
    assert (mesh.config.ports.postgres, mesh.config.ports.minio) == (41001, 41002)
    assert len(mesh.planned_ports()) == len(set(mesh.planned_ports()))


def test_the_newest_postgresql_under_the_debian_layout_is_found(tmp_path: Path) -> None:
    for version in ("9", "15", "16", "notaversion"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    assert find_postgres_bin(tmp_path) == tmp_path / "16" / "bin"


def test_missing_postgresql_or_minio_names_the_script_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = Mesh(MeshConfig(state_dir=tmp_path, ports=MeshPorts(), backend="postgres"))
    monkeypatch.setattr(local_postgres, "find_postgres_bin", lambda: None)
    with pytest.raises(BackendUnavailable, match=r"scripts/ensure-postgres\.sh"):
        mesh.check_backend()
    monkeypatch.setattr(local_postgres, "find_postgres_bin", lambda: tmp_path)
    (tmp_path / "postgres").touch()
    monkeypatch.setattr(local_minio, "find_minio", lambda: None)
    with pytest.raises(BackendUnavailable, match=r"scripts/ensure-tools\.sh minio"):
        mesh.check_backend()


def test_gouache_up_says_what_is_missing_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local_postgres, "find_postgres_bin", lambda: None)
    state = tmp_path / "state"
    # gouache up installs its own SIGINT and SIGTERM handlers: pytest's come back after.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["--state-dir", str(state), "up", "--backend", "postgres"]) == 2
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    said = capsys.readouterr().err
    assert "PostgreSQL is not installed" in said
    assert "ensure-postgres.sh" in said
    assert "nothing started" in said
    assert not (state / "logs").exists()


def test_postgres_backend_and_an_external_bucket_are_refused_together(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--state-dir", str(tmp_path), "up", "--backend", "postgres", "--blob-store", "s3"]
    )
    with pytest.raises(SystemExit, match="keeps images in its own MinIO"):
        _mesh_config(args)
    args = build_parser().parse_args(
        ["--state-dir", str(tmp_path), "up", "--backend", "postgres", "--postgres-port", "15432"]
    )
    config = _mesh_config(args)
    assert config.backend == "postgres"
    assert config.ports.postgres == 15432
    assert config.ports.minio == 0
