"""A MinIO server of `gouache up --backend postgres`, and where its binary is.

One drive in `<state>/minio/data`, the S3 API on 127.0.0.1 only, no web console, root
credentials generated once and kept in `<state>/secrets.json`. Storage creates its bucket
at start. The test fixtures (`tests/fixtures/minio.py`) find the binary and wait for the
server with the same functions.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import MinioException

HOST = "127.0.0.1"
BUCKET = "gouache"
# scripts/ensure-tools.sh builds it into the checkout's .tools/bin.
TOOL = Path(__file__).resolve().parents[3] / ".tools" / "bin" / "minio"
INSTALL_HINT = "run `bash scripts/ensure-tools.sh minio`"


class MinioUnavailable(RuntimeError):
    """MinIO is not installed; the message says how to build it."""


def find_minio(tool: Path = TOOL) -> Path | None:
    """The minio binary in the checkout's .tools/bin, else on PATH, else None."""
    if tool.exists():
        return tool
    found = shutil.which("minio")
    return Path(found) if found else None


def minio_ready(endpoint: str, access_key: str, secret_key: str) -> bool:
    """/minio/health/ready answers 200 and a listing with these keys works.

    The health check can pass before the object layer is initialised; requests then get
    503 XMinioServerNotInitialized with "Retry-After: 60", which a default client obeys,
    so this probe neither retries nor waits."""
    try:
        with urllib.request.urlopen(f"http://{endpoint}/minio/health/ready", timeout=1) as reply:
            if reply.status != 200:
                return False
        probe = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=False,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=1, read=2), retries=urllib3.Retry(total=0)
            ),
        )
        probe.list_buckets()
    except (OSError, urllib.error.URLError, MinioException, urllib3.exceptions.HTTPError):
        return False
    return True


class LocalMinio:
    """One single-drive server in `root`; its command, environment and readiness."""

    def __init__(
        self, root: Path, port: int, access_key: str, secret_key: str, binary: Path
    ) -> None:
        self.root = root
        self.port = port
        self.access_key = access_key
        self.secret_key = secret_key
        self.binary = binary

    @classmethod
    def locate(cls, root: Path, port: int, access_key: str, secret_key: str) -> LocalMinio:
        binary = find_minio()
        if binary is None:
            raise MinioUnavailable(
                f"MinIO is not installed (no {TOOL}, none on PATH): {INSTALL_HINT}"
            )
        return cls(root, port, access_key, secret_key, binary)

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def argv(self) -> list[str]:
        """The server's command; makes its directory, readable by this user only."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        (self.root / "data").mkdir(exist_ok=True)
        return [
            str(self.binary),
            "server",
            str(self.root / "data"),
            "--address",
            self.endpoint,
            # Its own: a ~/.minio/certs with certificates would turn the API to TLS.
            "--certs-dir",
            str(self.root / "certs"),
        ]

    def env(self) -> dict[str, str]:
        return {
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }

    def ready(self) -> bool:
        return minio_ready(self.endpoint, self.access_key, self.secret_key)

    def storage_env(self) -> dict[str, str]:
        """Storage's settings (without GOUACHE_STORAGE_) for a bucket on this server."""
        return {
            "BLOB_BACKEND": "s3",
            "S3_ENDPOINT": self.endpoint,
            "S3_BUCKET": BUCKET,
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_SECURE": "false",
            "S3_CREATE_BUCKET": "true",
        }
