"""The studio's routes as rendered: one per built file, the pages after them, the API's 404
before them, and the direct response bound raised to the largest file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gouache.edge import EdgeConfig, Upstream, render
from gouache.edge.__main__ import main
from gouache.edge.studio import (
    ENVOY_DEFAULT_DIRECT_BODY_BYTES,
    default_studio_dir,
    max_direct_body_bytes,
    studio_files,
    studio_routes,
)


def _dist(root: Path, script_bytes: int = 10) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "assets" / "index-1a.js").write_bytes(b"x" * script_bytes)
    (root / ".vite").mkdir()
    (root / ".vite" / "manifest.json").write_text("{}")
    return root


def _route_config(studio_dir: Path | None) -> dict[str, Any]:
    upstream = Upstream("127.0.0.1", 50051)
    config = EdgeConfig(
        listen_port=8080,
        admin_port=9901,
        auth=upstream,
        storage=upstream,
        jobs=upstream,
        feedback=upstream,
        storage_http=upstream,
        studio_dir=studio_dir,
    )
    listener = render(config)["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    route_config: dict[str, Any] = manager["route_config"]
    return route_config


def test_every_built_file_gets_an_exact_route_but_hidden_ones(tmp_path: Path) -> None:
    files = studio_files(_dist(tmp_path))

    assert [file.url_path for file in files] == ["/assets/index-1a.js", "/index.html"]
    assert files[0].content_type == "text/javascript; charset=utf-8"
    assert files[0].cache_control == "public, max-age=31536000, immutable"
    assert files[1].cache_control == "no-cache"


def test_a_directory_without_index_html_is_refused_saying_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"npm ci && npm run build"):
        studio_files(tmp_path)


def test_a_file_name_envoy_cannot_match_exactly_is_refused(tmp_path: Path) -> None:
    dist = _dist(tmp_path)
    (dist / "my photo.png").write_bytes(b"png")

    with pytest.raises(ValueError, match=r"my photo\.png"):
        studio_files(dist)


def test_routes_keep_api_404_before_files_and_pages_last(tmp_path: Path) -> None:
    routes = studio_routes(_dist(tmp_path))

    assert [route["name"] for route in routes] == [
        "api-not-found",
        "studio/assets/index-1a.js",
        "studio/index.html",
        "studio-pages",
    ]
    assert routes[0]["match"] == {"prefix": "/v1/"}
    # Built files and pages skip the transcoder, which refuses paths no RPC binds.
    assert all("typed_per_filter_config" in route for route in routes[1:])
    index = base64.b64decode(routes[-1]["direct_response"]["body"]["inline_bytes"])
    assert index == b"<!doctype html>"


def test_without_a_studio_pages_say_how_to_build_it() -> None:
    routes = studio_routes(None)

    assert [route["name"] for route in routes] == ["api-not-found", "studio-not-built"]
    assert "npm run build" in routes[-1]["direct_response"]["body"]["inline_string"]


def test_the_direct_response_bound_fits_the_largest_file(tmp_path: Path) -> None:
    dist = _dist(tmp_path, script_bytes=300_000)

    assert max_direct_body_bytes(dist) == 300_000
    assert max_direct_body_bytes(None) == ENVOY_DEFAULT_DIRECT_BODY_BYTES
    assert _route_config(dist)["max_direct_response_body_size_bytes"] >= 300_000


def test_studio_routes_come_after_every_api_route(tmp_path: Path) -> None:
    names = [
        route["name"] for route in _route_config(_dist(tmp_path))["virtual_hosts"][0]["routes"]
    ]

    first_studio = names.index("api-not-found")
    assert names[first_studio:] == [
        "api-not-found",
        "studio/assets/index-1a.js",
        "studio/index.html",
        "studio-pages",
        "no-route",
    ]


def test_the_cli_serves_the_packaged_studio_unless_told_otherwise(tmp_path: Path) -> None:
    upstreams = [f"--{name}=127.0.0.1:1" for name in ("auth", "storage", "jobs", "feedback")]
    args = ["render", *upstreams, "--storage-http=127.0.0.1:2"]
    dist = _dist(tmp_path / "elsewhere")

    def pages(*extra: str) -> str:
        out = tmp_path / "envoy.json"
        assert main([*args, f"--out={out}", *extra]) == 0
        routes = json.loads(out.read_text())["static_resources"]["listeners"][0]
        names = [
            route["name"]
            for route in routes["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
                "virtual_hosts"
            ][0]["routes"]
        ]
        return next(name for name in names if name.startswith("studio-"))

    assert pages("--no-studio") == "studio-not-built"
    assert pages(f"--studio-dir={dist}") == "studio-pages"
    assert pages() == ("studio-pages" if default_studio_dir() is not None else "studio-not-built")


def test_the_cli_refuses_a_directory_that_is_no_studio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upstreams = [f"--{name}=127.0.0.1:1" for name in ("auth", "storage", "jobs", "feedback")]
    out = tmp_path / "envoy.json"

    code = main(
        [
            "render",
            *upstreams,
            "--storage-http=127.0.0.1:2",
            f"--out={out}",
            f"--studio-dir={tmp_path}",
        ]
    )

    assert code == 2
    assert "holds no index.html: not a built studio" in capsys.readouterr().err
    assert not out.exists()
