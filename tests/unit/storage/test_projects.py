"""Images belong to a project: its members share them, everyone else gets NOT_FOUND, and a
viewer's token (no write:* scope) can read but neither upload nor delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from gouache.contracts.storage.v1 import storage_pb2
from tests.unit.storage.support import Harness, image_bytes

Metadata = tuple[tuple[str, str], ...]
TEAM = "prj_01JTEAM0000000000000000000"
OTHER_TEAM = "prj_01JOTHER000000000000000000"
USER_SCOPES = ("read:jobs", "write:jobs", "read:models", "write:webhooks")
VIEWER_SCOPES = ("read:jobs", "read:models")


def member(storage: Harness, user: str, project: str, role: str = "editor") -> Metadata:
    scopes = VIEWER_SCOPES if role == "viewer" else USER_SCOPES
    token = storage.signer.token(
        user, scopes=scopes, extra={"project": project, "project_role": role}
    )
    return (("authorization", f"Bearer {token}"),)


async def _code(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _reads(storage: Harness, image: storage_pb2.Image) -> list[Callable[[Metadata], Any]]:
    return [
        lambda md: storage.stub.GetImage(
            storage_pb2.GetImageRequest(image_id=image.image_id), metadata=md, timeout=5
        ),
        lambda md: storage.stub.SignDownload(
            storage_pb2.SignDownloadRequest(image_id=image.image_id), metadata=md, timeout=5
        ),
        lambda md: storage.stub.ResolveImageUrl(
            storage_pb2.ResolveImageUrlRequest(url=image.file_url), metadata=md, timeout=5
        ),
    ]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("editor in the team", grpc.StatusCode.OK),
        ("viewer in the team", grpc.StatusCode.OK),
        ("the uploader in their personal project", grpc.StatusCode.NOT_FOUND),
        ("editor in another team", grpc.StatusCode.NOT_FOUND),
        ("stranger", grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_a_projects_image_is_seen_by_its_members_only(
    storage: Harness, who: str, expected: grpc.StatusCode
) -> None:
    image = await storage.upload(image_bytes(seed=7), metadata=member(storage, "usr_alice", TEAM))
    callers = {
        "editor in the team": member(storage, "usr_bob", TEAM),
        "viewer in the team": member(storage, "usr_carol", TEAM, "viewer"),
        "the uploader in their personal project": storage.auth("usr_alice"),
        "editor in another team": member(storage, "usr_bob", OTHER_TEAM),
        "stranger": storage.auth("usr_mallory"),
    }
    for read in _reads(storage, image):
        assert await _code(read(callers[who])) == expected, who
    downloaded = await _code(storage.download(image.image_id, callers[who]))
    assert downloaded == expected, who


async def test_styles_are_listed_per_project(storage: Harness) -> None:
    team_style = await storage.upload(
        image_bytes(seed=8), metadata=member(storage, "usr_alice", TEAM), kind="style"
    )
    own_style = await storage.upload(
        image_bytes(seed=9), metadata=storage.auth("usr_alice"), kind="style"
    )

    async def listed(md: Metadata) -> list[str]:
        response = await storage.stub.ListStyles(
            storage_pb2.ListStylesRequest(curated=False), metadata=md, timeout=5
        )
        return [style.file_url.rsplit("/", 1)[1] for style in response.styles]

    assert await listed(member(storage, "usr_bob", TEAM, "viewer")) == [team_style.image_id]
    assert await listed(storage.auth("usr_alice")) == [own_style.image_id]
    assert await listed(member(storage, "usr_bob", OTHER_TEAM)) == []


async def test_a_viewer_neither_uploads_nor_deletes(storage: Harness) -> None:
    image = await storage.upload(image_bytes(seed=10), metadata=member(storage, "usr_alice", TEAM))
    viewer = member(storage, "usr_carol", TEAM, "viewer")
    with pytest.raises(grpc.aio.AioRpcError) as upload:
        await storage.upload(image_bytes(seed=11), metadata=viewer)
    assert upload.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "write:jobs" in (upload.value.details() or "")
    delete = storage.stub.DeleteImage(
        storage_pb2.DeleteImageRequest(image_id=image.image_id), metadata=viewer, timeout=5
    )
    assert await _code(delete) == grpc.StatusCode.PERMISSION_DENIED
    # An editor of the project deletes it; then nobody sees it.
    editor = member(storage, "usr_bob", TEAM)
    await storage.stub.DeleteImage(
        storage_pb2.DeleteImageRequest(image_id=image.image_id), metadata=editor, timeout=5
    )
    get = storage.stub.GetImage(
        storage_pb2.GetImageRequest(image_id=image.image_id), metadata=editor, timeout=5
    )
    assert await _code(get) == grpc.StatusCode.NOT_FOUND


async def test_a_service_resolves_for_the_project_it_names(storage: Harness) -> None:
    image = await storage.upload(image_bytes(seed=12), metadata=member(storage, "usr_alice", TEAM))
    service = storage.service_auth()
    resolved = await storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=image.file_url, owner_id=TEAM),
        metadata=service,
        timeout=5,
    )
    assert resolved.image.image_id == image.image_id
    elsewhere = storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=image.file_url, owner_id="usr_alice"),
        metadata=service,
        timeout=5,
    )
    assert await _code(elsewhere) == grpc.StatusCode.NOT_FOUND
