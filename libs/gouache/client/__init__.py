"""The Python SDK of gouache's public API, through the Envoy edge.

Four clients with the same calls, results and errors: `GouacheClient` and
`AsyncGouacheClient` (REST), `GouacheGrpcClient` and `AsyncGouacheGrpcClient` (native
gRPC). Results are the typed records of `gouache.client.types` (also read-only mappings of
the API's JSON); failures are `ApiError` subclasses (`gouache.client.errors`); what is
retried, and how long it waits, is a `RetryPolicy` (`gouache.client.retry`).
`GouacheGrpc` is the lower level: one channel and the generated stubs.
"""

from gouache.client.compliance import AuditEvent, Erasure
from gouache.client.errors import (
    ApiError,
    ConflictError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnauthenticatedError,
    UnavailableError,
)
from gouache.client.grpc import BearerTokens, GouacheGrpc
from gouache.client.grpc_clients import AsyncGouacheGrpcClient, GouacheGrpcClient
from gouache.client.plans import PLANS, PlanChange
from gouache.client.projects import Project, ProjectDetail, ProjectMember
from gouache.client.rest import AsyncGouacheClient, GouacheClient
from gouache.client.retry import NO_RETRIES, RetryPolicy
from gouache.client.types import (
    Batch,
    BatchCounts,
    BatchItem,
    Feedback,
    Job,
    JobCreated,
    JobResult,
    Models,
    ModelVersionStats,
    Page,
    Style,
    UsageRecord,
    Webhook,
)

__all__ = [
    "NO_RETRIES",
    "PLANS",
    "ApiError",
    "AsyncGouacheClient",
    "AsyncGouacheGrpcClient",
    "AuditEvent",
    "Batch",
    "BatchCounts",
    "BatchItem",
    "BearerTokens",
    "ConflictError",
    "DeadlineExceededError",
    "Erasure",
    "FailedPreconditionError",
    "Feedback",
    "GouacheClient",
    "GouacheGrpc",
    "GouacheGrpcClient",
    "InvalidArgumentError",
    "Job",
    "JobCreated",
    "JobResult",
    "ModelVersionStats",
    "Models",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "PlanChange",
    "Project",
    "ProjectDetail",
    "ProjectMember",
    "RateLimitedError",
    "RetryPolicy",
    "ServerError",
    "Style",
    "UnauthenticatedError",
    "UnavailableError",
    "UsageRecord",
    "Webhook",
]
