"""The gRPC-JSON transcoder's settings, shared by the edge's filter and its per-route uses."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2

from gouache.edge.envoy_json import typed

if TYPE_CHECKING:
    from gouache.edge.config import EdgeConfig


def transcoder_config(
    config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet, services: Sequence[str]
) -> dict[str, Any]:
    """A GrpcJsonTranscoder that maps the google.api.http rules of services, and only those."""
    return typed(
        "extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        proto_descriptor_bin=base64.b64encode(descriptor.SerializeToString()).decode(),
        services=list(services),
        print_options={
            "add_whitespace": False,
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": True,
            # A server stream (WatchJob, GET /v1/jobs/{id}:events) answers
            # text/event-stream, one `data: <json>` event per message, flushed as it comes.
            "stream_sse_style_delimited": True,
        },
        match_incoming_request_route=False,
        ignore_unknown_query_parameters=False,
        convert_grpc_status=True,
        request_validation_options={
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
            "reject_binding_body_field_collisions": True,
        },
        max_request_body_size=config.max_json_body_bytes,
        max_response_body_size=config.max_json_response_bytes,
    )


def descriptor_subset(
    descriptor: descriptor_pb2.FileDescriptorSet, service: str
) -> descriptor_pb2.FileDescriptorSet:
    """The files of descriptor that define service and those they import, transitively: all
    a transcoder of that one service needs."""
    by_name = {file.name: file for file in descriptor.file}
    wanted: list[str] = []

    def visit(name: str) -> None:
        if name in wanted or name not in by_name:
            return
        for dependency in by_name[name].dependency:
            visit(dependency)
        wanted.append(name)

    for file in descriptor.file:
        if any(f"{file.package}.{candidate.name}" == service for candidate in file.service):
            visit(file.name)
    if not wanted:
        raise ValueError(f"the descriptor set defines no service {service}")
    return descriptor_pb2.FileDescriptorSet(file=[by_name[name] for name in wanted])
