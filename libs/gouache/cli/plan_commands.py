"""`gouache plans user|project ID PLAN`: put a user or a shared project on a plan (admins),
with an API key.

Prints the API's JSON answer (the id, the plan and the previous plan), so it can be piped
to jq; failures are one `error: ...` line (gouache.cli.errors). Tokens carry the new plan
from their next issue (at most one token lifetime, 15 minutes by default, later).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gouache.cli.api_commands import api_credentials
from gouache.priority import TIERS

COMMAND = "plans"


def add_parser(sub: Any) -> None:
    """Adds `plans` and its subcommands to the CLI's subparsers."""
    plans = sub.add_parser(
        COMMAND, help="put a user or a project on a plan: free, pro, enterprise (admins)"
    )
    plans.add_argument("--url", help="REST base URL (default from `gouache up`)")
    plans.add_argument("--api-key")
    action = plans.add_subparsers(dest="action", required=True)
    user = action.add_parser("user", help="a user's plan (their personal project's)")
    user.add_argument("user_id")
    user.add_argument("plan", choices=TIERS)
    project = action.add_parser("project", help="a shared project's plan")
    project.add_argument("project_id")
    project.add_argument("plan", choices=TIERS)
    plans.set_defaults(func=cmd_plans)


def cmd_plans(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    base_url, api_key = api_credentials(args)
    with GouacheClient(base_url, api_key) as client:
        if args.action == "user":
            change = client.set_user_plan(args.user_id, args.plan)
        else:
            change = client.set_project_plan(args.project_id, args.plan)
    print(json.dumps(dict(change), indent=2, default=str))
    return 0
