"""`gouache images delete | jobs delete | users erase | audit`: deletion, a user's erasure
and the audit log from a terminal, with an API key.

Each command prints one JSON document (the API's own, as the REST API answers it), so its
output can be piped to jq; failures are one `error: ...` line (gouache.cli.errors).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from gouache.cli.api_commands import api_credentials

COMMANDS = ("images", "jobs", "users", "audit")
# The most events `gouache audit` reads (pages of 100).
MAX_AUDIT_LIMIT = 10_000
_RELATIVE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """--since: an ISO 8601 date or time (UTC unless it names a zone), or an age such as
    90m, 24h, 7d; argparse reports anything else."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give an ISO 8601 time (2026-11-30 or 2026-11-30T12:00:00Z) or an age "
            "such as 90m, 24h or 7d"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_AUDIT_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number from 1 to 10000")
    return value


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="REST base URL (default from `gouache up`)")
    parser.add_argument("--api-key")


def add_parsers(sub: Any) -> None:
    """Adds `images`, `jobs`, `users` and `audit` to the CLI's subparsers."""
    images = sub.add_parser("images", help="delete one of your images")
    _api_options(images)
    images_action = images.add_subparsers(dest="action", required=True)
    delete_image = images_action.add_parser(
        "delete", help="delete a content or style image with its bytes (results: jobs delete)"
    )
    delete_image.add_argument("image_id")
    images.set_defaults(func=cmd_images)

    jobs = sub.add_parser("jobs", help="delete one of your jobs")
    _api_options(jobs)
    jobs_action = jobs.add_subparsers(dest="action", required=True)
    delete_job = jobs_action.add_parser(
        "delete", help="delete a job with its result image (canceled first if running)"
    )
    delete_job.add_argument("job_id")
    jobs.set_defaults(func=cmd_jobs)

    users = sub.add_parser("users", help="erase a user's data (GDPR)")
    _api_options(users)
    users_action = users.add_subparsers(dest="action", required=True)
    erase = users_action.add_parser(
        "erase",
        help="erase everything of a user: images, results, jobs, webhooks, keys, the account "
        "(yourself, or anyone as an admin); irreversible; again: where it stands",
    )
    erase.add_argument("user_id")
    erase.add_argument("--yes", action="store_true", help="confirm: nothing can be recovered")
    users.set_defaults(func=cmd_users)

    audit = sub.add_parser("audit", help="read the audit log, newest first (admins)")
    _api_options(audit)
    audit.add_argument(
        "--since", type=parse_since, help="events at or after: 2026-11-30, ...T12:00Z, 24h, 7d"
    )
    audit.add_argument("--actor", default="", help="only this actor's (a user id)")
    audit.add_argument("--action", default="", help="only this action, e.g. job.deleted")
    audit.add_argument(
        "--limit", type=_limit, default=100, help="at most this many events (1-10000)"
    )
    audit.set_defaults(func=cmd_audit)


def _print(document: Any) -> int:
    print(json.dumps(document, indent=2, default=str))
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    base_url, api_key = api_credentials(args)
    with GouacheClient(base_url, api_key) as client:
        return _print({"deleted": client.delete_image(args.image_id)})


def cmd_jobs(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    base_url, api_key = api_credentials(args)
    with GouacheClient(base_url, api_key) as client:
        return _print({"deleted": client.delete_job(args.job_id)})


def cmd_users(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    if not args.yes:
        raise SystemExit(
            f"erasing {args.user_id} removes their images, results, jobs, webhooks, ratings, "
            "API keys and account for good; add --yes to confirm"
        )
    base_url, api_key = api_credentials(args)
    with GouacheClient(base_url, api_key) as client:
        return _print(dict(client.erase_user(args.user_id)))


def cmd_audit(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    base_url, api_key = api_credentials(args)
    events: list[dict[str, Any]] = []
    with GouacheClient(base_url, api_key) as client:
        for event in client.iter_audit_events(
            since=args.since, actor_id=args.actor, action=args.action
        ):
            events.append(dict(event))
            if len(events) >= args.limit:
                break
    return _print({"events": events})
