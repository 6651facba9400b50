"""The OpenAPI document of the edge's REST API, generated from the contracts' descriptor set
by scripts/contracts.py (committed as gouache/contracts/openapi.json) and served by the edge
at /openapi.json."""

from pathlib import Path

from gouache.edge.openapi.document import OPENAPI_PATH, build, dumps

__all__ = ["OPENAPI_PATH", "build", "dumps", "packaged_openapi"]


def packaged_openapi() -> Path:
    """The generated document, shipped inside gouache.contracts beside descriptor.pb."""
    from importlib import resources

    return Path(str(resources.files("gouache.contracts") / "openapi.json"))
