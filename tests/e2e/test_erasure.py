"""Deletion and a user's erasure through the edge, on the whole mesh (SQLite and files, then
PostgreSQL and MinIO): DELETE /v1/images/{id}, DELETE /v1/jobs/{id}, and POST
/v1/users/{id}:erase, after which no table of any service's database holds the user's id
and the blob store holds none of their images."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import httpx

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small


def _new_user(admin: GouacheClient, base_url: str) -> tuple[str, str]:
    email = f"erase-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        created = http.post("/v1/users", json={"email": email, "password": "correct horse battery"})
        assert created.status_code == 200, created.text
        user_id = str(created.json()["user_id"])
        key = http.post("/v1/api-keys", json={"name": "erase", "user_id": user_id})
        assert key.status_code == 200, key.text
    return user_id, str(key.json()["api_key"])


def _http(mesh: Mesh, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=mesh.config.public_url,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def _image_id(file_url: str) -> str:
    return file_url.rstrip("/").rsplit("/", 1)[-1]


def _rows_naming(mesh: Mesh, needle: str) -> list[str]:
    """`table.column` of every value, in every table of every service's database, that
    contains `needle` (text, or bytes holding its UTF-8)."""
    if mesh.postgres is not None:
        return asyncio.run(_postgres_rows_naming(mesh.postgres.url(), needle))
    found = []
    for db in sorted(mesh.config.state_dir.glob("*.db")):
        with sqlite3.connect(db) as connection:
            tables = [
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                columns = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
                for row in connection.execute(f'SELECT * FROM "{table}"'):
                    for column, value in zip(columns, row, strict=True):
                        if _holds(value, needle):
                            found.append(f"{db.name}:{table}.{column}")
    return found


def _holds(value: object, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, bytes | bytearray | memoryview):
        return needle.encode() in bytes(value)
    return False


async def _postgres_rows_naming(url: str, needle: str) -> list[str]:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        found = []
        for record in tables:
            table = record["table_name"]
            for row in await connection.fetch(f'SELECT * FROM "{table}"'):
                for column, value in row.items():
                    if _holds(value, needle):
                        found.append(f"{table}.{column}")
        return found
    finally:
        await connection.close()


def _blob_names(mesh: Mesh) -> list[str]:
    if mesh.minio is not None:
        from minio import Minio

        env = mesh.minio.storage_env()
        client = Minio(env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"], secure=False)
        return [str(o.object_name) for o in client.list_objects(env["S3_BUCKET"], recursive=True)]
    root: Path = mesh.config.state_dir / "blobs"
    return [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]


def test_delete_an_image_and_a_job_through_the_edge(mesh: Mesh, admin: GouacheClient) -> None:
    _user_id, key = _new_user(admin, mesh.config.public_url)
    with GouacheClient(mesh.config.public_url, key) as user:
        content = user.upload(small("astronaut", 40), filename="a.png")
        style = user.upload(small("coffee", 40), filename="c.png", kind="style")
        job = user.create_job(content, [style], model_version="adain", no_cache=True)
        done = user.wait(job.job_id, timeout_s=120)
        assert done.status == "succeeded"
        token = user.token()
    result_id = done.result_image_id
    with _http(mesh, token) as http:
        # A job's result goes with its job, not on its own.
        refused = http.delete(f"/v1/images/{result_id}")
        assert refused.status_code == 400, refused.text
        assert "DELETE /v1/jobs" in refused.json()["message"]
        assert http.delete(f"/v1/images/{_image_id(content)}").status_code == 200
        assert http.get(f"/v1/images/{_image_id(content)}").status_code == 404
        assert http.delete(f"/v1/images/{_image_id(content)}").status_code == 404
        deleted = http.delete(f"/v1/jobs/{job.job_id}")
        assert deleted.status_code == 200, deleted.text
        assert http.get(f"/v1/jobs/{job.job_id}").status_code == 404
        assert http.get(f"/v1/images/{result_id}").status_code == 404
    names = " ".join(_blob_names(mesh))
    assert _image_id(content) not in names
    assert result_id not in names
    assert _image_id(style) in names


def test_after_erasure_nothing_of_the_user_is_left(mesh: Mesh, admin: GouacheClient) -> None:
    user_id, key = _new_user(admin, mesh.config.public_url)
    with GouacheClient(mesh.config.public_url, key) as user:
        content = user.upload(small("astronaut", 40), filename="a.png")
        style = user.upload(small("coffee", 40), filename="c.png", kind="style")
        job = user.create_job(content, [style], model_version="adain", no_cache=True)
        done = user.wait(job.job_id, timeout_s=120)
        assert done.status == "succeeded"
        user.submit_feedback(job.job_id, 4, "my own words")
        user.create_webhook("http://127.0.0.1:9/hook", "s3cret-s3cret-s3cret", ["job.failed"])
        token = user.token()
    images = [_image_id(content), _image_id(style), done.result_image_id]
    assert _rows_naming(mesh, user_id), "the user's rows should be there before the erasure"

    # Another user may not erase someone else.
    _other_id, other_key = _new_user(admin, mesh.config.public_url)
    with GouacheClient(mesh.config.public_url, other_key) as other, _http(mesh, other.token()) as o:
        refused = o.post(f"/v1/users/{user_id}:erase", json={})
        assert refused.status_code == 403, refused.text
    with _http(mesh, token) as http:
        accepted = http.post(f"/v1/users/{user_id}:erase", json={})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["status"] in ("pending", "done")
    with _http(mesh, admin.token()) as http:
        deadline = time.monotonic() + 60
        while True:
            status = http.post(f"/v1/users/{user_id}:erase", json={}).json()
            if status["status"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status["status"] == "done", status
        assert status["finished_at"]

    assert _rows_naming(mesh, user_id) == []
    names = " ".join(_blob_names(mesh))
    assert [image for image in images if image in names] == []
    # The API key went with the account.
    answer = httpx.post(
        f"{mesh.config.public_url}/v1/auth/token",
        json={"grant_type": "client_credentials", "api_key": key},
        timeout=30,
    )
    assert answer.status_code == 401, answer.text
