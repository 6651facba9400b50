"""The comments of a descriptor set's source info, as descriptions for the document."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

# buf lint exceptions explain themselves to the proto's readers, not to the API's.
_HIDDEN_PREFIXES = ("buf:lint:",)


class Comments:
    """Leading comments by file and source path (descriptor.proto's location paths)."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self._by_file: dict[str, dict[tuple[int, ...], str]] = {}
        for file in files.file:
            found: dict[tuple[int, ...], str] = {}
            for location in file.source_code_info.location:
                text = _clean(location.leading_comments)
                if text:
                    found[tuple(location.path)] = text
            self._by_file[file.name] = found

    def get(self, file: str, path: tuple[int, ...]) -> str:
        """The comment above the element at path in file, or ""."""
        return self._by_file.get(file, {}).get(path, "")


def _clean(comment: str) -> str:
    lines = [line.strip() for line in comment.strip().splitlines()]
    kept = [line for line in lines if not line.startswith(_HIDDEN_PREFIXES)]
    return " ".join(" ".join(kept).split())


def summary(text: str) -> str:
    """The first sentence of a description."""
    head, dot, _rest = text.partition(". ")
    return head + "." if dot else text
