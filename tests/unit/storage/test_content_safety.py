"""Content safety at upload, with the real open_nsfw model on benign images only.

Bundled scikit-image photos and generated images; the refusal path is reached by settings
(a threshold of 0 refuses every image, one between two measured scores refuses one of
them), never by shipping or fetching an explicit image.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2
from numpy.typing import NDArray
from PIL import Image
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import func, select

from gouache.contracts.storage.v1 import storage_pb2
from gouache.db import new_id
from gouache.imaging.codec import DecodedImage, validate_and_decode
from services.storage.domain import CatalogEntry
from services.storage.domain.screening import ContentSafety
from services.storage.settings import StorageSettings
from services.storage.store import images
from tests.e2e.images import small
from tests.unit.storage.support import (
    Harness,
    image_bytes,
    shared_scorer,
    start_harness,
    stop_harness,
)

# The default threshold (0.8) is far above every benign image here (all score below 0.05);
# 0 refuses everything.
REFUSE_ALL: dict[str, Any] = {"nsfw_threshold": 0.0, "max_upload_bytes": 256 * 1024}
PHOTOS = ("astronaut", "chelsea", "coffee")
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path, **REFUSE_ALL)
    try:
        yield harness
    finally:
        await stop_harness(harness)


def _gray_png(side: int = 64) -> bytes:
    """A flat mid-grey image: open_nsfw scores it 0.198 (measured), the highest benign
    score found, above a threshold of 0.1 where random noise (0.004) stays below."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    raw = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    info = error_details_pb2.ErrorInfo()
    assert status_pb2.Status.FromString(raw).details[0].Unpack(info)
    return info


async def _refused_stream(
    storage: Harness, data: bytes, metadata: Metadata | None = None, **header: str
) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await storage.upload(data, metadata=metadata or storage.auth(), **header)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    info = _error_info(caught.value)
    assert info.reason == "unsafe_content"
    assert info.metadata["field"] == "image"
    return caught.value.details() or ""


async def _image_rows(storage: Harness) -> int:
    async with storage.service.library.store.reads() as session:  # type: ignore[attr-defined]
        return int((await session.execute(select(func.count()).select_from(images))).scalar_one())


async def _sign(storage: Harness, kind: str = "content") -> storage_pb2.SignUploadResponse:
    response: storage_pb2.SignUploadResponse = await storage.stub.SignUpload(
        storage_pb2.SignUploadRequest(filename="photo.png", content_type="image/png", kind=kind),
        metadata=storage.auth(),
        timeout=5,
    )
    return response


async def test_a_streamed_upload_at_the_threshold_is_refused_and_nothing_is_stored(
    strict: Harness,
) -> None:
    for kind in ("content", "style"):
        message = await _refused_stream(strict, small("astronaut", 128), kind=kind)
        assert "refused by the content-safety filter" in message
        assert "nothing was stored" in message
        assert "Upload a different image" in message
    assert strict.stored_files() == []
    assert await _image_rows(strict) == 0
    styles = await strict.stub.ListStyles(
        storage_pb2.ListStylesRequest(curated=False), metadata=strict.auth(), timeout=5
    )
    assert list(styles.styles) == []


