"""Fresh non-admin users of the e2e mesh, made through the REST API as an operator would."""

from __future__ import annotations

import uuid

import httpx

from gouache.client import GouacheClient


def new_user(admin: GouacheClient, base_url: str) -> GouacheClient:
    """A new user with an API key; close the client after use."""
    return GouacheClient(base_url, new_user_key(admin, base_url))


def new_user_key(admin: GouacheClient, base_url: str) -> str:
    """The API key of a new user."""
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        created = http.post("/v1/users", json={"email": email, "password": "correct horse battery"})
        assert created.status_code == 200, created.text
        user_id = created.json()["user_id"]
        key = http.post("/v1/api-keys", json={"name": "e2e", "user_id": user_id})
        assert key.status_code == 200, key.text
    api_key: str = key.json()["api_key"]
    return api_key
