"""inference's rules, without gRPC: requests and their checks (`requests`) and the ModelHost
that loads versions and computes stylizations (`host`)."""

from services.inference.domain.host import ModelHost
from services.inference.domain.requests import (
    GPU_MAX_BATCH_SIZE,
    MAX_BATCH_TILES,
    MAX_STYLES,
    MIN_STYLES,
    FamilyBuilder,
    Fault,
    LoadedModel,
    Params,
    RawImage,
    RawStyle,
    StylizeResult,
    StylizeTask,
    resolve_batch_size,
    resolve_device,
    style_weights,
    warmup_images,
)

__all__ = [
    "GPU_MAX_BATCH_SIZE",
    "MAX_BATCH_TILES",
    "MAX_STYLES",
    "MIN_STYLES",
    "FamilyBuilder",
    "Fault",
    "LoadedModel",
    "ModelHost",
    "Params",
    "RawImage",
    "RawStyle",
    "StylizeResult",
    "StylizeTask",
    "resolve_batch_size",
    "resolve_device",
    "style_weights",
    "warmup_images",
]
