"""`gouache train feedforward`: the CIN transformation network for a curated style set, exported."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from rich.console import Console
from torch import Tensor, nn

from gouache.nst.base import RGBImage, StylizeControls
from gouache.nst.encoders.lite0 import (
    LITE0_IMAGENET,
    LITE0_TAPS,
    Lite0Encoder,
    file_sha256,
    load_lite0,
)
from gouache.nst.families.feedforward import (
    IDENTITY_SLOT,
    MANIFEST,
    FeedforwardFamily,
    load_model,
    save_model,
)
from gouache.nst.families.feedforward_network import NetworkShape, TransformNet
from gouache.nst.families.feedforward_styles import (
    IdentifySettings,
    TrainedStyle,
    pixels_digest,
    style_grams,
)
from gouache.nst.losses import gram, relative_mse, tv_loss
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

_QUALITY_SIDE = 256
_QUALITY_CONTENTS = 4

console = Console(stderr=True)


def _default_style_taps() -> dict[str, float]:
    return {"b1": 1.0, "b3": 1.0, "b5": 1.0, "b8": 1.0, "b11": 1.0}


@dataclass(frozen=True)
class FeedforwardLossConfig:
    """The objective; every term is divided by its target's mean square (unitless).

    style_weight, style_taps: Gram matrices of the output vs the style's, per tap.
    content_tap, content_weight: output features vs the content's at that tap.
    tv_weight: quadratic total variation of the output (`gouache.nst.losses.tv_loss`).
    identity_weight: for the identity slot, pixel error to the content (with the
        content term); this is the row alpha interpolates from.
    """

    style_weight: float = 10.0
    style_taps: Mapping[str, float] = field(default_factory=_default_style_taps)
    content_tap: str = "b8"
    content_weight: float = 1.0
    tv_weight: float = 30.0
    identity_weight: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "style_taps", MappingProxyType(dict(self.style_taps)))
        for name in ("style_weight", "content_weight", "tv_weight", "identity_weight"):
            if getattr(self, name) < 0.0:
                raise ConfigError(
                    f"loss.{name} must be zero or positive, got {getattr(self, name)}"
                )
        unknown = set(self.style_taps).union([self.content_tap]).difference(LITE0_TAPS)
        if unknown:
            raise ConfigError(f"loss: unknown taps {sorted(unknown)}")
        if not self.style_taps or any(w <= 0.0 for w in self.style_taps.values()):
            raise ConfigError("loss.style_taps needs at least one tap, each with a positive weight")


@dataclass(frozen=True)
class StyleSetConfig:
    """The curated styles to learn, by file name in the style directory, in slot order.

    side: each style image is resized to this long side before its Gram targets are
        measured; it sets the stroke scale relative to the content crops.
    """

    files: tuple[str, ...]
    side: int = 256

    def __post_init__(self) -> None:
        if len(set(self.files)) != len(self.files):
            raise ConfigError(f"styles.files lists a file twice: {self.files}")
        if self.side < 32:
            raise ConfigError(f"styles.side must be at least 32, got {self.side}")


@dataclass(frozen=True)
class FeedforwardTrainConfig(RecordedConfig):
    """A whole feed-forward training run: network, styles, objective, data and loop."""

    name: str
    styles: StyleSetConfig
    model: NetworkShape = field(default_factory=NetworkShape)
    loss: FeedforwardLossConfig = field(default_factory=FeedforwardLossConfig)
    identify: IdentifySettings = field(default_factory=IdentifySettings)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seed: int = 0
    family: str = "feedforward"

    def __post_init__(self) -> None:
        if self.family != "feedforward":
            raise ConfigError(f"family must be feedforward for this trainer, got {self.family!r}")
        if not self.name.startswith("feedforward.") or "/" in self.name:
            raise ConfigError(
                f"name must look like feedforward.<encoder>-<version>, got {self.name!r}"
            )
        if self.data.image_size % self.model.factor:
            raise ConfigError(
                f"data.image_size ({self.data.image_size}) must be a multiple of the network's "
                f"downsampling factor ({self.model.factor})"
            )


def load_feedforward_config(path: Path) -> FeedforwardTrainConfig:
    """Reads and checks a YAML feed-forward training config; ConfigError names the bad key."""
    return load_yaml_config(path, parse_feedforward_config)


def parse_feedforward_config(raw: object) -> FeedforwardTrainConfig:
    """Builds the config from already-parsed YAML (a mapping); ConfigError otherwise."""
    if not isinstance(raw, Mapping) or "styles" not in raw:
        raise ConfigError("the config must be a mapping with at least styles.files")
    return build_section(FeedforwardTrainConfig, raw, "")


@dataclass(frozen=True)
class StyleTarget:
    """One trained style: its catalog identity, pixels and the Gram targets it trains to."""

    style: TrainedStyle
    pixels: RGBImage
    grams: Mapping[str, Tensor]


def load_styles(
    config: FeedforwardTrainConfig, style_dir: Path, encoder: Lite0Encoder, device: torch.device
) -> tuple[StyleTarget, ...]:
    """Decodes the configured styles, titles them from the corpus manifest, measures Grams."""
    titles = _catalog_titles(style_dir)
    targets = []
    for slot, name in enumerate(config.styles.files, start=IDENTITY_SLOT + 1):
        path = style_dir / name
        if not path.is_file():
            raise ConfigError(f"styles.files: {path} does not exist")
        with Image.open(path) as opened:
            pixels = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"), dtype=np.uint8)
        settings = IdentifySettings(
            side=config.styles.side, taps=tuple(config.loss.style_taps), max_distance=1.0
        )
        grams = style_grams(encoder, pixels, settings, device)
        style = TrainedStyle(
            slot=slot,
            title=titles.get(name, path.stem),
            file=name,
            sha256=file_sha256(path),
            pixels_sha256=pixels_digest(pixels),
        )
        targets.append(
            StyleTarget(
                style=style, pixels=pixels, grams={t: g.to(device) for t, g in grams.items()}
            )
        )
    return tuple(targets)


class FeedforwardObjective(nn.Module):
    """The transformation network and its loss over a frozen Lite0 encoder.

    A batch trains one slot (per-style batches): for a style slot the output must match
    the style's Gram matrices at the style taps, keep the content's features at the
    content tap and vary little between neighbouring pixels; for the identity slot it
    must reproduce the content (pixels and features).
    """

    def __init__(
        self,
        config: FeedforwardTrainConfig,
        encoder: Lite0Encoder,
        styles: tuple[StyleTarget, ...],
    ) -> None:
        super().__init__()
        self.loss = config.loss
        self.encoder = encoder.eval().requires_grad_(False)
        # One CIN slot per style, plus the identity slot.
        self.module = TransformNet(config.model, slots=len(styles) + 1)
        self.styles = styles
        wanted = {*config.loss.style_taps, config.loss.content_tap}
        self.taps = tuple(tap for tap in LITE0_TAPS if tap in wanted)

    def terms(self, content: Tensor, slot: int) -> dict[str, Tensor]:
        """The weighted loss terms for one batch of `slot`, and their sum under "total"."""
        loss, tap = self.loss, self.loss.content_tap
        onehot = torch.zeros(content.shape[0], self.module.slots, device=content.device)
        onehot[:, slot] = 1.0
        output = self.module(content, self.module.slot_params(onehot))
        with torch.no_grad():
            target = self.encoder.forward_features(content, (tap,))[tap]
        zero = output.new_zeros(())
        if slot == IDENTITY_SLOT:
            features = self.encoder.forward_features(output, (tap,))
            terms = {
                "style": zero,
                "content": loss.content_weight * relative_mse(features[tap], target),
                "tv": zero,
                "identity": loss.identity_weight * relative_mse(output, content),
            }
        else:
            features = self.encoder.forward_features(output, self.taps)
            grams = self.styles[slot - 1].grams
            style = torch.stack(
                [
                    weight
                    * relative_mse(gram(features[t]), grams[t].expand(content.shape[0], -1, -1))
                    for t, weight in loss.style_taps.items()
                ]
            ).sum() / sum(loss.style_taps.values())
            terms = {
                "style": loss.style_weight * style,
                "content": loss.content_weight * relative_mse(features[tap], target),
                "tv": loss.tv_weight * tv_loss(output),
                "identity": zero,
            }
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms


class FeedforwardTask:
    """Batches for the loop: seeded content crops, the slot cycling with the step."""

    def __init__(
        self,
        config: FeedforwardTrainConfig,
        objective: FeedforwardObjective,
        content: ImageBank,
        heldout: ImageBank,
        device: torch.device,
    ) -> None:
        self.config = config
        self.objective = objective
        self.module: nn.Module = objective.module
        self.content = content
        self.device = device
        data = config.data
        self.slots = len(objective.styles) + 1
        self.crop = CropSpec(size=data.image_size, scale=data.crop_scale, flip=data.flip)
        fixed = CropSpec(size=data.image_size, scale=data.crop_scale, flip=False)
        self.heldout_batches = [
            heldout.crops(data.batch_size, fixed, step_generator(config.seed, index, stream=1)).to(
                device
            )
            for index in range(data.holdout_batches)
        ]

    def slot_for(self, step: int) -> int:
        """Slots take turns, so every style (and the identity) gets the same share of steps."""
        return step % self.slots

    def losses(self, step: int) -> Mapping[str, Tensor]:
        generator = step_generator(self.config.seed, step)
        batch = self.content.crops(self.config.data.batch_size, self.crop, generator)
        return self.objective.terms(batch.to(self.device), self.slot_for(step))

    def heldout(self) -> Mapping[str, float]:
        """Mean terms over every held-out batch and every slot."""
        sums: dict[str, float] = {}
        count = 0
        for batch in self.heldout_batches:
            for slot in range(self.slots):
                for name, value in self.objective.terms(batch, slot).items():
                    sums[name] = sums.get(name, 0.0) + float(value)
                count += 1
        return {name: value / count for name, value in sums.items()}


def train(
    config_path: Path,
    content_dir: Path,
    style_dir: Path,
    out_dir: Path,
    *,
    resume: bool,
    max_minutes: float | None,
) -> Path:
    """Trains the network the config describes and exports it; returns the export dir.

    The run directory `out_dir` receives checkpoints, the best weights and the JSONL run
    log (`gouache.nst.training.trainer.fit`); the exported model (fp16 network.pt,
    style_index.pt, manifest.json) goes to `out_dir/<config name>/`, ready to copy
    into `gouache/nst/weights/`.
    """
    config = load_feedforward_config(config_path)
    device = resolve_device(config.run)
    if device.type == "cpu":
        torch.set_num_threads(config.run.threads)
    torch.manual_seed(config.seed)
    train_paths, heldout_paths = split_holdout(
        list_images(content_dir), config.data.holdout_fraction, config.seed
    )
    content = ImageBank(train_paths, config.data.load_side)
    heldout = ImageBank(heldout_paths, config.data.load_side)
    encoder = load_lite0(device=device)
    styles = load_styles(config, style_dir, encoder, device)
    console.print(
        f"[bold]feedforward[/bold] {config.name}: {len(styles)} styles, {len(content)} "
        f"contents for training, {len(heldout)} held out; device {device}, "
        f"{torch.get_num_threads()} threads"
    )
    objective = FeedforwardObjective(config, encoder, styles).to(device)
    task = FeedforwardTask(config, objective, content, heldout, device)
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
    data = {
        "manifest_sha256": _sha256_or_none(find_corpus_manifest(content_dir, style_dir)),
        "files_sha256": files_digest(
            [p.resolve() for p in (*train_paths, *heldout_paths)],
            content_dir.resolve(),
        ),
        "content_train": len(train_paths),
        "content_heldout": [p.name for p in heldout_paths],
    }
    return export(
        config,
        result,
        styles,
        encoder.to("cpu"),
        heldout,
        out_dir / config.name,
        config_path=config_path,
        data=data,
    )


def export(
    config: FeedforwardTrainConfig,
    result: FitResult,
    styles: tuple[StyleTarget, ...],
    encoder: Lite0Encoder,
    heldout: ImageBank,
    target: Path,
    *,
    config_path: Path,
    data: Mapping[str, Any],
) -> Path:
    """Writes the best network (fp16), the style index and the manifest to `target`."""
    state = torch.load(result.best_weights, map_location="cpu", weights_only=True)
    network = TransformNet(config.model, slots=len(styles) + 1)
    network.load_state_dict(state)
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    extra: dict[str, Any] = {
        "name": config.name,
        "encoder": LITE0_IMAGENET.record(),
        "training": result.record(
            config=config.to_dict(), config_file=config_path.name, config_sha256=config.digest()
        ),
        "data": dict(data),
        "machine": machine_record(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    manifest = save_model(
        staging,
        network,
        [(s.style, s.pixels) for s in styles],
        config.identify,
        encoder,
        tv_weight=config.loss.tv_weight,
        extra=extra,
    )
    manifest["quality"] = measure_quality(staging, encoder, styles, heldout)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    replace_directory(staging, target)
    console.print(f"[green]✓[/green] exported {target}")
    return target


def measure_quality(
    directory: Path, encoder: Lite0Encoder, styles: tuple[StyleTarget, ...], heldout: ImageBank
) -> dict[str, Any]:
    """Style and content distances of the shipped (fp16) model on held-out contents.

    Every trained style on up to `_QUALITY_CONTENTS` held-out photos at 256 px, with
    `gouache.nst.quality` (Gram b1-b11 style distance, b8 content distance), next to
    histogram matching alone (the baseline) and the content itself.
    """
    from gouache.nst.quality import Distances, QualityMeter, histogram_baseline, summarise

    family = FeedforwardFamily(load_model(directory), encoder)
    meter = QualityMeter(encoder, side=_QUALITY_SIDE)
    contents = [_uint8(image, _QUALITY_SIDE) for image in heldout.images[:_QUALITY_CONTENTS]]
    rows: dict[str, list[Distances]] = {"feedforward": [], "baseline": [], "content": []}
    seconds = []
    for target_style in styles:
        style = _resize_uint8(target_style.pixels, _QUALITY_SIDE)
        for content in contents:
            started = time.perf_counter()
            output = family.stylize(
                content,
                [target_style.pixels],
                [1.0],
                StylizeControls(),
                style_keys=[target_style.style.sha256],
            )
            seconds.append(time.perf_counter() - started)
            for name, image in (
                ("feedforward", output),
                ("baseline", histogram_baseline(content, style)),
                ("content", content),
            ):
                rows[name].append(meter.measure(image, content, style))
    return summarise(rows, seconds, side=_QUALITY_SIDE)


def _catalog_titles(style_dir: Path) -> dict[str, str]:
    """File name -> title from the corpus manifest next to the styles, when there is one."""
    manifest = style_dir.parent / "manifest.json"
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text())
    return {
        Path(str(entry["file"])).name: str(entry["title"])
        for entry in entries
        if isinstance(entry, Mapping) and "file" in entry and "title" in entry
    }


def _uint8(image: Tensor, side: int) -> RGBImage:
    pixels: RGBImage = image.permute(1, 2, 0).contiguous().numpy()
    return _resize_uint8(pixels, side)


def _resize_uint8(pixels: RGBImage, side: int) -> RGBImage:
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def _sha256_or_none(path: Path | None) -> str | None:
    return None if path is None else file_sha256(path)
