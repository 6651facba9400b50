"""The one error the imaging code raises for an image a caller sent and must fix."""

from __future__ import annotations


class ImageRejected(ValueError):
    """An input image that cannot be accepted, with a reason code and an actionable message.

    `reason` is a short machine code ("too_large", "undecodable", "truncated",
    "bad_dimensions", "decompression_bomb", "content_type_mismatch",
    "unsupported_format") that services pass on as the error reason; `message` is
    written for the person who sent the image and says what to change. The attribute
    names match `gouache.runtime.errors.GouacheError` so a service converts one into
    the other field by field (this package stays free of grpc).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"ImageRejected(reason={self.reason!r}, message={self.message!r})"
