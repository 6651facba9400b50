"""Training: config validation, data split and crops, the loop (resume, early stopping), the CLI."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import Tensor, nn

from gouache.cli.main import build_parser, main
from gouache.nst.encoders.lite0 import file_sha256
from gouache.nst.families.adain import AdainConfig, AdainDecoder
from gouache.nst.specs import ModelWeights
from gouache.nst.training.config import (
    ConfigError,
    OptimConfig,
    RunConfig,
    load_adain_config,
    parse_adain_config,
)
from gouache.nst.training.data import (
    CropSpec,
    DataError,
    ImageBank,
    list_images,
    split_holdout,
    step_generator,
)
from gouache.nst.training.trainer import (
    BEST,
    CHECKPOINT,
    RUN_LOG,
    FitResult,
    TrainingError,
    fit,
    learning_rate_factor,
)

SHIPPED_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "adain.lite0-v1.yaml"
CPU = torch.device("cpu")


def _tiny_config(**sections: Mapping[str, object]) -> dict[str, object]:
    """A config small enough to train in a second on 48 px images."""
    config: dict[str, object] = {
        "name": "adain.test-v0",
        "model": {"tap": "b5", "decoder_widths": [8, 8, 8, 8], "decoder_convs": [1, 1, 1, 1]},
        "loss": {"style_taps": {"b1": 1.0, "b5": 1.0}},
        "data": {"image_size": 32, "load_side": 40, "batch_size": 2, "holdout_batches": 1},
        "optim": {"lr": 1e-3, "warmup_steps": 1, "max_steps": 4},
        "run": {"eval_every": 2, "checkpoint_every": 2, "log_every": 1, "patience": 5},
    }
    for name, values in sections.items():
        merged = dict(config[name])  # type: ignore[call-overload]
        merged.update(values)
        config[name] = merged
    return config


def _write_images(directory: Path, count: int, seed: int) -> Path:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((48 + 4 * index, 44), Image.Resampling.BILINEAR)
        image.save(directory / f"image_{index}.png")
    return directory


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    """Generated content and style directories, with a corpus manifest beside them."""
    root = tmp_path / "data"
    contents = _write_images(root / "content", 4, seed=1)
    styles = _write_images(root / "styles", 3, seed=2)
    (root / "manifest.json").write_text('[{"file": "generated"}]\n')
    return contents, styles


def _config_file(tmp_path: Path, config: Mapping[str, object], name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(config)))
    return path


# --- config --------------------------------------------------------------------------


def test_the_shipped_config_loads_and_matches_the_registered_model() -> None:
    from gouache.nst import registry

    config = load_adain_config(SHIPPED_CONFIG)
    assert config.name == "adain.lite0-v1"
    assert config.model == AdainConfig.from_mapping(registry.get(config.name).config)
    assert config.run.threads == 1


def test_config_accepts_yaml_exponents_written_without_a_dot() -> None:
    raw = _tiny_config(optim={"lr": "1e-3"})
    assert parse_adain_config(raw).optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 3}, r"unknown keys \['epochs'\]"),
        ({"optim": {"lr": "fast"}}, "optim.lr must be a number"),
        ({"optim": {"lr": -1.0}}, "optim.lr must be positive"),
        ({"optim": {"warmup_steps": 9, "max_steps": 4}}, "warmup_steps"),
        ({"optim": {"betas": [0.9]}}, r"optim.betas must be a list of 2"),
        ({"data": {"batch_size": 0}}, "data.batch_size must be at least 1"),
        ({"data": {"batch_size": 2.5}}, "data.batch_size must be int"),
        ({"data": {"crop_scale": [0.9, 0.2]}}, "crop_scale"),
        ({"data": {"holdout_fraction": 1.0}}, "holdout_fraction"),
        ({"data": {"image_size": 36}}, "multiple of the tap's stride"),
        ({"loss": {"style_taps": {"b77": 1.0}}}, "unknown taps"),
        ({"loss": {"style_loss": "fancy"}}, "meanstd or gram"),
        ({"loss": {"tv_weight": -1.0}}, "tv_weight"),
        ({"model": {"tap": "b5", "decoder_widths": [8, 8]}}, "needs 4 levels"),
        ({"model": {"tap": "b5", "decoder_convs": ["x", 1, 1, 1]}}, r"decoder_convs\[0\]"),
        ({"run": {"device": "tpu"}}, "run.device"),
        ({"run": {"amp": "yes"}}, "run.amp must be bool"),
        ({"name": "gatys.x"}, "name must look like"),
        ({"family": "feedforward"}, "family must be adain"),
    ],
)
def test_bad_configs_name_the_bad_key(change: Mapping[str, object], message: str) -> None:
    raw = _tiny_config()
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(raw.get(key), Mapping):
            raw[key] = {**raw[key], **value}  # type: ignore[dict-item]
        else:
            raw[key] = value
    with pytest.raises(ConfigError, match=message):
        parse_adain_config(raw)


def test_a_config_file_error_names_the_file(tmp_path: Path) -> None:
    path = _config_file(tmp_path, {"name": "adain.x-v1"})
    with pytest.raises(ConfigError, match=r"cfg\.yaml: model is required"):
        load_adain_config(path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_adain_config(broken)


def test_the_config_digest_changes_with_the_config() -> None:
    first = parse_adain_config(_tiny_config())
    assert first.digest() == parse_adain_config(_tiny_config()).digest()
    assert first.digest() != parse_adain_config(_tiny_config(optim={"lr": 2e-3})).digest()


# --- data ----------------------------------------------------------------------------


def test_holdout_split_is_stable_disjoint_and_never_empty(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.png" for i in range(10)]
    train, held = split_holdout(paths, 0.2, seed=0)
    assert (train, held) == split_holdout(paths, 0.2, seed=0)
    assert len(held) == 2
    assert not set(train) & set(held)
    assert set(train) | set(held) == set(paths)
    assert len(split_holdout(paths[:2], 0.01, seed=0)[1]) == 1
    with pytest.raises(DataError, match="at least two"):
        split_holdout(paths[:1], 0.5, seed=0)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path)


def test_crops_have_the_training_size_and_repeat_for_a_step(data: tuple[Path, Path]) -> None:
    bank = ImageBank(list_images(data[0]), short_side=40)
    spec = CropSpec(size=32, scale=(0.5, 1.0), flip=True)
    first = bank.crops(3, spec, step_generator(0, 5))
    assert first.shape == (3, 3, 32, 32)
    assert float(first.min()) >= 0.0
    assert float(first.max()) <= 1.0
    assert torch.equal(first, bank.crops(3, spec, step_generator(0, 5)))
    assert not torch.equal(first, bank.crops(3, spec, step_generator(0, 6)))


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    optim = OptimConfig(lr=1.0, warmup_steps=4, max_steps=20, min_lr_ratio=0.1)
    factors = [learning_rate_factor(step, optim) for step in range(21)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(factors[3:]))
    assert factors[20] == pytest.approx(0.1)


# --- the loop on a toy task ----------------------------------------------------------


class _Toy:
    """Fits a linear map on batches drawn from the step number; held-out loss scripted."""

    def __init__(self, heldout: list[float] | None = None, crash_at: int | None = None) -> None:
        torch.manual_seed(0)
        self.module: nn.Module = nn.Linear(4, 1)
        self._heldout = heldout
        self._crash_at = crash_at
        self._evals = 0

    def losses(self, step: int) -> Mapping[str, Tensor]:
        if step == self._crash_at:
            raise KeyboardInterrupt
        x = torch.randn(8, 4, generator=step_generator(0, step))
        loss = torch.mean((self.module(x).squeeze(1) - x.sum(dim=1)) ** 2)
        return {"mse": loss, "total": loss}

    def heldout(self) -> Mapping[str, float]:
        self._evals += 1
        if self._heldout is None:
            x = torch.randn(16, 4, generator=step_generator(1, 0))
            return {"total": float(torch.mean((self.module(x).squeeze(1) - x.sum(dim=1)) ** 2))}
        return {"total": self._heldout[min(self._evals - 1, len(self._heldout) - 1)]}


def _fit(
    task: _Toy, out: Path, *, steps: int = 6, resume: bool = False, **run: object
) -> FitResult:
    settings: dict[str, object] = {"eval_every": 2, "checkpoint_every": 2, "log_every": 1}
    settings.update(run)
    return fit(
        task,
        OptimConfig(lr=0.05, warmup_steps=1, max_steps=steps),
        RunConfig(**settings),  # type: ignore[arg-type]
        out,
        config_digest="toy",
        device=CPU,
        resume=resume,
    )


def _log(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / RUN_LOG).read_text().splitlines()]


def test_the_loop_trains_checkpoints_and_logs(tmp_path: Path) -> None:
    task = _Toy()
    result = _fit(task, tmp_path)
    assert result.steps == 6
    assert result.stop_reason == "max_steps"
    assert (tmp_path / CHECKPOINT).exists()
    assert (tmp_path / BEST).exists()
    events = [record["event"] for record in _log(tmp_path)]
    assert events[0] == "start"
    assert events[-1] == "stop"
    assert events.count("train") == 6
    assert events.count("eval") == 3
    losses = [r["losses"]["total"] for r in _log(tmp_path) if r["event"] == "train"]  # type: ignore[index]
    assert losses[-1] < losses[0]


def test_resume_continues_exactly_where_the_checkpoint_left(tmp_path: Path) -> None:
    straight = _Toy()
    _fit(straight, tmp_path / "straight")
    crashed = _Toy(crash_at=3)
    with pytest.raises(KeyboardInterrupt):
        _fit(crashed, tmp_path / "resumed")
    resumed = _Toy()
    result = _fit(resumed, tmp_path / "resumed", resume=True)
    assert result.steps == 6
    assert [r["step"] for r in _log(tmp_path / "resumed") if r["event"] == "resume"] == [2]
    for ours, theirs in zip(resumed.module.parameters(), straight.module.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0.0, atol=0.0)


def test_early_stopping_triggers_on_a_plateau(tmp_path: Path) -> None:
    task = _Toy(heldout=[1.0, 0.5, 0.5, 0.4999, 0.5, 0.6])
    result = _fit(task, tmp_path, steps=40, patience=3, min_delta=0.01)
    assert result.stop_reason == "early_stop"
    # Evaluations at steps 2, 4 improve; 6, 8 and 10 do not by 1 %: patience 3 runs out.
    assert result.steps == 10
    assert (result.best_step, result.best_heldout) == (4, 0.5)


def test_a_fresh_run_refuses_a_directory_with_a_checkpoint(tmp_path: Path) -> None:
    _fit(_Toy(), tmp_path, steps=2)
    with pytest.raises(TrainingError, match="--resume"):
        _fit(_Toy(), tmp_path, steps=2)


def test_resume_needs_a_checkpoint_and_the_same_config(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no checkpoint"):
        _fit(_Toy(), tmp_path, resume=True)
    _fit(_Toy(), tmp_path, steps=2)
    with pytest.raises(TrainingError, match="another config"):
        fit(
            _Toy(),
            OptimConfig(warmup_steps=1, max_steps=2),
            RunConfig(),
            tmp_path,
            config_digest="not-the-toy",
            device=CPU,
            resume=True,
        )


def test_a_diverged_loss_stops_the_run(tmp_path: Path) -> None:
    class Diverging(_Toy):
        def losses(self, step: int) -> Mapping[str, Tensor]:
            value = torch.tensor(float("nan"), requires_grad=True)
            return {"total": value}

    with pytest.raises(TrainingError, match="nan"):
        _fit(Diverging(), tmp_path)
    assert (tmp_path / CHECKPOINT).exists()


# --- the AdaIN trainer end to end, through the CLI ----------------------------------


def test_the_cli_parses_train() -> None:
    args = build_parser().parse_args(
        [
            "train",
            "adain",
            "--content-dir",
            "c",
            "--style-dir",
            "s",
            "--config",
            "x.yaml",
            "--out",
            "o",
            "--resume",
            "--max-minutes",
            "2.5",
        ]
    )
    assert (args.family, args.resume, args.max_minutes) == ("adain", True, 2.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "gatys", "--content-dir", "c"])


def test_adain_trains_exports_and_resumes_through_the_cli(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, _tiny_config())
    out = tmp_path / "run"
    command = ["train", "adain", "--content-dir", str(data[0]), "--style-dir", str(data[1])]
    command += ["--config", str(config), "--out", str(out)]
    # A time limit that has passed before the first step: stops at step 0, still exports.
    assert main([*command, "--max-minutes", "1e-9"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["exported"] == str(out / "adain.test-v0")
    assert main([*command, "--resume"]) == 0
    records = _log(out)
    assert [r["step"] for r in records if r["event"] == "resume"] == [0]
    assert [r["reason"] for r in records if r["event"] == "stop"] == ["time_limit", "max_steps"]

    exported = out / "adain.test-v0"
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["family"] == "adain"
    assert manifest["tap"] == "b5"
    assert manifest["training"]["steps"] == 4
    assert manifest["data"]["manifest_sha256"] == file_sha256(data[0].parent / "manifest.json")
    assert manifest["data"]["content_train"] + len(manifest["data"]["content_heldout"]) == 4
    digest = manifest["files"]["decoder.pt"]["sha256"]
    assert digest == file_sha256(exported / "decoder.pt")
    assert set(manifest["quality"]) >= {"adain", "baseline", "content", "pairs"}

    weights = ModelWeights(path_in_package="decoder.pt", sha256=digest)
    state = weights.load_state_dict(exported / "decoder.pt")
    assert all(value.dtype == torch.float16 for value in state.values())
    decoder = AdainDecoder.from_config(parse_adain_config(_tiny_config()).model)
    decoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
