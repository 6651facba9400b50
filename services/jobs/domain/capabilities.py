"""What a model version can paint: the parameters its family honours, the styles it learnt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gouache.catalogue import LIMITED_PARAMS, TrainedStyle, honours
from gouache.runtime.errors import InvalidArgument
from services.jobs.domain.requests import StylizeParams
from services.jobs.domain.routing import ModelVersion


@dataclass(frozen=True)
class StyleImage:
    """A style image of a request: the field that named it and the sha256 of its bytes."""

    field: str
    sha256: str


def check_params(version: ModelVersion, params: StylizeParams) -> None:
    """Refuses a parameter the version's family would drop (a prompt, today).

    Which family honours what is the catalogue's (`LIMITED_PARAMS`); InvalidArgument names
    the parameter and says what to do instead.
    """
    for param in LIMITED_PARAMS:
        if getattr(params, param, None) is None or honours(version.family, param):
            continue
        takers = sorted(LIMITED_PARAMS[param])
        elsewhere = (
            f"only {', '.join(takers)} models do"
            if takers
            else "no model family in this release does"
        )
        raise InvalidArgument(
            f"params.{param} cannot be honoured by {version.name} ({version.family} family): "
            f"{elsewhere}. Remove params.{param}; to choose the look, send style images in "
            "style_urls",
            field=f"params.{param}",
            reason="unsupported_parameter",
        )


def check_styles(
    version: ModelVersion,
    styles: Sequence[StyleImage],
    trained: Sequence[TrainedStyle] | None,
) -> None:
    """Refuses a style a version trained on fixed styles would fail on when it runs.

    `trained` is the version's trained styles from the catalogue: empty for versions that
    paint any style, None when the catalogue does not know the version (one an operator
    registered), which is then left to inference to judge. A style is known by the
    sha256 of its bytes: the file trained on, or a curated copy of it.
    """
    if not trained:
        return
    known = frozenset().union(*(style.digests for style in trained))
    for style in styles:
        if style.sha256 in known:
            continue
        titles = "; ".join(style.title for style in trained)
        raise InvalidArgument(
            f"{style.field} is not a style {version.name} was trained on: a "
            f"{version.family} model paints only its {len(trained)} trained styles "
            f"({titles}). Name one of them from GET /v1/styles?curated=true (its style_id "
            'or file_url), or choose model_version "adain" to paint any style image',
            field=style.field,
            reason="untrained_style",
        )
