"""Feedforward family: CIN mixing, controls, sizes, style identification, training, shipped weights."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from gouache.imaging.color import rgb_to_ycbcr, to_float32
from gouache.nst import registry
from gouache.nst.base import StylizeControls
from gouache.nst.encoders import Lite0Encoder
from gouache.nst.encoders.lite0 import WeightsIntegrityError
from gouache.nst.families.feedforward import (
    FeedforwardConfig,
    FeedforwardFamily,
    load_model,
    pad_to_multiple,
    save_model,
)
from gouache.nst.families.feedforward_network import NetworkShape, TransformNet
from gouache.nst.families.feedforward_styles import (
    IdentifySettings,
    TrainedStyle,
    pixels_digest,
    style_grams,
)
from gouache.nst.losses import tv_loss
from gouache.nst.training.feedforward import (
    FeedforwardObjective,
    StyleTarget,
    parse_feedforward_config,
    train,
)
from gouache.nst.training.trainer import TrainingError
from gouache.runtime.errors import InvalidArgument
from tests.helpers.data import SHARED_DATA
from tests.unit.nst.images import downscale
from tests.unit.nst.metrics import style_distance

SHIPPED = "feedforward.lite0-v1"
DATA = SHARED_DATA
TINY = NetworkShape(channels=(8, 16), residual_blocks=1, edge_kernel=3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and two threads on cores other jobs keep
    busy (CI, trainings) wait on each other: measured 4.5 s per training step instead
    of 0.06 s."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _trained(slot: int, name: str, image: np.ndarray) -> TrainedStyle:
    return TrainedStyle(
        slot=slot,
        title=f"Generated {name}",
        file=f"{name}.png",
        sha256=f"{slot:064x}",
        pixels_sha256=pixels_digest(image),
    )


@pytest.fixture(scope="module")
def tiny_dir(
    tmp_path_factory: pytest.TempPathFactory,
    encoder: Lite0Encoder,
    stripes: np.ndarray,
    checker: np.ndarray,
) -> Path:
    """A seeded, untrained tiny network over two generated styles, saved as a model directory.

    Its rows are made distinct (style 1 shifts every layer down, style 2 up) so mixing
    has something to move; what is tested is the plumbing, not the painting.
    """
    torch.manual_seed(0)
    network = TransformNet(TINY, slots=3)
    with torch.no_grad():
        network.beta[1].fill_(-0.5)
        network.beta[2].fill_(0.5)
    directory = tmp_path_factory.mktemp("tiny") / "feedforward.test"
    save_model(
        directory,
        network,
        [(_trained(1, "stripes", stripes), stripes), (_trained(2, "checker", checker), checker)],
        IdentifySettings(side=64, max_distance=0.3),
        encoder,
        tv_weight=1.0,
    )
    return directory


@pytest.fixture(scope="module")
def tiny_family(tiny_dir: Path, encoder: Lite0Encoder) -> FeedforwardFamily:
    return FeedforwardFamily(load_model(tiny_dir), encoder, config=FeedforwardConfig(max_side=96))


def test_cin_rows_mix_linearly(tiny_family: FeedforwardFamily) -> None:
    net = tiny_family.model.network
    mixed = tiny_family.params_for([1, 2], [0.25, 0.75])
    expected = torch.cat(
        [0.25 * net.gamma[1] + 0.75 * net.gamma[2], 0.25 * net.beta[1] + 0.75 * net.beta[2]]
    )
    torch.testing.assert_close(mixed[0], expected)
    twice = tiny_family.params_for([1, 1], [0.5, 0.5])
    torch.testing.assert_close(twice[0], torch.cat([net.gamma[1], net.beta[1]]))


def test_alpha_blends_the_stylized_pixels_with_the_content(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    full = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls())
    half = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls(alpha=0.5))
    expected = 0.5 * full.astype(float) + 0.5 * astronaut.astype(float)
    assert np.abs(half.astype(float) - expected).max() <= 1.0


def test_moving_a_mixing_weight_moves_the_output_monotonically(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, stripes: np.ndarray, checker: np.ndarray
) -> None:
    outputs = [
        tiny_family.stylize(astronaut, [stripes, checker], [1.0 - w, w], StylizeControls())
        for w in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    towards = [float(np.abs(o.astype(int) - outputs[-1].astype(int)).mean()) for o in outputs]
    assert towards == sorted(towards, reverse=True)
    assert towards[0] > towards[2] > 0.0


def test_alpha_zero_returns_the_content_exactly(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    out = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls(alpha=0.0))
    assert out.tobytes() == astronaut.tobytes()


def test_same_request_gives_identical_bytes(
    tiny_family: FeedforwardFamily, chelsea: np.ndarray, stripes: np.ndarray, checker: np.ndarray
) -> None:
    controls = StylizeControls(seed=7, alpha=0.8)
    first = tiny_family.stylize(chelsea, [stripes, checker], [0.3, 0.7], controls)
    second = tiny_family.stylize(chelsea, [stripes, checker], [0.3, 0.7], controls)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize(("height", "width"), [(67, 45), (33, 71), (1, 5), (5, 1), (120, 150)])
def test_output_has_the_content_shape(
    tiny_family: FeedforwardFamily,
    astronaut: np.ndarray,
    checker: np.ndarray,
    height: int,
    width: int,
) -> None:
    content = np.ascontiguousarray(np.tile(astronaut, (2, 2, 1))[:height, :width])
    out = tiny_family.stylize(content, [checker], [1.0], StylizeControls())
    assert out.shape == content.shape
    assert out.dtype == np.uint8


def test_padding_keeps_the_image_centred_and_mirrors_edges() -> None:
    image = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    padded, (top, left, height, width) = pad_to_multiple(image, 4, 8)
    assert padded.shape == (8, 8, 3)
    assert (top, left, height, width) == (1, 0, 5, 7)
    np.testing.assert_array_equal(padded[top : top + height, left : left + width], image)
    np.testing.assert_array_equal(padded[0, :7], image[0])
    np.testing.assert_array_equal(padded[top : top + height, 7], image[:, 6])


def test_luminance_only_keeps_the_content_chroma(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    out = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls(luminance_only=True))
    plain = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls())
    chroma = rgb_to_ycbcr(to_float32(out))[..., 1:]
    content_chroma = rgb_to_ycbcr(to_float32(astronaut))[..., 1:]
    plain_chroma = rgb_to_ycbcr(to_float32(plain))[..., 1:]
    # Rounding to uint8 and clipping leave a little; the stylized chroma is far off.
    assert np.abs(chroma - content_chroma).mean() < 0.01
    assert np.abs(plain_chroma - content_chroma).mean() > 2 * np.abs(chroma - content_chroma).mean()


def test_histogram_match_gives_the_output_the_content_colours(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    out = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls(histogram_match=True))
    for channel in range(3):
        assert abs(float(out[..., channel].mean()) - float(astronaut[..., channel].mean())) < 2.0


def test_a_larger_tv_weight_smooths_more(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    def tv(weight: float | None) -> float:
        out = tiny_family.stylize(astronaut, [stripes], [1.0], StylizeControls(tv_weight=weight))
        return float(tv_loss(torch.from_numpy(to_float32(out)).permute(2, 0, 1)[None]))

    assert tv(0.0) == tv(None)
    assert tv(None) > tv(3.0) > tv(30.0)


def test_styles_are_recognised_by_key_pixels_or_gram_statistics(
    tiny_family: FeedforwardFamily, stripes: np.ndarray
) -> None:
    index = tiny_family.index
    keyed = index.identify(np.zeros((4, 4, 3), np.uint8), f"{2:064x}@512", field="styles[0]")
    assert keyed.slot == 2
    assert index.identify(stripes, None, field="styles[0]").slot == 1
    larger = np.asarray(Image.fromarray(stripes).resize((96, 96), Image.Resampling.LANCZOS))
    assert index.distances(larger)[1] < 0.3
    assert index.identify(larger, None, field="styles[0]").slot == 1


def test_an_untrained_style_is_refused_with_the_trained_titles(
    tiny_family: FeedforwardFamily, astronaut: np.ndarray, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        tiny_family.stylize(astronaut, [stripes, chelsea], [0.5, 0.5], StylizeControls())
    message = caught.value.message
    assert message.startswith("feedforward models stylize only their trained styles: ")
    assert "Generated stripes" in message
    assert "Generated checker" in message
    assert caught.value.field == "styles[1]"


def _write_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path)


def _tiny_config(styles: list[str]) -> dict[str, object]:
    return {
        "name": "feedforward.test-v0",
        "styles": {"files": styles, "side": 64},
        "model": {"channels": [8, 16], "residual_blocks": 1, "edge_kernel": 3},
        "identify": {"side": 64, "taps": ["b1", "b3"], "max_distance": 0.3},
        "data": {
            "image_size": 32,
            "load_side": 40,
            "batch_size": 2,
            "holdout_fraction": 0.25,
            "holdout_batches": 1,
        },
        "optim": {"lr": 0.01, "warmup_steps": 1, "max_steps": 4},
        "run": {"eval_every": 2, "checkpoint_every": 2, "log_every": 1, "device": "cpu"},
    }


def test_training_steps_on_one_batch_lower_the_loss(
    encoder: Lite0Encoder, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    config = parse_feedforward_config(_tiny_config(["stripes.png"]))
    settings = IdentifySettings(side=64, taps=tuple(config.loss.style_taps))
    grams = style_grams(encoder, stripes, settings, torch.device("cpu"))
    target = StyleTarget(style=_trained(1, "stripes", stripes), pixels=stripes, grams=grams)
    torch.manual_seed(0)
    objective = FeedforwardObjective(config, encoder, (target,))
    content = torch.from_numpy(to_float32(astronaut[:64, :64])).permute(2, 0, 1)[None]
    optimiser = torch.optim.Adam(objective.module.parameters(), lr=0.01)
    losses = []
    for _ in range(8):
        total = objective.terms(content, 1)["total"]
        losses.append(float(total.detach()))
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    assert losses[-1] < 0.8 * losses[0]


def test_train_exports_a_loadable_model_and_resumes(
    tmp_path: Path,
    encoder: Lite0Encoder,
    astronaut: np.ndarray,
    chelsea: np.ndarray,
    stripes: np.ndarray,
    checker: np.ndarray,
) -> None:
    contents, styles = tmp_path / "content", tmp_path / "styles"
    contents.mkdir()
    styles.mkdir()
    for index in range(4):
        _write_png(
            contents / f"c{index}.png", np.roll(astronaut if index % 2 else chelsea, index * 7, 1)
        )
    _write_png(styles / "stripes.png", stripes)
    _write_png(styles / "checker.png", checker)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_config(["stripes.png", "checker.png"])))
    out = train(config_path, contents, styles, tmp_path / "run", resume=False, max_minutes=None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["file"] for s in manifest["styles"]] == ["stripes.png", "checker.png"]
    assert manifest["training"]["steps"] == 4
    family = FeedforwardFamily(load_model(out), encoder)
    result = family.stylize(chelsea, [checker], [1.0], StylizeControls())
    assert result.shape == chelsea.shape
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert any(json.loads(line)["event"] == "eval" for line in log)
    with pytest.raises(TrainingError, match="--resume"):
        train(config_path, contents, styles, tmp_path / "run", resume=False, max_minutes=None)
    again = train(config_path, contents, styles, tmp_path / "run", resume=True, max_minutes=None)
    assert json.loads((again / "manifest.json").read_text())["training"]["steps"] == 4


def test_a_changed_file_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    data = bytearray((copy / "network.pt").read_bytes())
    data[-10] ^= 0xFF
    (copy / "network.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        load_model(copy)


def test_the_shipped_model_loads_with_verified_sha256() -> None:
    spec = registry.get(SHIPPED)
    assert spec.family == "feedforward"
    assert spec.tile_size == 512
    for weights in spec.weights.values():
        weights.verified_path()
    family = registry.build_family(SHIPPED)
    assert isinstance(family, FeedforwardFamily)
    manifest = family.model.manifest
    assert len(family.trained_styles) == len(manifest["styles"]) >= 2
    directory = spec.weights["manifest"].path().parent
    assert sum(p.stat().st_size for p in directory.iterdir()) < 3_000_000


@pytest.fixture(scope="module")
def shipped() -> FeedforwardFamily:
    family = registry.build_family(SHIPPED)
    assert isinstance(family, FeedforwardFamily)
    return family


def _trained_style_image(family: FeedforwardFamily, slot: int) -> np.ndarray:
    style = family.trained_styles[slot - 1]
    path = DATA / "styles" / style.file
    if not path.is_file():
        pytest.skip(f"trained style images come from {DATA} (../shared/data), absent here")
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def test_shipped_model_stylizes_a_trained_style_from_its_file(
    shipped: FeedforwardFamily, encoder: Lite0Encoder, astronaut: np.ndarray
) -> None:
    style = _trained_style_image(shipped, 1)
    content = downscale(astronaut, 96)
    out = shipped.stylize(content, [style], [1.0], StylizeControls())
    assert out.shape == content.shape
    assert style_distance(encoder, out, style) < style_distance(encoder, content, style)


def test_shipped_model_recognises_a_resized_copy_and_refuses_other_styles(
    shipped: FeedforwardFamily, astronaut: np.ndarray
) -> None:
    style = _trained_style_image(shipped, 2)
    copy = downscale(style, 300)
    assert shipped.index.identify(copy, None, field="styles[0]").slot == 2
    untrained = sorted(
        p
        for p in (DATA / "styles").iterdir()
        if p.name not in {s.file for s in shipped.trained_styles}
    )
    other = np.asarray(Image.open(untrained[0]).convert("RGB"), dtype=np.uint8)
    with pytest.raises(InvalidArgument, match="feedforward models stylize only their trained"):
        shipped.stylize(astronaut, [other], [1.0], StylizeControls())
