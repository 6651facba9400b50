"""The edge's OAuth2 token route: form bodies to OAuth2Service, JSON ones to IssueToken."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from gouache.edge import GRPC_SERVICES, EdgeConfig, Upstream, packaged_descriptor, render
from gouache.edge.config import descriptor_set
from gouache.edge.envoy_json import TRANSCODER
from gouache.edge.oauth2 import OAUTH2_SERVICE, STATUS_FILTER, STATUS_HEADER, TOKEN_PATH
from gouache.edge.transcoder import descriptor_subset
from services.auth.servicer import STATUS_HEADER as SERVICE_STATUS_HEADER


def _manager() -> dict[str, Any]:
    upstream = Upstream("127.0.0.1", 50051)
    config = EdgeConfig(
        listen_port=8080,
        admin_port=9901,
        auth=upstream,
        storage=upstream,
        jobs=upstream,
        feedback=upstream,
        storage_http=upstream,
    )
    listener = render(config)["static_resources"]["listeners"][0]
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def _files(config: dict[str, Any]) -> set[str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        base64.b64decode(config["proto_descriptor_bin"])
    )
    return {file.name for file in files.file}


def test_form_token_route_comes_first_with_its_own_transcoder() -> None:
    manager = _manager()
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    form = routes[0]
    assert form["match"]["path"] == TOKEN_PATH
    assert form["match"]["headers"][0]["string_match"] == {
        "prefix": "application/x-www-form-urlencoded",
        "ignore_case": True,
    }
    transcoder = form["typed_per_filter_config"][TRANSCODER]
    assert transcoder["services"] == [OAUTH2_SERVICE]
    assert "gouache/auth/v1/auth.proto" in _files(transcoder)
    assert "gouache/jobs/v1/jobs.proto" not in _files(transcoder)
    transcoded = routes[1]
    assert transcoded["match"]["prefix"] == f"/{OAUTH2_SERVICE}/"
    assert transcoded["route"]["cluster"] == "auth"
    for route in (form, transcoded):
        assert STATUS_FILTER in route["typed_per_filter_config"]
    assert all(
        STATUS_FILTER not in route.get("typed_per_filter_config", {}) for route in routes[2:]
    )


def test_edge_transcoder_does_not_know_oauth2_service() -> None:
    filters = {f["name"]: f for f in _manager()["http_filters"]}
    assert OAUTH2_SERVICE not in filters[TRANSCODER]["typed_config"]["services"]
    assert filters[TRANSCODER]["typed_config"]["services"] == list(GRPC_SERVICES.values())
    status = filters[STATUS_FILTER]
    assert status["disabled"] is True
    names = [f["name"] for f in _manager()["http_filters"]]
    assert names.index(STATUS_FILTER) < names.index(TRANSCODER)


def test_edge_and_auth_name_the_same_status_header() -> None:
    assert STATUS_HEADER == SERVICE_STATUS_HEADER


def test_descriptor_subset_needs_a_known_service() -> None:
    with pytest.raises(ValueError, match=r"no service gouache\.nope\.v1\.Nope"):
        descriptor_subset(descriptor_set(packaged_descriptor()), "gouache.nope.v1.Nope")
