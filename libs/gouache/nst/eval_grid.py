"""The evaluation grid: the fixed content x style images, drawn from the shared corpus or
scikit-image's samples, each resized to the side the meter measures at."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from gouache.nst.base import RGBImage
from gouache.nst.quality import EVAL_SIDE

DEFAULT_DATA_DIR = Path("../shared/data")
"""The shared corpus, relative to the repository root, when it is there."""

SKIMAGE_CONTENTS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket")
SKIMAGE_STYLES: tuple[str, ...] = ("hubble_deep_field", "immunohistochemistry", "colorwheel")

REDISTRIBUTABLE_CONTENT_RIGHTS = frozenset(
    {
        "public domain",
        "public domain (us government / highsmith; verify)",
        "public domain / cc by (nasa/esa; verify)",
        "research test set (kodak: released for unrestricted usage)",
    }
)
"""Corpus `rights_category` values (lower case) of photos the committed contact sheet
may show. Left out on purpose: Wikimedia photos whose CC licence was never verified,
research sets whose photographers' rights are unclear, and anything unknown (see the
corpus's PROVENANCE.md)."""

REDISTRIBUTABLE_STYLE_RIGHTS = frozenset({"public domain"})
"""Style rights the sheet may show: public domain everywhere, not in the US only."""

GRID_CONTENTS = 2
GRID_STYLES = 8
"""The default grid size: the shipped models share 8 held-out photos, of which only two
(Kodak) may be redistributed, so the grid crosses those two with the 8 paintable styles."""


@dataclass(frozen=True)
class EvalImage:
    """One image of the grid: a short name, pixels, a stable key and where it comes from.

    `key` is what the families cache style statistics under, as in serving: the sha256
    of the catalog file for corpus images (the key the tiler sends), else a digest of
    the pixels. `credit` is the attribution line the docs print for it.
    """

    name: str
    pixels: RGBImage = field(repr=False)
    key: str = ""
    credit: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            digest = hashlib.sha256(np.ascontiguousarray(self.pixels).tobytes()).hexdigest()
            object.__setattr__(self, "key", digest)


@dataclass(frozen=True)
class EvalGrid:
    """The fixed evaluation set: every content is stylized with every style."""

    contents: tuple[EvalImage, ...]
    styles: tuple[EvalImage, ...]
    source: str
    selection: str = ""

    def pairs(self) -> list[tuple[EvalImage, EvalImage]]:
        """(content, style) pairs, content-major, in a fixed order."""
        return [(content, style) for content in self.contents for style in self.styles]


def load_grid(
    data_dir: Path | None = DEFAULT_DATA_DIR,
    *,
    contents: int = GRID_CONTENTS,
    styles: int = GRID_STYLES,
    seed: int = 0,
    side: int = EVAL_SIDE,
) -> EvalGrid:
    """The shared corpus's grid when `data_dir` holds a manifest, else the skimage grid.

    Every image is resized so its long side is `side`. See `corpus_grid` for the draw.
    """
    if data_dir is not None and (data_dir / "manifest.json").is_file():
        return corpus_grid(data_dir, contents=contents, styles=styles, seed=seed, side=side)
    return skimage_grid(side=side)


@dataclass(frozen=True)
class ShippedConstraints:
    """What the shipped models' manifests say about the corpus, for a fair grid.

    held_out_contents: content files no shipped model trained on (the intersection of
        their manifests' `data.content_heldout`); None when no manifest records a split.
    paintable_styles: style files every shipped model paints (the intersection of the
        `styles` lists of models limited to trained styles); None when none is limited.
    """

    held_out_contents: frozenset[str] | None
    paintable_styles: frozenset[str] | None


def shipped_constraints() -> ShippedConstraints:
    """Reads the manifests beside every registered model's weights (see the class)."""
    from gouache.nst import registry

    held_out: frozenset[str] | None = None
    paintable: frozenset[str] | None = None
    for spec in registry.all_models():
        folders = {w.path().parent for w in spec.weights.values()}
        manifests = [folder / "manifest.json" for folder in folders]
        for path in manifests:
            if not path.is_file():
                continue
            manifest = json.loads(path.read_text())
            split = manifest.get("data", {}).get("content_heldout")
            if split is not None:
                names = frozenset(Path(name).name for name in split)
                held_out = names if held_out is None else held_out & names
            trained = manifest.get("styles")
            if isinstance(trained, list):
                files = frozenset(Path(str(style["file"])).name for style in trained)
                paintable = files if paintable is None else paintable & files
    return ShippedConstraints(held_out, paintable)


