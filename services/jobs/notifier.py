"""In-process wake-ups for WatchJob streams when this replica changes a job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class JobNotifier:
    """Lets watchers of a job sleep until this process changes it.

    Changes made by other replicas are not seen here; watchers also re-read the job
    periodically for those.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever job_id changes, for the duration of the block."""
        event = asyncio.Event()
        waiters = self._waiters.setdefault(job_id, set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(job_id, None)

    def notify(self, job_id: str) -> None:
        """Wakes every watcher of job_id."""
        for event in self._waiters.get(job_id, ()):
            event.set()

    def watchers(self, job_id: str) -> int:
        """How many streams watch job_id now."""
        return len(self._waiters.get(job_id, ()))
