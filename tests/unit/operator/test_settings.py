"""Operator settings refuse what would break at the first reconcile."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from gouache_operator.settings import OperatorSettings
from tests.helpers.certs import ThrowawayCa


def test_inference_env_is_a_json_object_of_strings() -> None:
    settings = OperatorSettings(inference_env='{"GOUACHE_INFERENCE_AUTH_ADDR": "auth:50051"}')
    assert settings.inference_env == {"GOUACHE_INFERENCE_AUTH_ADDR": "auth:50051"}
    for bad in ('["a"]', '{"A": 1}', "{not json"):
        with pytest.raises(ValidationError):
            OperatorSettings(inference_env=bad)


def test_endpoint_template_names_only_known_fields() -> None:
    settings = OperatorSettings(endpoint_template="{service}.{namespace}.svc:{port}")
    assert settings.endpoint_template.format(service="s", namespace="n", port=1) == "s.n.svc:1"
    assert OperatorSettings(endpoint_template="127.0.0.1:50055").endpoint_template
    with pytest.raises(ValidationError, match="endpoint_template"):
        OperatorSettings(endpoint_template="{host}:{port}")


def test_namespaces_list() -> None:
    assert OperatorSettings(namespaces=" a, ,b ").namespace_list() == ["a", "b"]
    assert OperatorSettings().namespace_list() == []


def test_mtls_files_come_all_three_or_none(tmp_path: Path) -> None:
    assert OperatorSettings().channel_credentials() is None
    with pytest.raises(ValidationError, match="together"):
        OperatorSettings(tls_cert_file=tmp_path / "c.pem")
    files = ThrowawayCa(tmp_path).issue("operator")

    settings = OperatorSettings(
        tls_cert_file=files.cert, tls_key_file=files.key, tls_ca_file=files.ca
    )

    assert isinstance(settings.channel_credentials(), grpc.ChannelCredentials)
