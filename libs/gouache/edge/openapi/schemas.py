"""JSON Schemas of protobuf messages as the edge's transcoder prints and parses them.

The transcoder (listener.py) prints proto field names (preserve_proto_field_names), every
field without presence even at its default (always_print_primitive_fields: scalars, repeated
fields and maps), enums by name, 64-bit integers as strings, and the well-known types in their
JSON forms (Timestamp and Duration as strings). It parses the same forms and refuses fields
it does not know, so a request schema allows no other property.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2

from gouache.edge.openapi.comments import Comments

FieldProto = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
# proto3 JSON prints 64-bit integers as decimal strings (JavaScript numbers lose precision).
_INT64 = {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": r"^[0-9]+$"}

_SCALARS: Mapping[int, Schema] = {
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldProto.TYPE_INT32: _INT32,
    FieldProto.TYPE_SINT32: _INT32,
    FieldProto.TYPE_SFIXED32: _INT32,
    FieldProto.TYPE_UINT32: _UINT32,
    FieldProto.TYPE_FIXED32: _UINT32,
    FieldProto.TYPE_INT64: _INT64,
    FieldProto.TYPE_SINT64: _INT64,
    FieldProto.TYPE_SFIXED64: _INT64,
    FieldProto.TYPE_UINT64: _UINT64,
    FieldProto.TYPE_FIXED64: _UINT64,
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: {"type": "string", "format": "byte"},
}

_WRAPPERS = {
    "DoubleValue": FieldProto.TYPE_DOUBLE,
    "FloatValue": FieldProto.TYPE_FLOAT,
    "Int64Value": FieldProto.TYPE_INT64,
    "UInt64Value": FieldProto.TYPE_UINT64,
    "Int32Value": FieldProto.TYPE_INT32,
    "UInt32Value": FieldProto.TYPE_UINT32,
    "BoolValue": FieldProto.TYPE_BOOL,
    "StringValue": FieldProto.TYPE_STRING,
    "BytesValue": FieldProto.TYPE_BYTES,
}
# The well-known types that have a JSON form of their own, inlined wherever they are used.
WELL_KNOWN: Mapping[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339, UTC, e.g. 2026-11-30T12:00:00Z",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "seconds with an `s` suffix, e.g. 10s or 1.5s",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "comma-separated field paths",
    },
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    **{f"google.protobuf.{name}": dict(_SCALARS[kind]) for name, kind in _WRAPPERS.items()},
}


class Direction(enum.Enum):
    """Whether a schema describes what the edge prints (a response) or parses (a request)."""

    RESPONSE = "response"
    REQUEST = "request"


@dataclass(frozen=True)
class MessageInfo:
    """A message of the descriptor set, with where its comments are."""

    full_name: str
    proto: descriptor_pb2.DescriptorProto
    comment_path: tuple[int, ...]
    file: str


def index_messages(
    files: descriptor_pb2.FileDescriptorSet,
) -> tuple[dict[str, MessageInfo], dict[str, tuple[descriptor_pb2.EnumDescriptorProto, str]]]:
    """Every message and enum of the set by full name (no leading dot)."""
    messages: dict[str, MessageInfo] = {}
    enums: dict[str, tuple[descriptor_pb2.EnumDescriptorProto, str]] = {}

    def walk(
        scope: str,
        path: tuple[int, ...],
        file: str,
        nested: Iterator[tuple[int, descriptor_pb2.DescriptorProto]],
        nested_enums: Iterator[descriptor_pb2.EnumDescriptorProto],
        message_field: int,
    ) -> None:
        for enum_proto in nested_enums:
            enums[f"{scope}.{enum_proto.name}"] = (enum_proto, file)
        for index, message in nested:
            name = f"{scope}.{message.name}"
            where = (*path, message_field, index)
            messages[name] = MessageInfo(name, message, where, file)
            walk(name, where, file, enumerate(message.nested_type), iter(message.enum_type), 3)

    for file in files.file:
        walk(file.package, (), file.name, enumerate(file.message_type), iter(file.enum_type), 4)
    return messages, enums


class SchemaSet:
    """Component schemas for the messages that requests and responses use.

    A message seen in one direction only is named by its full name; one seen in both is
    named so as a response, and with an `Input` suffix as a request (a response lists the
    fields it always has as required, a request requires nothing and allows nothing else)."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet, comments: Comments) -> None:
        self._messages, self._enums = index_messages(files)
        self._comments = comments
        self._directions: dict[str, set[Direction]] = {}

    def message(self, full_name: str) -> MessageInfo:
        return self._messages[full_name.lstrip(".")]

    def use(self, full_name: str, direction: Direction) -> None:
        """Record that full_name (and every message it holds) appears in direction."""
        name = full_name.lstrip(".")
        if name in WELL_KNOWN:
            return
        seen = self._directions.setdefault(name, set())
        if direction in seen:
            return
        seen.add(direction)
        for field in self._messages[name].proto.field:
            if field.type == FieldProto.TYPE_MESSAGE:
                self.use(field.type_name, direction)

    def ref(self, full_name: str, direction: Direction) -> Schema:
        """The schema of a message-typed value: a well-known type inline, else a $ref."""
        name = full_name.lstrip(".")
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        return {"$ref": f"#/components/schemas/{self.component_name(name, direction)}"}

    def component_name(self, name: str, direction: Direction) -> str:
        both = len(self._directions.get(name, ())) == 2
        return f"{name}Input" if both and direction is Direction.REQUEST else name

    def components(self) -> dict[str, Schema]:
        """Every used message's schema and every enum's, sorted by name."""
        schemas: dict[str, Schema] = {}
        for name, directions in self._directions.items():
            for direction in directions:
                schemas[self.component_name(name, direction)] = self.object_schema(
                    self._messages[name], direction
                )
        used_enums = set(self._enum_uses())
        for name, (enum_proto, _file) in self._enums.items():
            if name in used_enums:
                schemas[name] = {
                    "type": "string",
                    "enum": [value.name for value in enum_proto.value],
                }
        return dict(sorted(schemas.items()))

    def _enum_uses(self) -> Iterator[str]:
        for name in self._directions:
            for field in self._messages[name].proto.field:
                if field.type == FieldProto.TYPE_ENUM:
                    yield field.type_name.lstrip(".")

    def object_schema(
        self,
        info: MessageInfo,
        direction: Direction,
        *,
        leave_out: frozenset[str] = frozenset(),
    ) -> Schema:
        """The message as one JSON object; leave_out names fields bound elsewhere (the path)."""
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for index, field in enumerate(info.proto.field):
            if field.name in leave_out:
                continue
            value = self.field_schema(field, direction)
            value.update(self._describe(info.file, (*info.comment_path, 2, index)))
            properties[field.name] = _with_description(value)
            if direction is Direction.RESPONSE and _always_printed(field):
                required.append(field.name)
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if direction is Direction.REQUEST:
            schema["additionalProperties"] = False
        schema.update(self._describe(info.file, info.comment_path))
        return schema

    def field_schema(self, field: FieldProto, direction: Direction) -> Schema:
        """One field's value: a map, a list, or a single value."""
        if field.label == FieldProto.LABEL_REPEATED:
            entry = self._map_entry(field)
            if entry is not None:
                value = self.field_schema(entry.field[1], direction)
                return {"type": "object", "additionalProperties": value}
            return {"type": "array", "items": self.value_schema(field, direction)}
        return self.value_schema(field, direction)

    def value_schema(self, field: FieldProto, direction: Direction) -> Schema:
        if field.type == FieldProto.TYPE_MESSAGE:
            return self.ref(field.type_name, direction)
        if field.type == FieldProto.TYPE_ENUM:
            return {"$ref": f"#/components/schemas/{field.type_name.lstrip('.')}"}
        return dict(_SCALARS[field.type])

    def is_scalar_for_query(self, field: FieldProto) -> bool:
        """Whether a field's value is one query-string value (scalars and the string-shaped
        well-known types; other messages expand into dotted parameters)."""
        if field.type != FieldProto.TYPE_MESSAGE:
            return True
        schema = WELL_KNOWN.get(field.type_name.lstrip("."))
        return schema is not None and schema.get("type") in (
            "string",
            "number",
            "integer",
            "boolean",
        )

    def _map_entry(self, field: FieldProto) -> descriptor_pb2.DescriptorProto | None:
        if field.type != FieldProto.TYPE_MESSAGE:
            return None
        info = self._messages.get(field.type_name.lstrip("."))
        if info is None or not info.proto.options.map_entry:
            return None
        return info.proto

    def _describe(self, file: str, path: tuple[int, ...]) -> Schema:
        text = self._comments.get(file, path)
        return {"description": text} if text else {}


def _always_printed(field: FieldProto) -> bool:
    """A field without presence is printed even at its default; one with presence (a
    message, proto3 `optional`, a oneof member) only when set."""
    if field.label == FieldProto.LABEL_REPEATED:
        return True
    if field.type == FieldProto.TYPE_MESSAGE:
        return False
    return not field.proto3_optional and not field.HasField("oneof_index")


def _with_description(schema: Schema) -> Schema:
    """A $ref with a description beside it: OpenAPI 3.0 ignores siblings of $ref, so the
    reference goes into allOf."""
    if "$ref" in schema and "description" in schema:
        return {"allOf": [{"$ref": schema.pop("$ref")}], **schema}
    return schema
