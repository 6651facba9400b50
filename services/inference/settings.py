"""Settings of the inference service, read once from GOUACHE_INFERENCE_* variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from gouache import catalogue
from gouache.runtime.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    """Which model versions to load, where to run them and how much work to accept."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_INFERENCE_", frozen=True, extra="ignore")

    port: int = 50055
    # Comma-separated model versions loaded (and warmed up) before the service is SERVING.
    models: str = ",".join(catalogue.names())
    # "onnx" runs the exported network of families that have one (adain, feedforward) in
    # ONNX Runtime, measured 1.6-1.8x faster than torch on CPU at 512 px; "torch" runs
    # every family in PyTorch. gatys optimises pixels and always runs in torch.
    runtime: str = "onnx"
    # "cpu", or "cuda" (falls back to cpu, with a warning, when no GPU is visible).
    device: str = "cpu"
    # Stylizations computed at once; the rest wait their turn.
    max_concurrency: int = Field(default=1, ge=1)
    # Largest image (content, tile or style) one request may carry, in pixels.
    max_pixels: int = Field(default=2048 * 2048, ge=1)
    # CPU threads torch uses for a stylization; 0 keeps torch's default (one per core).
    # 1 by default: on a machine shared with the rest of the mesh, more threads than free
    # cores (OpenMP oversubscription) made the fast model 3-10x slower in measurements;
    # raise it on a node dedicated to inference.
    torch_threads: int = Field(default=1, ge=0)
    # Side of the generated square image each model stylizes once at start.
    warmup_side: int = Field(default=32, ge=16)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        device = value.strip().lower()
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {value!r}")
        return device

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        runtime = value.strip().lower()
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {value!r}")
        return runtime

    def model_versions(self) -> list[str]:
        """The configured model versions, in order, without blanks or repeats."""
        versions: list[str] = []
        for part in self.models.split(","):
            name = part.strip()
            if name and name not in versions:
                versions.append(name)
        return versions
