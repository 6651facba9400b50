"""gouache studio through a real Envoy: each built file byte for byte with its type and
caching, index.html for the app's pages, the API's paths untouched, and a page saying how to
build the studio when there is none."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gouache.edge import Upstream
from gouache.edge.studio import CONTENT_SECURITY_POLICY
from tests.fixtures.envoy import EdgeFactory, RunningEdge, free_port
from tests.integration.edge.upstreams import ABORT_PREFIX

INDEX = b'<!doctype html><html lang="en"><title>studio</title><div id="root"></div></html>\n'
SCRIPT = b"console.log('studio');\n" * 4000  # ~92 KB: far past Envoy's 4 KiB default
# A binary file with NUL bytes and every byte value, larger than the script.
PICTURE = os.urandom(300_000)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    (root / "assets").mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "index-Ab12_x.js").write_bytes(SCRIPT)
    (root / "assets" / "photo-9f.png").write_bytes(PICTURE)
    (root / "favicon.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    return root


@pytest.fixture(scope="module")
def studio_edge(
    envoy_edge: EdgeFactory, grpc_port: int, files_port: int, dist: Path
) -> RunningEdge:
    return envoy_edge(
        Upstream("127.0.0.1", grpc_port),
        Upstream("127.0.0.1", files_port),
        auth=Upstream("127.0.0.1", free_port()),
        studio_dir=dist,
    )


@pytest.fixture
async def http(studio_edge: RunningEdge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=studio_edge.base_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/index.html", "/gallery", "/admin", "/jobs/job_1"])
async def test_pages_are_the_app(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)

    assert response.status_code == 200
    assert response.content == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_built_files_byte_for_byte_with_type_and_caching(http: httpx.AsyncClient) -> None:
    script = await http.get("/assets/index-Ab12_x.js")
    picture = await http.get("/assets/photo-9f.png")
    icon = await http.get("/favicon.svg")

    assert script.content == SCRIPT
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert picture.content == PICTURE
    assert picture.headers["content-type"] == "image/png"
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.headers["cache-control"] == "no-cache"


async def test_text_files_are_gzipped_for_a_browser_that_accepts_it(
    http: httpx.AsyncClient,
) -> None:
    zipped = await http.get("/assets/index-Ab12_x.js", headers={"accept-encoding": "gzip"})
    plain = await http.get("/assets/index-Ab12_x.js", headers={"accept-encoding": "identity"})
    picture = await http.get("/assets/photo-9f.png", headers={"accept-encoding": "gzip"})

    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == SCRIPT  # httpx decodes it
    assert zipped.num_bytes_downloaded < len(SCRIPT) // 10
    assert "content-encoding" not in plain.headers
    assert plain.content == SCRIPT
    assert "content-encoding" not in picture.headers


async def test_api_answers_are_never_compressed(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/jobs",
        json={"content_url": ABORT_PREFIX + "NOT_FOUND"},
        headers={"accept-encoding": "gzip"},
    )

    assert "content-encoding" not in response.headers
    assert response.json()["code"] == 5


async def test_head_answers_like_get_without_a_body(http: httpx.AsyncClient) -> None:
    response = await http.head("/assets/index-Ab12_x.js")

    assert response.status_code == 200
    assert response.content == b""


async def test_a_missing_file_is_the_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/assets/gone-123.js")

    assert response.status_code == 404
    assert response.json() == {
        "code": 5,
        "message": "no route for /assets/gone-123.js",
        "details": [],
    }


async def test_unknown_api_paths_stay_json_404_not_the_app(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/nowhere")

    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "no route for /v1/nowhere", "details": []}


async def test_other_methods_on_a_page_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/gallery", json={})

    assert response.status_code == 404
    assert response.json()["code"] == 5


async def test_rest_calls_are_still_transcoded(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", json={"content_url": ABORT_PREFIX + "NOT_FOUND"})

    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "refused with NOT_FOUND", "details": []}


async def test_without_a_built_studio_the_page_says_how_to_build_it(
    envoy_edge: EdgeFactory, grpc_port: int, files_port: int
) -> None:
    edge = envoy_edge(
        Upstream("127.0.0.1", grpc_port),
        Upstream("127.0.0.1", files_port),
        auth=Upstream("127.0.0.1", free_port()),
    )
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=30) as client:
        page = await client.get("/")
        api = await client.get("/v1/nowhere")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "gouache studio is not built" in page.text
    assert "npm ci &amp;&amp; npm run build" in page.text
    assert api.status_code == 404
    assert api.json()["code"] == 5
