"""Per-kind JSON schemas for kubeconform, offline, from a Kubernetes OpenAPI v2 document.

kubeconform downloads its schemas by default; without a network it needs them on disk. This
turns the API server's own `/openapi/v2` (or `api/openapi-spec/swagger.json` of the
kubernetes module) into one file per kind and version, named as kubeconform's
`-schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'` expects
(`deployment-apps-v1.json`, `service-v1.json`, `networkpolicy-networking-v1.json`). Each
file holds the kind's definition and every definition it reaches, so references resolve in
the file. `--strict` forbids properties a definition does not declare (what `kubeconform
-strict` checks), int-or-string fields take both, and quantities take numbers.

    python scripts/kubeconform_schemas.py --openapi openapi-v2.json --out DIR [--strict]
    kubeconform -strict -schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json' ...
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Json = dict[str, Any]

REF_PREFIX = "#/definitions/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
NUMBER_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def kind_suffix(group: str, version: str) -> str:
    """kubeconform's KindSuffix: `-v1` for the core group, else `-<first label>-<version>`."""
    if not group:
        return f"-{version.lower()}"
    return f"-{group.split('.')[0].lower()}-{version.lower()}"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def closure(definitions: Json, name: str) -> list[str]:
    """The definition and every definition it refers to, directly or not."""
    seen: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen or current not in definitions:
            continue
        seen.append(current)
        pending.extend(_refs(definitions[current]))
    return seen


def _normalise(node: Any, strict: bool) -> Any:
    """int-or-string and quantity types, and (strict) no undeclared properties."""
    if isinstance(node, list):
        return [_normalise(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        rest = {k: v for k, v in node.items() if k not in ("type", "format")}
        return {**rest, **INT_OR_STRING}
    result = {key: _normalise(value, strict) for key, value in node.items()}
    if (
        strict
        and "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def schemas(openapi: Json, *, strict: bool) -> dict[str, Json]:
    """{file name: schema} for every kind the document defines."""
    definitions: Json = openapi.get("definitions", {})
    normalised = {name: _normalise(body, strict) for name, body in definitions.items()}
    if QUANTITY in normalised:
        described = {k: v for k, v in normalised[QUANTITY].items() if k == "description"}
        normalised[QUANTITY] = {**described, **NUMBER_OR_STRING}
    files: dict[str, Json] = {}
    for name, body in definitions.items():
        for gvk in body.get("x-kubernetes-group-version-kind", []):
            kind = str(gvk["kind"])
            # Lists and the watch event exist for every kind; kubeconform never asks for them.
            if kind.endswith("List") or kind == "WatchEvent":
                continue
            file_name = f"{kind.lower()}{kind_suffix(gvk.get('group', ''), gvk['version'])}.json"
            schema = copy.deepcopy(normalised[name])
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["definitions"] = {
                other: normalised[other] for other in closure(definitions, name)
            }
            files[file_name] = schema
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openapi", type=Path, required=True, help="an OpenAPI v2 JSON document")
    parser.add_argument("--out", type=Path, required=True, help="directory for the schemas")
    parser.add_argument("--strict", action="store_true", help="no undeclared properties")
    args = parser.parse_args(argv)
    files = schemas(json.loads(args.openapi.read_text()), strict=args.strict)
    if not files:
        print(f"{args.openapi}: no kinds (x-kubernetes-group-version-kind) found", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for file_name, schema in files.items():
        (args.out / file_name).write_text(json.dumps(schema))
    print(f"{len(files)} schemas in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
