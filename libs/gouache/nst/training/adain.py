"""`gouache train adain`: the AdaIN decoder trained over frozen Lite0, exported with its manifest."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import Tensor, nn

from gouache.nst.base import StylizeControls
from gouache.nst.encoders.lite0 import (
    LITE0_IMAGENET,
    LITE0_TAPS,
    Lite0Encoder,
    file_sha256,
    load_lite0,
)
from gouache.nst.families.adain import (
    AdainDecoder,
    AdainFamily,
    adain,
    feature_statistics,
)
from gouache.nst.losses import gram, relative_mse, tv_loss
from gouache.nst.machine import machine_record
from gouache.nst.training.config import AdainLossConfig, AdainTrainConfig, load_adain_config
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

DECODER_FILE = "decoder.pt"
MANIFEST_FILE = "manifest.json"
_QUALITY_SIDE = 256
_QUALITY_PAIRS = 12

console = Console(stderr=True)


class AdainObjective(nn.Module):
    """The decoder and the loss it is trained with, over a frozen Lite0 encoder.

    For a content batch c and a style batch s: t = AdaIN(E(c), stats(E(s))) at the tap;
    the decoded image y = D(t) must have features E(y) close to t at the tap (content),
    feature statistics close to the style's at every style tap (style), little
    variation between neighbouring pixels (tv), and, optionally, D(E(c)) must give c
    back (identity) and y the style's pixel colour statistics (colour). Each term is
    divided by the mean square of its target, so weights mean the same at every tap.
    Only the decoder (`module`) has trainable parameters.
    """

    def __init__(self, config: AdainTrainConfig, encoder: Lite0Encoder) -> None:
        super().__init__()
        self.model = config.model
        self.loss = config.loss
        self.encoder = encoder.eval().requires_grad_(False)
        self.module = AdainDecoder.from_config(config.model)
        deepest = {*config.loss.style_taps, config.model.tap}
        self.taps = tuple(tap for tap in LITE0_TAPS if tap in deepest)

    def terms(self, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        """The weighted loss terms for one batch, and their sum under "total"."""
        tap, eps, loss = self.model.tap, self.model.eps, self.loss
        with torch.no_grad():
            content_features = self.encoder.forward_features(content, (tap,))[tap]
            style_features = self.encoder.forward_features(style, self.taps)
            target = adain(content_features, *feature_statistics(style_features[tap], eps), eps)
        decoded = self.module(target)
        features = self.encoder.forward_features(decoded, self.taps)
        terms = {
            "content": loss.content_weight * relative_mse(features[tap], target),
            "style": loss.style_weight * _style_term(features, style_features, loss, eps),
            "tv": loss.tv_weight * tv_loss(decoded),
        }
        if loss.identity_weight > 0.0:
            rebuilt = self.module(content_features)
            terms["identity"] = loss.identity_weight * relative_mse(rebuilt, content)
        if loss.colour_weight > 0.0:
            terms["colour"] = loss.colour_weight * _colour_term(decoded, style)
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms


class AdainTask:
    """Batches for the loop: seeded random crops per step, fixed held-out batches."""

    def __init__(
        self,
        config: AdainTrainConfig,
        objective: AdainObjective,
        banks: _Banks,
        device: torch.device,
    ) -> None:
        self.config = config
        self.objective = objective
        self.module: nn.Module = objective.module
        self.banks = banks
        self.device = device
        data = config.data
        self.crop = CropSpec(size=data.image_size, scale=data.crop_scale, flip=data.flip)
        # Held-out crops are drawn once, without flips, from their own random stream.
        fixed = CropSpec(size=data.image_size, scale=data.crop_scale, flip=False)
        self.heldout_batches = [
            (
                self._to_device(banks.heldout_content.crops(data.batch_size, fixed, generator)),
                self._to_device(banks.heldout_style.crops(data.batch_size, fixed, generator)),
            )
            for generator in (
                step_generator(config.seed, index, stream=1)
                for index in range(data.holdout_batches)
            )
        ]

    def losses(self, step: int) -> Mapping[str, Tensor]:
        generator = step_generator(self.config.seed, step)
        size = self.config.data.batch_size
        content = self._to_device(self.banks.content.crops(size, self.crop, generator))
        style = self._to_device(self.banks.style.crops(size, self.crop, generator))
        return self.objective.terms(content, style)

    def heldout(self) -> Mapping[str, float]:
        sums: dict[str, float] = {}
        for content, style in self.heldout_batches:
            for name, value in self.objective.terms(content, style).items():
                sums[name] = sums.get(name, 0.0) + float(value)
        return {name: value / len(self.heldout_batches) for name, value in sums.items()}

    def _to_device(self, batch: Tensor) -> Tensor:
        return batch.to(self.device).contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class _Banks:
    """Training and held-out images of both kinds, and where they came from."""

    content: ImageBank
    style: ImageBank
    heldout_content: ImageBank
    heldout_style: ImageBank
    content_dir: Path
    style_dir: Path

    @classmethod
    def load(cls, config: AdainTrainConfig, content_dir: Path, style_dir: Path) -> _Banks:
        data = config.data
        contents = split_holdout(list_images(content_dir), data.holdout_fraction, config.seed)
        styles = split_holdout(list_images(style_dir), data.holdout_fraction, config.seed)
        return cls(
            content=ImageBank(contents[0], data.load_side),
            style=ImageBank(styles[0], data.load_side),
            heldout_content=ImageBank(contents[1], data.load_side),
            heldout_style=ImageBank(styles[1], data.load_side),
            content_dir=content_dir,
            style_dir=style_dir,
        )

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the data: counts, held-out names, digests."""
        every = [
            *self.content.paths,
            *self.heldout_content.paths,
            *self.style.paths,
            *self.heldout_style.paths,
        ]
        root = Path(os.path.commonpath([self.content_dir.resolve(), self.style_dir.resolve()]))
        manifest = find_corpus_manifest(self.content_dir, self.style_dir)
        return {
            "manifest_sha256": None if manifest is None else file_sha256(manifest),
            "manifest": None if manifest is None else manifest.name,
            "files_sha256": files_digest([p.resolve() for p in every], root),
            "content_train": len(self.content),
            "style_train": len(self.style),
            "content_heldout": [p.name for p in self.heldout_content.paths],
            "style_heldout": [p.name for p in self.heldout_style.paths],
        }


