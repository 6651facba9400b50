"""`gouache train wct`: reconstruction decoders for every WCT level, exported with a manifest.

Each decoder learns only to rebuild an image from its tap of the frozen Lite0 encoder
(Li et al., 2017): a pixel term (mean absolute error) and a feature term (the rebuilt
image's features at the tap, and at the shallower levels' taps, against the
original's). Contents and styles are both just images to rebuild, so both train.
All levels train together in one loop: one encoder pass over the batch feeds them all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor, nn

from gouache.nst.encoders.lite0 import LITE0_IMAGENET, LITE0_TAPS, Lite0Encoder, load_lite0
from gouache.nst.encoders.lite0 import file_sha256 as sha256_of
from gouache.nst.families.wct import WctConfig, WctDecoders
from gouache.nst.losses import relative_mse
from gouache.nst.machine import machine_record
from gouache.nst.training.config import (
    ConfigError,
    DataConfig,
    OptimConfig,
    RecordedConfig,
    RunConfig,
    build_section,
    load_yaml_config,
)
from gouache.nst.training.data import (
    CropSpec,
    ImageBank,
    files_digest,
    find_corpus_manifest,
    list_images,
    split_holdout,
    step_generator,
)
from gouache.nst.training.trainer import FitResult, fit, replace_directory, resolve_device

DECODERS_FILE = "decoders.pt"
MANIFEST_FILE = "manifest.json"

console = Console(stderr=True)


@dataclass(frozen=True)
class WctLossConfig:
    """The reconstruction objective of every level's decoder.

    pixel_weight: mean absolute error between the rebuilt image and the original.
    feature_weight: relative squared error of the rebuilt image's features at the
        level's tap and every shallower level's tap, against the original's.
    """

    pixel_weight: float = 1.0
    feature_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("pixel_weight", "feature_weight"):
            if getattr(self, name) < 0.0:
                raise ConfigError(f"loss.{name} must be zero or positive")


@dataclass(frozen=True)
class WctTrainConfig(RecordedConfig):
    """A whole WCT training run: the decoders to export, their objective and the loop."""

    name: str
    model: WctConfig
    loss: WctLossConfig = field(default_factory=WctLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seed: int = 0
    family: str = "wct"

    def __post_init__(self) -> None:
        if self.family != "wct":
            raise ConfigError(f"family must be wct for this trainer, got {self.family!r}")
        if not self.name.startswith("wct.") or "/" in self.name or len(self.name) < 5:
            raise ConfigError(f"name must look like wct.<encoder>-<version>, got {self.name!r}")
        if self.data.image_size % self.model.stride:
            raise ConfigError(
                f"data.image_size ({self.data.image_size}) must be a multiple of the deepest "
                f"level's stride ({self.model.stride})"
            )


def load_wct_config(path: Path) -> WctTrainConfig:
    """Reads and checks a YAML WCT training config; ConfigError names the bad key."""
    return load_yaml_config(path, parse_wct_config)


def parse_wct_config(raw: object) -> WctTrainConfig:
    """Builds the config from already-parsed YAML (a mapping); ConfigError otherwise."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config must be a mapping, got {type(raw).__name__}")
    if "model" not in raw:
        raise ConfigError("model is required (its levels and decoder widths)")
    return build_section(WctTrainConfig, raw, "")


class WctObjective(nn.Module):
    """Every level's decoder and its reconstruction loss over a frozen Lite0 encoder."""

    def __init__(self, config: WctTrainConfig, encoder: Lite0Encoder) -> None:
        super().__init__()
        self.model = config.model
        self.loss = config.loss
        self.encoder = encoder.eval().requires_grad_(False)
        self.module = WctDecoders(config.model)

    def terms(self, images: Tensor) -> dict[str, Tensor]:
        """The weighted loss terms for one batch, per level, and their sum under "total"."""
        levels = self.model.levels
        with torch.no_grad():
            original = self.encoder.forward_features(images, levels)
        terms: dict[str, Tensor] = {}
        for tap in levels:
            rebuilt = self.module.decode(tap, original[tap])
            compared = _taps_up_to(tap, levels)
            features = self.encoder.forward_features(rebuilt, compared)
            feature_error = torch.stack(
                [relative_mse(features[t], original[t]) for t in compared]
            ).mean()
            terms[f"{tap}_pixel"] = self.loss.pixel_weight * torch.mean(torch.abs(rebuilt - images))
            terms[f"{tap}_feature"] = self.loss.feature_weight * feature_error
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms


def _taps_up_to(tap: str, levels: tuple[str, ...]) -> tuple[str, ...]:
    depth = LITE0_TAPS.index(tap)
    return tuple(t for t in levels if LITE0_TAPS.index(t) <= depth)


