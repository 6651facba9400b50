"""Losses of neural style transfer: Gram-matrix style, feature content, total variation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


def gram(features: Tensor) -> Tensor:
    """Returns the Gram matrices of NCHW features, shape (N, C, C), divided by C*H*W.

    Dividing by the number of feature elements makes Grams of one layer comparable
    across image sizes, so a style measured on a small image is a valid target for a
    large one, and keeps values of different layers within a few orders of magnitude.
    """
    if features.dim() != 4:
        raise ValueError(f"gram expects NCHW features, got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def style_loss(
    features: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    weights: Mapping[str, float],
) -> Tensor:
    """Weighted sum over taps of the mean squared difference between Gram matrices.

    `features` are the activations of the image being optimised, `targets` the Gram
    matrices the style asks for (shape (1, C, C) or (N, C, C)), `weights` say how much
    each tap counts; only taps named in `weights` contribute. Gram matrices capture which
    features co-occur regardless of where, which is what "style" means here.
    """
    terms = [
        weight * torch.mean((gram(features[tap]) - targets[tap]) ** 2)
        for tap, weight in weights.items()
    ]
    if not terms:
        raise ValueError("style_loss needs at least one weighted tap")
    return torch.stack(terms).sum()


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference between activations: keeps the layout of the content."""
    return torch.mean((features - target) ** 2)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: mean squared difference between vertical and horizontal neighbours.

    Penalising it removes the faint high-frequency checkerboard that gradients through
    stride-2 convolutions leave in optimised pixels. Takes NCHW images.
    """
    if image.dim() != 4:
        raise ValueError(f"tv_loss expects NCHW images, got shape {tuple(image.shape)}")
    return _mean_square(image.diff(dim=2)) + _mean_square(image.diff(dim=3))


def relative_mse(value: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the target's mean square: unitless, comparable across taps."""
    return torch.mean((value - target) ** 2) / (torch.mean(target.detach() ** 2) + 1e-8)


def _mean_square(differences: Tensor) -> Tensor:
    # A one-pixel-high or -wide image has no neighbours along that axis: no variation.
    if differences.numel() == 0:
        return differences.new_zeros(())
    return torch.mean(differences**2)
