"""The webhook-secret keys: gouache.secretbox and GOUACHE_JOBS_SECRETS_KEY."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gouache.secretbox import Sealed, SecretBox, SecretBoxError, generate_key
from services.jobs.settings import JobsSettings

VARIABLE = "GOUACHE_JOBS_SECRETS_KEY"


def _box(value: str) -> SecretBox:
    return SecretBox.from_setting(value, variable=VARIABLE)


def test_seal_and_open_round_trip_and_differ_each_time() -> None:
    box = _box(generate_key())
    first, second = box.seal("s3cret-value-0123", "wh_1"), box.seal("s3cret-value-0123", "wh_1")
    assert first.token != second.token  # a fresh nonce each time
    assert "s3cret" not in first.token
    assert box.open(first, "wh_1") == box.open(second, "wh_1") == "s3cret-value-0123"


def test_a_token_moved_to_another_row_or_altered_does_not_open() -> None:
    box = _box(generate_key())
    sealed = box.seal("s3cret-value-0123", "wh_a")
    with pytest.raises(SecretBoxError, match="altered or moved"):
        box.open(sealed, "wh_b")
    flipped = sealed.token[:-4] + ("AAAA" if not sealed.token.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretBoxError, match="altered or moved"):
        box.open(Sealed(sealed.key_id, flipped), "wh_a")


def test_rotation_seals_with_the_first_key_and_opens_with_all() -> None:
    old, new = generate_key(), generate_key()
    under_old = _box(old).seal("value-of-sixteen", "wh_1")
    rotated = _box(f"{new}, {old}")
    assert rotated.primary_id == _box(new).primary_id
    assert rotated.open(under_old, "wh_1") == "value-of-sixteen"
    assert rotated.seal("x" * 16, "wh_1").key_id == _box(new).primary_id
    with pytest.raises(SecretBoxError, match=under_old.key_id):
        _box(new).open(under_old, "wh_1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", f"{VARIABLE} is empty"),
        (" , ", f"{VARIABLE} is empty"),
        ("not base64!", "key 1 of 1 is not valid base64"),
        (base64.b64encode(b"short").decode(), "key 1 of 1 decodes to 5 bytes"),
        (f"{generate_key()},{base64.b64encode(os.urandom(16)).decode()}", "key 2 of 2 decodes"),
    ],
)
def test_a_malformed_setting_is_refused_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(SecretBoxError, match=message):
        _box(value)


def test_postgres_without_a_key_is_refused() -> None:
    settings = JobsSettings(database_url="postgresql+asyncpg://u:p@127.0.0.1:5/gouache")
    with pytest.raises(ValueError, match=f"{VARIABLE} must be set"):
        settings.secret_box()


def test_sqlite_without_a_key_makes_one_in_the_state_dir_once(tmp_path: Path) -> None:
    settings = JobsSettings(state_dir=tmp_path)
    sealed = settings.secret_box().seal("value-of-sixteen", "wh_1")
    key_file = tmp_path / "jobs-secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # The next start reads the same key back.
    assert JobsSettings(state_dir=tmp_path).secret_box().open(sealed, "wh_1") == "value-of-sixteen"


def test_the_service_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GOUACHE_JOBS_DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1:5/gouache",
        "GOUACHE_JOBS_SECRETS_KEY": "dG9vIHNob3J0",
        "GOUACHE_JOBS_STATE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.jobs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {VARIABLE}: key 1 of 1 decodes to 9 bytes; AES-256 needs exactly 32"
    )
