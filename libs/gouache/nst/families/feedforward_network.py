"""The feed-forward family's image-transformation network: its shape and the network with
one row of conditional instance-norm parameters per slot (see feedforward.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class NetworkShape:
    """The transformation network's size: channels per resolution level and depth.

    channels: channels at full resolution, then after each stride-2 convolution; the
        network downsamples by 2 ** (len(channels) - 1).
    residual_blocks: residual blocks at the lowest resolution.
    edge_kernel: kernel of the first and last convolution (at full resolution).
    """

    channels: tuple[int, ...] = (16, 32, 64)
    residual_blocks: int = 4
    edge_kernel: int = 5

    def __post_init__(self) -> None:
        if len(self.channels) < 1 or min(self.channels) < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")
        if self.residual_blocks < 0:
            raise ValueError("residual_blocks must not be negative")
        if self.edge_kernel < 1 or self.edge_kernel % 2 == 0:
            raise ValueError(f"edge_kernel must be odd and positive, got {self.edge_kernel}")

    @property
    def factor(self) -> int:
        """Height and width of an input must be multiples of this."""
        return int(2 ** (len(self.channels) - 1))

    @property
    def min_side(self) -> int:
        """Smallest input side: each level keeps at least 2 pixels for reflection padding."""
        return max(2 * self.factor, self.edge_kernel // 2 + 1)

    def cin_channels(self) -> tuple[int, ...]:
        """Channels of every conditional instance-norm layer, in forward order."""
        down = list(self.channels)
        blocks = [self.channels[-1]] * (2 * self.residual_blocks)
        up = list(reversed(self.channels[:-1]))
        return (*down, *blocks, *up)

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "residual_blocks": self.residual_blocks,
            "edge_kernel": self.edge_kernel,
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> NetworkShape:
        return cls(
            channels=tuple(int(c) for c in values["channels"]),
            residual_blocks=int(values["residual_blocks"]),
            edge_kernel=int(values["edge_kernel"]),
        )


def _padded_conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride)
    )


class TransformNet(nn.Module):
    """The image-transformation network with its table of CIN parameters, one row per slot.

    `forward(image, params)` takes the image (NCHW, [0, 1], sides multiples of
    `shape.factor`) and one row of CIN parameters per image (N x 2C: all scales, then
    all shifts, C = sum of `shape.cin_channels()`), so mixing rows happens outside the
    network and the ONNX graph has just these two inputs.
    """

    def __init__(self, shape: NetworkShape, slots: int) -> None:
        super().__init__()
        if slots < 1:
            raise ValueError("the network needs at least one CIN slot")
        self.shape = shape
        self._cin = shape.cin_channels()
        self.width = sum(self._cin)
        self.gamma = nn.Parameter(torch.ones(slots, self.width))
        self.beta = nn.Parameter(torch.zeros(slots, self.width))
        channels = shape.channels
        down: list[nn.Module] = [_padded_conv(3, channels[0], shape.edge_kernel)]
        down += [
            _padded_conv(channels[i - 1], channels[i], 3, stride=2) for i in range(1, len(channels))
        ]
        self.down = nn.ModuleList(down)
        deepest = channels[-1]
        self.blocks = nn.ModuleList(
            _padded_conv(deepest, deepest, 3) for _ in range(2 * shape.residual_blocks)
        )
        self.up = nn.ModuleList(
            _padded_conv(channels[i], channels[i - 1], 3) for i in range(len(channels) - 1, 0, -1)
        )
        self.out = _padded_conv(channels[0], 3, shape.edge_kernel)

    @property
    def slots(self) -> int:
        return int(self.gamma.shape[0])

    def slot_params(self, mix: Tensor) -> Tensor:
        """CIN parameters (N x 2C) for slot mixtures `mix` (N x slots, rows of weights)."""
        return torch.cat([mix @ self.gamma, mix @ self.beta], dim=1)

    def forward(self, image: Tensor, params: Tensor) -> Tensor:
        gamma, beta = params[:, : self.width], params[:, self.width :]
        offsets = np.cumsum((0, *self._cin)).tolist()
        layer = iter(range(len(self._cin)))

        def cin(x: Tensor) -> Tensor:
            index = next(layer)
            start, end = offsets[index], offsets[index + 1]
            normalised = F.instance_norm(x, eps=1e-5)
            return normalised * gamma[:, start:end, None, None] + beta[:, start:end, None, None]

        y = image
        for conv in self.down:
            y = F.relu(cin(conv(y)))
        for first, second in zip(self.blocks[::2], self.blocks[1::2], strict=True):
            y = y + cin(second(F.relu(cin(first(y)))))
        for conv in self.up:
            y = F.relu(cin(conv(F.interpolate(y, scale_factor=2.0, mode="nearest"))))
        return torch.sigmoid(self.out(y))
