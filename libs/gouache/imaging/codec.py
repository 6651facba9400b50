"""Validate and decode untrusted PNG/JPEG/WebP bytes into RGB pixels, and encode them back.

Pixel arrays here are `uint8` with shape (height, width, 3) in RGB order. Arrays this
module returns are read-only (they are views over immutable buffers, so sharing them is
safe and no copy is made); call `.copy()` before writing into one.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from gouache.imaging import png
from gouache.imaging.errors import ImageRejected

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"

_CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
_PILLOW_FORMATS: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_FORMAT_ALIASES: dict[str, str] = {"jpg": "jpeg"}
_CONTENT_TYPE_ALIASES: dict[str, str] = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
}
# Clients that do not know what they send say so with one of these; the bytes decide.
_UNDECLARED_CONTENT_TYPES = frozenset({"", "application/octet-stream"})

# Signatures of formats we recognise but refuse, so the message can name them.
_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
)

_EXIF_ORIENTATION_TAG = 0x0112
_ORIENTATION_TRANSPOSES: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_WHITE = (255, 255, 255, 255)

SUPPORTED_CONTENT_TYPES: frozenset[str] = frozenset(_CONTENT_TYPES.values())


@dataclass(frozen=True)
class ImageLimits:
    """What an accepted input image may be; checked before any pixel is decoded."""

    max_bytes: int = 25 * 1024 * 1024
    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 40_000_000
    min_side: int = 16

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_width, self.max_height, self.max_pixels) <= 0:
            raise ValueError(f"image limits must be positive, got {self}")
        if not 1 <= self.min_side <= min(self.max_width, self.max_height):
            raise ValueError(f"min_side must be between 1 and the smaller maximum side, got {self}")


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class DecodedImage:
    """A validated input image: oriented RGB pixels plus what is known about its bytes.

    Two decoded images compare equal when their encoded bytes are the same (`sha256`);
    the pixel array is left out of comparison, hashing and repr.
    """

    pixels: NDArray[np.uint8] = field(compare=False, repr=False)
    format: str
    content_type: str
    width: int
    height: int
    sha256: str


def validate_and_decode(
    data: bytes,
    *,
    declared_content_type: str | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> DecodedImage:
    """Checks untrusted image bytes step by step and decodes them to oriented RGB.

    Cheap checks run first so hostile input costs little: the byte size, the format
    from the file signature, the declared content type, then the dimensions from the
    header before a single pixel is decoded. Every failure is an `ImageRejected`;
    no Pillow exception escapes.

    Pillow's own decompression-bomb warning is raised as an error while decoding. That
    uses `warnings.catch_warnings`, which is process-wide before Python 3.14; the
    pixel limit checked here from the header is the guard that does not depend on it.
    """
    fmt = _check_container(data, declared_content_type, limits)
    pixels = _decode_pixels(data, fmt, limits)
    pixels.flags.writeable = False
    height, width = pixels.shape[:2]
    return DecodedImage(
        pixels=pixels,
        format=fmt,
        content_type=_CONTENT_TYPES[fmt],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


@dataclass(frozen=True)
class ImageHeader:
    """What an image's bytes say of it without decoding a pixel: format and oriented size."""

    format: str
    content_type: str
    width: int
    height: int
    sha256: str


