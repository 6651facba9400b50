"""Tests for decoding untrusted image bytes, encoding, raw RGB transport and resizing."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageFile

from gouache.imaging.codec import (
    SUPPORTED_CONTENT_TYPES,
    DecodedImage,
    ImageLimits,
    content_type_for,
    encode,
    from_rgb_bytes,
    resize_to_fit,
    sniff_format,
    to_rgb_bytes,
    validate_and_decode,
)
from gouache.imaging.errors import ImageRejected
from tests.unit.imaging.samples import sample

FORMATS = ["png", "jpeg", "webp"]
DEFAULT = ImageLimits()


def save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def handmade_png(
    width: int, height: int, *, bit_depth: int, colour_type: int, idat: bytes
) -> bytes:
    """A PNG written chunk by chunk, for headers Pillow would not write for us."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG; huge sizes compress to almost nothing."""
    row = bytes(1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return handmade_png(width, height, bit_depth=1, colour_type=0, idat=idat)


def sixteen_bit_png(values: NDArray[np.uint16], colour_type: int) -> bytes:
    big_endian = values.astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in big_endian)
    height, width = values.shape[:2]
    return handmade_png(
        width, height, bit_depth=16, colour_type=colour_type, idat=zlib.compress(raw)
    )


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / mse))


def rejection(
    data: bytes, *, declared_content_type: str | None = None, limits: ImageLimits = DEFAULT
) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        validate_and_decode(data, declared_content_type=declared_content_type, limits=limits)
    return info.value


def fail_if_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes decoding pixels an error, to prove a rejection came from the header alone."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded before the header was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_decode_reports_format_size_and_digest(
        self, astronaut: NDArray[np.uint8], fmt: str
    ) -> None:
        data = encode(astronaut, fmt)
        decoded = validate_and_decode(data, declared_content_type=content_type_for(fmt))
        assert decoded.format == fmt
        assert decoded.content_type == f"image/{fmt}"
        assert (decoded.width, decoded.height) == (512, 512)
        assert decoded.sha256 == hashlib.sha256(data).hexdigest()
        assert decoded.pixels.shape == (512, 512, 3)
        assert decoded.pixels.dtype == np.uint8

    def test_png_is_lossless(self, astronaut: NDArray[np.uint8]) -> None:
        decoded = validate_and_decode(encode(astronaut, "png"))
        np.testing.assert_array_equal(decoded.pixels, astronaut)

    @pytest.mark.parametrize("fmt", ["jpeg", "webp"])
    def test_lossy_formats_stay_close(self, astronaut: NDArray[np.uint8], fmt: str) -> None:
        decoded = validate_and_decode(encode(astronaut, fmt, quality=90))
        assert psnr(decoded.pixels, astronaut) > 30

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_encoding_is_deterministic(self, chelsea: NDArray[np.uint8], fmt: str) -> None:
        assert encode(chelsea, fmt) == encode(chelsea.copy(), fmt)

    def test_encoding_writes_no_metadata(self, chelsea: NDArray[np.uint8]) -> None:
        reopened = Image.open(io.BytesIO(encode(chelsea, "png")))
        assert "exif" not in reopened.info
        assert "icc_profile" not in reopened.info

    def test_quality_changes_lossy_output(self, chelsea: NDArray[np.uint8]) -> None:
        assert len(encode(chelsea, "jpeg", quality=30)) < len(encode(chelsea, "jpeg", quality=95))

    def test_decoded_pixels_are_read_only(self, chelsea: NDArray[np.uint8]) -> None:
        decoded = validate_and_decode(encode(chelsea))
        with pytest.raises(ValueError, match="read-only"):
            decoded.pixels[0, 0, 0] = 1

    def test_decoded_images_compare_by_digest(self, chelsea: NDArray[np.uint8]) -> None:
        data = encode(chelsea)
        first, second = validate_and_decode(data), validate_and_decode(data)
        assert first == second
        assert hash(first) == hash(second)
        assert first != validate_and_decode(encode(chelsea, "webp"))

    def test_jpg_alias_and_content_types(self) -> None:
        assert content_type_for("jpg") == "image/jpeg"
        assert content_type_for("PNG") == "image/png"
        assert {"image/png", "image/jpeg", "image/webp"} == SUPPORTED_CONTENT_TYPES

    @pytest.mark.parametrize(
        ("pixels", "fmt", "quality"),
        [
            (np.zeros((8, 8, 3), np.float32), "png", 90),
            (np.zeros((8, 8), np.uint8), "png", 90),
            (np.zeros((8, 8, 4), np.uint8), "png", 90),
            (np.zeros((0, 8, 3), np.uint8), "png", 90),
            (np.zeros((8, 8, 3), np.uint8), "gif", 90),
            (np.zeros((8, 8, 3), np.uint8), "jpeg", 0),
        ],
    )
    def test_encode_refuses_bad_arguments(
        self, pixels: NDArray[np.uint8], fmt: str, quality: int
    ) -> None:
        with pytest.raises(ValueError, match=r"expected|empty|unsupported|quality"):
            encode(pixels, fmt, quality=quality)


