"""A small typed Kubernetes API client: the reads and writes the operator makes, over httpx."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from gouache_operator.resources import GROUP, VERSION

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE = "application/merge-patch+json"

Json = dict[str, Any]


class KubeError(Exception):
    """An API call the server refused; `status` is the HTTP code, `reason` the API's reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate to it."""

    server: str
    token: str = ""
    verify: ssl.SSLContext | bool = True
    cert: tuple[str, str] | None = None


def _data_file(data: str, suffix: str) -> str:
    with tempfile.NamedTemporaryFile(prefix="gouache-kube-", suffix=suffix, delete=False) as handle:
        handle.write(base64.b64decode(data))
    return handle.name


def from_kubeconfig(path: Path, context: str = "") -> Connection:
    """The connection of a kubeconfig's current (or named) context."""
    config = yaml.safe_load(path.read_text()) or {}
    name = context or config.get("current-context", "")
    contexts = {c["name"]: c.get("context", {}) for c in config.get("contexts", [])}
    if name not in contexts:
        raise ValueError(f"kubeconfig {path} has no context {name!r}")
    chosen = contexts[name]
    clusters = {c["name"]: c.get("cluster", {}) for c in config.get("clusters", [])}
    users = {u["name"]: u.get("user", {}) for u in config.get("users", [])}
    cluster = clusters.get(chosen.get("cluster", ""), {})
    user = users.get(chosen.get("user", ""), {})
    verify: ssl.SSLContext | bool = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    elif cluster.get("certificate-authority-data"):
        verify = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    elif cluster.get("certificate-authority"):
        verify = ssl.create_default_context(cafile=cluster["certificate-authority"])
    token = user.get("token", "")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    cert = None
    if user.get("client-certificate-data") and user.get("client-key-data"):
        cert = (
            _data_file(user["client-certificate-data"], ".crt"),
            _data_file(user["client-key-data"], ".key"),
        )
    elif user.get("client-certificate") and user.get("client-key"):
        cert = (user["client-certificate"], user["client-key"])
    return Connection(server=cluster["server"].rstrip("/"), token=token, verify=verify, cert=cert)


def discover() -> Connection:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if host and (SERVICE_ACCOUNT / "token").exists():
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return Connection(
            server=f"https://{host}:{port}",
            token=(SERVICE_ACCOUNT / "token").read_text().strip(),
            verify=ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt")),
        )
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        Path.home() / ".kube/config"
    )
    return from_kubeconfig(Path(path))


def custom_path(plural: str, namespace: str | None = None, name: str = "", sub: str = "") -> str:
    """The API path of gouache.dev resources (namespaced when `namespace` is given)."""
    base = f"/apis/{GROUP}/{VERSION}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


class KubeClient:
    """One connection pool to the API server for the operator's lifetime."""

    def __init__(self, connection: Connection, *, timeout_s: float = 30.0) -> None:
        headers = {"Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        self._http = httpx.AsyncClient(
            base_url=connection.server,
            headers=headers,
            verify=connection.verify,
            cert=connection.cert,
            timeout=timeout_s,
        )

    async def close(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        response = await self._http.request(
            method,
            path,
            json=body,
            params=dict(params or {}),
            headers={"Content-Type": content_type} if body is not None else None,
        )
        if response.status_code >= 400:
            try:
                detail = response.json()
            except ValueError:
                detail = {"reason": response.reason_phrase, "message": response.text[:500]}
            raise KubeError(
                response.status_code,
                str(detail.get("reason", response.reason_phrase)),
                str(detail.get("message", "")),
            )
        result: Json = response.json() if response.content else {}
        return result

    async def get(self, path: str) -> Json | None:
        """The object at `path`, or None when it does not exist."""
        try:
            return await self._call("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, *, labels: str = "", fields: str = "") -> list[Json]:
        """Every object of a collection, filtered by label and field selectors."""
        params = {}
        if labels:
            params["labelSelector"] = labels
        if fields:
            params["fieldSelector"] = fields
        items: list[Json] = []
        while True:
            page = await self._call("GET", path, params=params)
            items.extend(page.get("items", []))
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    async def create(self, path: str, body: Json) -> Json:
        """Creates an object in the collection at `path`."""
        return await self._call("POST", path, body=body)

    async def patch(self, path: str, body: Json) -> Json:
        """Merge-patches the object at `path` (null removes a field)."""
        return await self._call("PATCH", path, body=body, content_type=MERGE)

    async def delete(self, path: str) -> None:
        """Deletes the object at `path`; a missing object is fine."""
        try:
            await self._call("DELETE", path)
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def apply(self, path: str, name: str, body: Json) -> Json:
        """Creates the object, or merge-patches it to `body` when it exists."""
        existing = await self.get(f"{path}/{name}")
        if existing is None:
            try:
                return await self.create(path, body)
            except KubeError as exc:
                if exc.status != 409:
                    raise
        return await self.patch(f"{path}/{name}", body)

    async def post_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        warning: bool,
        component: str = "gouache-operator",
    ) -> None:
        """A core/v1 Event about an object, as `kubectl describe` shows them."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.create(f"/api/v1/namespaces/{namespace}/events", body)
