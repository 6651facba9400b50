"""A batch through the REST edge on the embedded mesh: three contents, one style, one webhook."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gouache.cli.main import main as gouache
from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from gouache.imaging.codec import validate_and_decode
from tests.e2e.images import small

pytestmark = pytest.mark.slow


def _user(admin: GouacheClient, base_url: str) -> GouacheClient:
    """A fresh non-admin user with an API key, created through the REST API."""
    return GouacheClient(base_url, _api_key(admin, base_url))


def _api_key(admin: GouacheClient, base_url: str) -> str:
    """The API key of a fresh non-admin user, created through the REST API."""
    email = f"batch-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        created = http.post("/v1/users", json={"email": email, "password": "correct horse battery"})
        assert created.status_code == 200, created.text
        user_id = created.json()["user_id"]
        key = http.post("/v1/api-keys", json={"name": "e2e", "user_id": user_id})
        assert key.status_code == 200, key.text
    return str(key.json()["api_key"])


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, object]]]]]:
    """A local webhook receiver: records (event header, JSON body) of each POST."""
    received: list[tuple[str, dict[str, object]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((self.headers.get("x-gouache-event", ""), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_batch_of_three_succeeds_and_posts_one_webhook(
    mesh: Mesh,
    admin: GouacheClient,
    receiver: tuple[str, list[tuple[str, dict[str, object]]]],
) -> None:
    url, received = receiver
    user = _user(admin, mesh.config.public_url)
    hook = httpx.post(
        f"{mesh.config.public_url}/v1/webhooks",
        json={"url": url, "secret": "batch-secret-0123456789", "events": ["batch.finished"]},
        headers={"authorization": f"Bearer {user.token()}"},
    )
    assert hook.status_code == 200, hook.text
    assert hook.json()["webhook"]["events"] == ["batch.finished"]
    contents = [
        user.upload(small(name, 48), filename=f"{name}.png")
        for name in ("chelsea", "coffee", "rocket")
    ]
    style = user.upload(small("hubble_deep_field", 48), filename="stars.png", kind="style")
    key = uuid.uuid4().hex
    created = user.create_batch(contents, [style], model_version="adain", idempotency_key=key)
    assert created["batch_id"].startswith("bat_")
    assert created["status"] == "running"
    assert created["lane"] == "export"
    assert [item["content_url"] for item in created["items"]] == contents
    again = user.create_batch(contents, [style], model_version="adain", idempotency_key=key)
    assert again["batch_id"] == created["batch_id"]

    updates: list[str] = []
    done = user.wait_batch(
        created["batch_id"],
        timeout_s=240,
        poll_s=0.5,
        on_update=lambda b: updates.append(b["status"]),
    )
    assert done["status"] == "succeeded", done
    assert done["counts"]["succeeded"] == 3
    assert "finished_at" in done
    items = user.batch_items(created["batch_id"], page_size=2)
    assert [item["index"] for item in items] == [0, 1, 2]
    for item in items:
        assert item["status"] == "succeeded"
        image = validate_and_decode(user.download(item["result_url"]))
        assert (image.width, image.height) == (48, 48)
    listed = user.list_batches()
    assert [b["batch_id"] for b in listed["batches"]] == [created["batch_id"]]

    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # a second delivery, if any, would come right after the first
    assert len(received) == 1, received
    event, body = received[0]
    assert event == "batch.finished"
    batch = body["batch"]
    assert isinstance(batch, dict)
    assert batch["batch_id"] == created["batch_id"]
    assert batch["status"] == "succeeded"
    assert batch["counts"] == {
        "pending": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "canceled": 0,
    }


def test_bad_item_gets_400_naming_it_and_another_users_batch_is_404(
    mesh: Mesh, admin: GouacheClient
) -> None:
    user = _user(admin, mesh.config.public_url)
    content = user.upload(small("coffee", 48), filename="coffee.png")
    style = user.upload(small("rocket", 48), filename="rocket.png", kind="style")
    headers = {"authorization": f"Bearer {user.token()}"}
    response = httpx.post(
        f"{mesh.config.public_url}/v1/batches",
        json={"content_urls": [content, ""], "style_urls": [style], "model_version": "adain"},
        headers=headers,
    )
    assert response.status_code == 400, response.text
    assert "content_urls[1]" in response.json()["message"]
    assert user.list_batches().get("batches", []) == []
    batch = user.create_batch([content], [style], model_version="adain")
    other = _user(admin, mesh.config.public_url)
    response = httpx.get(
        f"{mesh.config.public_url}/v1/batches/{batch['batch_id']}",
        headers={"authorization": f"Bearer {other.token()}"},
    )
    assert response.status_code == 404, response.text
    canceled = user.cancel_batch(batch["batch_id"])
    assert canceled["status"] in ("canceled", "succeeded")


def test_cli_batch_stylizes_a_directory(
    mesh: Mesh, admin: GouacheClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "catalog"
    photos.mkdir()
    for name in ("chelsea", "coffee"):
        (photos / f"{name}.png").write_bytes(small(name, 40))
    (photos / "notes.txt").write_text("not an image")
    style = tmp_path / "stars.png"
    style.write_bytes(small("hubble_deep_field", 40))
    out = tmp_path / "out"
    key = _api_key(admin, mesh.config.public_url)
    argv = ["batch", str(photos), "--style", str(style), "--model", "adain", "-o", str(out)]
    code = gouache([*argv, "--url", mesh.config.public_url, "--api-key", key, "--timeout", "240"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "succeeded"
    assert summary["counts"]["succeeded"] == 2
    assert sorted(Path(p).name for p in summary["written"]) == ["chelsea.png", "coffee.png"]
    for name in ("chelsea", "coffee"):
        image = validate_and_decode((out / f"{name}.png").read_bytes())
        assert (image.width, image.height) == (40, 40)


def test_the_batch_benchmark_runs_and_reports(mesh: Mesh, admin: GouacheClient) -> None:
    """A smoke of loadtests/batch_throughput.py with tiny counts on the session's mesh."""
    from loadtests.batch_throughput import measure

    with _user(admin, mesh.config.public_url) as user:
        report = measure(user, items=2, side=32, timeout_s=240)
    for phase in ("batch", "single"):
        assert report[phase]["items"] == 2
        assert report[phase]["succeeded"] == 2
        assert report[phase]["wall_s"] > 0
        assert report[phase]["items_per_s"] > 0
    assert report["batch"]["status"] == "succeeded"
    assert report["batch_vs_single_wall"] > 0
