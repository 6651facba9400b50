"""What a client asks for: stylize parameters, their validation and the idempotency fingerprint."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gouache.priority import DEFAULT_LANE, LANES
from gouache.runtime.errors import InvalidArgument

MAX_STYLES = 4
MIN_TILE_SIZE = 64
MAX_TILE_SIZE = 2048
OUTPUT_FORMATS = ("png", "jpeg", "webp")
DEFAULT_OUTPUT_FORMAT = "png"
MAX_PROMPT_CHARS = 500
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_URL_CHARS = 2048
MAX_MODEL_NAME_CHARS = 128
MAX_SEED = 2**32 - 1
DEFAULT_MODEL = "default"
MIN_MAX_SIDE = 16
MAX_MAX_SIDE = 8192


def fmt(value: float) -> str:
    """A number as a person wrote it: 1.7, not 1.7000000476837158 (floats are float32)."""
    return f"{value:g}"


@dataclass(frozen=True)
class StylizeParams:
    """Controls for one stylization; None means "the model version's default"."""

    alpha: float | None = None
    tv_weight: float | None = None
    luminance_only: bool = False
    histogram_match: bool = False
    tile_size: int | None = None
    overlap: int | None = None
    seed: int | None = None
    weights: tuple[float, ...] = ()
    prompt: str | None = None
    output_format: str = DEFAULT_OUTPUT_FORMAT
    quality: int | None = None
    max_side: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields that are set (the stored and compared form)."""
        data: dict[str, Any] = {
            "luminance_only": self.luminance_only,
            "histogram_match": self.histogram_match,
            "output_format": self.output_format,
        }
        optional: dict[str, Any] = {
            "alpha": self.alpha,
            "tv_weight": self.tv_weight,
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "seed": self.seed,
            "prompt": self.prompt,
            "quality": self.quality,
            "max_side": self.max_side,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        if self.weights:
            data["weights"] = list(self.weights)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StylizeParams:
        """The inverse of to_dict."""

        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        def integer(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        prompt = data.get("prompt")
        return cls(
            alpha=number("alpha"),
            tv_weight=number("tv_weight"),
            luminance_only=bool(data.get("luminance_only", False)),
            histogram_match=bool(data.get("histogram_match", False)),
            tile_size=integer("tile_size"),
            overlap=integer("overlap"),
            seed=integer("seed"),
            weights=tuple(float(weight) for weight in data.get("weights", ())),
            prompt=None if prompt is None else str(prompt),
            output_format=str(data.get("output_format", DEFAULT_OUTPUT_FORMAT)),
            quality=integer("quality"),
            max_side=integer("max_side"),
        )


@dataclass(frozen=True)
class JobRequest:
    """A CreateJob request in domain terms."""

    content_url: str
    style_urls: tuple[str, ...]
    model_version: str = ""
    params: StylizeParams = field(default_factory=StylizeParams)
    idempotency_key: str = ""
    # Run the model even when the result cache holds an answer (it is then replaced).
    no_cache: bool = False
    # "preview" or "export" (services.jobs.domain.lanes).
    lane: str = DEFAULT_LANE

    def fingerprint(self) -> str:
        """A digest of everything that defines the job, to compare idempotent retries.

        The key itself is left out: two requests are "the same" when they would create
        the same job. So is no_cache, which changes how the job is answered, not what it
        is. Compare normalized requests (see validate_job_request).
        """
        fields: dict[str, Any] = {
            "content_url": self.content_url,
            "style_urls": list(self.style_urls),
            "model_version": self.model_version,
            "params": self.params.to_dict(),
        }
        if self.lane != DEFAULT_LANE:  # so fingerprints stored before lanes still match
            fields["lane"] = self.lane
        canonical = json.dumps(
            fields,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def choose_idempotency_key(body_key: str, header_key: str | None) -> str:
    """The request's idempotency key, from the body field or the idempotency-key header.

    Both may be sent if they agree; a key longer than 200 characters is refused.
    """
    body_key = body_key.strip()
    header_key = (header_key or "").strip()
    if body_key and header_key and body_key != header_key:
        raise InvalidArgument(
            "idempotency_key and the idempotency-key header differ; send the key once",
            field="idempotency_key",
        )
    key = body_key or header_key
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidArgument(
            f"idempotency_key is {len(key)} characters; at most "
            f"{MAX_IDEMPOTENCY_KEY_CHARS} are allowed",
            field="idempotency_key",
        )
    return key


def check_url(value: str, name: str) -> str:
    """A file URL field: present and at most MAX_URL_CHARS; returns it stripped."""
    url = value.strip()
    if not url:
        raise InvalidArgument(
            f"{name} is empty; pass a file URL from SignUpload or ListStyles", field=name
        )
    if len(url) > MAX_URL_CHARS:
        raise InvalidArgument(
            f"{name} is {len(url)} characters; at most {MAX_URL_CHARS} are allowed", field=name
        )
    return url


def _check_weights(weights: tuple[float, ...], styles: int) -> None:
    if not weights:
        return
    if len(weights) != styles:
        raise InvalidArgument(
            f"params.weights has {len(weights)} values but there are {styles} style_urls; "
            "give one weight per style, or none for equal weights",
            field="params.weights",
        )
    for index, weight in enumerate(weights):
        name = f"params.weights[{index}]"
        if not math.isfinite(weight):
            raise InvalidArgument(f"{name} must be a finite number, got {weight}", field=name)
        if weight < 0:
            raise InvalidArgument(f"{name} must be 0 or more, got {fmt(weight)}", field=name)
    if sum(weights) <= 0:
        raise InvalidArgument(
            "params.weights must sum to a positive number; give at least one style a weight "
            "above 0",
            field="params.weights",
        )


def validate_params(params: StylizeParams, styles: int) -> StylizeParams:
    """Checks every stylize control; returns them normalized (tile_size 0 → unset, format)."""
    if params.alpha is not None and not (math.isfinite(params.alpha) and 0 <= params.alpha <= 1):
        raise InvalidArgument(
            f"params.alpha must be between 0 and 1, got {fmt(params.alpha)}",
            field="params.alpha",
        )
    if params.tv_weight is not None and not (
        math.isfinite(params.tv_weight) and params.tv_weight >= 0
    ):
        raise InvalidArgument(
            f"params.tv_weight must be a finite number, 0 or more, got {fmt(params.tv_weight)}",
            field="params.tv_weight",
        )
    tile_size = params.tile_size or None
    if tile_size is not None and not MIN_TILE_SIZE <= tile_size <= MAX_TILE_SIZE:
        raise InvalidArgument(
            f"params.tile_size must be between {MIN_TILE_SIZE} and {MAX_TILE_SIZE} pixels "
            f"(or 0 for the model's default), got {tile_size}",
            field="params.tile_size",
        )
    if params.overlap is not None and params.overlap < 0:
        raise InvalidArgument(
            f"params.overlap must be 0 or more pixels, got {params.overlap}",
            field="params.overlap",
        )
    if tile_size is not None:
        check_overlap(params, tile_size)
    if params.seed is not None and not 0 <= params.seed <= MAX_SEED:
        raise InvalidArgument(
            f"params.seed must be between 0 and {MAX_SEED}, got {params.seed}",
            field="params.seed",
        )
    _check_weights(params.weights, styles)
    output_format = params.output_format.strip().lower() or DEFAULT_OUTPUT_FORMAT
    if output_format not in OUTPUT_FORMATS:
        raise InvalidArgument(
            f"params.output_format must be one of {', '.join(OUTPUT_FORMATS)}, "
            f"got {params.output_format!r}",
            field="params.output_format",
        )
    if params.quality is not None and not 1 <= params.quality <= 100:
        raise InvalidArgument(
            f"params.quality must be between 1 and 100, got {params.quality}",
            field="params.quality",
        )
    if params.max_side is not None and not MIN_MAX_SIDE <= params.max_side <= MAX_MAX_SIDE:
        raise InvalidArgument(
            f"params.max_side must be between {MIN_MAX_SIDE} and {MAX_MAX_SIDE} pixels, "
            f"got {params.max_side}",
            field="params.max_side",
        )
    if params.prompt is not None and len(params.prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument(
            f"params.prompt is {len(params.prompt)} characters; at most {MAX_PROMPT_CHARS} "
            "are allowed",
            field="params.prompt",
        )
    return replace(
        params,
        tile_size=tile_size,
        output_format=output_format,
        prompt=params.prompt or None,
    )


def check_overlap(params: StylizeParams, tile_size: int) -> None:
    """The overlap must leave each tile at least half its own: 0..tile_size/2.

    tile_size is the one that will be used: the request's, else the model version's.
    """
    if params.overlap is None:
        return
    limit = tile_size // 2
    if not 0 <= params.overlap <= limit:
        raise InvalidArgument(
            f"params.overlap must be between 0 and {limit} pixels (half of the tile size "
            f"{tile_size}), got {params.overlap}",
            field="params.overlap",
        )


def validate_job_request(request: JobRequest) -> JobRequest:
    """Checks a CreateJob request field by field; returns it normalized.

    Each violation is an InvalidArgument naming the field and saying what is allowed.
    The overlap is checked against the model's tile size later, once routing chose it.
    """
    if not request.content_url.strip():
        raise InvalidArgument(
            "content_url is required: pass the file_url of your uploaded content image",
            field="content_url",
        )
    content_url = check_url(request.content_url, "content_url")
    if not request.style_urls:
        raise InvalidArgument(
            "style_urls needs at least one style image URL (an uploaded file_url or a "
            "style from ListStyles)",
            field="style_urls",
        )
    if len(request.style_urls) > MAX_STYLES:
        raise InvalidArgument(
            f"style_urls has {len(request.style_urls)} entries; at most {MAX_STYLES} styles "
            "can be blended",
            field="style_urls",
        )
    style_urls = tuple(
        check_url(url, f"style_urls[{index}]") for index, url in enumerate(request.style_urls)
    )
    model_version = request.model_version.strip() or DEFAULT_MODEL
    if len(model_version) > MAX_MODEL_NAME_CHARS:
        raise InvalidArgument(
            f"model_version is {len(model_version)} characters; at most "
            f"{MAX_MODEL_NAME_CHARS} are allowed",
            field="model_version",
        )
    params = validate_params(request.params, len(style_urls))
    key = choose_idempotency_key(request.idempotency_key, None)
    lane = request.lane.strip().lower() or DEFAULT_LANE
    if lane not in LANES:
        raise InvalidArgument(
            f"lane must be one of {', '.join(LANES)} (or empty for {DEFAULT_LANE}), "
            f"got {request.lane!r}",
            field="lane",
        )
    return JobRequest(
        content_url=content_url,
        style_urls=style_urls,
        model_version=model_version,
        params=params,
        idempotency_key=key,
        no_cache=request.no_cache,
        lane=lane,
    )
