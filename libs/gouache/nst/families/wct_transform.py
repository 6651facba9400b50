"""The whitening and colouring transform (Li et al., 2017) on one tap's features, float64.

`gouache.nst.families.wct` runs it between each level's encoder and decoder; a style's
colouring is computed once and cached by the family.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Colouring = tuple[Tensor, Tensor]
"""A style at one tap: its feature mean (C, 1) and covariance square root (C, C), float64."""


def _flatten(features: Tensor) -> Tensor:
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"expected 1xCxHxW features, got shape {tuple(features.shape)}")
    return features[0].reshape(features.shape[1], -1).double()


def _symmetric_power(covariance: Tensor, power: float, eps: float) -> Tensor:
    """covariance ** power for a symmetric positive semi-definite matrix, floored eigenvalues."""
    values, vectors = torch.linalg.eigh(covariance)
    floor = eps * values.clamp(min=0.0).mean().clamp(min=1e-12)
    values = values.clamp(min=floor)
    powered: Tensor = (vectors * values.pow(power)) @ vectors.T
    return powered


def covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    """The mean (C, 1) and covariance (C, C) over positions of 1xCxHxW features, float64."""
    flat = _flatten(features)
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    count = max(1, centred.shape[1] - 1)
    return mean, centred @ centred.T / count


def style_colouring(features: Tensor, eps: float) -> Colouring:
    """What WCT needs of a style at one tap: its mean and covariance square root."""
    mean, cov = covariance(features)
    return mean, _symmetric_power(cov, 0.5, eps)


def mix_colourings(colourings: Sequence[Colouring], weights: Sequence[float]) -> Colouring:
    """Several styles at one tap as one: the weighted mean of means and of matrices.

    Colouring a whitened feature map with the weighted sum of the styles' square roots
    is the same as blending the styles' colourings (the transform is linear in them).
    """
    if not colourings or len(colourings) != len(weights):
        raise ValueError(f"got {len(weights)} weights for {len(colourings)} styles")
    mean = torch.stack([c[0] * w for c, w in zip(colourings, weights, strict=True)]).sum(0)
    root = torch.stack([c[1] * w for c, w in zip(colourings, weights, strict=True)]).sum(0)
    return mean, root


def whiten_colour(content: Tensor, colouring: Colouring, eps: float) -> Tensor:
    """The content's 1xCxHxW features with the style's mean and covariance (WCT).

    Centred content features are whitened by the inverse square root of their
    covariance, multiplied by the style's covariance square root and shifted by the
    style's mean; computed in float64, returned in the content's dtype.
    """
    style_mean, style_root = colouring
    flat = _flatten(content)
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    cov = centred @ centred.T / max(1, centred.shape[1] - 1)
    whitening = _symmetric_power(cov, -0.5, eps)
    # One C x C matrix applied once: (root @ whitening) @ centred, not root @ (whitening @
    # centred), which would take a second pass over every position.
    transform = style_root.to(flat.device) @ whitening
    transformed = torch.addmm(style_mean.to(flat.device), transform, centred)
    return transformed.reshape(content.shape).to(content.dtype)
