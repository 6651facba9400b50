"""The public Python SDK through the Envoy edge: REST (GouacheClient) and gRPC (GouacheGrpc)."""

from gouache.client.grpc import BearerTokens, GouacheGrpc
from gouache.client.rest import ApiError, GouacheClient, JobResult

__all__ = ["ApiError", "BearerTokens", "GouacheClient", "GouacheGrpc", "JobResult"]
