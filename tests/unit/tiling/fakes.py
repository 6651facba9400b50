"""In-memory stand-ins for storage, inference and the event bus, for JobRunner tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from gouache.imaging import codec
from gouache.results import ResultLink
from services.tiling.domain import JobParams, Pixels, StoredImage, StyleInput


class FakeStorage:
    """Images by id; uploads recorded; the same id and bytes again return the first image."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.uploads: list[dict[str, Any]] = []
        self.download_errors: list[BaseException] = []
        self.upload_errors: list[BaseException] = []
        self.downloads: list[str] = []

    def put(self, image_id: str, pixels: Pixels, fmt: str = "png") -> None:
        self.images[image_id] = codec.encode(pixels, fmt)

    async def download(self, image_id: str) -> bytes:
        self.downloads.append(image_id)
        if self.download_errors:
            raise self.download_errors.pop(0)
        return self.images[image_id]

    async def upload(
        self,
        *,
        image_id: str,
        owner_id: str,
        filename: str,
        content_type: str,
        data: bytes,
        metadata_json: str,
        link_ttl_s: int = 0,
    ) -> StoredImage:
        if self.upload_errors:
            raise self.upload_errors.pop(0)
        self.uploads.append(
            {
                "image_id": image_id,
                "owner_id": owner_id,
                "filename": filename,
                "content_type": content_type,
                "data": data,
                "metadata_json": metadata_json,
                "link_ttl_s": link_ttl_s,
            }
        )
        self.images.setdefault(image_id, data)
        decoded = codec.validate_and_decode(data)
        link = None
        if link_ttl_s:
            link = ResultLink(
                url=f"http://files.test/{image_id}?sig=fake",
                url_expires_at=datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=link_ttl_s),
            )
        return StoredImage(image_id=image_id, width=decoded.width, height=decoded.height, link=link)


@dataclass
class BatchCall:
    model_version: str
    tile_shapes: list[tuple[int, ...]]
    style_keys: list[str]
    style_shapes: list[tuple[int, ...]]
    params: JobParams
    endpoint: str = ""


@dataclass
class FakeInference:
    """Inverts every tile (255 - pixel), records each call, and can fail or run a hook."""

    calls: list[BatchCall] = field(default_factory=list)
    style_pixels: list[Pixels] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    after_call: Callable[[int], None] | None = None

    async def stylize_batch(
        self,
        model_version: str,
        tiles: Sequence[Pixels],
        styles: Sequence[StyleInput],
        params: JobParams,
        *,
        endpoint: str = "",
    ) -> list[Pixels]:
        self.calls.append(
            BatchCall(
                model_version=model_version,
                tile_shapes=[tile.shape for tile in tiles],
                style_keys=[style.key for style in styles],
                style_shapes=[style.pixels.shape for style in styles],
                params=params,
                endpoint=endpoint,
            )
        )
        self.style_pixels = [style.pixels for style in styles]
        if self.errors:
            raise self.errors.pop(0)
        outputs = [(255 - tile).astype(np.uint8) for tile in tiles]
        if self.after_call is not None:
            self.after_call(len(self.calls))
        return outputs


@dataclass
class FakeEvents:
    """Records every published event as (kind, fields)."""

    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def progress(
        self, job_id: str, *, event_id: str, fraction: float, stage: str, started_at: datetime
    ) -> None:
        self.published.append(
            (
                "progress",
                {
                    "job_id": job_id,
                    "event_id": event_id,
                    "fraction": fraction,
                    "stage": stage,
                    "started_at": started_at,
                },
            )
        )

    async def succeeded(
        self,
        job_id: str,
        *,
        event_id: str,
        result_image_id: str,
        compute_ms: int,
        tiles: int,
        output_width: int,
        output_height: int,
        device: str = "",
        link: ResultLink | None = None,
    ) -> None:
        self.published.append(
            (
                "succeeded",
                {
                    "job_id": job_id,
                    "event_id": event_id,
                    "result_image_id": result_image_id,
                    "compute_ms": compute_ms,
                    "tiles": tiles,
                    "output_width": output_width,
                    "output_height": output_height,
                    # Only when the runner could tell it, so older assertions stay exact.
                    **({"device": device} if device else {}),
                    **({"link": link} if link is not None else {}),
                },
            )
        )

    async def failed(
        self, job_id: str, *, event_id: str, error_code: str, error_message: str
    ) -> None:
        self.published.append(
            (
                "failed",
                {
                    "job_id": job_id,
                    "event_id": event_id,
                    "error_code": error_code,
                    "error_message": error_message,
                },
            )
        )

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.published if name == kind]
