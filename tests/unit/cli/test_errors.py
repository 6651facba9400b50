"""The CLI says what stopped an API command in one line on stderr, with a non-zero status.

The API's own answers (HTTP 415, 401, an unknown model) are checked against a real mesh in
tests/e2e/test_cli_errors.py; these need no server, or the absence of one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gouache.cli.errors import describe
from gouache.cli.main import main
from gouache.client import ApiError
from gouache.runtime.ports import free_port


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def text_as_jpg(tmp_path: Path) -> Path:
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are my notes, not a photo\n")
    return notes


def test_no_mesh_listening_is_one_line(
    capsys: pytest.CaptureFixture[str], text_as_jpg: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code = main(
        [
            "stylize",
            str(text_as_jpg),
            "--style",
            str(text_as_jpg),
            "--url",
            url,
            "--api-key",
            "gk_x",
        ]
    )

    assert code == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: cannot reach the gouache API at {url} (connection refused)")
    assert "gouache up" in line


def test_an_unreadable_image_checked_locally_is_one_line(
    capsys: pytest.CaptureFixture[str], text_as_jpg: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["stylize", str(text_as_jpg), "--style", "x.png", "--url", url, "--api-key", "k"]

    code = main([*argv, "--max-side", "64"])

    assert code == 1
    assert _one_error_line(capsys) == (
        f"error: {text_as_jpg}: unrecognised images are not supported; "
        "send a PNG, JPEG or WebP image"
    )


def test_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "absent.png"
    url = f"http://127.0.0.1:{free_port()}"

    code = main(["stylize", str(missing), "--style", "x.png", "--url", url, "--api-key", "k"])

    assert code == 1
    assert _one_error_line(capsys) == (
        f"error: {missing}: no such file (or use skimage:NAME, e.g. skimage:astronaut)"
    )


def test_bad_weights_are_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["stylize", "a.png", "--style", "b.png", "--weights", "0.7,lots"])

    assert exited.value.code == 2
    assert "'0.7,lots': give numbers separated by commas" in capsys.readouterr().err


def test_damaged_credentials_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "credentials.json").write_text("{not json")

    code = main(["--state-dir", str(tmp_path), "token"])

    assert code == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {tmp_path / 'credentials.json'} is not the credentials")
    assert "--api-key" in line


def test_api_errors_keep_the_status_and_the_servers_message() -> None:
    error = ApiError(415, "content is not an image we can read: unrecognised", 3)

    assert describe(error) == "HTTP 415: content is not an image we can read: unrecognised"


def test_a_timeout_names_the_server() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:8080/v1/jobs/j1")

    described = describe(httpx.ReadTimeout("timed out", request=request))

    assert (
        described == "the gouache API at http://127.0.0.1:8080 did not answer in time (ReadTimeout)"
    )


def test_an_unexpected_error_keeps_its_traceback() -> None:
    assert describe(ZeroDivisionError("bug")) is None
