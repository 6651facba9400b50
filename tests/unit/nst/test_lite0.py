"""Lite0 encoder: strict pretrained load, checksum refusal, ImageNet sanity, tap shapes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gouache.nst.encoders import (
    LITE0_IMAGENET,
    LITE0_TAPS,
    Lite0Encoder,
    WeightsIntegrityError,
    load_lite0,
)
from tests.unit.nst.images import resized, sample

# ImageNet classes 281-285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
_CAT_CLASSES = range(281, 286)
_ESPRESSO = 967


def _as_batch(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    pixels = resized(image, *size).astype(np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


def _top1(encoder: Lite0Encoder, image: np.ndarray) -> int:
    with torch.no_grad():
        return int(encoder.classify(_as_batch(image, (224, 224))).argmax())


def test_chelsea_is_a_cat(encoder: Lite0Encoder) -> None:
    assert _top1(encoder, sample("chelsea")) in _CAT_CLASSES


def test_coffee_is_espresso(encoder: Lite0Encoder) -> None:
    assert _top1(encoder, sample("coffee")) == _ESPRESSO


def test_encoder_is_frozen_and_in_eval_mode(encoder: Lite0Encoder) -> None:
    assert not encoder.training
    assert all(not p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize(("height", "width"), [(97, 131), (65, 64), (33, 225)])
def test_symmetric_padding_gives_ceil_sizes_on_odd_inputs(
    encoder: Lite0Encoder, height: int, width: int
) -> None:
    x = torch.rand(1, 3, height, width)
    with torch.no_grad():
        features = encoder.forward_features(x, LITE0_TAPS)
    strides = {"stem": 2, "b1": 2, "b2": 4, "b4": 8, "b6": 16, "b9": 16, "b12": 32, "head": 32}
    for tap, stride in strides.items():
        assert features[tap].shape[-2:] == (math.ceil(height / stride), math.ceil(width / stride))


def test_odd_sized_input_still_classifies(encoder: Lite0Encoder) -> None:
    with torch.no_grad():
        logits = encoder.classify(_as_batch(sample("chelsea"), (223, 297)))
    assert int(logits.argmax()) in _CAT_CLASSES


def test_forward_features_returns_only_requested_taps(encoder: Lite0Encoder) -> None:
    with torch.no_grad():
        features = encoder.forward_features(torch.rand(1, 3, 64, 64), ["b5", "stem"])
    assert set(features) == {"b5", "stem"}
    assert features["stem"].shape[1] == 32
    assert features["b5"].shape[1] == 40


def test_unknown_tap_is_refused_with_the_known_names(encoder: Lite0Encoder) -> None:
    with pytest.raises(ValueError, match="b16"):
        encoder.forward_features(torch.rand(1, 3, 32, 32), ["b99"])


def test_classify_gives_1000_logits(encoder: Lite0Encoder) -> None:
    with torch.no_grad():
        assert encoder.classify(torch.rand(2, 3, 96, 80)).shape == (2, 1000)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "lite0.pth"
    copy.write_bytes(LITE0_IMAGENET.path().read_bytes() + b"\0")
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        load_lite0(path=copy)


def test_state_dict_round_trips_strictly(encoder: Lite0Encoder) -> None:
    fresh = Lite0Encoder()
    fresh.load_state_dict(encoder.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval().classify(x), encoder.classify(x))
