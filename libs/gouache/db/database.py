"""A service's database: its engine, its session factory and its own migrated tables."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gouache.db.engine import read_only, session_factory
from gouache.db.migrate import Migrations, upgrade


class ServiceDatabase:
    """Base of each service's store; subclasses set `migrations` (their tables, their history)."""

    migrations: ClassVar[Migrations]

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        # For sessions that only read: they neither wait for nor block writers (read_only).
        self.reads: async_sessionmaker[AsyncSession] = session_factory(read_only(engine))

    @property
    def schema(self) -> MetaData:
        """This service's tables as the code declares them."""
        return self.migrations.metadata

    async def create_schema(self) -> None:
        """Brings this service's tables to the newest migration (safe to repeat and to race).

        An empty database gets every revision; one made by the old create_all is adopted
        (see gouache.db.migrate); one already at head is left as it is.
        """
        await upgrade(self.engine, self.migrations)

    async def close(self) -> None:
        """Closes the connection pool."""
        await self.engine.dispose()
