"""`gouache projects ...`: a team's projects and members from a terminal, with an API key.

Each command prints one JSON document (the API's own, as the REST API answers it), so its
output can be piped to jq; failures are one `error: ...` line (gouache.cli.errors).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gouache.cli.api_commands import api_credentials

ROLES = ("owner", "editor", "viewer")


def add_parser(sub: Any) -> None:
    """Adds `projects` and its subcommands to the CLI's subparsers."""
    projects = sub.add_parser(
        "projects", help="list, create and show projects; add and remove members"
    )
    projects.add_argument("--url", help="REST base URL (default from `gouache up`)")
    projects.add_argument("--api-key")
    action = projects.add_subparsers(dest="action", required=True)
    listing = action.add_parser("list", help="your projects and your role in each")
    listing.add_argument("--all", action="store_true", help="every shared project (admins only)")
    create = action.add_parser("create", help="a new project; you become its owner")
    create.add_argument("name")
    show = action.add_parser("show", help="a project and its members")
    show.add_argument("project_id")
    add = action.add_parser("add", help="add a member, or change a member's role (owners)")
    add.add_argument("project_id")
    add.add_argument("user_id")
    add.add_argument("--role", choices=ROLES, default="editor")
    remove = action.add_parser("remove", help="remove a member (owners), or leave (yourself)")
    remove.add_argument("project_id")
    remove.add_argument("user_id")
    projects.set_defaults(func=cmd_projects)


def cmd_projects(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    base_url, api_key = api_credentials(args)
    with GouacheClient(base_url, api_key) as client:
        result: Any
        if args.action == "list":
            result = {"projects": [dict(p) for p in client.list_projects(all_projects=args.all)]}
        elif args.action == "create":
            result = dict(client.create_project(args.name))
        elif args.action == "show":
            result = dict(client.get_project(args.project_id))
        elif args.action == "add":
            result = dict(client.put_project_member(args.project_id, args.user_id, args.role))
        else:
            client.remove_project_member(args.project_id, args.user_id)
            result = {"removed": args.user_id, "project_id": args.project_id}
    print(json.dumps(result, indent=2, default=str))
    return 0
