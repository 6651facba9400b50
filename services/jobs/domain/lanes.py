"""What a preview runs: routing by intent (gouache.priority names the lanes and tiers).

A preview is a quick look before the real thing: small (its longest side at most
`PreviewPolicy.max_side`), from a one-pass model (an optimisation family such as gatys,
which takes tens of seconds, is replaced by `PreviewPolicy.model`), and served before
exports (its JobCreated goes to a higher-priority subject).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.jobs.domain.requests import StylizeParams

# Families that optimise each image (tens of seconds on a CPU): never a preview's model.
OPTIMISING_FAMILIES = frozenset({"gatys"})


@dataclass(frozen=True)
class PreviewPolicy:
    """What a preview job runs (JobsSettings.preview_max_side, preview_model)."""

    max_side: int = 512
    # The alias or version a preview runs when the requested one optimises.
    model: str = "default"


def preview_params(params: StylizeParams, policy: PreviewPolicy) -> StylizeParams:
    """A preview's params: the output no larger than the policy allows (or the request asks)."""
    side = policy.max_side if params.max_side is None else min(params.max_side, policy.max_side)
    return replace(params, max_side=side)


def needs_preview_model(family: str) -> bool:
    """True when a version of this family is too slow to preview with."""
    return family in OPTIMISING_FAMILIES
