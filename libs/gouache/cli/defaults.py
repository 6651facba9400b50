"""Defaults shared by the CLI and the mesh launcher, in a module light enough to import first."""

from __future__ import annotations

from gouache import catalogue

# Every model version the catalogue ships (the jobs service's seed); inference loads them.
DEFAULT_MODELS = ",".join(catalogue.names())
