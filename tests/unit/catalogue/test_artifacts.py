"""Artifact checks (what refuses a ModelVersion whose files differ) and package:// URIs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from gouache import catalogue
from gouache.catalogue import (
    Artifact,
    ArtifactMismatch,
    ArtifactUriError,
    CatalogueEntry,
    WeightsFile,
)

WITH_ARTIFACT = [entry for entry in catalogue.entries() if entry.artifact is not None]
PINNED = {
    "adain.lite0-v1": "11f39f8efc9dbf22bf3a2daab396486a6ffb9d7951bdba8a6fab9e3bdced9a74",
    # v1.1 serves v1's decoder differently: the same artifact, the same manifest.
    "adain.lite0-v1.1": "11f39f8efc9dbf22bf3a2daab396486a6ffb9d7951bdba8a6fab9e3bdced9a74",
    "feedforward.lite0-v1": "51c1b085a371c1b0b8d1e94ba04134ad2abf4e262b4f8895e0350752008b8150",
    "wct.lite0-v1": "c1cef3e69d780ca82d9f10582044ac0305588791e0b7c957194625ee6b8f4439",
}


def _copy(entry: CatalogueEntry, tmp_path: Path) -> Path:
    uri = catalogue.artifact_uri(entry)
    assert uri is not None
    return Path(shutil.copytree(catalogue.resolve_uri(uri), tmp_path / entry.name))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _a_weights_file(entry: CatalogueEntry) -> str:
    return next(
        Path(w.path_in_package).name
        for w in entry.weights.values()
        if "manifest" not in w.path_in_package
    )


def test_the_artifacts_with_their_pinned_manifests() -> None:
    assert {entry.name for entry in WITH_ARTIFACT} == set(PINNED)
    for entry in WITH_ARTIFACT:
        assert entry.artifact is not None
        assert entry.artifact.manifest_sha256 == PINNED[entry.name]
        assert catalogue.artifact_uri(entry) == f"package://gouache.nst/{entry.artifact.directory}"


@pytest.mark.parametrize("entry", catalogue.entries(), ids=lambda entry: entry.name)
def test_every_shipped_artifact_verifies(entry: CatalogueEntry) -> None:
    if entry.artifact is None:
        assert not entry.weights
        with pytest.raises(ValueError, match="has no artifact"):
            catalogue.verify_entry(entry)
        return
    verified = catalogue.verify_entry(entry)
    assert verified["manifest.json"] == entry.artifact.manifest_sha256
    for weights in entry.weights.values():
        assert verified[Path(weights.path_in_package).name] == weights.sha256


@pytest.mark.parametrize("entry", WITH_ARTIFACT, ids=lambda entry: entry.name)
def test_another_manifest_digest_is_refused(entry: CatalogueEntry) -> None:
    directory = catalogue.resolve_uri(str(catalogue.artifact_uri(entry)))
    with pytest.raises(ArtifactMismatch, match=r"manifest\.json has sha256 .*, expected 0{64}"):
        catalogue.verify_artifact(directory, manifest_sha256="0" * 64, family=entry.family)


@pytest.mark.parametrize("entry", WITH_ARTIFACT, ids=lambda entry: entry.name)
def test_an_altered_file_is_refused(entry: CatalogueEntry, tmp_path: Path) -> None:
    directory = _copy(entry, tmp_path)
    name = _a_weights_file(entry)
    with (directory / name).open("ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ArtifactMismatch, match=f"{name} has sha256 .* lists"):
        catalogue.verify_entry(entry, directory)


@pytest.mark.parametrize("entry", WITH_ARTIFACT, ids=lambda entry: entry.name)
def test_a_missing_file_is_refused(entry: CatalogueEntry, tmp_path: Path) -> None:
    directory = _copy(entry, tmp_path)
    name = _a_weights_file(entry)
    (directory / name).unlink()
    with pytest.raises(ArtifactMismatch, match=f"{name} is missing"):
        catalogue.verify_entry(entry, directory)


@pytest.mark.parametrize("entry", WITH_ARTIFACT, ids=lambda entry: entry.name)
def test_a_wrong_family_is_refused(entry: CatalogueEntry, tmp_path: Path) -> None:
    directory = catalogue.resolve_uri(str(catalogue.artifact_uri(entry)))
    assert entry.artifact is not None
    with pytest.raises(ArtifactMismatch, match=f"family '{entry.family}', expected 'gatys'"):
        catalogue.verify_artifact(
            directory, manifest_sha256=entry.artifact.manifest_sha256, family="gatys"
        )


def test_a_self_consistent_but_other_artifact_is_refused(tmp_path: Path) -> None:
    entry = catalogue.get("adain.lite0-v1")
    directory = _copy(entry, tmp_path)
    (directory / "decoder.pt").write_bytes(b"other weights")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["decoder.pt"] = {"bytes": 13, "sha256": _sha256(directory / "decoder.pt")}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    catalogue.verify_artifact(
        directory, manifest_sha256=_sha256(directory / "manifest.json"), family="adain"
    )
    with pytest.raises(ArtifactMismatch, match=r"manifest\.json has sha256"):
        catalogue.verify_entry(entry, directory)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"net.pt": {"bytes": 3, "sha256": "SHA"}}, None),
        ({"net.pt": "SHA"}, None),
        ({}, "lists no files"),
        ({"net.pt": {"bytes": 3}}, "records no sha256 for 'net.pt'"),
        ({"../net.pt": "SHA"}, "not a file beside it"),
    ],
)
def test_both_shapes_of_the_files_table(
    tmp_path: Path, files: dict[str, object], message: str | None
) -> None:
    (tmp_path / "net.pt").write_bytes(b"abc")
    digest = _sha256(tmp_path / "net.pt")
    text = json.dumps({"family": "feedforward", "files": files}).replace("SHA", digest)
    (tmp_path / "manifest.json").write_text(text)
    pin = _sha256(tmp_path / "manifest.json")
    if message is None:
        verified = catalogue.verify_artifact(tmp_path, manifest_sha256=pin, family="feedforward")
        assert verified == {"manifest.json": pin, "net.pt": digest}
    else:
        with pytest.raises(ArtifactMismatch, match=message):
            catalogue.verify_artifact(tmp_path, manifest_sha256=pin, family="feedforward")


def test_a_pinned_file_the_manifest_does_not_list_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "net.pt").write_bytes(b"abc")
    (tmp_path / "extra.pt").write_bytes(b"extra")
    files = {"net.pt": _sha256(tmp_path / "net.pt")}
    (tmp_path / "manifest.json").write_text(json.dumps({"family": "adain", "files": files}))
    artifact = Artifact(directory="weights/x", manifest_sha256=_sha256(tmp_path / "manifest.json"))
    extra = WeightsFile(path_in_package="weights/x/extra.pt", sha256=_sha256(tmp_path / "extra.pt"))
    entry = CatalogueEntry(
        **{
            **catalogue.get("adain.lite0-v1").__dict__,
            "artifact": artifact,
            "weights": {"extra": extra},
        }
    )
    assert catalogue.verify_entry(entry, tmp_path)["extra.pt"] == extra.sha256
    (tmp_path / "extra.pt").unlink()
    with pytest.raises(ArtifactMismatch, match=r"weights 'extra'\) has sha256 \(missing\)"):
        catalogue.verify_entry(entry, tmp_path)


def test_a_directory_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactMismatch, match=r"has no manifest\.json"):
        catalogue.verify_artifact(tmp_path, manifest_sha256="0" * 64, family="adain")


def test_package_uris_resolve_to_the_shipped_directories() -> None:
    directory = catalogue.resolve_uri("package://gouache.nst/weights/adain.lite0-v1")
    assert (directory / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://models/adain.lite0-v1", "s3:// artifacts are planned but not supported yet"),
        ("http://example.com/weights", "unsupported scheme 'http'"),
        ("weights/adain.lite0-v1", "unsupported scheme '\\(none\\)'"),
        ("package://gouache.nst/weights/../weights/adain.lite0-v1", "may not contain '..'"),
        ("package://gouache.nst/", "must be non-empty"),
        ("package://gouache.nope/weights", "no installed package 'gouache.nope'"),
        ("package://os/weights", "with a gouache package"),
        ("package://gouache.nst/weights/none.v0", "is not a directory"),
        ("package://gouache.nst/weights?x=1", "with a gouache package"),
    ],
)
def test_other_uris_are_refused(uri: str, message: str) -> None:
    with pytest.raises(ArtifactUriError, match=message):
        catalogue.resolve_uri(uri)
