"""Batched stylization: several requests for one model in one network pass where a family can.

A request is a `StylizeItem` (one content or tile, its styles, weights and controls).
One-pass families (adain, feedforward, wct) implement `stylize_batch`: each item's style
statistics, CIN parameters or colouring are derived per item, the items' images go
through the networks together as one NCHW batch (wct: each level's encoder and decoder,
with each item's own transform between them), and each output is finished per item
(cropping, smoothing, colour controls), so a batched result equals the unbatched one
within float tolerance. gatys optimises per image and runs its items one after another
through `stylize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gouache.nst.base import Cancellation, RGBImage, StyleFamily, StylizeControls


@dataclass(frozen=True)
class StylizeItem:
    """The arguments of one `StyleFamily.stylize` call, as one item of a batch."""

    content: RGBImage
    styles: Sequence[RGBImage]
    weights: Sequence[float]
    controls: StylizeControls
    style_keys: Sequence[str] | None = None
    cancellation: Cancellation | None = None


@runtime_checkable
class BatchingFamily(Protocol):
    """A family that stylizes several items in one network pass."""

    name: str

    def stylize_batch(self, items: Sequence[StylizeItem]) -> list[RGBImage]:
        """Each item's output, in order, as `stylize` would return it (float tolerance).

        Items may differ in styles, weights and controls; those whose network input has
        the same shape (and, for adain, the same alpha) share one forward pass. One
        forward pass is one step: an item's `cancellation` is not checked inside it
        (the caller drops canceled items before the batch starts).
        """
        ...


def batches(family: StyleFamily) -> bool:
    """Whether `family` runs several items in one network pass."""
    return isinstance(family, BatchingFamily)


def stylize_batch(family: StyleFamily, items: Sequence[StylizeItem]) -> list[RGBImage]:
    """Stylizes `items` in order: in one pass where the family batches, else one by one."""
    if isinstance(family, BatchingFamily):
        return family.stylize_batch(items)
    return [
        family.stylize(
            item.content,
            item.styles,
            item.weights,
            item.controls,
            style_keys=item.style_keys,
            cancellation=item.cancellation,
        )
        for item in items
    ]
