"""Tiling takes a model's tile size from inference, falling back to its default."""

from __future__ import annotations

from services.tiling.server import model_tile_size


class _Inference:
    def __init__(self, sizes: dict[str, int]) -> None:
        self._sizes = sizes

    async def tile_size(self, model_version: str, endpoint: str = "") -> int | None:
        return self._sizes.get(f"{model_version}@{endpoint}")


async def test_reported_tile_size_is_used() -> None:
    sizes = {"gatys.lite0-fast@": 256, "gatys.lite0-fast@inference-v2:50055": 384}
    tile_size_for = model_tile_size(_Inference(sizes), 512)  # type: ignore[arg-type]
    assert await tile_size_for("gatys.lite0-fast", "") == 256
    assert await tile_size_for("gatys.lite0-fast", "inference-v2:50055") == 384


async def test_unreported_version_falls_back_to_default() -> None:
    tile_size_for = model_tile_size(_Inference({}), 512)  # type: ignore[arg-type]
    assert await tile_size_for("gatys.lite0-fast", "") == 512
    assert await tile_size_for("gatys.lite0-fast", "inference-v2:50055") == 512
