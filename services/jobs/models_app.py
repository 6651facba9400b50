"""The model routing use cases of the jobs service: versions, aliases and endpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gouache.db import is_unique_violation
from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    GouacheError,
)
from services.jobs.domain.routing import (
    ModelEndpoint,
    ModelRoute,
    ModelVersion,
    RouteTarget,
    RoutingTable,
    parse_seed,
    validate_model_version,
)
from services.jobs.routing_cache import RoutingCache
from services.jobs.store import JobStore

logger = logging.getLogger(__name__)


class ModelRoutingUseCases:
    """JobsApp's routing calls (a mixin: JobsApp sets the attributes declared here)."""

    store: JobStore
    _routing: RoutingCache
    _now: Callable[[], datetime]

    # -- models --------------------------------------------------------------------------

    async def list_models(self) -> RoutingTable:
        """Every registered version and alias (changes by other replicas show within the
        routing cache's ttl)."""
        return await self._routing.get()

    async def register_version(self, principal: Principal, version: ModelVersion) -> ModelVersion:
        """Registers a version; registering the same definition again returns it."""
        version = validate_model_version(version)
        now = self._now()
        for attempt in range(2):
            try:
                async with self.store.transaction() as uow:
                    table = await uow.routing_table()
                    if not table.check_registration(version):
                        return table.versions[version.name]
                    await uow.insert_version(version, now)
            except GouacheError:
                raise
            except Exception as exc:
                # A concurrent registration of the same name: the retry compares with it.
                if attempt or not is_unique_violation(exc):
                    raise
                continue
            self._routing.invalidate()
            logger.info(
                "model version registered",
                extra={"model_version": version.name, "by": principal.user_id},
            )
            return replace(version, created_at=now)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def set_route(
        self, principal: Principal, alias: str, targets: Sequence[RouteTarget]
    ) -> ModelRoute:
        """Replaces the weighted targets behind an alias (creating the alias if new)."""
        for attempt in range(2):
            try:
                async with self.store.transaction() as uow:
                    table = await uow.routing_table()
                    route = table.validate_route(alias, targets)
                    await uow.replace_route(route)
            except GouacheError:
                raise
            except Exception as exc:
                # Two replaces of one alias raced on its rows: the retry runs after the other.
                if attempt or not is_unique_violation(exc):
                    raise
                continue
            self._routing.invalidate()
            logger.info(
                "model route set",
                extra={
                    "alias": route.alias,
                    "targets": {t.model_version: t.weight for t in route.targets},
                    "by": principal.user_id,
                },
            )
            return route
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def set_endpoint(
        self, principal: Principal, model_version: str, endpoint: str
    ) -> ModelEndpoint:
        """Points a registered version at its own inference endpoint ("" for the default).

        Jobs created from now on carry it in their JobCreated event; setting the same
        endpoint again changes nothing.
        """
        for attempt in range(2):
            try:
                async with self.store.transaction() as uow:
                    table = await uow.routing_table()
                    chosen = table.validate_endpoint(model_version, endpoint)
                    if table.endpoint_of(chosen.model_version) == chosen.endpoint:
                        return chosen
                    await uow.replace_endpoint(chosen, self._now())
            except GouacheError:
                raise
            except Exception as exc:
                # Two sets of one version raced on its row: the retry runs after the other.
                if attempt or not is_unique_violation(exc):
                    raise
                continue
            self._routing.invalidate()
            logger.info(
                "model endpoint set",
                extra={
                    "model_version": chosen.model_version,
                    "endpoint": chosen.endpoint or "default",
                    "by": principal.user_id,
                },
            )
            return chosen
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def seed_models(self, seed: dict[str, Any]) -> None:
        """Registers the seed versions and aliases that do not exist yet."""
        versions, routes = parse_seed(seed)
        added_versions, added_routes = await self.store.seed_models(versions, routes, self._now())
        self._routing.invalidate()
        if added_versions or added_routes:
            logger.info(
                "model routing seeded",
                extra={"versions_added": added_versions, "aliases_added": added_routes},
            )
