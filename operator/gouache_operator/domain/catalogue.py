"""A ModelVersion against the model catalogue: a known build, its family, its exact weights."""

from __future__ import annotations

from gouache import catalogue
from gouache.catalogue import ArtifactMismatch, ArtifactUriError, CatalogueEntry
from gouache_operator.domain.spec import InvalidSpec, VersionSpec


def catalogue_entry(spec: VersionSpec) -> CatalogueEntry:
    """The catalogue build the version serves, once family and weights agree with it.

    Raises InvalidSpec (UnknownFamily, UnknownModel, FamilyMismatch, WeightsRequired,
    UnexpectedWeights, UnsupportedWeightsUri, WeightsMismatch) with what to change. The
    weights are checked file by file: the manifest's sha256 must be the one in the spec
    and the catalogue's, and every file it lists must have its recorded sha256.
    """
    if spec.family not in catalogue.FAMILIES:
        raise InvalidSpec(
            "UnknownFamily",
            f"spec.family {spec.family!r} is not a family this gouache build serves "
            f"({', '.join(catalogue.FAMILIES)})",
        )
    try:
        entry = catalogue.get(spec.model)
    except KeyError:
        known = ", ".join(catalogue.names())
        raise InvalidSpec(
            "UnknownModel",
            f"spec.model {spec.model!r} is not in the model catalogue (known: {known}); set "
            "spec.model to the build this version serves",
        ) from None
    if entry.family != spec.family:
        raise InvalidSpec(
            "FamilyMismatch",
            f"spec.family is {spec.family!r} but {entry.name} is a {entry.family} model",
        )
    if entry.artifact is None:
        if spec.weights is not None:
            raise InvalidSpec(
                "UnexpectedWeights",
                f"{entry.name} ({entry.family}) has no trained weights; remove spec.weights",
            )
        return entry
    if spec.weights is None:
        raise InvalidSpec(
            "WeightsRequired",
            f"{entry.name} needs spec.weights: uri {catalogue.artifact_uri(entry)} and the "
            f"sha256 of its manifest.json ({entry.artifact.manifest_sha256})",
        )
    try:
        directory = catalogue.resolve_uri(spec.weights.uri)
    except ArtifactUriError as exc:
        raise InvalidSpec("UnsupportedWeightsUri", f"spec.weights.uri: {exc}") from None
    try:
        catalogue.verify_artifact(
            directory, manifest_sha256=spec.weights.sha256, family=spec.family
        )
        catalogue.verify_entry(entry, directory)
    except ArtifactMismatch as exc:
        raise InvalidSpec(
            "WeightsMismatch", f"spec.weights do not match {spec.weights.uri}: {exc}"
        ) from None
    return entry
