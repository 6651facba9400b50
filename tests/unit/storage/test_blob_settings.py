"""Choosing the object store: GOUACHE_STORAGE_BLOB_BACKEND and the GOUACHE_STORAGE_S3_* settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from gouache.blobs import LocalBlobStore, S3BlobStore
from services.storage.blobs import open_blobs
from services.storage.settings import StorageSettings

S3_ENV = {
    "GOUACHE_STORAGE_BLOB_BACKEND": "s3",
    "GOUACHE_STORAGE_S3_ENDPOINT": "minio.internal:9000",
    "GOUACHE_STORAGE_S3_BUCKET": "gouache-images",
    "GOUACHE_STORAGE_S3_ACCESS_KEY": "gouache",
    "GOUACHE_STORAGE_S3_SECRET_KEY": "not-a-real-secret",
}
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("GOUACHE_STORAGE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_default_is_local_files(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = StorageSettings(state_dir=tmp_path)
    assert settings.blob_backend == "local"
    assert settings.s3_secure is True
    assert settings.s3_create_bucket is False
    blobs = open_blobs(settings)
    assert isinstance(blobs.store, LocalBlobStore)
    assert blobs.store.root == tmp_path / "blobs"


async def test_the_s3_settings_are_read_from_their_variables(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, value in S3_ENV.items():
        clean_env.setenv(name, value)
    clean_env.setenv("GOUACHE_STORAGE_S3_SECURE", "false")
    clean_env.setenv("GOUACHE_STORAGE_S3_REGION", "eu-west-1")
    clean_env.setenv("GOUACHE_STORAGE_S3_CREATE_BUCKET", "true")
    settings = StorageSettings()
    assert settings.s3_secret_key.get_secret_value() == "not-a-real-secret"
    assert "not-a-real-secret" not in repr(settings)
    assert (settings.s3_secure, settings.s3_region, settings.s3_create_bucket) == (
        False,
        "eu-west-1",
        True,
    )
    blobs = open_blobs(settings)
    try:
        assert isinstance(blobs.store, S3BlobStore)
        assert (blobs.store.endpoint, blobs.store.bucket) == (
            "minio.internal:9000",
            "gouache-images",
        )
    finally:
        await blobs.close()


@pytest.mark.parametrize(
    "missing", [name for name in S3_ENV if name != "GOUACHE_STORAGE_BLOB_BACKEND"]
)
def test_the_s3_backend_names_each_missing_variable(
    clean_env: pytest.MonkeyPatch, missing: str
) -> None:
    for name, value in S3_ENV.items():
        if name != missing:
            clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        StorageSettings()
    assert f"GOUACHE_STORAGE_BLOB_BACKEND=s3 needs {missing} to be set" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GOUACHE_STORAGE_S3_ENDPOINT", "https://s3.example:443", "without a scheme"),
        ("GOUACHE_STORAGE_S3_ENDPOINT", "s3.example/bucket", "without a scheme or path"),
        ("GOUACHE_STORAGE_S3_BUCKET", "Upper_Case", "not a valid bucket name"),
        ("GOUACHE_STORAGE_BLOB_BACKEND", "gcs", "'local' or 's3'"),
    ],
)
def test_malformed_s3_settings_are_refused(
    clean_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    for key, good in S3_ENV.items():
        clean_env.setenv(key, good)
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        StorageSettings()


def test_the_service_says_what_is_missing_in_one_line(tmp_path: Path) -> None:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("GOUACHE_STORAGE_")
    }
    env.update(
        {
            "GOUACHE_STORAGE_BLOB_BACKEND": "s3",
            "GOUACHE_STORAGE_S3_ENDPOINT": "127.0.0.1:9000",
            "GOUACHE_STORAGE_STATE_DIR": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.storage"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: GOUACHE_STORAGE_BLOB_BACKEND=s3 needs GOUACHE_STORAGE_S3_BUCKET, "
        "GOUACHE_STORAGE_S3_ACCESS_KEY, GOUACHE_STORAGE_S3_SECRET_KEY to be set"
    )
