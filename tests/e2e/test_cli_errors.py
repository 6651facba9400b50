"""`gouache stylize` against a live mesh: each API error is one line on stderr and exit 1,
never a traceback (a text file named .jpg, a bad API key, an unknown model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.e2e.users import new_user_key

CLI_TIMEOUT_S = 120


def _stylize(mesh: Mesh, api_key: str, *args: str) -> tuple[int, str]:
    """Runs the installed CLI as a user would; returns its status and its one error line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gouache.cli.main",
            "stylize",
            *args,
            "--url",
            mesh.config.public_url,
            "--api-key",
            api_key,
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return result.returncode, lines[0]


@pytest.fixture(scope="module")
def user_key(mesh: Mesh, admin: GouacheClient) -> str:
    return new_user_key(admin, mesh.config.public_url)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(small("chelsea", 32))
    return path


def test_a_text_file_named_jpg_is_refused_in_one_line(
    mesh: Mesh, user_key: str, tmp_path: Path, photo: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are my notes, not a photo\n")

    code, line = _stylize(mesh, user_key, str(notes), "--style", str(photo))

    assert code == 1
    assert line.startswith("error: HTTP 415: "), line


def test_a_bad_api_key_is_refused_in_one_line(mesh: Mesh, user_key: str, photo: Path) -> None:
    wrong_secret = user_key[:-6] + ("aaaaaa" if not user_key.endswith("aaaaaa") else "bbbbbb")

    code, line = _stylize(mesh, wrong_secret, str(photo), "--style", str(photo))

    assert code == 1
    assert line.startswith("error: HTTP 401: "), line


def test_an_unknown_model_is_refused_in_one_line(mesh: Mesh, user_key: str, photo: Path) -> None:
    code, line = _stylize(
        mesh, user_key, str(photo), "--style", str(photo), "--model", "no-such-model"
    )

    assert code == 1
    assert line.startswith(("error: HTTP 400: ", "error: HTTP 404: ")), line
    assert "no-such-model" in line
