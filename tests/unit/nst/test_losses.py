"""Gram, style, content and total-variation losses on small known tensors."""

from __future__ import annotations

import pytest
import torch

from gouache.nst.losses import content_loss, gram, style_loss, tv_loss


def test_gram_of_a_known_tensor() -> None:
    # Two channels over a 1x2 image: [1, 2] and [3, 4].
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram(features), expected)


def test_gram_is_independent_of_image_size_for_a_repeated_texture() -> None:
    tile = torch.rand(1, 4, 3, 3)
    assert torch.allclose(gram(tile), gram(tile.repeat(1, 1, 4, 5)), atol=1e-6)


def test_gram_is_symmetric_and_batched() -> None:
    g = gram(torch.rand(3, 5, 4, 6))
    assert g.shape == (3, 5, 5)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_gram_refuses_non_nchw() -> None:
    with pytest.raises(ValueError, match="NCHW"):
        gram(torch.rand(5, 4, 6))


def test_style_loss_is_zero_at_the_target_and_weighted() -> None:
    features = {"a": torch.rand(1, 3, 4, 4), "b": torch.rand(1, 2, 2, 2)}
    targets = {tap: gram(value) for tap, value in features.items()}
    assert style_loss(features, targets, {"a": 1.0, "b": 2.0}).item() == 0.0
    shifted = {tap: value + 1.0 for tap, value in targets.items()}
    assert style_loss(features, shifted, {"a": 1.0, "b": 2.0}).item() == pytest.approx(3.0)
    assert style_loss(features, shifted, {"a": 1.0}).item() == pytest.approx(1.0)


def test_style_loss_needs_a_tap() -> None:
    with pytest.raises(ValueError, match="tap"):
        style_loss({}, {}, {})


def test_content_loss_is_the_mean_squared_error() -> None:
    assert content_loss(torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 3.0)).item() == 9.0


def test_tv_of_a_constant_image_is_zero() -> None:
    assert tv_loss(torch.full((1, 3, 8, 9), 0.4)).item() == 0.0


def test_tv_of_a_checkerboard() -> None:
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2
    image = checker.float()[None, None]
    # Every neighbour differs by one, in both directions.
    assert tv_loss(image).item() == pytest.approx(2.0)


def test_tv_of_a_single_row_has_no_vertical_term() -> None:
    image = torch.tensor([[[[0.0, 1.0, 0.0]]]])
    assert tv_loss(image).item() == pytest.approx(1.0)
