"""`gouache up --blob-store s3`: the embedded mesh keeps its images in a MinIO bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from gouache.catalogue import curated_styles
from gouache.cli.main import _mesh_config, blob_store_env, build_parser
from gouache.cli.mesh import UNLIMITED_PLANS, Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.fixtures.minio import MinioServer

BUCKET = "gouache-up"


def _args(state: Path, *flags: str) -> list[str]:
    return ["--state-dir", str(state), "up", "--models", "gatys.lite0-fast", *flags]


def test_s3_flags_need_an_endpoint_a_bucket_and_the_keys(tmp_path: Path) -> None:
    args = build_parser().parse_args(_args(tmp_path, "--blob-store", "s3"))
    with pytest.raises(SystemExit, match="--s3-endpoint, --s3-bucket, GOUACHE_STORAGE_S3_ACCESS"):
        blob_store_env(args, {})
    args = build_parser().parse_args(
        _args(tmp_path, "--blob-store", "s3", "--s3-endpoint", "h:9000", "--s3-bucket", "b-1")
    )
    assert blob_store_env(
        args,
        {"GOUACHE_STORAGE_S3_ACCESS_KEY": "a", "GOUACHE_STORAGE_S3_SECRET_KEY": "s"},
    ) == {
        "GOUACHE_STORAGE_BLOB_BACKEND": "s3",
        "GOUACHE_STORAGE_S3_ENDPOINT": "h:9000",
        "GOUACHE_STORAGE_S3_BUCKET": "b-1",
        "GOUACHE_STORAGE_S3_SECURE": "true",
        "GOUACHE_STORAGE_S3_CREATE_BUCKET": "false",
    }
    assert blob_store_env(build_parser().parse_args(_args(tmp_path)), {}) == {}


@pytest.mark.slow
@pytest.mark.minio
def test_up_with_an_s3_blob_store_runs_a_job_on_minio(
    tmp_path: Path, minio_server: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOUACHE_STORAGE_S3_ACCESS_KEY", minio_server.access_key)
    monkeypatch.setenv("GOUACHE_STORAGE_S3_SECRET_KEY", minio_server.secret_key)
    styles = tmp_path / "styles"
    styles.mkdir()
    (styles / "coffee.png").write_bytes(small("coffee", 64))
    flags = ["--styles", str(styles), "--blob-store", "s3", "--s3-endpoint"]
    flags += [minio_server.endpoint, "--s3-bucket", BUCKET, "--s3-insecure", "--s3-create-bucket"]
    config = _mesh_config(
        build_parser().parse_args(_args(tmp_path / "state", *flags)), ephemeral=True
    )
    config.rate_limit_plans = UNLIMITED_PLANS
    mesh = Mesh(config)
    try:
        try:
            credentials = mesh.start()
        except BaseException:
            for log in sorted((config.state_dir / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")
            raise
        # The shipped curated styles and the one from --styles went to the bucket
        # (import-styles uses the same settings).
        curated = len(curated_styles()) + 1
        assert len(minio_server.object_names(BUCKET)) == curated
        assert not (config.state_dir / "blobs").exists()
        with GouacheClient(config.public_url, credentials.admin_api_key) as client:
            content = client.upload(small("astronaut", 64), filename="me.png")
            style = client.upload(small("rocket", 64), filename="rocket.png", kind="style")
            job = client.create_job(content, [style], model_version="gatys-fast")
            result = client.wait(job["job_id"], timeout_s=240)
            assert result.status == "succeeded", result.raw
            assert result.result_url
            assert client.download(result.result_url).startswith(b"\x89PNG")
        # Curated styles, content, upload and result: every image is an object in the bucket.
        assert len(minio_server.object_names(BUCKET)) == curated + 3
        assert not (config.state_dir / "blobs").exists()
    finally:
        mesh.stop()
