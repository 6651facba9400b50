"""An RPC answering a raw google.api.HttpBody is documented with its media type, not JSON."""

from __future__ import annotations

from typing import Any

from google.api import annotations_pb2  # noqa: F401  (registers google.api.http)
from google.protobuf import descriptor_pb2

from gouache.edge import packaged_descriptor
from gouache.edge.openapi import build


def _document() -> dict[str, Any]:
    files = descriptor_pb2.FileDescriptorSet.FromString(packaged_descriptor().read_bytes())
    return build(files, policies={}, version="1.2.3")


def test_the_usage_export_is_documented_as_csv() -> None:
    ok = _document()["paths"]["/v1/usage:export"]["get"]["responses"]["200"]
    assert ok["content"] == {"text/csv": {"schema": {"type": "string"}}}