def train(
    config_path: Path,
    content_dir: Path,
    style_dir: Path,
    out_dir: Path,
    *,
    resume: bool,
    max_minutes: float | None,
) -> Path:
    """Trains the AdaIN decoder the config describes and exports it; returns the export dir.

    The run directory `out_dir` receives checkpoints, the best weights and the JSONL run
    log; the exported model (fp16 decoder.pt and manifest.json) goes to
    `out_dir/<config name>/`, ready to copy into `gouache/nst/weights/`.
    """
    config = load_adain_config(config_path)
    device = resolve_device(config.run)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.run.threads)
    # The decoder's initial weights come from the seed; the caller's random state is kept.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        try:
            return _train(
                config, config_path, device, content_dir, style_dir, out_dir, resume, max_minutes
            )
        finally:
            torch.set_num_threads(threads)


def _train(
    config: AdainTrainConfig,
    config_path: Path,
    device: torch.device,
    content_dir: Path,
    style_dir: Path,
    out_dir: Path,
    resume: bool,
    max_minutes: float | None,
) -> Path:
    banks = _Banks.load(config, content_dir, style_dir)
    console.print(
        f"[bold]adain[/bold] {config.name}: {len(banks.content)} contents and "
        f"{len(banks.style)} styles for training, {len(banks.heldout_content)} and "
        f"{len(banks.heldout_style)} held out; device {device}, "
        f"{torch.get_num_threads()} threads"
    )
    encoder = load_lite0(device=device).to(memory_format=torch.channels_last)
    objective = AdainObjective(config, encoder).to(device)
    objective.module.to(memory_format=torch.channels_last)
    task = AdainTask(config, objective, banks, device)
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
    return export(config, result, banks, encoder, out_dir / config.name, config_path=config_path)


