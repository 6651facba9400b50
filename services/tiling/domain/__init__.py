"""tiling's rules, without gRPC or NATS: what a job is (`model`), how it is tiled and which
failures are permanent (`plan`), the plain steps of a job (`steps`), and the JobRunner that
runs one (`runner`)."""

from services.tiling.domain.model import (
    DEFAULT_QUALITY,
    MAX_PLAN_SIDE,
    MAX_TILE_SIZE,
    OUTPUT_FORMATS,
    CanceledJobs,
    ExecutionEvents,
    Failure,
    Inference,
    Job,
    JobParams,
    ModelQuery,
    Outcome,
    Pixels,
    RetryLater,
    Storage,
    StoredImage,
    StyleInput,
    WorkerStatus,
)
from services.tiling.domain.plan import TilePlan, classify, plan_image, result_image_id
from services.tiling.domain.runner import JobRunner

__all__ = [
    "DEFAULT_QUALITY",
    "MAX_PLAN_SIDE",
    "MAX_TILE_SIZE",
    "OUTPUT_FORMATS",
    "CanceledJobs",
    "ExecutionEvents",
    "Failure",
    "Inference",
    "Job",
    "JobParams",
    "JobRunner",
    "ModelQuery",
    "Outcome",
    "Pixels",
    "RetryLater",
    "Storage",
    "StoredImage",
    "StyleInput",
    "TilePlan",
    "WorkerStatus",
    "classify",
    "plan_image",
    "result_image_id",
]
