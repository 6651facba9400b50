"""Settings of the inference service, read once from GOUACHE_INFERENCE_* variables."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from gouache import catalogue
from gouache.runtime.settings import ServiceSettings

VERSION_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""What a served version name and a registry model name look like."""


class InjectedFault(BaseModel):
    """A failure GOUACHE_INFERENCE_FAULTS injects into every call naming one version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Probability that a call fails with INTERNAL, after the delay.
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Milliseconds every call waits before it runs (or fails).
    delay_ms: int = Field(default=0, ge=0)


class InferenceSettings(ServiceSettings):
    """Which model versions to load, where to run them and how much work to accept."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_INFERENCE_", frozen=True, extra="ignore")

    port: int = 50055
    # Comma-separated model versions loaded (and warmed up) before the service is SERVING.
    # An entry `name=model` serves the registry model `model` under the version name
    # `name` (what requests and ListLoadedModels use), e.g. `adain-canary=adain.lite0-v1`
    # for a canary Deployment; a plain `name` means `name=name`. Names must be unique.
    models: str = ",".join(catalogue.names())
    # "onnx" runs the exported networks of families that have them (adain, feedforward, wct) in
    # ONNX Runtime, measured 1.6-1.8x faster than torch on CPU at 512 px; "torch" runs
    # every family in PyTorch. gatys optimises pixels and always runs in torch.
    runtime: str = "onnx"
    # "auto": the GPU when torch sees one (and ONNX Runtime's CUDA provider, with the
    # ml-gpu extra's onnxruntime-gpu), else the CPU; "cpu"; or "cuda" (falls back to cpu,
    # with a warning, when no GPU is visible).
    device: str = "auto"
    # What the ONNX graphs compute in: "auto" (default) serves a version converted to
    # float16 on CUDA when its pictures on a fixed probe stay within half a uint8 level
    # on average (p99.9 within 4) of float32's, else float32, and float32 on the CPU;
    # "fp16" demands fp16 and fails the load where parity does not hold; "fp32" never
    # converts (gouache.nst.precision). The choice and the measured difference are logged.
    precision: str = "auto"
    # Stylizations computed at once; the rest wait their turn.
    # 2 by default: with one thread each (torch_threads), two stylizations at once kept
    # both cores busy while the rest of the mesh waited on I/O, 8 % more jobs/s through
    # REST than one at a time on the 2-core VM (loadtests/RESULTS.md).
    max_concurrency: int = Field(default=2, ge=1)
    # Dynamic micro-batching (services/inference/batching.py) for the one-pass families
    # (adain, feedforward, wct): images of one model version and exact size, from any calls
    # and tiles, share a forward pass of up to max_batch_size images; 1 turns it off.
    # 0 (default): 8 on cuda, 1 on cpu, where it measured no gain on 2 cores
    # (loadtests/RESULTS.md, "Dynamic micro-batching").
    max_batch_size: int = Field(default=0, ge=0, le=64)
    # How long the first image of a batch may wait for others before the batch runs,
    # in milliseconds. 0: nothing waits on purpose; a busy server still batches what
    # queued while its compute slots were taken (Triton's max_queue_delay_microseconds).
    max_queue_delay_ms: float = Field(default=0.0, ge=0.0, le=1000.0)
    # Largest image (content, tile or style) one request may carry, in pixels.
    max_pixels: int = Field(default=2048 * 2048, ge=1)
    # CPU threads torch uses for a stylization; 0 keeps torch's default (one per core).
    # 1 by default: on a machine shared with the rest of the mesh, more threads than free
    # cores (OpenMP oversubscription) made the fast model 3-10x slower in measurements;
    # raise it on a node dedicated to inference.
    torch_threads: int = Field(default=1, ge=0)
    # Side of the generated square image each model stylizes once at start.
    warmup_side: int = Field(default=32, ge=16)
    # TEST-ONLY fault injection, never set in production: a JSON object
    # {"<version name>": {"error_rate": 0.0-1.0, "delay_ms": int >= 0}}. Every Stylize,
    # StylizeBatch and EvaluateModelVersion call for a listed version first waits
    # delay_ms, then fails with INTERNAL with probability error_rate, so canary rollbacks
    # can be tested against a bad version. Logged as a WARNING at start when set.
    faults: Annotated[dict[str, InjectedFault], NoDecode] = Field(default_factory=dict)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        device = value.strip().lower()
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {value!r}")
        return device

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, value: str) -> str:
        precision = value.strip().lower()
        if precision not in ("auto", "fp16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'fp16' or 'fp32', got {value!r}")
        return precision

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        runtime = value.strip().lower()
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {value!r}")
        return runtime

    @field_validator("models")
    @classmethod
    def _valid_entries(cls, value: str) -> str:
        parse_served_models(value)
        return value

    @field_validator("faults", mode="before")
    @classmethod
    def _faults_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return {}
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"faults must be a JSON object, got {value!r}: {exc}") from exc
        if not isinstance(value, dict):
            raise ValueError(
                'faults must be a JSON object like {"<version>": {"error_rate": 0.5, '
                f'"delay_ms": 100}}}}, got {value!r}'
            )
        return value

    @model_validator(mode="after")
    def _faults_name_served_versions(self) -> Self:
        unknown = sorted(set(self.faults) - set(self.model_versions()))
        if unknown:
            raise ValueError(
                f"faults name version(s) {', '.join(unknown)} that this server does not "
                f"serve; served: {', '.join(self.model_versions())}"
            )
        return self

    def served_models(self) -> dict[str, str]:
        """Each served version name, in configuration order, with the registry model it runs."""
        return parse_served_models(self.models)

    def model_versions(self) -> list[str]:
        """The served version names, in configuration order."""
        return list(self.served_models())


def parse_served_models(value: str) -> dict[str, str]:
    """Parses `name[=model],...` into {name: model}; ValueError names a bad entry.

    Blank entries are skipped; a name must not repeat, and both parts must match
    `VERSION_NAME`.
    """
    served: dict[str, str] = {}
    for part in value.split(","):
        entry = part.strip()
        if not entry:
            continue
        name, separator, model = (piece.strip() for piece in entry.partition("="))
        if not separator:
            model = name
        for what, text in (("version name", name), ("model", model)):
            if not VERSION_NAME.fullmatch(text):
                raise ValueError(
                    f"models entry {entry!r}: {what} {text!r} must match "
                    f"{VERSION_NAME.pattern} (lower case letters, digits, '.', '_', '-'); "
                    "write `name` or `name=model`"
                )
        if name in served:
            raise ValueError(
                f"models entry {entry!r}: version name {name!r} is served twice; "
                "give each entry its own name"
            )
        served[name] = model
    return served