def export(
    config: AdainTrainConfig,
    result: FitResult,
    banks: _Banks,
    encoder: Lite0Encoder,
    target: Path,
    *,
    config_path: Path,
) -> Path:
    """Writes the best decoder (fp16) and its manifest to `target`, replacing what was there."""
    decoder = AdainDecoder.from_config(config.model)
    state = torch.load(result.best_weights, map_location="cpu", weights_only=True)
    decoder.load_state_dict(state)
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    half = {
        name: value.detach().to("cpu", torch.float16).contiguous() for name, value in state.items()
    }
    torch.save(half, staging / DECODER_FILE)
    # Quality is measured with what ships: the fp16 weights widened back to float32.
    decoder.load_state_dict({name: value.float() for name, value in half.items()})
    quality = measure_quality(config, decoder, encoder.to("cpu"), banks)
    manifest = {
        "name": config.name,
        "family": "adain",
        "encoder": LITE0_IMAGENET.record(),
        "tap": config.model.tap,
        "stride": config.model.stride,
        "model_config": config.to_dict()["model"],
        "decoder": {
            "file": DECODER_FILE,
            "parameters": sum(p.numel() for p in decoder.parameters()),
            "storage_dtype": "float16",
            "compute_dtype": "float32",
        },
        "input": {"layout": "NCHW RGB", "range": [0.0, 1.0]},
        "training": result.record(
            config=config.to_dict(), config_file=config_path.name, config_sha256=config.digest()
        ),
        "data": banks.describe(),
        "quality": quality,
        "machine": machine_record(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {
            DECODER_FILE: {
                "sha256": file_sha256(staging / DECODER_FILE),
                "bytes": (staging / DECODER_FILE).stat().st_size,
            }
        },
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    replace_directory(staging, target)
    console.print(f"[green]✓[/green] exported {target}")
    return target


def measure_quality(
    config: AdainTrainConfig, decoder: AdainDecoder, encoder: Lite0Encoder, banks: _Banks
) -> dict[str, Any]:
    """Style and content distances on held-out pairs, against histogram matching alone.

    Uses `gouache.nst.quality` (Lite0 Gram style distance over b1-b11, b8 content
    distance, at 256 px): the default model must beat the baseline on style distance
    with a content distance at most 1.5x the baseline's.
    """
    from gouache.nst.quality import Distances, QualityMeter, histogram_baseline, summarise

    family = AdainFamily(config.model, encoder, decoder, model_version=config.name)
    meter = QualityMeter(encoder, side=_QUALITY_SIDE)
    contents = [_uint8(image, _QUALITY_SIDE) for image in banks.heldout_content.images]
    styles = [_uint8(image, _QUALITY_SIDE) for image in banks.heldout_style.images]
    pairs = [(c, s) for c in contents for s in styles][:_QUALITY_PAIRS]
    rows: dict[str, list[Distances]] = {"adain": [], "baseline": [], "content": []}
    seconds = []
    for content, style in pairs:
        started = time.perf_counter()
        output = family.stylize(content, [style], [1.0], StylizeControls())
        seconds.append(time.perf_counter() - started)
        for name, image in (
            ("adain", output),
            ("baseline", histogram_baseline(content, style)),
            ("content", content),
        ):
            rows[name].append(meter.measure(image, content, style))
    return summarise(rows, seconds, side=_QUALITY_SIDE)


def _style_term(
    features: Mapping[str, Tensor],
    style_features: Mapping[str, Tensor],
    loss: AdainLossConfig,
    eps: float,
) -> Tensor:
    terms = []
    for tap, weight in loss.style_taps.items():
        if loss.style_loss == "gram":
            terms.append(weight * relative_mse(gram(features[tap]), gram(style_features[tap])))
            continue
        mean, std = feature_statistics(features[tap], eps)
        style_mean, style_std = feature_statistics(style_features[tap], eps)
        scale = torch.mean(style_mean**2) + torch.mean(style_std**2) + 1e-8
        error = torch.mean((mean - style_mean) ** 2) + torch.mean((std - style_std) ** 2)
        terms.append(weight * error / scale)
    return torch.stack(terms).sum() / sum(loss.style_taps.values())


def _colour_term(decoded: Tensor, style: Tensor) -> Tensor:
    mean, std = feature_statistics(decoded, 1e-6)
    style_mean, style_std = feature_statistics(style, 1e-6)
    return torch.mean((mean - style_mean) ** 2) + torch.mean((std - style_std) ** 2)


def _uint8(image: Tensor, side: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    height, width = int(image.shape[1]), int(image.shape[2])
    scale = side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = torch.nn.functional.interpolate(
        image[None].float(), size=size, mode="bilinear", antialias=True
    )
    pixels: np.ndarray[Any, np.dtype[np.uint8]] = (
        resized[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    )
    return pixels