def inspect_header(
    data: bytes,
    *,
    declared_content_type: str | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageHeader:
    """The checks of `validate_and_decode` that need no pixels: size in bytes, format from
    the signature, the declared content type, dimensions from the header.

    For bytes a trusted component encoded itself (a worker's result, written by
    `encode`): a full decode would only re-check our own encoder at the cost of a decode
    per job. Untrusted input must go through `validate_and_decode`, which also finds
    truncated and corrupt pixel data.
    """
    fmt = _check_container(data, declared_content_type, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]]) as image:
                width, height = _oriented_size(image.size, _exif_orientation(image))
                _check_dimensions(width, height, limits)
    except (ImageRejected, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(limits) from exc
    except Exception as exc:
        raise _decode_failure(exc, fmt) from exc
    return ImageHeader(
        format=fmt,
        content_type=_CONTENT_TYPES[fmt],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _check_container(data: bytes, declared_content_type: str | None, limits: ImageLimits) -> str:
    """The checks before any header is parsed: byte size, format from the signature, the
    declared content type, a complete RIFF container for WebP. Returns the format."""
    _check_byte_size(len(data), limits)
    fmt = sniff_format(data)
    if declared_content_type is not None:
        _check_declared_content_type(declared_content_type, fmt)
    if fmt == "webp":
        _check_riff_complete(data)
    return fmt


def sniff_format(data: bytes) -> str:
    """Returns "png", "jpeg" or "webp" from the file signature, never from a name or label.

    Anything else is rejected as "unsupported_format", naming the format when it is
    one we recognise so the sender knows what to convert.
    """
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(_JPEG_SIGNATURE):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if not data:
        raise ImageRejected("undecodable", "the image is empty (0 bytes); send a PNG, JPEG or WebP")
    detected = _name_unsupported_format(data)
    raise ImageRejected(
        "unsupported_format",
        f"{detected} images are not supported; send a PNG, JPEG or WebP image",
    )


def encode(pixels: NDArray[np.uint8], fmt: str = "png", *, quality: int = 90) -> bytes:
    """Encodes RGB pixels as PNG, JPEG or WebP with no metadata.

    No timestamps, EXIF or colour profiles are written, so the same pixels always give
    the same bytes (and the same sha256), which keeps results cacheable and
    content-addressed. `quality` (1-100) applies to JPEG and WebP; PNG is lossless.
    """
    _require_rgb_uint8(pixels)
    name = _normalize_format(fmt)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    if name == "png":
        # Every job's result is a PNG encoded in tiling; gouache.imaging.png is 6x faster
        # than Pillow at zlib level 1 for about 6 % more bytes (see that module).
        return png.encode_rgb(pixels)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    if name == "jpeg":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def content_type_for(fmt: str) -> str:
    """Returns the media type for "png", "jpeg" (or "jpg") or "webp"."""
    return _CONTENT_TYPES[_normalize_format(fmt)]


def to_rgb_bytes(pixels: NDArray[np.uint8]) -> tuple[int, int, bytes]:
    """Flattens RGB pixels to (width, height, raw row-major RGB bytes) for the wire."""
    _require_rgb_uint8(pixels)
    height, width = pixels.shape[:2]
    return width, height, np.ascontiguousarray(pixels).tobytes()


def from_rgb_bytes(width: int, height: int, data: bytes) -> NDArray[np.uint8]:
    """Rebuilds RGB pixels from raw bytes, refusing a length that disagrees with the size.

    Returns a read-only view over `data` (no copy).
    """
    if width <= 0 or height <= 0:
        raise ImageRejected(
            "bad_dimensions", f"raw image size must be positive, got {width}x{height}"
        )
    expected = width * height * 3
    if len(data) != expected:
        raise ImageRejected(
            "bad_dimensions",
            f"raw RGB data is {len(data)} bytes but {width}x{height} needs {expected}",
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def resize_to_fit(pixels: NDArray[np.uint8], max_side: int) -> NDArray[np.uint8]:
    """Shrinks RGB pixels with Lanczos so the longer side is at most `max_side`.

    Never upscales: an image that already fits is returned unchanged (the same array),
    because enlarging adds no detail and only costs inference time.
    """
    _require_rgb_uint8(pixels)
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return pixels
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.ascontiguousarray(pixels))
    resized: NDArray[np.uint8] = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
    return resized


def _check_byte_size(size: int, limits: ImageLimits) -> None:
    if size > limits.max_bytes:
        raise ImageRejected(
            "too_large",
            f"image is {_format_bytes(size)}; the limit is {_format_bytes(limits.max_bytes)}",
        )


def _name_unsupported_format(data: bytes) -> str:
    for signature, name in _UNSUPPORTED_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    if b"<svg" in data[:1024].lower():
        return "SVG"
    return "unrecognised"


def _check_declared_content_type(declared: str, fmt: str) -> None:
    normalized = declared.split(";", 1)[0].strip().lower()
    normalized = _CONTENT_TYPE_ALIASES.get(normalized, normalized)
    if normalized in _UNDECLARED_CONTENT_TYPES:
        return
    actual = _CONTENT_TYPES[fmt]
    if normalized != actual:
        raise ImageRejected(
            "content_type_mismatch",
            f"the content type was declared as {declared.strip()!r} but the bytes are "
            f"{actual}; send the matching content type or omit it",
        )


def _check_riff_complete(data: bytes) -> None:
    """Spots a cut-off WebP from its RIFF length, since libwebp only reports a failure."""
    declared_end = 8 + int.from_bytes(data[4:8], "little")
    if len(data) < declared_end:
        raise ImageRejected(
            "truncated",
            f"the WebP image is cut off: {len(data)} of {declared_end} bytes arrived; "
            "upload the complete file",
        )


def _decode_pixels(data: bytes, fmt: str, limits: ImageLimits) -> NDArray[np.uint8]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]]) as image:
                orientation = _exif_orientation(image)
                _check_dimensions(*_oriented_size(image.size, orientation), limits)
                image.load()
                return _to_rgb_array(_apply_orientation(image, orientation))
    except (ImageRejected, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(limits) from exc
    except Exception as exc:
        # Pillow's plugins raise many unrelated types (OSError, SyntaxError, ValueError,
        # struct.error, zlib.error, ...) for malformed input: all mean "cannot decode".
        raise _decode_failure(exc, fmt) from exc


def _exif_orientation(image: Image.Image) -> int:
    """Reads the EXIF orientation from the header; a broken EXIF block counts as none.

    The raw block in `info` is parsed rather than calling `getexif()`, which for PNG
    may decode the whole image to look for a trailing eXIf chunk.
    """
    raw = image.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw)
        orientation = int(exif.get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:
        # A photo with damaged metadata is still a usable photo: keep it as stored.
        return 1
    return orientation if orientation in _ORIENTATION_TRANSPOSES else 1


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Rejects a header's dimensions; pixel count first, so a bomb is always called one."""
    if width * height > limits.max_pixels:
        raise ImageRejected(
            "decompression_bomb",
            f"image is {width}x{height} ({_format_megapixels(width * height)}); the limit is "
            f"{_format_megapixels(limits.max_pixels)}",
        )
    if width > limits.max_width or height > limits.max_height:
        raise ImageRejected(
            "bad_dimensions",
            f"image is {width}x{height}; the largest accepted is "
            f"{limits.max_width}x{limits.max_height}",
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            "bad_dimensions",
            f"image is {width}x{height}; both sides must be at least {limits.min_side} pixels",
        )


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    transpose = _ORIENTATION_TRANSPOSES.get(orientation)
    return image if transpose is None else image.transpose(transpose)


def _to_rgb_array(image: Image.Image) -> NDArray[np.uint8]:
    """Converts any decoded mode to 8-bit RGB, compositing transparency on white.

    White because style transfer needs opaque pixels and most transparent uploads are
    logos or drawings meant to sit on a light page. 16-bit grayscale is scaled down
    explicitly: Pillow's own conversion clips it instead.
    """
    if image.mode in _SIXTEEN_BIT_GRAY_MODES:
        return _gray16_to_rgb(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        background = Image.new("RGBA", image.size, _WHITE)
        image = Image.alpha_composite(background, image.convert("RGBA"))
    rgb: NDArray[np.uint8] = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return rgb


def _gray16_to_rgb(image: Image.Image) -> NDArray[np.uint8]:
    values = np.asarray(image).astype(np.uint32)
    gray = ((np.clip(values, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _bomb(limits: ImageLimits) -> ImageRejected:
    return ImageRejected(
        "decompression_bomb",
        "the image header declares more pixels than can be decoded safely; the limit "
        f"is {_format_megapixels(limits.max_pixels)}",
    )


def _decode_failure(exc: Exception, fmt: str) -> ImageRejected:
    """Tells a cut-off file from a corrupt one, going by what Pillow reports."""
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return ImageRejected(
            "truncated",
            f"the {fmt.upper()} image is cut off before its end; upload the complete file",
        )
    return ImageRejected(
        "undecodable",
        f"the {fmt.upper()} image could not be decoded; it may be corrupt, so re-export it",
    )


def _require_rgb_uint8(pixels: NDArray[np.uint8]) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(
            f"expected uint8 RGB pixels of shape (height, width, 3), "
            f"got {pixels.dtype} {pixels.shape}"
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"pixels must not be empty, got shape {pixels.shape}")


def _normalize_format(fmt: str) -> str:
    name = fmt.strip().lower()
    name = _FORMAT_ALIASES.get(name, name)
    if name not in _CONTENT_TYPES:
        raise ValueError(f"unsupported image format {fmt!r}; use one of png, jpeg, webp")
    return name


def _format_bytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{_trim(size / (1024 * 1024))} MB"
    if size >= 1024:
        return f"{_trim(size / 1024)} KB"
    return f"{size} bytes"


def _format_megapixels(pixels: int) -> str:
    return f"{_trim(pixels / 1_000_000)} megapixels"


def _trim(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")
