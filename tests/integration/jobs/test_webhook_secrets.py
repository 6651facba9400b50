"""Webhook secrets at rest, on SQLite and PostgreSQL: sealed on write, opened only to sign a
delivery, plaintext rows from before migration 0007 sealed at start, and key rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from gouache.db import create_engine
from gouache.runtime.context import Principal
from gouache.secretbox import Sealed, SecretBox, SecretBoxError, generate_key
from services.jobs.app import JobsApp
from services.jobs.store import JobStore, webhooks_table
from tests.unit.jobs.conftest import make_app
from tests.unit.jobs.helpers import InMemoryImages

ALICE = Principal(user_id="usr_alice", role="user")
SECRET = "correct horse battery staple"


def _box(*keys: str) -> SecretBox:
    return SecretBox.from_setting(",".join(keys), variable="GOUACHE_JOBS_SECRETS_KEY")


def _open(box: SecretBox, webhook_id: str, token: str, key_id: str | None) -> str:
    assert key_id is not None
    return box.open(Sealed(key_id, token), webhook_id)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[JobsApp]:
    app = await make_app(db_url, InMemoryImages())
    try:
        yield app
    finally:
        await app.store.close()


async def _rows(store: JobStore) -> list[tuple[str, str, str | None]]:
    async with store.reads() as session:
        query = select(
            webhooks_table.c.webhook_id, webhooks_table.c.secret, webhooks_table.c.secret_key_id
        ).order_by(webhooks_table.c.webhook_id)
        return [(r.webhook_id, r.secret, r.secret_key_id) for r in await session.execute(query)]


async def _insert_plaintext(store: JobStore, webhook_id: str) -> None:
    """A row as written before 0007: the secret in clear, no key id."""
    async with store.transaction() as uow:
        await uow.session.execute(
            insert(webhooks_table).values(
                webhook_id=webhook_id,
                owner_id=ALICE.user_id,
                url="http://127.0.0.1:1/hook",
                secret=SECRET,
                events=["job.failed"],
                created_at=datetime.now(UTC),
            )
        )


async def test_a_secret_is_sealed_in_the_database(app: JobsApp) -> None:
    webhook = await app.create_webhook(ALICE, "http://127.0.0.1:1/hook", SECRET, ["job.failed"])
    ((webhook_id, stored, key_id),) = await _rows(app.store)
    assert webhook_id == webhook.webhook_id
    assert SECRET not in stored
    assert app.store.secrets is not None
    assert key_id == app.store.secrets.primary_id
    assert _open(app.store.secrets, webhook_id, stored, key_id) == SECRET
    # Reads of webhooks (listing, enqueueing) never carry the secret.
    (listed,) = await app.store.list_webhooks(ALICE.user_id)
    assert listed.secret == ""


async def test_old_plaintext_rows_are_sealed_at_start_and_keys_rotate(db_url: str) -> None:
    old, new = generate_key(), generate_key()
    store = JobStore(create_engine(db_url), secrets=_box(old))
    await store.create_schema()
    try:
        await _insert_plaintext(store, "wh_legacy1")
        await _insert_plaintext(store, "wh_legacy2")
        # Batches of one: the loop carries on until nothing is left.
        assert await store.seal_webhook_secrets(batch_size=1) == 2
        rows = await _rows(store)
        assert all(SECRET not in secret for _, secret, _ in rows)
        assert {key_id for _, _, key_id in rows} == {_box(old).primary_id}
        assert await store.seal_webhook_secrets() == 0  # nothing left: idempotent
    finally:
        await store.close()

    # Rotation: the new key first, the old one kept; the start re-seals under the new one.
    rotated = JobStore(create_engine(db_url), secrets=_box(new, old))
    try:
        assert await rotated.seal_webhook_secrets() == 2
        rows = await _rows(rotated)
        assert {key_id for _, _, key_id in rows} == {_box(new).primary_id}
        for webhook_id, secret, key_id in rows:
            assert _open(_box(new), webhook_id, secret, key_id) == SECRET
    finally:
        await rotated.close()

    # The old key dropped too early, before re-sealing: the start names the missing key.
    await _insert_plaintext_sealed_under(db_url, old)
    lost = JobStore(create_engine(db_url), secrets=_box(new))
    try:
        with pytest.raises(SecretBoxError, match=_box(old).primary_id):
            await lost.seal_webhook_secrets()
    finally:
        await lost.close()


async def _insert_plaintext_sealed_under(db_url: str, key: str) -> None:
    store = JobStore(create_engine(db_url), secrets=_box(key))
    try:
        async with store.transaction() as uow:
            await uow.session.execute(
                insert(webhooks_table).values(
                    webhook_id="wh_oldkey",
                    owner_id=ALICE.user_id,
                    url="http://127.0.0.1:1/hook",
                    secret=_box(key).seal(SECRET, "wh_oldkey").token,
                    secret_key_id=_box(key).primary_id,
                    events=["job.failed"],
                    created_at=datetime.now(UTC),
                )
            )
    finally:
        await store.close()
