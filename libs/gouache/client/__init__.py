"""The public Python SDK: the REST API through the Envoy edge."""

from gouache.client.rest import ApiError, GouacheClient, JobResult

__all__ = ["ApiError", "GouacheClient", "JobResult"]
