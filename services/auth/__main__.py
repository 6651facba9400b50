"""`python -m services.auth` serves; subcommands migrate, bootstrap an admin, service accounts, keys."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from gouache.db.migrate import add_migrate_command, run_migrate_command
from gouache.runtime.errors import GouacheError
from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.auth.bootstrap import bootstrap_admin, ensure_service_account, rotate_signing_key
from services.auth.domain import ACCOUNT_ROLES
from services.auth.server import build
from services.auth.settings import AuthSettings
from services.auth.store import AuthDatabase


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.auth",
        description="The gouache auth service. Without a command it serves gRPC.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC (the default)")
    add_migrate_command(commands)
    boot = commands.add_parser(
        "bootstrap", help="create the first admin (idempotent) and print a new API key for it"
    )
    boot.add_argument("--email", required=True)
    boot.add_argument("--password", help="at least 12 characters; kept if the admin exists")
    boot.add_argument(
        "--json",
        action="store_true",
        help="print {user_id, email, created, api_key} as JSON (for scripts and the embedded mesh)",
    )
    account = commands.add_parser(
        "create-service-account",
        help="create service accounts (idempotent) and print a new API key for each",
    )
    account.add_argument(
        "names", nargs="+", metavar="NAME", help="e.g. jobs, storage, tiling, operator"
    )
    account.add_argument(
        "--role",
        default="service",
        choices=ACCOUNT_ROLES,
        help="service (the mesh's services, the default) or operator (the canary operator)",
    )
    account.add_argument(
        "--json", action="store_true", help="print {NAME: api_key, ...} as JSON, not one per line"
    )
    commands.add_parser(
        "rotate-signing-key", help="add a signing key that signs from now on; print its kid"
    )
    return parser


async def _serve(settings: AuthSettings) -> None:
    spec, verifier = await build(settings)
    await serve(settings, spec, verifier)


async def _run(args: argparse.Namespace, settings: AuthSettings) -> None:
    if args.command == "bootstrap":
        result = await bootstrap_admin(settings, args.email, args.password)
        if args.json:
            print(json.dumps(dataclasses.asdict(result)))
            return
        state = "created" if result.created else "already existed"
        print(f"admin {result.email} ({result.user_id}) {state}; new API key:", file=sys.stderr)
        print(result.api_key)
    elif args.command == "create-service-account":
        keys = {
            name: await ensure_service_account(settings, name, role=args.role)
            for name in args.names
        }
        print(json.dumps(keys) if args.json else "\n".join(keys.values()))
    elif args.command == "rotate-signing-key":
        print(await rotate_signing_key(settings))
    else:
        await _serve(settings)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parses the command, reads settings, runs."""
    args = _parser().parse_args(argv)
    settings = AuthSettings()
    serving = args.command in (None, "serve")
    configure_logging("auth", level=settings.log_level, json_output=settings.log_json and serving)
    if args.command == "migrate":
        return run_migrate_command(args, settings.database_url, AuthDatabase.migrations)
    if serving:
        configure_tracing("auth", console=settings.otel_console)
    try:
        asyncio.run(_run(args, settings))
    except GouacheError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
