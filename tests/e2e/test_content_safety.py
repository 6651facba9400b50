"""Content safety on a running mesh, as a user meets it.

On the shared mesh (default threshold 0.8) an upload through the REST edge carries its NSFW
score. On a second, small mesh started with GOUACHE_STORAGE_NSFW_THRESHOLD=0 (which refuses
every image; benign images only) the SDK and `gouache stylize` get the refusal with its reason,
while the curated styles imported at start are kept (an operator chose them)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import ApiError, GouacheClient
from tests.e2e.images import small
from tests.e2e.users import new_user

pytestmark = pytest.mark.slow

CLI_TIMEOUT_S = 120


def test_an_uploaded_photo_is_scored_below_the_default_threshold(
    mesh: Mesh, admin: GouacheClient
) -> None:
    with new_user(admin, mesh.config.public_url) as user:
        for kind, name in (("content", "astronaut"), ("style", "coffee")):
            file_url = user.upload(small(name, 128), filename=f"{name}.png", kind=kind)
            image_id = file_url.rsplit("/", 1)[-1]
            with httpx.Client(base_url=mesh.config.public_url, timeout=10) as http:
                described = http.get(
                    f"/v1/images/{image_id}", headers={"authorization": f"Bearer {user.token()}"}
                )
            assert described.status_code == 200, described.text
            assert 0.0 <= described.json()["nsfw_score"] < 0.8, described.json()


@pytest.fixture(scope="module")
def strict_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """SQLite and local files, one cheap model: only uploads are exercised here."""
    state = tmp_path_factory.mktemp("strict-mesh")
    config = MeshConfig(
        state_dir=state,
        ports=MeshPorts.ephemeral(),
        models="gatys.lite0-fast",
        extra_env={"GOUACHE_STORAGE_NSFW_THRESHOLD": "0"},
        rate_limit_plans=UNLIMITED_PLANS,
    )
    running = Mesh(config)
    try:
        running.start()
    except BaseException:
        for log in sorted((state / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    try:
        yield running
    finally:
        running.stop()


def test_a_threshold_of_zero_refuses_every_upload_with_its_reason(strict_mesh: Mesh) -> None:
    assert strict_mesh.credentials is not None
    with GouacheClient(
        strict_mesh.config.public_url, strict_mesh.credentials.admin_api_key
    ) as admin:
        # The shipped curated styles were imported at start: scored, not refused.
        assert admin.list_styles(curated=True)
        for kind in ("content", "style"):
            with pytest.raises(ApiError) as caught:
                admin.upload(small("rocket", 64), filename="rocket.png", kind=kind)
            assert caught.value.status == 400
            assert caught.value.code == 3
            assert caught.value.reason == "unsafe_content"
            assert "refused by the content-safety filter" in caught.value.message
        # Each refusal is in the audit log, with its score.
        audit = httpx.get(
            f"{strict_mesh.config.public_url}/v1/audit",
            params={"action": "upload.refused_unsafe"},
            headers={"authorization": f"Bearer {admin.token()}"},
            timeout=10,
        )
        assert audit.status_code == 200, audit.text
        refusals = audit.json()["events"]
        assert len(refusals) == 2
        assert all(e["detail"].startswith("nsfw_score=") for e in refusals)
        assert all(e["service"] and e["subject_id"] == e["actor_id"] for e in refusals)


def test_the_cli_says_why_in_one_line(strict_mesh: Mesh, tmp_path: Path) -> None:
    assert strict_mesh.credentials is not None
    photo = tmp_path / "photo.png"
    photo.write_bytes(small("chelsea", 32))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gouache.cli.main",
            "stylize",
            str(photo),
            "--style",
            str(photo),
            "--url",
            strict_mesh.config.public_url,
            "--api-key",
            strict_mesh.credentials.admin_api_key,
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: HTTP 400: the image was refused by the content-safety")
