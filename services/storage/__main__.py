"""`python -m services.storage` serves; `migrate` migrates its schema; `import-styles` imports styles."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from gouache.blobs import BlobStoreMisconfigured, BlobUnavailable
from gouache.catalogue import curated_directory
from gouache.db.migrate import add_migrate_command, run_migrate_command
from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.storage.catalog import ManifestError, run_imports
from services.storage.safety import SafetyModelUnavailable
from services.storage.server import build
from services.storage.settings import StorageSettings
from services.storage.store import StorageStore


async def _serve(settings: StorageSettings) -> None:
    spec, verifier = await build(settings)
    await serve(settings, spec, verifier)


def main(argv: list[str] | None = None) -> int:
    """Runs the service until SIGTERM, or imports a style directory and exits."""
    parser = argparse.ArgumentParser(prog="python -m services.storage")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the storage service (the default)")
    add_migrate_command(commands)
    importer = commands.add_parser(
        "import-styles",
        help="import curated styles from directories (manifest.json or images), "
        "and with --shipped the ones the package ships",
    )
    importer.add_argument("directory", type=Path, nargs="*")
    importer.add_argument(
        "--shipped",
        action="store_true",
        help=f"also import the curated styles shipped in the package ({curated_directory()})",
    )
    importer.add_argument(
        "--json",
        action="store_true",
        help="print the report {imported, existing, rejected} as JSON (for the embedded mesh)",
    )
    args = parser.parse_args(argv)

    try:
        settings = StorageSettings()
    except ValidationError as exc:
        print(_settings_errors(exc), file=sys.stderr)
        return 2
    configure_logging("storage", level=settings.log_level, json_output=settings.log_json)
    if args.command == "migrate":
        return run_migrate_command(args, settings.database_url, StorageStore.migrations)
    if args.command == "import-styles":
        directories = [*([curated_directory()] if args.shipped else []), *args.directory]
        if not directories:
            parser.error("import-styles needs a directory, --shipped, or both")
        try:
            report = asyncio.run(run_imports(settings, directories))
        except (
            FileNotFoundError,
            ManifestError,
            BlobStoreMisconfigured,
            BlobUnavailable,
            SafetyModelUnavailable,
        ) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(dataclasses.asdict(report)))
            return 1 if report.rejected else 0
        print(
            f"imported {len(report.imported)} new styles, {len(report.existing)} already "
            f"present, {len(report.rejected)} rejected"
        )
        for name, why in report.rejected.items():
            print(f"  rejected {name}: {why}", file=sys.stderr)
        return 1 if report.rejected else 0
    try:
        settings.signing_key()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_tracing("storage", console=settings.otel_console)
    try:
        asyncio.run(_serve(settings))
    except (BlobStoreMisconfigured, BlobUnavailable) as exc:
        print(f"error: the object store is not usable: {exc}", file=sys.stderr)
        return 2
    except SafetyModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _settings_errors(error: ValidationError) -> str:
    """One `error:` line per invalid setting, naming its variable, instead of a traceback."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        variable = f"GOUACHE_STORAGE_{where.upper()}: " if where else ""
        lines.append(f"error: {variable}{item['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
