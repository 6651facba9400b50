"""The engine's commands refuse bad input with one readable line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from gouache.cli.main import main as gouache
from gouache.nst.export import main as export


def test_eval_names_the_known_models_for_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = gouache(["eval", "--models", "nosuch.v1", "--table", str(tmp_path / "q.md")])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: unknown model 'nosuch.v1'; known models: adain.lite0-v1" in err
    assert "Traceback" not in err
    assert not (tmp_path / "q.md").exists()


def test_eval_says_how_many_images_the_corpus_can_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.json").write_text("[]")
    code = gouache(
        ["eval", "--models", "adain.lite0-v1", "--data-dir", str(tmp_path), "--contents", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "0 usable content images" in err
    assert "ask for at most 0" in err


def test_train_names_the_bad_config_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("name: adain.lite0-x\n")
    code = gouache(
        [
            "train",
            "adain",
            "--content-dir",
            str(tmp_path),
            "--style-dir",
            str(tmp_path),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {config}: model is required" in err


def test_train_reports_a_config_file_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.yaml"
    code = gouache(
        [
            "train",
            "feedforward",
            "--content-dir",
            str(tmp_path),
            "--style-dir",
            str(tmp_path),
            "--config",
            str(missing),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert f"{missing}: cannot read the config" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nosuch.v1", "unknown model 'nosuch.v1'; known models:"),
        ("gatys.lite0-fast", "gatys.lite0-fast ships no weights, so there is no network to export"),
    ],
)
def test_export_refuses_models_it_cannot_export(
    model: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export([model]) == 2
    err = capsys.readouterr().err
    assert f"error: {message}" in err
    assert "Traceback" not in err