def corpus_grid(
    data_dir: Path,
    *,
    contents: int,
    styles: int,
    seed: int,
    side: int,
    constraints: ShippedConstraints | None = None,
) -> EvalGrid:
    """A seeded draw of `contents` photos and `styles` styles from the shared corpus.

    Candidates, from the corpus manifest: contents that no shipped model trained on and
    styles that every shipped model can paint (`shipped_constraints`), showing no
    identifiable person and with rights that allow redistribution, because the grid
    ends up in the committed contact sheet (`REDISTRIBUTABLE_CONTENT_RIGHTS`,
    `REDISTRIBUTABLE_STYLE_RIGHTS`). `random.Random(seed)` draws from the candidates
    sorted by file name, so the same corpus, models and seed give the same grid.
    """
    limits = constraints if constraints is not None else shipped_constraints()
    entries = json.loads((data_dir / "manifest.json").read_text())
    rng = random.Random(seed)

    def allowed(entry: Mapping[str, object]) -> bool:
        name = Path(str(entry["file"])).name
        rights = str(entry.get("rights_category", "")).lower()
        if entry.get("identifiable_person", False):
            return False
        if entry["kind"] == "content":
            inside = limits.held_out_contents is None or name in limits.held_out_contents
            return inside and rights in REDISTRIBUTABLE_CONTENT_RIGHTS
        inside = limits.paintable_styles is None or name in limits.paintable_styles
        return inside and rights in REDISTRIBUTABLE_STYLE_RIGHTS

    def pick(kind: str, count: int) -> tuple[EvalImage, ...]:
        candidates = sorted(
            (e for e in entries if e["kind"] == kind and allowed(e)), key=lambda e: e["file"]
        )
        if len(candidates) < count:
            raise ValueError(
                f"{data_dir} has {len(candidates)} usable {kind} images (held out from "
                f"training where that applies, redistributable rights, no identifiable "
                f"person), need {count}; ask for at most {len(candidates)}"
            )
        chosen = sorted(rng.sample(candidates, count), key=lambda e: e["file"])
        return tuple(
            EvalImage(
                Path(e["file"]).stem,
                _load(data_dir / e["file"], side),
                key=str(e["sha256"]),
                credit=_credit(e),
            )
            for e in chosen
        )

    picked_contents = pick("content", contents)
    picked_styles = pick("style", styles)
    manifest_hash = hashlib.sha256((data_dir / "manifest.json").read_bytes()).hexdigest()
    return EvalGrid(
        contents=picked_contents,
        styles=picked_styles,
        source=f"`{data_dir}` (manifest sha256 {manifest_hash[:12]}, seed {seed})",
        selection=(
            "Contents are drawn from the photos no shipped model trained on (the held-out "
            "split in their manifests), styles from those every shipped model paints "
            "(feedforward paints only its trained styles), excluding identifiable people "
            "and keeping only images whose rights allow redistribution (contents: Kodak "
            "test images released for unrestricted usage, public domain, US-government "
            "and NASA works; styles: public-domain artworks), since the contact sheet is "
            "committed; see `gouache.nst.eval_grid.corpus_grid`."
        ),
    )


def _credit(entry: Mapping[str, object]) -> str:
    parts = [f"*{entry.get('title') or Path(str(entry['file'])).stem}*"]
    if entry.get("artist"):
        parts.append(str(entry["artist"]))
    if entry.get("year"):
        parts.append(str(entry["year"]))
    parts.append(str(entry.get("rights_category", "rights unknown")))
    notes = str(entry.get("notes") or "")
    if "http" in notes:
        parts.append(notes[notes.index("http") :].split()[0])
    return ", ".join(parts)


def skimage_grid(
    *,
    side: int = EVAL_SIDE,
    contents: Sequence[str] = SKIMAGE_CONTENTS,
    styles: Sequence[str] = SKIMAGE_STYLES,
) -> EvalGrid:
    """scikit-image's bundled photos x textures, for machines without the shared corpus.

    `contents` and `styles` name `skimage.data` images (by default all of
    `SKIMAGE_CONTENTS` x `SKIMAGE_STYLES`); a smaller grid makes a quicker check.
    """
    from skimage import data

    def load(name: str) -> EvalImage:
        pixels = np.asarray(getattr(data, name)(), dtype=np.uint8)[:, :, :3]
        return EvalImage(name, fit(Image.fromarray(pixels), side), credit="scikit-image data")

    return EvalGrid(
        contents=tuple(load(n) for n in contents),
        styles=tuple(load(n) for n in styles),
        source="scikit-image sample images",
    )


def _load(path: Path, side: int) -> RGBImage:
    with Image.open(path) as image:
        return fit(image.convert("RGB"), side)


def fit(image: Image.Image, side: int) -> RGBImage:
    """Resizes (Lanczos) so the long side is `side`, keeping the aspect ratio."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    pixels: RGBImage = np.asarray(resized, dtype=np.uint8).copy()
    return pixels
