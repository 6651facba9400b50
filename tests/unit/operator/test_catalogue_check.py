"""A ModelVersion against the catalogue: known build and family, exactly its weights."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from gouache import catalogue
from gouache_operator.domain.catalogue import catalogue_entry
from gouache_operator.domain.spec import InvalidSpec, VersionSpec, Weights

ADAIN = catalogue.get("adain.lite0-v1")
assert ADAIN.artifact is not None
MANIFEST = ADAIN.artifact.manifest_sha256
SPEC = VersionSpec(
    version="adain.lite0-v1-r2",
    model="adain.lite0-v1",
    family="adain",
    alias="adain",
    pool="h100",
    gpu_memory_gib=6,
    weights=Weights(uri="package://gouache.nst/weights/adain.lite0-v1", sha256=MANIFEST),
)


def test_the_shipped_artifact_passes() -> None:
    assert catalogue_entry(SPEC) is ADAIN


def test_gatys_needs_no_weights() -> None:
    spec = replace(SPEC, model="gatys.lite0-fast", family="gatys", weights=None)
    assert catalogue_entry(spec).family == "gatys"


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ({"family": "dreams"}, "UnknownFamily", "not a family this gouache build serves"),
        ({"model": "adain.lite9"}, "UnknownModel", "not in the model catalogue"),
        ({"family": "gatys"}, "FamilyMismatch", "is a adain model"),
        ({"weights": None}, "WeightsRequired", MANIFEST),
        (
            {"weights": Weights(uri=SPEC.weights.uri, sha256="0" * 64)},  # type: ignore[union-attr]
            "WeightsMismatch",
            "sha256",
        ),
        (
            {"weights": Weights(uri="s3://models/adain", sha256=MANIFEST)},
            "UnsupportedWeightsUri",
            "not supported yet",
        ),
        (
            {"weights": Weights(uri="package://gouache.nst/weights/../..", sha256=MANIFEST)},
            "UnsupportedWeightsUri",
            "..",
        ),
        (
            {
                "model": "gatys.lite0-fast",
                "family": "gatys",
            },
            "UnexpectedWeights",
            "remove spec.weights",
        ),
    ],
)
def test_refusals(change: dict[str, object], reason: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as refused:
        catalogue_entry(replace(SPEC, **change))  # type: ignore[arg-type]
    assert refused.value.reason == reason
    assert words in refused.value.message


def test_weights_swapped_in_the_directory_are_refused(tmp_path: Path) -> None:
    directory = catalogue.resolve_uri(SPEC.weights.uri)  # type: ignore[union-attr]
    copy = tmp_path / "adain"
    shutil.copytree(directory, copy)
    (copy / "decoder.pt").write_bytes(b"not the decoder")
    with pytest.raises(catalogue.ArtifactMismatch):
        catalogue.verify_artifact(copy, manifest_sha256=MANIFEST, family="adain")
