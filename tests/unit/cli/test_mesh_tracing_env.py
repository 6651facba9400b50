"""What `gouache up` tells each component about tracing: its own service name."""

from __future__ import annotations

from pathlib import Path

from gouache.cli.mesh import SERVICES, Mesh, MeshConfig, MeshPorts


def test_each_component_is_named_for_its_service_and_extra_env_may_override(
    tmp_path: Path,
) -> None:
    mesh = Mesh(MeshConfig(state_dir=tmp_path, ports=MeshPorts()))
    names = {name: mesh._service_env(name)["OTEL_SERVICE_NAME"] for name in SERVICES}
    assert names == {name: f"gouache-{name}" for name in SERVICES}

    renamed = Mesh(
        MeshConfig(state_dir=tmp_path, ports=MeshPorts(), extra_env={"OTEL_SERVICE_NAME": "x"})
    )
    assert renamed._service_env("jobs")["OTEL_SERVICE_NAME"] == "x"
