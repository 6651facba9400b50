"""The bounds feedback's entry points check: id lengths, and how far back a window of
statistics or usage may start."""

from __future__ import annotations

from datetime import datetime, timedelta

from gouache.runtime.errors import InvalidArgument

MAX_ID_CHARS = 64
# How far back a stats or usage window may start (GetModelVersionStats.since,
# GetUsage.since).
MAX_STATS_WINDOW = timedelta(days=400)


def validate_since(since: datetime, now: datetime) -> datetime:
    """The start of a stats or usage window: not in the future, at most MAX_STATS_WINDOW ago."""
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError("since must be an aware datetime")
    if since > now:
        raise InvalidArgument(
            f"since {since.isoformat()} is in the future (now is {now.isoformat()}); "
            "ask about a window that has started",
            field="since",
            reason="since_in_future",
        )
    if since < now - MAX_STATS_WINDOW:
        raise InvalidArgument(
            f"since {since.isoformat()} is more than {MAX_STATS_WINDOW.days} days ago; "
            "leave it unset for every job",
            field="since",
            reason="since_too_old",
        )
    return since