async def test_a_signed_put_at_the_threshold_is_refused_and_keeps_its_reservation(
    tmp_path: Path,
) -> None:
    data = small("chelsea", 128)
    strict = await start_harness(tmp_path, **REFUSE_ALL)
    try:
        ticket = await _sign(strict, kind="style")
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await http.put(
                strict.local(ticket.upload_url), content=data, headers={"Content-Type": "image/png"}
            )
        assert refused.status_code == 400, refused.text
        body = refused.json()
        assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "refused by the content-safety filter" in body["message"]
        assert [detail["reason"] for detail in body["details"]] == ["unsafe_content"]
        assert strict.stored_files() == []
        assert await _image_rows(strict) == 0
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await strict.stub.GetImage(
                storage_pb2.GetImageRequest(image_id=ticket.image_id),
                metadata=strict.auth(),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        # The reservation is not used up: a job naming it is told the upload is pending.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await strict.stub.ResolveImageUrl(
                storage_pb2.ResolveImageUrlRequest(url=ticket.file_url),
                metadata=strict.auth(),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "has not finished" in (caught.value.details() or "")
    finally:
        await stop_harness(strict)

    # The same signed URL still takes an image once the service accepts it.
    lenient = await start_harness(tmp_path, max_upload_bytes=256 * 1024)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            stored = await http.put(
                lenient.local(ticket.upload_url),
                content=data,
                headers={"Content-Type": "image/png"},
            )
        assert stored.status_code == 201, stored.text
        assert stored.json()["image_id"] == ticket.image_id
        assert 0.0 <= stored.json()["nsfw_score"] < 0.8
    finally:
        await stop_harness(lenient)


async def test_the_default_threshold_accepts_bundled_photos_and_records_their_scores(
    storage: Harness, http: httpx.AsyncClient
) -> None:
    assert storage.settings.nsfw_threshold == 0.8
    for name in PHOTOS:
        data = small(name, 128)
        expected = shared_scorer().score(validate_and_decode(data).pixels)
        assert 0.0 <= expected < 0.05, (name, expected)

        streamed = await storage.upload(data, metadata=storage.auth(), kind="content")
        assert streamed.HasField("nsfw_score")
        assert streamed.nsfw_score == pytest.approx(expected, rel=1e-5, abs=1e-7)

        ticket = await _sign(storage, kind="style")
        put = await http.put(
            storage.local(ticket.upload_url), content=data, headers={"Content-Type": "image/png"}
        )
        assert put.status_code == 201, put.text
        assert put.json()["nsfw_score"] == pytest.approx(expected, rel=1e-5, abs=1e-7)

        for image_id in (streamed.image_id, ticket.image_id):
            described = await storage.stub.GetImage(
                storage_pb2.GetImageRequest(image_id=image_id), metadata=storage.auth(), timeout=5
            )
            assert described.nsfw_score == pytest.approx(expected, rel=1e-5, abs=1e-7)
            record = await storage.service.library.store.get_image(image_id)
            assert record is not None
            assert record.nsfw_score == pytest.approx(expected, rel=1e-6)


def _observed(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_threshold_between_two_scores_refuses_one_and_accepts_the_other(
    tmp_path: Path,
) -> None:
    gray, noise = _gray_png(), image_bytes(size=(64, 64))
    assert shared_scorer().score(validate_and_decode(gray).pixels) > 0.1
    scored = _observed("gouache_storage_nsfw_seconds_count")
    above = _observed("gouache_storage_nsfw_score_count") - _observed(
        "gouache_storage_nsfw_score_bucket", le="0.1"
    )
    storage = await start_harness(tmp_path, nsfw_threshold=0.1)
    try:
        await _refused_stream(storage, gray)
        accepted = await storage.upload(noise, metadata=storage.auth())
        assert accepted.nsfw_score < 0.1
        assert len(storage.stored_files()) == 1
        assert await _image_rows(storage) == 1
        # Both were scored, the refused one included; the metrics show it above 0.1.
        assert _observed("gouache_storage_nsfw_seconds_count") == scored + 2
        now_above = _observed("gouache_storage_nsfw_score_count") - _observed(
            "gouache_storage_nsfw_score_bucket", le="0.1"
        )
        assert now_above == above + 1
    finally:
        await stop_harness(storage)


async def test_results_written_by_services_are_not_scored_but_their_other_uploads_are(
    strict: Harness,
) -> None:
    result = await strict.upload(
        image_bytes(seed=3),
        metadata=strict.service_auth(),
        kind="result",
        owner_id="usr_alice",
        image_id=new_id("img"),
    )
    assert result.kind == "result"
    assert not result.HasField("nsfw_score")
    await _refused_stream(
        strict,
        image_bytes(seed=4),
        strict.service_auth(),
        kind="content",
        owner_id="usr_alice",
    )
    assert await _image_rows(strict) == 1


async def test_with_the_filter_off_nothing_is_scored_or_refused(tmp_path: Path) -> None:
    storage = await start_harness(tmp_path, nsfw_filter=False, nsfw_threshold=0.0)
    try:
        image = await storage.upload(small("coffee", 64), metadata=storage.auth())
        assert not image.HasField("nsfw_score")
        record = await storage.service.library.store.get_image(image.image_id)
        assert record is not None
        assert record.nsfw_score is None
    finally:
        await stop_harness(storage)


async def test_curated_styles_are_scored_but_not_refused(strict: Harness) -> None:
    view, created = await strict.service.library.add_curated_style(
        small("rocket", 64), CatalogEntry(title="Rocket"), filename="rocket.png"
    )
    assert created
    assert view.image.nsfw_score is not None
    assert len(strict.stored_files()) == 1


class _Recording:
    """The real scorer, noting what it was given and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], bool]] = []

    def score(self, pixels: NDArray[np.uint8]) -> float:
        on_main = threading.current_thread() is threading.main_thread()
        self.calls.append((pixels.shape, on_main))
        return shared_scorer().score(pixels)


async def test_each_upload_is_decoded_once_and_scored_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[int] = []

    def counting_decode(data: bytes, **kwargs: Any) -> DecodedImage:
        decodes.append(len(data))
        return validate_and_decode(data, **kwargs)

    monkeypatch.setattr("services.storage.domain.screening.validate_and_decode", counting_decode)
    recording = _Recording()
    storage = await start_harness(tmp_path, scorer=recording)
    try:
        data = small("astronaut", 96)
        await storage.upload(data, metadata=storage.auth())
        assert decodes == [len(data)]
        assert recording.calls == [((96, 96, 3), False)]
    finally:
        await stop_harness(storage)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nsfw_threshold": 1.5}, "must be within 0 and 1"),
        ({"nsfw_threshold": -0.1}, "NSFW_FILTER=false turns the check off"),
        ({"nsfw_threads": 0}, "must be positive"),
    ],
)
def test_settings_refuse_a_threshold_outside_0_to_1(
    tmp_path: Path, overrides: dict[str, float], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        StorageSettings(state_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def test_the_threshold_of_the_domain_is_a_probability_too() -> None:
    with pytest.raises(ValueError, match="within 0 and 1"):
        ContentSafety(scorer=shared_scorer(), threshold=2.0)
    assert ContentSafety(scorer=shared_scorer(), threshold=0.0).refuses(0.0)
    assert not ContentSafety(scorer=shared_scorer(), threshold=0.8).refuses(0.79)


def test_the_service_names_a_bad_threshold_in_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GOUACHE_")}
    env |= {"GOUACHE_STORAGE_NSFW_THRESHOLD": "2", "GOUACHE_STORAGE_STATE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "services.storage"],
        cwd=Path(__file__).resolve().parents[3],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: GOUACHE_STORAGE_NSFW_THRESHOLD: must be within 0 and 1 (a probability), got "
        "2.0; GOUACHE_STORAGE_NSFW_FILTER=false turns the check off"
    )


async def test_a_refused_upload_is_told_to_the_refusal_hook(strict: Harness) -> None:
    """The service passes this hook to the audit log (upload.refused_unsafe)."""
    told: list[tuple[str, str, float | None]] = []

    async def hook(owner_id: str, image_id: str, score: float | None) -> None:
        told.append((owner_id, image_id, score))

    strict.service.library._on_refused = hook
    await _refused_stream(strict, small("astronaut", 128), kind="content")
    ((owner, image_id, score),) = told
    assert owner == "usr_alice"
    assert image_id.startswith("img_")
    assert score is not None
    assert score >= 0.0
