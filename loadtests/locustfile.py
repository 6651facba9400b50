"""Locust users for gouache's REST flow: upload a content image, create a job, poll it, download.

Run by `loadtests/rest_load.py`, which starts a mesh and sweeps the client counts; by hand,
against a running mesh (127.0.0.1 only):

    GOUACHE_LOAD_API_KEY=gk_... .venv/bin/locust -f loadtests/locustfile.py --headless \
        --host http://127.0.0.1:8080 -u 4 -r 4 -t 60s --only-summary

Each user gets a token and uploads one style at start; every iteration is one job as a
client runs it: sign an upload and PUT a content image (a 512 px photo whose JPEG bytes
differ per job by a comment segment, so every job is new content to the result cache),
POST /v1/jobs, then GET /v1/jobs/{id}:wait (a long poll that answers when the job is final)
or, with `GOUACHE_LOAD_POLL_S` above 0, GET /v1/jobs/{id} that often until it is final;
then GET the result. Locust reports each request, and a `JOB` entry whose time is the job's
latency as the client sees it (from the create request to the poll that saw it final).
With `GOUACHE_LOAD_RECORDS=path`, each job is also appended to that file as one JSON line
(wall-clock start and end, status, create time, the server's latency, `cached`), which
`rest_load.py` reads for exact percentiles and throughput over its measuring window.

Settings (environment): GOUACHE_LOAD_API_KEY (required), GOUACHE_LOAD_MODEL (adain),
GOUACHE_LOAD_SIDE (512), GOUACHE_LOAD_POLL_S (0: long poll), GOUACHE_LOAD_PARAMS (JSON object of
job params, default {}), GOUACHE_LOAD_RECORDS.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from functools import cache
from typing import Any

from locust import FastHttpUser, between, events, task
from PIL import Image

FINAL = frozenset({"succeeded", "failed", "canceled"})
JOB_TIMEOUT_S = 120.0

_records_lock = threading.Lock()


def _setting(name: str, default: str) -> str:
    return os.environ.get(f"GOUACHE_LOAD_{name}", default)


@cache
def _jpeg(which: str, side: int) -> bytes:
    """scikit-image's bundled photo (content) or painting-like image (style), side px, JPEG."""
    from skimage import data

    pixels = data.astronaut() if which == "content" else data.immunohistochemistry()
    image = Image.fromarray(pixels).convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def unique_jpeg(data: bytes, tag: str) -> bytes:
    """The same JPEG with a comment segment (COM, 0xFFFE) after SOI: new bytes, same pixels."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    comment = tag.encode()
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


def _record(entry: dict[str, Any]) -> None:
    path = os.environ.get("GOUACHE_LOAD_RECORDS")
    if not path:
        return
    line = json.dumps(entry, separators=(",", ":")) + "\n"
    with _records_lock, open(path, "a", encoding="utf-8") as out:
        out.write(line)


class StylizeUser(FastHttpUser):
    """One client stylizing photos back to back, as a partner script does over REST."""

    wait_time = between(0, 0)
    connection_timeout = 10.0
    network_timeout = 60.0

    def on_start(self) -> None:
        self.api_key = os.environ["GOUACHE_LOAD_API_KEY"]
        self.model = _setting("MODEL", "adain")
        self.side = int(_setting("SIDE", "512"))
        self.poll_s = float(_setting("POLL_S", "0"))
        self.params = json.loads(_setting("PARAMS", "{}"))
        with self.client.post(
            "/v1/auth/token",
            json={"grant_type": "client_credentials", "api_key": self.api_key},
            name="/v1/auth/token",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"token: HTTP {response.status_code} {response.text[:200]}")
                raise RuntimeError(f"cannot get a token: HTTP {response.status_code}")
            body = response.json()
        self.headers = {"authorization": f"Bearer {body['access_token']}"}
        self.style_url = self._upload(_jpeg("style", self.side), "style")

    def _upload(self, data: bytes, kind: str) -> str:
        signed = self.client.post(
            "/v1/uploads/sign",
            json={"filename": f"{kind}.jpg", "content_type": "image/jpeg", "kind": kind},
            headers=self.headers,
            name="/v1/uploads/sign",
        )
        signed.raise_for_status()
        body = signed.json()
        put = self.client.put(
            body["upload_url"],
            data=data,
            headers={"content-type": "image/jpeg"},
            name="PUT /v1/files/{upload}",
        )
        put.raise_for_status()
        return str(body["file_url"])

    @task
    def stylize(self) -> None:
        tag = uuid.uuid4().hex
        content_url = self._upload(unique_jpeg(_jpeg("content", self.side), tag), "content")
        wall_start = time.time()
        started = time.perf_counter()
        created = self.client.post(
            "/v1/jobs",
            json={
                "content_url": content_url,
                "style_urls": [self.style_url],
                "model_version": self.model,
                "params": self.params,
            },
            headers={**self.headers, "idempotency-key": tag},
            name="/v1/jobs",
        )
        created.raise_for_status()
        create_ms = (time.perf_counter() - started) * 1000
        job_id = created.json()["job_id"]
        job: dict[str, Any] = {}
        while time.perf_counter() - started < JOB_TIMEOUT_S:
            if self.poll_s > 0:
                response = self.client.get(
                    f"/v1/jobs/{job_id}", headers=self.headers, name="/v1/jobs/{id}"
                )
            else:
                response = self.client.get(
                    f"/v1/jobs/{job_id}:wait?timeout=30s",
                    headers=self.headers,
                    name="/v1/jobs/{id}:wait",
                )
            response.raise_for_status()
            job = response.json()
            if job.get("status") in FINAL:
                break
            if self.poll_s > 0:
                time.sleep(self.poll_s)
        latency_ms = (time.perf_counter() - started) * 1000
        status = str(job.get("status", "unknown"))
        error: Exception | None = None
        if status == "succeeded":
            result = self.client.get(str(job["result_url"]), name="GET result")
            result.raise_for_status()
        else:
            error = RuntimeError(f"job {job_id} ended {status}: {job.get('error')}")
        events.request.fire(
            request_type="JOB",
            name=f"{self.model} {self.side}px",
            response_time=latency_ms,
            response_length=0,
            exception=error,
            context={},
        )
        _record(
            {
                "start": wall_start,
                "end": time.time(),
                "status": status,
                "create_ms": round(create_ms, 2),
                "latency_ms": round(latency_ms, 2),
                "server_latency_ms": int(job.get("latency_ms") or 0),
                "cached": bool(job.get("cached", False)),
            }
        )