class TestSizeAndFormat:
    def test_too_large_is_rejected_before_anything_else(self) -> None:
        error = rejection(b"GIF89a" + bytes(3000), limits=ImageLimits(max_bytes=2048))
        assert error.reason == "too_large"
        assert error.message == "image is 2.9 KB; the limit is 2 KB"

    def test_too_large_message_uses_megabytes(self) -> None:
        limits = ImageLimits(max_bytes=1024 * 1024)
        error = rejection(bytes(int(1.5 * 1024 * 1024)), limits=limits)
        assert error.message == "image is 1.5 MB; the limit is 1 MB"

    def test_empty_input_is_undecodable(self) -> None:
        assert rejection(b"").reason == "undecodable"

    @pytest.mark.parametrize(
        ("make", "name"),
        [
            (lambda img: save(img, "GIF"), "GIF"),
            (lambda img: save(img, "BMP"), "BMP"),
            (lambda img: save(img, "TIFF"), "TIFF"),
            (lambda img: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
            (lambda img: b"  <svg width='10' height='10'></svg>", "SVG"),
            (lambda img: b"just some text, not an image", "unrecognised"),
        ],
    )
    def test_other_formats_are_unsupported(
        self, chelsea: NDArray[np.uint8], make: Callable[[Image.Image], bytes], name: str
    ) -> None:
        error = rejection(make(Image.fromarray(chelsea)))
        assert error.reason == "unsupported_format"
        assert name in error.message
        assert "PNG, JPEG or WebP" in error.message

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_sniffing_ignores_what_the_caller_claims(
        self, chelsea: NDArray[np.uint8], fmt: str
    ) -> None:
        assert sniff_format(encode(chelsea, fmt)) == fmt

    def test_content_type_mismatch_names_both_types(self, chelsea: NDArray[np.uint8]) -> None:
        error = rejection(encode(chelsea, "png"), declared_content_type="image/jpeg")
        assert error.reason == "content_type_mismatch"
        assert "image/jpeg" in error.message
        assert "image/png" in error.message

    @pytest.mark.parametrize(
        "declared",
        [
            "image/jpeg",
            "IMAGE/JPEG",
            "image/jpg",
            "image/jpeg; charset=binary",
            "",
            "application/octet-stream",
        ],
    )
    def test_equivalent_or_unknown_declarations_are_accepted(
        self, chelsea: NDArray[np.uint8], declared: str
    ) -> None:
        decoded = validate_and_decode(encode(chelsea, "jpeg"), declared_content_type=declared)
        assert decoded.format == "jpeg"


class TestDamagedInput:
    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("kept", [0.1, 0.5, 0.95])
    def test_cut_off_files_are_truncated(
        self, astronaut: NDArray[np.uint8], fmt: str, kept: float
    ) -> None:
        data = encode(astronaut, fmt)
        error = rejection(data[: int(len(data) * kept)])
        assert error.reason == "truncated"
        assert "complete file" in error.message

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_signature_followed_by_garbage_is_undecodable(self, fmt: str) -> None:
        garbage = np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes()
        header = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff", "webp": b""}[fmt]
        if fmt == "webp":
            header = b"RIFF" + (len(garbage) + 4).to_bytes(4, "little") + b"WEBP"
        error = rejection(header + garbage)
        assert error.reason == "undecodable"

    def test_corrupt_png_pixel_data_is_undecodable(self, chelsea: NDArray[np.uint8]) -> None:
        data = bytearray(encode(chelsea, "png"))
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        assert rejection(bytes(data)).reason == "undecodable"


class TestDimensions:
    def test_decompression_bomb_caught_by_pillow_guard(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bomb = blank_bilevel_png(30_000, 30_000)
        assert len(bomb) < 200_000, "the bomb should be tiny on the wire"
        fail_if_loaded(monkeypatch)
        error = rejection(bomb)
        assert error.reason == "decompression_bomb"
        assert "40 megapixels" in error.message

    def test_decompression_bomb_caught_by_pixel_limit(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fail_if_loaded(monkeypatch)
        error = rejection(blank_bilevel_png(7_000, 7_000))
        assert error.reason == "decompression_bomb"
        assert error.message == "image is 7000x7000 (49 megapixels); the limit is 40 megapixels"

    def test_pillow_bomb_warning_is_an_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Limits looser than Pillow's own still stop at Pillow's warning threshold."""
        loose = ImageLimits(max_pixels=150_000_000, max_width=20_000, max_height=20_000)
        fail_if_loaded(monkeypatch)
        error = rejection(blank_bilevel_png(10_000, 10_000), limits=loose)
        assert error.reason == "decompression_bomb"

    @pytest.mark.parametrize(
        ("width", "height", "expected"),
        [
            (20_000, 16, "image is 20000x16; the largest accepted is 8192x8192"),
            (16, 9_000, "image is 16x9000; the largest accepted is 8192x8192"),
            (8, 300, "image is 8x300; both sides must be at least 16 pixels"),
        ],
    )
    def test_absurd_dimensions(
        self, monkeypatch: pytest.MonkeyPatch, width: int, height: int, expected: str
    ) -> None:
        data = blank_bilevel_png(width, height)
        fail_if_loaded(monkeypatch)
        error = rejection(data)
        assert error.reason == "bad_dimensions"
        assert error.message == expected

    def test_limits_apply_to_the_oriented_image(self) -> None:
        exif = Image.Exif()
        exif[0x0112] = 6
        stored = Image.new("RGB", (100, 40))
        data = save(stored, "PNG", exif=exif.tobytes())
        assert validate_and_decode(data, limits=ImageLimits(max_width=60)).width == 40
        error = rejection(data, limits=ImageLimits(max_height=60))
        assert error.message == "image is 40x100; the largest accepted is 8192x60"

    def test_limits_are_validated(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            ImageLimits(max_bytes=0)
        with pytest.raises(ValueError, match="min_side"):
            ImageLimits(min_side=10_000)


class TestModes:
    def test_alpha_is_composited_on_white(self) -> None:
        rgba = np.zeros((32, 32, 4), np.uint8)
        rgba[:, :16] = (255, 0, 0, 255)
        rgba[:, 16:] = (0, 0, 255, 0)
        pixels = validate_and_decode(save(Image.fromarray(rgba), "PNG")).pixels
        np.testing.assert_array_equal(pixels[:, :16], np.broadcast_to([255, 0, 0], (32, 16, 3)))
        np.testing.assert_array_equal(pixels[:, 16:], np.full((32, 16, 3), 255))

    def test_half_transparent_black_becomes_mid_grey(self) -> None:
        la = Image.fromarray(
            np.stack([np.zeros((20, 20)), np.full((20, 20), 128)], 2).astype(np.uint8)
        )
        pixels = validate_and_decode(save(la, "PNG")).pixels
        assert np.all(np.abs(pixels.astype(int) - 127) <= 1)

    def test_palette_transparency_is_composited(self) -> None:
        palette = Image.new("P", (20, 20), 0)
        palette.putpalette([0, 255, 0, 10, 20, 30])
        palette.paste(1, (0, 0, 10, 20))
        pixels = validate_and_decode(save(palette, "PNG", transparency=0)).pixels
        np.testing.assert_array_equal(pixels[0, 0], [10, 20, 30])
        np.testing.assert_array_equal(pixels[0, 15], [255, 255, 255])

    def test_rgba_webp_is_composited(self) -> None:
        rgba = np.zeros((32, 32, 4), np.uint8)
        pixels = validate_and_decode(save(Image.fromarray(rgba), "WEBP", lossless=True)).pixels
        np.testing.assert_array_equal(pixels, np.full((32, 32, 3), 255))

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
    def test_grayscale_is_replicated_to_three_channels(self, fmt: str) -> None:
        gray = np.asarray(sample("camera")[::4, ::4])
        pixels = validate_and_decode(save(Image.fromarray(gray), fmt, quality=95)).pixels
        assert pixels.shape == (*gray.shape, 3)
        np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
        assert np.abs(pixels[..., 1].astype(int) - gray).mean() < 3

    def test_bilevel_png(self) -> None:
        pixels = validate_and_decode(blank_bilevel_png(40, 20)).pixels
        np.testing.assert_array_equal(pixels, np.zeros((20, 40, 3)))

    def test_sixteen_bit_gray_is_scaled_not_clipped(self) -> None:
        values = np.tile(np.array([0, 257, 32896, 65535], np.uint16), (16, 4))
        pixels = validate_and_decode(sixteen_bit_png(values, colour_type=0)).pixels
        np.testing.assert_array_equal(pixels[0, :4, 0], [0, 1, 128, 255])
        np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])

    def test_sixteen_bit_rgb(self) -> None:
        values = np.zeros((16, 16, 3), np.uint16)
        values[..., 0] = 65535
        values[..., 2] = 32896
        pixels = validate_and_decode(sixteen_bit_png(values, colour_type=2)).pixels
        np.testing.assert_array_equal(pixels[0, 0], [255, 0, 128])

    def test_cmyk_jpeg(self, chelsea: NDArray[np.uint8]) -> None:
        data = save(Image.fromarray(chelsea).convert("CMYK"), "JPEG", quality=95)
        assert Image.open(io.BytesIO(data)).mode == "CMYK"
        pixels = validate_and_decode(data).pixels
        assert pixels.shape == chelsea.shape
        assert psnr(pixels, chelsea) > 28


ORIENTATIONS: dict[int, Callable[[NDArray[np.uint8]], NDArray[np.uint8]]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


class TestOrientation:
    @pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
    @pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
    def test_exif_orientation_is_applied(self, fmt: str, orientation: int) -> None:
        stored = np.random.default_rng(orientation).integers(0, 256, (20, 36, 3), dtype=np.uint8)
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = save(Image.fromarray(stored), fmt, exif=exif.tobytes(), lossless=True)
        decoded = validate_and_decode(data)
        expected = ORIENTATIONS[orientation](stored)
        np.testing.assert_array_equal(decoded.pixels, expected)
        assert (decoded.height, decoded.width) == expected.shape[:2]

    def test_jpeg_rotated_a_quarter_turn(self) -> None:
        stored = np.zeros((20, 40, 3), np.uint8)
        stored[:, :20] = 255
        exif = Image.Exif()
        exif[0x0112] = 6
        decoded = validate_and_decode(save(Image.fromarray(stored), "JPEG", exif=exif.tobytes()))
        assert (decoded.width, decoded.height) == (20, 40)
        assert decoded.pixels[:20].mean() > 240
        assert decoded.pixels[20:].mean() < 15

    def test_broken_exif_is_ignored(self, chelsea: NDArray[np.uint8]) -> None:
        data = save(Image.fromarray(chelsea), "PNG", exif=b"Exif\x00\x00not really exif")
        np.testing.assert_array_equal(validate_and_decode(data).pixels, chelsea)


class TestRawTransport:
    def test_round_trip(self, chelsea: NDArray[np.uint8]) -> None:
        width, height, data = to_rgb_bytes(chelsea)
        assert (width, height) == (451, 300)
        assert len(data) == 451 * 300 * 3
        np.testing.assert_array_equal(from_rgb_bytes(width, height, data), chelsea)

    def test_non_contiguous_input(self, chelsea: NDArray[np.uint8]) -> None:
        view = chelsea[::2, ::3]
        width, height, data = to_rgb_bytes(view)
        np.testing.assert_array_equal(from_rgb_bytes(width, height, data), view)

    @pytest.mark.parametrize(("width", "height", "size"), [(4, 4, 47), (4, 4, 49), (0, 4, 0)])
    def test_length_must_match(self, width: int, height: int, size: int) -> None:
        with pytest.raises(ImageRejected) as info:
            from_rgb_bytes(width, height, bytes(size))
        assert info.value.reason == "bad_dimensions"
        assert f"{width}x{height}" in info.value.message


class TestResize:
    def test_shrinks_longest_side_keeping_aspect(self, chelsea: NDArray[np.uint8]) -> None:
        resized = resize_to_fit(chelsea, 200)
        assert resized.shape == (133, 200, 3)
        assert abs(float(resized.mean()) - float(chelsea.mean())) < 1.0

    def test_never_upscales(self, chelsea: NDArray[np.uint8]) -> None:
        assert resize_to_fit(chelsea, 451) is chelsea
        assert resize_to_fit(chelsea, 4000) is chelsea

    def test_rejects_nonsense_size(self, chelsea: NDArray[np.uint8]) -> None:
        with pytest.raises(ValueError, match="max_side"):
            resize_to_fit(chelsea, 0)


def test_decoded_image_repr_leaves_out_pixels(chelsea: NDArray[np.uint8]) -> None:
    decoded = validate_and_decode(encode(chelsea))
    assert isinstance(decoded, DecodedImage)
    assert "pixels" not in repr(decoded)
