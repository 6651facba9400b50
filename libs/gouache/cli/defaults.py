"""Defaults shared by the CLI and the mesh launcher, in a module light enough to import first."""

from __future__ import annotations

# Every model version the jobs service routes to by default (its seed); inference loads them.
DEFAULT_MODELS = "adain.lite0-v1,feedforward.lite0-v1,gatys.lite0-v1,gatys.lite0-fast"
