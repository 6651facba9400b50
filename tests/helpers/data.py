"""Where the shared image corpus lives: ../shared/data beside the checkout.

The corpus (styles, contents; see its PROVENANCE.md) is optional: tests that read it
skip with the reason when it is absent, also with CI=true, since a fresh clone of this
repository does not carry it (unlike a missing server, which the fixtures fail on CI).
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
SHARED_DATA = CHECKOUT.parent / "shared" / "data"
"""<root>/shared/data for a checkout at <root>/main (or any other name)."""