@dataclass(frozen=True)
class _Banks:
    """Training and held-out images (contents and styles alike), and where they came from."""

    train: ImageBank
    heldout: ImageBank
    content_dir: Path
    style_dir: Path
    content_heldout: tuple[str, ...]
    style_heldout: tuple[str, ...]
    counts: tuple[int, int]

    @classmethod
    def load(cls, config: WctTrainConfig, content_dir: Path, style_dir: Path) -> _Banks:
        data = config.data
        contents = split_holdout(list_images(content_dir), data.holdout_fraction, config.seed)
        styles = split_holdout(list_images(style_dir), data.holdout_fraction, config.seed)
        return cls(
            train=ImageBank([*contents[0], *styles[0]], data.load_side),
            heldout=ImageBank([*contents[1], *styles[1]], data.load_side),
            content_dir=content_dir,
            style_dir=style_dir,
            content_heldout=tuple(p.name for p in contents[1]),
            style_heldout=tuple(p.name for p in styles[1]),
            counts=(len(contents[0]), len(styles[0])),
        )

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the data: counts, held-out names, digests."""
        every = [*self.train.paths, *self.heldout.paths]
        root = Path(os.path.commonpath([self.content_dir.resolve(), self.style_dir.resolve()]))
        manifest = find_corpus_manifest(self.content_dir, self.style_dir)
        return {
            "manifest_sha256": None if manifest is None else sha256_of(manifest),
            "manifest": None if manifest is None else manifest.name,
            "files_sha256": files_digest([p.resolve() for p in every], root),
            "content_train": self.counts[0],
            "style_train": self.counts[1],
            "content_heldout": list(self.content_heldout),
            "style_heldout": list(self.style_heldout),
            "note": "contents and styles alike are images to reconstruct",
        }


class WctTask:
    """Batches for the loop: seeded random crops per step, fixed held-out batches."""

    def __init__(
        self, config: WctTrainConfig, objective: WctObjective, banks: _Banks, device: torch.device
    ) -> None:
        self.config = config
        self.objective = objective
        self.module: nn.Module = objective.module
        self.banks = banks
        self.device = device
        data = config.data
        self.crop = CropSpec(size=data.image_size, scale=data.crop_scale, flip=data.flip)
        fixed = CropSpec(size=data.image_size, scale=data.crop_scale, flip=False)
        self.heldout_batches = [
            self._to_device(banks.heldout.crops(data.batch_size, fixed, generator))
            for generator in (
                step_generator(config.seed, index, stream=1)
                for index in range(data.holdout_batches)
            )
        ]

    def losses(self, step: int) -> Mapping[str, Tensor]:
        generator = step_generator(self.config.seed, step)
        batch = self.banks.train.crops(self.config.data.batch_size, self.crop, generator)
        return self.objective.terms(self._to_device(batch))

    def heldout(self) -> Mapping[str, float]:
        sums: dict[str, float] = {}
        for batch in self.heldout_batches:
            for name, value in self.objective.terms(batch).items():
                sums[name] = sums.get(name, 0.0) + float(value)
        return {name: value / len(self.heldout_batches) for name, value in sums.items()}

    def _to_device(self, batch: Tensor) -> Tensor:
        return batch.to(self.device).contiguous(memory_format=torch.channels_last)


def train(
    config_path: Path,
    content_dir: Path,
    style_dir: Path,
    out_dir: Path,
    *,
    resume: bool,
    max_minutes: float | None,
) -> Path:
    """Trains the decoders the config describes and exports them; returns the export dir.

    `out_dir` receives checkpoints, the best weights and the JSONL run log; the export
    (fp16 decoders.pt and manifest.json) goes to `out_dir/<config name>/`.
    """
    config = load_wct_config(config_path)
    device = resolve_device(config.run)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.run.threads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        try:
            banks = _Banks.load(config, content_dir, style_dir)
            console.print(
                f"[bold]wct[/bold] {config.name}: {len(banks.train)} images for training, "
                f"{len(banks.heldout)} held out; device {device}, {torch.get_num_threads()} threads"
            )
            encoder = load_lite0(device=device).to(memory_format=torch.channels_last)
            objective = WctObjective(config, encoder).to(device)
            objective.module.to(memory_format=torch.channels_last)
            task = WctTask(config, objective, banks, device)
            result = fit(
                task,
                config.optim,
                config.run,
                out_dir,
                config_digest=config.digest(),
                device=device,
                resume=resume,
                max_minutes=max_minutes,
                console=console,
            )
            return export(config, result, banks, out_dir / config.name, config_path=config_path)
        finally:
            torch.set_num_threads(threads)


def export(
    config: WctTrainConfig,
    result: FitResult,
    banks: _Banks,
    target: Path,
    *,
    config_path: Path,
) -> Path:
    """Writes the best decoders (fp16) and their manifest to `target`, replacing it."""
    decoders = WctDecoders(config.model)
    state = torch.load(result.best_weights, map_location="cpu", weights_only=True)
    decoders.load_state_dict(state)
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    half = {
        name: value.detach().to("cpu", torch.float16).contiguous() for name, value in state.items()
    }
    torch.save(half, staging / DECODERS_FILE)
    manifest = {
        "name": config.name,
        "family": "wct",
        "encoder": LITE0_IMAGENET.record(),
        "levels": list(config.model.levels),
        "model_config": config.to_dict()["model"],
        "decoders": {
            "file": DECODERS_FILE,
            "parameters": {
                tap: sum(p.numel() for p in decoders.decoders[tap].parameters())
                for tap in config.model.levels
            },
            "storage_dtype": "float16",
            "compute_dtype": "float32",
        },
        "input": {"layout": "NCHW RGB", "range": [0.0, 1.0]},
        "training": result.record(
            config=config.to_dict(), config_file=config_path.name, config_sha256=config.digest()
        ),
        "data": banks.describe(),
        "machine": machine_record(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {
            DECODERS_FILE: {
                "sha256": sha256_of(staging / DECODERS_FILE),
                "bytes": (staging / DECODERS_FILE).stat().st_size,
            }
        },
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    replace_directory(staging, target)
    console.print(f"[green]✓[/green] exported {target}")
    return target
