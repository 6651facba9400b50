"""`gouache images delete | jobs delete | users erase | audit`: their arguments are checked
before anything is sent, and what stops them is one line. Against a real mesh (deleting,
erasing, reading the log): tests/e2e/test_sdk.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gouache.cli.compliance_commands import parse_since
from gouache.cli.main import main
from gouache.runtime.ports import free_port

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - timedelta(minutes=90)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-29", datetime(2026, 11, 29, tzinfo=UTC)),
        ("2026-11-29T08:30:00Z", datetime(2026, 11, 29, 8, 30, tzinfo=UTC)),
        ("2026-11-29T09:30:00+01:00", datetime(2026, 11, 29, 8, 30, tzinfo=UTC)),
    ],
)
def test_since_takes_a_time_or_an_age(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["audit", "--since", "yesterday"], "'yesterday': give an ISO 8601 time"),
        (["audit", "--since", "3w"], "or an age such as 90m, 24h or 7d"),
        (["audit", "--limit", "0"], "'0': give a whole number from 1 to 10000"),
        (["users", "erase"], "the following arguments are required: user_id"),
        (["jobs", "remove", "job_1"], "invalid choice: 'remove'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_erasing_asks_for_yes_first(capsys: pytest.CaptureFixture[str]) -> None:
    # No server listens there: the refusal comes before any request.
    url = f"http://127.0.0.1:{free_port()}"

    code = main(["users", "--url", url, "--api-key", "gk_x", "erase", "usr_1"])

    assert code == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: erasing usr_1 removes their images")
    assert line.endswith("add --yes to confirm")


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "delete", "job_1"],
        ["users", "erase", "usr_1", "--yes"],
    ],
)
def test_no_mesh_listening_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    command, rest = argv[0], argv[1:]

    code = main([command, "--url", url, "--api-key", "gk_x", *rest])

    assert code == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: cannot reach the gouache API at {url} (connection refused)")
