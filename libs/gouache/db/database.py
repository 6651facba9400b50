"""A service's database: its engine, its session factory and its own tables."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gouache.db.engine import create_all, session_factory


class ServiceDatabase:
    """Base of each service's store; subclasses set `schema` to their own MetaData."""

    schema: ClassVar[MetaData]

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)

    async def create_schema(self) -> None:
        """Creates this service's tables that do not exist yet (safe to repeat)."""
        await create_all(self.engine, self.schema)

    async def close(self) -> None:
        """Closes the connection pool."""
        await self.engine.dispose()
