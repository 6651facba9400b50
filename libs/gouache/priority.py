"""Priority classes of jobs: the lane (what the result is for) and the owner's plan tier.

One source for the names, used by jobs (which class a job is), the bus (the subject per
class) and tiling (the order it serves them). Standard library only.

Classes, highest first: previews by tier, then exports by tier. A preview is a small,
one-pass look that a person is waiting for; an export is the full-size result. Within a
lane, enterprise before pro before free.
"""

from __future__ import annotations

LANES = ("preview", "export")
"""What a job's result is for, in the order workers serve them."""
TIERS = ("enterprise", "pro", "free")
"""Plan tiers, highest priority first; a plan that is none of these counts as free."""
PREVIEW, EXPORT = LANES
DEFAULT_LANE = EXPORT
DEFAULT_TIER = "free"

CLASSES: tuple[tuple[str, str], ...] = tuple((lane, tier) for lane in LANES for tier in TIERS)
"""Every (lane, tier), highest priority first."""


def tier_of(plan: str) -> str:
    """The priority tier of a plan: its own name for the known tiers, else free."""
    return plan if plan in TIERS else DEFAULT_TIER


def rank(lane: str, tier: str) -> int:
    """0 for the highest class (preview, enterprise), len(CLASSES) - 1 for the lowest."""
    try:
        return CLASSES.index((lane, tier))
    except ValueError:
        raise ValueError(
            f"unknown priority class {lane}/{tier}: lanes are {', '.join(LANES)}, "
            f"tiers {', '.join(TIERS)}"
        ) from None
