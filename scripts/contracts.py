"""Generate, check, lint and breaking-check the protobuf contracts.

python scripts/contracts.py gen        regenerate libs/gouache/contracts (and its openapi.json)
python scripts/contracts.py check      fail if libs/gouache/contracts is stale
python scripts/contracts.py lint       buf lint
python scripts/contracts.py breaking   buf breaking against the released contract (BASELINE)
python scripts/contracts.py breaking REV   buf breaking against the protos of a git revision
python scripts/contracts.py baseline   record the current contract as released (see BASELINE)

The released contract is a buf image committed at protos/baseline/released.binpb. Bump it
when a release ships (`python scripts/contracts.py baseline`, commit the file with the
release): until then every change is checked against what clients of the last release
use, however many commits ago that was. With no baseline, or a revision that has no
protos/ (a `--depth 1` clone asked for HEAD~1), the check fails: nothing compared is not
a pass.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "libs" / "gouache" / "contracts"
DEPS = ROOT / "build" / "protodeps"
BASELINE = PROTOS / "baseline" / "released.binpb"
PACKAGES = ("auth", "common", "events", "feedback", "inference", "jobs", "storage", "tiling")
_IMPORT = re.compile(r"\bgouache\.(" + "|".join(PACKAGES) + r")\.v1\b")
_HEADER = '"""Generated from protos/ by scripts/contracts.py; do not edit."""\n'


def _site_packages() -> Path:
    import google.api.annotations_pb2 as annotations

    return Path(annotations.__file__).resolve().parent.parent.parent


def _grpc_tools_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def _proto_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))


def _rewrite_imports(text: str, *, stub: bool) -> str:
    """Point imports of generated modules at gouache.contracts.

    Only import lines of .py files change: serialized descriptors and gRPC method
    paths keep the proto package names. Stubs also name types by module path.
    """
    lines = []
    for line in text.splitlines(keepends=True):
        code = line.lstrip()
        is_import = code.startswith(("from gouache.", "import gouache."))
        if is_import or (stub and "'/gouache." not in line and '"/gouache.' not in line):
            line = _IMPORT.sub(r"gouache.contracts.\1.v1", line)
        lines.append(line)
    return "".join(lines)


def ensure_deps() -> None:
    """Copy google/api/*.proto from the googleapis-common-protos wheel for buf."""
    target = DEPS / "google" / "api"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("annotations.proto", "http.proto", "httpbody.proto"):
        shutil.copyfile(_site_packages() / "google" / "api" / name, target / name)


def generate(dest: Path) -> None:
    """Run protoc into dest and rewrite imports into the gouache.contracts package."""
    raw = Path(tempfile.mkdtemp(prefix="gouache-gen-"))
    try:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{_site_packages()}",
            f"-I{_grpc_tools_include()}",
            f"--python_out={raw}",
            f"--grpc_python_out={raw}",
            f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={Path(sys.executable).parent / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={raw}",
            f"--mypy_grpc_out={raw}",
            f"--descriptor_set_out={raw / 'descriptor.pb'}",
            "--include_imports",
            "--include_source_info",
            *_proto_files(PROTOS),
        ]
        from grpc_tools import protoc

        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        # Before dest is emptied: the services' policies come from the contracts there.
        document = openapi_document(raw / "descriptor.pb")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        (dest / "__init__.py").write_text(_HEADER)
        shutil.copyfile(raw / "descriptor.pb", dest / "descriptor.pb")
        (dest / "openapi.json").write_text(document)
        for src in sorted((raw / "gouache").rglob("*")):
            if src.is_dir():
                continue
            rel = src.relative_to(raw / "gouache")
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(_rewrite_imports(src.read_text(), stub=src.suffix == ".pyi"))
        for folder in [p for p in dest.rglob("*") if p.is_dir()]:
            init = folder / "__init__.py"
            if not init.exists():
                init.write_text(_HEADER)
    finally:
        shutil.rmtree(raw, ignore_errors=True)


def method_policies() -> dict[str, str]:
    """The public services' method policies (who may call what), for the OpenAPI document's
    security requirements; the services own them, the library cannot import them."""
    from services.auth.server import POLICY as AUTH
    from services.feedback.server import POLICY as FEEDBACK
    from services.jobs.server import POLICY as JOBS
    from services.storage.servicer import POLICY as STORAGE

    return {**AUTH, **FEEDBACK, **JOBS, **STORAGE}


def openapi_document(descriptor: Path) -> str:
    """The REST API's OpenAPI document from a descriptor set with source info (comments)."""
    import tomllib

    from google.api import annotations_pb2  # noqa: F401  (registers google.api.http)
    from google.protobuf import descriptor_pb2

    from gouache.edge.openapi import build, dumps

    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return dumps(build(files, policies=method_policies(), version=version))


def _same_tree(a: Path, b: Path) -> list[str]:
    left = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    right = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    stale = sorted(str(p) for p in left ^ right)
    stale += sorted(str(p) for p in left & right if not filecmp.cmp(a / p, b / p, shallow=False))
    return stale


def _buf() -> str:
    return str(Path(sys.executable).parent / "buf")


def lint() -> int:
    ensure_deps()
    return subprocess.call([_buf(), "lint"], cwd=ROOT)


def _build_image(root: Path, out: Path) -> None:
    """buf build of the workspace at root (its buf.yaml, protos/ and build/protodeps).

    Without source info (comments, line numbers): breaking checks do not use it, and the
    committed baseline stays small and changes only when the contract does.
    """
    subprocess.run([_buf(), "build", "--exclude-source-info", "-o", str(out)], cwd=root, check=True)


def breaking_against(image: Path, root: Path = ROOT) -> int:
    """buf breaking of the workspace at root against a buf image; 1 if there is none."""
    if not image.is_file():
        print(
            f"buf breaking: no released contract at {image}; record one with "
            "`python scripts/contracts.py baseline` (nothing to compare against is a failure)"
        )
        return 1
    ensure_deps()
    current = Path(tempfile.mkdtemp(prefix="gouache-current-")) / "current.binpb"
    try:
        _build_image(root, current)
        return subprocess.call(
            [_buf(), "breaking", str(current), "--against", str(image)], cwd=root
        )
    finally:
        shutil.rmtree(current.parent, ignore_errors=True)


def breaking(rev: str) -> int:
    """buf breaking of the working tree's protos against those at git revision rev."""
    ensure_deps()
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "protos"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0 or not listed.stdout.strip():
        print(
            f"buf breaking: {rev} has no protos/ here (a shallow clone?); nothing to compare "
            "against is a failure: fetch that revision, or compare against the released "
            "contract with `python scripts/contracts.py breaking`"
        )
        return 1
    previous = Path(tempfile.mkdtemp(prefix="gouache-prev-"))
    try:
        archive = subprocess.run(
            ["git", "archive", rev, "protos"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(previous)], input=archive.stdout, check=True)
        shutil.copytree(DEPS, previous / "build" / "protodeps")
        shutil.copyfile(ROOT / "buf.yaml", previous / "buf.yaml")
        _build_image(previous, previous / "previous.binpb")
        return breaking_against(previous / "previous.binpb")
    finally:
        shutil.rmtree(previous, ignore_errors=True)


def record_baseline(image: Path = BASELINE) -> None:
    """Write the current contract as the released one."""
    ensure_deps()
    image.parent.mkdir(parents=True, exist_ok=True)
    _build_image(ROOT, image)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "gen"
    if command == "gen":
        generate(OUT)
        print(f"generated {OUT.relative_to(ROOT)}")
        return 0
    if command == "check":
        with tempfile.TemporaryDirectory(prefix="gouache-check-") as scratch:
            fresh = Path(scratch) / "contracts"
            generate(fresh)
            stale = _same_tree(fresh, OUT)
        if stale:
            print("generated contracts are stale; run `python scripts/contracts.py gen`:")
            print("\n".join(f"  {p}" for p in stale))
            return 1
        print("generated contracts are fresh")
        return 0
    if command == "lint":
        return lint()
    if command == "breaking":
        return breaking(argv[2]) if len(argv) > 2 else breaking_against(BASELINE)
    if command == "baseline":
        record_baseline()
        print(f"recorded the released contract in {BASELINE.relative_to(ROOT)}; commit it")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
