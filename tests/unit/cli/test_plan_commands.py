"""`gouache plans user|project ID PLAN`: arguments are checked before anything is sent, and
an unreachable mesh is one line. Against a real mesh: tests/e2e/test_plans.py."""

from __future__ import annotations

import pytest

from gouache.cli.main import main
from gouache.runtime.ports import free_port


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["plans", "user", "usr_1", "gold"], "invalid choice: 'gold' (choose from 'enterprise'"),
        (["plans", "project", "prj_1"], "the following arguments are required: plan"),
        (["plans", "team", "prj_1", "pro"], "invalid choice: 'team'"),
        (["plans"], "the following arguments are required: action"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_an_unreachable_mesh_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["plans", "--url", url, "--api-key", "gk_a_b", "user", "usr_1", "pro"])
    captured = capsys.readouterr()
    assert code != 0
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: cannot reach the gouache API")
