"""Image arguments of the CLI: a file path, or `skimage:NAME` for an image bundled with scikit-image."""

from __future__ import annotations

from pathlib import Path

from gouache.imaging.codec import encode

BUNDLED = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "colorwheel",
)


def load_image_argument(argument: str, *, max_side: int | None = None) -> tuple[str, bytes]:
    """Returns (filename, encoded bytes) for a CLI image argument."""
    if argument.startswith("skimage:"):
        name = argument.split(":", 1)[1]
        if name not in BUNDLED:
            raise SystemExit(f"unknown bundled image {name!r}; choose one of: {', '.join(BUNDLED)}")
        import skimage.data

        pixels = getattr(skimage.data, name)()
        if pixels.ndim == 2:
            import numpy as np

            pixels = np.stack([pixels] * 3, axis=-1)
        pixels = pixels[..., :3]
        if max_side is not None:
            from gouache.imaging.codec import resize_to_fit

            pixels = resize_to_fit(pixels, max_side)
        return f"{name}.png", encode(pixels, "png")
    path = Path(argument)
    if not path.is_file():
        raise SystemExit(f"{argument}: no such file (or use skimage:NAME, e.g. skimage:astronaut)")
    data = path.read_bytes()
    if max_side is not None:
        from gouache.imaging.codec import resize_to_fit, validate_and_decode
        from gouache.imaging.errors import ImageRejected

        try:
            decoded = validate_and_decode(data)
        except ImageRejected as exc:
            raise SystemExit(f"{argument}: {exc.message}") from None
        if max(decoded.width, decoded.height) > max_side:
            return f"{path.stem}.png", encode(resize_to_fit(decoded.pixels, max_side), "png")
    return path.name, data
