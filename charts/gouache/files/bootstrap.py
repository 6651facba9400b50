"""The chart's bootstrap Job: accounts made by auth's own commands, keys written to Secrets.

Runs in the gouache image with auth's settings (GOUACHE_AUTH_* and PG* from the chart), and
only the standard library beside them. For each service account missing from the
service-keys Secret it runs `python -m services.auth create-service-account NAME... --json`
(`--role operator` for the operator), and when the admin Secret has no API key yet,
`python -m services.auth bootstrap --email EMAIL --json`; then it merge-patches the keys
into the two Secrets the chart created empty. Keys already there are left alone, so the Job
can run on every install and upgrade. Its RBAC: get and patch on those two Secrets only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNTS = ("storage", "inference", "tiling", "jobs", "feedback")
OPERATOR_ACCOUNT = "operator"
ADMIN_KEY = "api-key"
ADMIN_EMAIL = "email"
TIMEOUT_S = 30.0


class Kube:
    """GET and merge-PATCH of Secrets in one namespace, with a bearer token."""

    def __init__(self, server: str, token: str, namespace: str, context: ssl.SSLContext) -> None:
        self._server = server.rstrip("/")
        self._token = token
        self._namespace = namespace
        self._context = context

    def _call(self, method: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self._server}/api/v1/namespaces/{self._namespace}/secrets/{name}"
        request = urllib.request.Request(url, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/merge-patch+json")
        try:
            with urllib.request.urlopen(
                request, data=data, timeout=TIMEOUT_S, context=self._context
            ) as reply:
                result: dict[str, Any] = json.loads(reply.read())
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise SystemExit(
                f"bootstrap: {method} Secret {self._namespace}/{name}: HTTP {exc.code}: {detail}"
            ) from exc

    def data(self, name: str) -> dict[str, str]:
        """The Secret's values, decoded."""
        secret = self._call("GET", name)
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def add(self, name: str, values: dict[str, str]) -> None:
        """Merges values into the Secret's data."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        self._call("PATCH", name, {"data": encoded})


def auth_command(*args: str) -> dict[str, Any]:
    """`python -m services.auth ARGS --json` with this process's settings; its JSON."""
    command = [sys.executable, "-m", "services.auth", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"bootstrap: {' '.join(command[1:4])} exited with {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(kube: Kube, *, keys_secret: str, admin_secret: str, admin_email: str) -> list[str]:
    """Fills in what is missing; returns what was written (names only, never keys)."""
    written: list[str] = []
    present = kube.data(keys_secret)
    missing = [name for name in SERVICE_ACCOUNTS if not present.get(name)]
    if missing:
        keys = auth_command("create-service-account", *missing)
        kube.add(keys_secret, {name: str(keys[name]) for name in missing})
        written += missing
    if not present.get(OPERATOR_ACCOUNT):
        keys = auth_command("create-service-account", OPERATOR_ACCOUNT, "--role", "operator")
        kube.add(keys_secret, {OPERATOR_ACCOUNT: str(keys[OPERATOR_ACCOUNT])})
        written.append(OPERATOR_ACCOUNT)
    if not kube.data(admin_secret).get(ADMIN_KEY):
        admin = auth_command("bootstrap", "--email", admin_email)
        kube.add(admin_secret, {ADMIN_EMAIL: str(admin["email"]), ADMIN_KEY: str(admin["api_key"])})
        written.append("admin")
    return written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service-keys-secret", required=True)
    parser.add_argument("--admin-secret", required=True)
    parser.add_argument("--admin-email", required=True)
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    parser.add_argument("--api-server", default=f"https://{host}:{port}")
    parser.add_argument("--token-file", type=Path, default=SERVICE_ACCOUNT_DIR / "token")
    parser.add_argument("--ca-file", type=Path, default=SERVICE_ACCOUNT_DIR / "ca.crt")
    parser.add_argument("--namespace", default="")
    parser.add_argument(
        "--insecure-skip-tls-verify", action="store_true", help="tests only: self-signed servers"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    namespace = args.namespace or (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
    if args.insecure_skip_tls_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(args.ca_file))
    kube = Kube(args.api_server, args.token_file.read_text().strip(), namespace, context)
    written = run(
        kube,
        keys_secret=args.service_keys_secret,
        admin_secret=args.admin_secret,
        admin_email=args.admin_email,
    )
    print(json.dumps({"written": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
