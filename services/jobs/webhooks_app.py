"""The webhooks use cases of the jobs service: register, list and delete a user's webhooks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from gouache.db import new_id
from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    NotFound,
)
from services.jobs.domain.paging import check_id
from services.jobs.domain.webhooks import Webhook, check_webhook_quota, validate_webhook
from services.jobs.store import JobStore

if TYPE_CHECKING:
    from services.jobs.app import JobsConfig

logger = logging.getLogger(__name__)


class WebhookUseCases:
    """JobsApp's webhook calls (a mixin: JobsApp sets the attributes declared here)."""

    store: JobStore
    _config: JobsConfig
    _now: Callable[[], datetime]

    # -- webhooks ------------------------------------------------------------------------

    async def create_webhook(
        self, principal: Principal, url: str, secret: str, events: Sequence[str]
    ) -> Webhook:
        """Registers a webhook for the job events of the caller's project (a few at most)."""
        url, chosen = validate_webhook(
            url, secret, events, allow_private=self._config.allow_private_webhook_urls
        )
        webhook = Webhook(
            webhook_id=new_id("whk"),
            owner_id=principal.project_id,
            url=url,
            secret=secret,
            events=chosen,
            created_at=self._now(),
        )
        async with self.store.transaction() as uow:
            check_webhook_quota(
                await uow.count_webhooks(principal.project_id), self._config.max_webhooks_per_user
            )
            await uow.insert_webhook(webhook)
        logger.info(
            "webhook created",
            extra={"webhook_id": webhook.webhook_id, "owner_id": webhook.owner_id},
        )
        return webhook

    async def list_webhooks(self, principal: Principal) -> list[Webhook]:
        """The webhooks of the caller's project."""
        return await self.store.list_webhooks(principal.project_id)

    async def delete_webhook(self, principal: Principal, webhook_id: str) -> None:
        """Deletes one of the webhooks of the caller's project; its pending deliveries go too."""
        webhook_id = check_id(webhook_id, "whk", field="webhook_id")
        if not await self.store.delete_webhook(principal.project_id, webhook_id):
            raise NotFound(f"webhook {webhook_id} not found", field="webhook_id")
        logger.info("webhook deleted", extra={"webhook_id": webhook_id})
