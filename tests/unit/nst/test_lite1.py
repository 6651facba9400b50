"""Lite1, the evaluation's independent judge: strict pretrained load, ImageNet sanity, taps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gouache.nst.encoders import (
    LITE1_IMAGENET,
    LITE1_TAPS,
    Lite0Encoder,
    Lite1Encoder,
    WeightsIntegrityError,
    load_lite1,
)
from gouache.nst.quality import LITE1_CONTENT_TAP, LITE1_STYLE_TAPS, lite1_meter
from tests.unit.nst.images import resized, sample

_CAT_CLASSES = range(281, 286)
_ESPRESSO = 967


@pytest.fixture(scope="module")
def lite1() -> Lite1Encoder:
    return load_lite1()


def _top1(encoder: Lite1Encoder, name: str) -> int:
    pixels = resized(sample(name), 240, 240).astype(np.float32) / 255.0
    with torch.no_grad():
        return int(encoder.classify(torch.from_numpy(pixels).permute(2, 0, 1)[None]).argmax())


def test_chelsea_is_a_cat_and_coffee_is_espresso(lite1: Lite1Encoder) -> None:
    assert _top1(lite1, "chelsea") in _CAT_CLASSES
    assert _top1(lite1, "coffee") == _ESPRESSO


def test_lite1_has_21_blocks_and_the_judge_taps_end_lite0s_stages(lite1: Lite1Encoder) -> None:
    assert LITE1_TAPS[-2:] == ("b21", "head")
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        features = lite1.forward_features(x, (*LITE1_STYLE_TAPS, LITE1_CONTENT_TAP))
    channels_stride = {"b1": (16, 2), "b4": (24, 4), "b7": (40, 8), "b11": (80, 16)}
    channels_stride["b15"] = (112, 16)
    for tap, (channels, stride) in channels_stride.items():
        expected = (channels, math.ceil(97 / stride), math.ceil(131 / stride))
        assert tuple(features[tap].shape[1:]) == expected


def test_lite1_is_a_different_network_from_lite0(
    lite1: Lite1Encoder, encoder: Lite0Encoder
) -> None:
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = lite1.forward_features(x, ("b1",))["b1"]
        theirs = encoder.forward_features(x, ("b1",))["b1"]
    assert not torch.allclose(ours, theirs)


def test_tampered_lite1_weights_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "lite1.pth"
    copy.write_bytes(LITE1_IMAGENET.path().read_bytes()[:-1])
    with pytest.raises(WeightsIntegrityError, match="efficientnet-lite1"):
        load_lite1(path=copy)


def test_the_judge_measures_distances_on_lite1(astronaut: np.ndarray, chelsea: np.ndarray) -> None:
    judge = lite1_meter(side=64)
    assert judge.name == "lite1"
    assert judge.content_distance(astronaut, astronaut) == 0.0
    cat = resized(chelsea, 80, 80)
    assert judge.style_distance(cat, astronaut) > 0.3
    assert judge.content_distance(cat, astronaut) > 0.5
