"""What the edge exposes: the public gRPC services by upstream, reflection, the file paths."""

from __future__ import annotations

from collections.abc import Mapping

MIB = 1024 * 1024

# The public gRPC services, by upstream name. tiling and inference are internal: never routed.
GRPC_SERVICES: Mapping[str, str] = {
    "auth": "gouache.auth.v1.AuthService",
    "storage": "gouache.storage.v1.StorageService",
    "jobs": "gouache.jobs.v1.JobsService",
    "feedback": "gouache.feedback.v1.FeedbackService",
}
# gRPC server reflection, both versions (grpcurl asks v1 first, then v1alpha). One upstream
# answers it for the whole edge: the jobs service describes every public service.
REFLECTION_SERVICES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)
REFLECTION_UPSTREAM = "jobs"
# gRPC health at the edge (load balancers, `grpcurl ... grpc.health.v1.Health/Check`): the
# jobs service answers, as the front of the API; Watch is a stream, like reflection.
HEALTH_SERVICE = "grpc.health.v1.Health"

FILES_PREFIX = "/v1/files/"
STORAGE_HTTP_CLUSTER = "storage_http"
