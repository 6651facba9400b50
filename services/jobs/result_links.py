"""Signed result URLs remembered, so that reading a succeeded job does not cost a call to
storage each time.

When tiling stores a result it asks storage to sign a GET URL in the same call
(UploadImage's download_url_ttl_seconds) and passes it on in ExecutionSucceeded; JobsApp
remembers it here before it wakes the job's waiters, so the first read of the job (WaitJob
right after success, in the common flow) answers without SignDownload (measured: one
SignDownload was about 1.2 ms of storage's CPU and 0.5 ms of jobs'). Reads after the
remembered URL's half-life ask storage again. URLs SignDownload returns are not
remembered: its answer does not say when the result's retention ends.

A remembered URL is handed out while at least half of the lifetime the caller asks for
remains, and never after the result's own retention ended (storage's SignDownload then
answers ResultExpired, which the caller must see). Deleting the result through jobs forgets
it; a job deleted or erased is not found before its URL is looked for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from gouache.db import utc_now
from gouache.results import ResultLink
from services.jobs.clients import DownloadSigner

# Results remembered at most (a few hundred bytes each).
DEFAULT_CAPACITY = 4096


class ResultLinks:
    """A DownloadSigner that remembers the URLs it has seen, in front of storage's."""

    def __init__(
        self,
        signer: DownloadSigner,
        *,
        capacity: int = DEFAULT_CAPACITY,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._signer = signer
        self._capacity = capacity
        self._now = now
        self._links: OrderedDict[str, ResultLink] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def remember(self, image_id: str, link: ResultLink) -> None:
        """Keeps a URL storage signed for image_id (the oldest entry goes when full)."""
        self._links[image_id] = link
        self._links.move_to_end(image_id)
        while len(self._links) > self._capacity:
            self._links.popitem(last=False)

    def forget(self, image_id: str) -> None:
        self._links.pop(image_id, None)

    def usable(self, image_id: str, ttl_s: int) -> str | None:
        """The remembered URL if at least ttl_s / 2 of it remains and the result has not
        reached the end of its retention; None otherwise."""
        link = self._links.get(image_id)
        if link is None:
            return None
        now = self._now()
        ended = link.result_expires_at is not None and now >= link.result_expires_at
        if ended or link.url_expires_at - now < timedelta(seconds=ttl_s / 2):
            self._links.pop(image_id, None)
            return None
        return link.url

    async def sign_download(self, image_id: str, ttl_s: int) -> str:
        """A remembered URL when one is usable, else one storage signs now."""
        url = self.usable(image_id, ttl_s)
        if url is not None:
            self.hits += 1
            return url
        self.misses += 1
        return await self._signer.sign_download(image_id, ttl_s)

    async def delete_image(self, image_id: str) -> None:
        self.forget(image_id)
        await self._signer.delete_image(image_id)
