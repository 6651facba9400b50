"""gouache studio at / of the edge: Envoy serves each built file of the web app itself
(a direct response with the file's bytes inline in the config), index.html for the app's
pages, and, when the studio is not built, a page that says how to build it.

Inline bodies keep the config whole: an Envoy container that has no studio files can serve
it, and a rebuild of the studio (new hashed names) cannot break a running edge, which
restarts with the config it was given."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gouache.edge.envoy_json import BUFFER, TRANSCODER, disabled, typed

# Where `npm run build` in studio/ writes the app: inside this package, so that an editable
# install serves it and a wheel built after it (or the gouache image) carries it.
PACKAGED_STUDIO = "studio_dist"
API_PREFIX = "/v1/"
# The app's own pages (/, /gallery, /admin, /jobs/...): paths without a dot, so never a
# built file, a gRPC path (/package.Service/Method) or a document such as /openapi.json.
PAGE_PATTERN = r"^/[^.]*$"
# Envoy's default bound on a direct response body (max_direct_response_body_size_bytes).
ENVOY_DEFAULT_DIRECT_BODY_BYTES = 4096
# A file name Envoy can match exactly and a browser asks for unescaped.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._~/-]+$")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
# Vite names what it builds into assets/ by content hash: such a file never changes.
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
# The app loads only its own files; result images may come from a bucket's signed URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; "
    "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gouache studio is not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>gouache studio is not built</h1>
<p>The REST API is up under <code>/v1/</code>; the web app has not been built on this machine.
Build it (Node.js 20.19 or newer with npm), then restart <code>gouache up</code>:</p>
<pre>bash scripts/setup.sh
# or only the studio:
cd studio &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>Or start the edge with <code>gouache up --studio-dir DIR</code> for a studio built elsewhere.</p>
</body></html>
"""


@dataclass(frozen=True)
class StudioFile:
    """One built file and the URL path it is served at."""

    url_path: str
    source: Path
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.source.suffix.lower(), "application/octet-stream")

    @property
    def cache_control(self) -> str:
        return _IMMUTABLE if self.url_path.startswith("/assets/") else _REVALIDATE


# Only the studio's text files are compressed: no API answer has these types, so REST JSON,
# event streams and gRPC pass the filter untouched.
COMPRESSED_TYPES = ("text/html", "text/javascript", "text/css", "image/svg+xml")


def compressor() -> dict[str, Any]:
    """gzip for the studio's text files when the browser accepts it (its script is ~250 KB,
    ~80 KB gzipped); before the router, so Envoy's direct responses pass through it."""
    return {
        "name": "envoy.filters.http.compressor",
        "typed_config": typed(
            "extensions.filters.http.compressor.v3.Compressor",
            response_direction_config={
                "common_config": {
                    "min_content_length": 1024,
                    "content_type": list(COMPRESSED_TYPES),
                }
            },
            compressor_library={
                "name": "gzip",
                "typed_config": typed("extensions.compression.gzip.compressor.v3.Gzip"),
            },
        ),
    }


def default_studio_dir() -> Path | None:
    """The studio built into this package (gouache/edge/studio_dist), when it was built."""
    dist = Path(__file__).resolve().parent / PACKAGED_STUDIO
    return dist if (dist / "index.html").is_file() else None


def studio_files(directory: Path) -> list[StudioFile]:
    """Every file of a built studio, sorted by path; ValueError when it is not one."""
    if not (directory / "index.html").is_file():
        raise ValueError(
            f"{directory} holds no index.html: not a built studio "
            "(bash scripts/build-studio.sh, or cd studio && npm ci && npm run build)"
        )
    files = []
    for source in sorted(directory.rglob("*")):
        if not source.is_file() or any(part.startswith(".") for part in source.parts):
            continue
        url_path = "/" + source.relative_to(directory).as_posix()
        if not _SAFE_PATH.match(url_path):
            raise ValueError(f"{source}: the edge serves only file names of [A-Za-z0-9._~/-]")
        files.append(StudioFile(url_path, source, source.read_bytes()))
    return files


def studio_routes(studio_dir: Path | None) -> list[dict[str, Any]]:
    """The routes after the API's: unknown /v1/ paths stay the API's JSON 404, then the
    studio's files, then its pages (GET and HEAD). Built files skip the transcoder, which
    would refuse a path no RPC binds, and the JSON body buffer."""
    routes = [_api_not_found()]
    if studio_dir is None:
        return [*routes, _page_route("studio-not-built", {"inline_string": NOT_BUILT_PAGE})]
    files = studio_files(studio_dir)
    index = next(file for file in files if file.url_path == "/index.html")
    routes += [_file_route(file) for file in files]
    routes.append(_page_route("studio-pages", _body(index)))
    return routes


def max_direct_body_bytes(studio_dir: Path | None) -> int:
    """The route table's bound on a direct response: the largest built file, at least
    Envoy's default."""
    sizes = [file.size for file in studio_files(studio_dir)] if studio_dir is not None else []
    return max([ENVOY_DEFAULT_DIRECT_BODY_BYTES, len(NOT_BUILT_PAGE.encode()), *sizes])


def _api_not_found() -> dict[str, Any]:
    """An unknown /v1/ path is a missing API route (JSON 404), never a studio page."""
    return {
        "name": "api-not-found",
        "match": {"prefix": API_PREFIX},
        "direct_response": {"status": 404, "body": {"inline_string": "no route for this path"}},
    }


def _file_route(file: StudioFile) -> dict[str, Any]:
    return {
        "name": f"studio{file.url_path}",
        "match": {"path": file.url_path, "headers": [_get_or_head()]},
        "direct_response": {"status": 200, "body": _body(file)},
        "response_headers_to_add": _headers(file.content_type, file.cache_control),
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }


def _body(file: StudioFile) -> dict[str, str]:
    """The file's bytes as an inline DataSource (base64 in Envoy's JSON)."""
    return {"inline_bytes": base64.b64encode(file.data).decode()}


def _page_route(name: str, body: dict[str, str]) -> dict[str, Any]:
    """index.html (or the not-built page) for / and every other page-like path."""
    return {
        "name": name,
        "match": {"safe_regex": {"regex": PAGE_PATTERN}, "headers": [_get_or_head()]},
        "direct_response": {"status": 200, "body": body},
        "response_headers_to_add": _headers(CONTENT_TYPES[".html"], _REVALIDATE),
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }


def _get_or_head() -> dict[str, Any]:
    return {"name": ":method", "string_match": {"safe_regex": {"regex": "^(GET|HEAD)$"}}}


def _headers(content_type: str, cache_control: str) -> list[dict[str, Any]]:
    values = {
        "content-type": content_type,
        "cache-control": cache_control,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    if content_type.startswith("text/html"):
        values["content-security-policy"] = CONTENT_SECURITY_POLICY
        values["x-frame-options"] = "DENY"
    return [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in values.items()
    ]
