"""VGG19 features in plain torch, for operators who bring their own weights.

No VGG19 weights ship with gouache (none are on PyPI under a licence we can ship); an
operator who has torchvision's ImageNet checkpoint (or any state dict in its layout)
points `load_vgg19` at the file. The module mirrors `torchvision.models.vgg19().features`
index for index, so the checkpoint's `features.N.weight` / `features.N.bias` keys load
strictly; its `classifier.*` keys are not needed for losses and are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from gouache.nst.encoders.lite0 import WeightsIntegrityError, file_sha256

# Output channels of each conv, "M" for a 2x2 max-pool: VGG19's configuration "E".
_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, 256, "M",
    512, 512, 512, 512, "M",
    512, 512, 512, 512, "M",
)  # fmt: skip
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _tap_names() -> tuple[tuple[str, int], ...]:
    """(name, index in `features`) of every ReLU: relu<block>_<conv>, e.g. relu4_2."""
    names: list[tuple[str, int]] = []
    block, conv, index = 1, 0, 0
    for item in _LAYOUT:
        if item == "M":
            block, conv, index = block + 1, 0, index + 1
            continue
        conv += 1
        names.append((f"relu{block}_{conv}", index + 1))  # the ReLU right after the conv
        index += 2
    return tuple(names)


_TAP_INDEX: dict[str, int] = dict(_tap_names())
VGG19_TAPS: tuple[str, ...] = tuple(_TAP_INDEX)
"""Names of the activations `forward_features` can return, shallow to deep (relu1_1..relu5_4)."""


class Vgg19Encoder(nn.Module):
    """VGG19's convolutional part: named ReLU activations for losses.

    Inputs are float RGB in [0, 1], NCHW, any height and width of at least 16 pixels;
    the module normalises them with ImageNet's mean and standard deviation, as the
    torchvision weights expect. A fresh instance has random weights; see `load_vgg19`.
    """

    taps: tuple[str, ...] = VGG19_TAPS

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        self._mean: Tensor
        self._std: Tensor
        self.register_buffer("_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward_features(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """Returns the activations at `taps` (names from `VGG19_TAPS`), keyed by name.

        Stops after the deepest requested tap.
        """
        wanted = set(taps)
        unknown = wanted.difference(VGG19_TAPS)
        if unknown:
            raise ValueError(f"unknown taps {sorted(unknown)}; known taps: {', '.join(VGG19_TAPS)}")
        if not wanted:
            return {}
        by_index = {_TAP_INDEX[name]: name for name in wanted}
        deepest = max(by_index)
        found: dict[str, Tensor] = {}
        y = (x - self._mean) / self._std
        for index, layer in enumerate(self.features):
            y = layer(y)
            if index in by_index:
                found[by_index[index]] = y
            if index == deepest:
                break
        return found

    def forward(self, x: Tensor) -> Tensor:
        """The deepest activation (relu5_4)."""
        return self.forward_features(x, (VGG19_TAPS[-1],))[VGG19_TAPS[-1]]


def load_vgg19(
    path: Path, *, sha256: str | None = None, device: str | torch.device = "cpu"
) -> Vgg19Encoder:
    """Loads an operator's VGG19 state dict (torchvision layout) strictly, frozen.

    `sha256`, when given, must match the file (pin the checkpoint you validated). Keys may
    carry torchvision's `features.` prefix or be the bare `features` module's keys;
    `classifier.*` keys are ignored. Missing or misshapen convolution weights are refused
    with the keys named, rather than painting with a half-loaded network.
    """
    if not path.is_file():
        raise WeightsIntegrityError(
            f"VGG19 weights file {path} does not exist; pass a torchvision-layout state dict "
            "(e.g. vgg19-dcbb9e9d.pth)"
        )
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise WeightsIntegrityError(f"{path} has sha256 {actual}, expected {sha256}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise WeightsIntegrityError(f"{path} is not a loadable state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsIntegrityError(f"{path} holds a {type(state).__name__}, not a state dict")
    features = {k: v for k, v in state.items() if str(k).startswith("features.")}
    if not features:
        features = {
            f"features.{k}": v for k, v in state.items() if not str(k).startswith("classifier.")
        }
    encoder = Vgg19Encoder()
    expected = encoder.state_dict()
    missing = sorted(set(expected).difference(features))
    unexpected = sorted(set(features).difference(expected))
    wrong = sorted(
        key
        for key in set(expected).intersection(features)
        if tuple(features[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or wrong:
        raise WeightsIntegrityError(
            f"{path} is not a VGG19 state dict in torchvision's layout: "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}, "
            f"wrong shapes {wrong[:4]}"
        )
    encoder.load_state_dict(features, strict=True)
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder.to(device)
