"""OpenAPI operations for the RPCs the edge transcodes, from their google.api.http rules.

As Envoy's transcoder reads a rule: `{field}` in the path binds a request field; with
`body: "*"` every other field is in the JSON body, with `body: "field"` that field is the
body and the rest are query parameters, and without a body every field not in the path is
a query parameter (a message field as dotted names, `params.alpha`; a repeated one as a
repeated parameter). Unknown query parameters are refused (reject_unknown_query_parameters).
A server-streaming RPC answers text/event-stream, one `data: <message JSON>` event per
message (stream_sse_style_delimited).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from gouache.edge.openapi.comments import Comments, summary
from gouache.edge.openapi.oauth2 import security_for
from gouache.edge.openapi.schemas import Direction, MessageInfo, Schema, SchemaSet

FieldProto = descriptor_pb2.FieldDescriptorProto
Operation = dict[str, Any]

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
HTTP_BODY = ".google.api.HttpBody"
# The media type of each RPC answering a raw google.api.HttpBody (the proto cannot say);
# one not named here is documented as application/octet-stream.
RAW_MEDIA_TYPES: Mapping[str, str] = {
    "/gouache.feedback.v1.FeedbackService/ExportUsage": "text/csv",
}
_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(=[^}]*)?\}")


@dataclass(frozen=True)
class Binding:
    """One HTTP rule of one RPC."""

    service: str
    method: descriptor_pb2.MethodDescriptorProto
    method_path: tuple[int, ...]
    file: str
    http_method: str
    template: str
    body: str

    @property
    def rpc(self) -> str:
        """The gRPC path, /package.Service/Method: the key of the services' method policies."""
        return f"/{self.service}/{self.method.name}"

    @property
    def path(self) -> str:
        """The OpenAPI path: each variable by its field path, any `=pattern` dropped."""
        return _VARIABLE.sub(lambda match: "{" + match.group(1) + "}", self.template)

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(match.group(1) for match in _VARIABLE.finditer(self.template))


def bindings(
    files: descriptor_pb2.FileDescriptorSet, services: frozenset[str]
) -> Iterator[Binding]:
    """Every HTTP rule (additional bindings too) of the RPCs of services."""
    for file in files.file:
        for service_index, service in enumerate(file.service):
            full_name = f"{file.package}.{service.name}"
            if full_name not in services:
                continue
            for method_index, method in enumerate(service.method):
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                where = (6, service_index, 2, method_index)
                for each in (rule, *rule.additional_bindings):
                    http_method, template = _pattern(each)
                    yield Binding(
                        full_name, method, where, file.name, http_method, template, each.body
                    )


def _pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.lower(), rule.custom.path
    if kind not in HTTP_METHODS:
        raise ValueError(f"an HTTP rule without a pattern: {rule}")
    return kind, str(getattr(rule, kind))


@dataclass(frozen=True)
class OperationBuilder:
    """Turns bindings into operations; schemas records which messages they use."""

    schemas: SchemaSet
    comments: Comments
    policies: Mapping[str, str]
    headers: Mapping[str, list[Schema]]
    error_responses: Mapping[str, Schema]

    def operation(self, binding: Binding) -> Operation:
        method = binding.method
        request = self.schemas.message(method.input_type)
        description = self.comments.get(binding.file, binding.method_path)
        operation: Operation = {
            "operationId": f"{binding.service.rsplit('.', 1)[-1]}_{method.name}",
            "tags": [binding.service.rsplit(".", 1)[-1]],
            "summary": summary(description) or method.name,
        }
        if description:
            operation["description"] = description
        parameters = [
            *self._path_parameters(binding, request),
            *self._query_parameters(binding, request),
            *self.headers.get(binding.rpc, []),
        ]
        if parameters:
            operation["parameters"] = parameters
        body = self._request_body(binding, request)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = {"200": self._success(binding), **self._errors(body is not None)}
        operation.update(self._security(binding))
        return operation

    def _path_parameters(self, binding: Binding, request: MessageInfo) -> Iterator[Schema]:
        for name in binding.path_fields:
            field = self._field(request, name)
            schema = self.schemas.value_schema(field, Direction.REQUEST)
            if schema.get("type") == "string":
                # An empty segment never matches the template: the edge answers 404.
                schema["minLength"] = 1
            yield {"name": name, "in": "path", "required": True, "schema": schema}

    def _query_parameters(self, binding: Binding, request: MessageInfo) -> Iterator[Schema]:
        if binding.body == "*":
            return
        bound = {binding.body, *binding.path_fields} - {""}
        yield from self._query_fields(request, prefix="", bound=bound, seen=())

    def _query_fields(
        self, info: MessageInfo, *, prefix: str, bound: set[str], seen: tuple[str, ...]
    ) -> Iterator[Schema]:
        for index, field in enumerate(info.proto.field):
            name = prefix + field.name
            if name in bound:
                continue
            if self.schemas.is_scalar_for_query(field):
                schema = self.schemas.field_schema(field, Direction.REQUEST)
                if schema.get("type") == "object":
                    continue  # a map: not expressible in a query string
                parameter: Schema = {"name": name, "in": "query", "schema": schema}
                text = self.comments.get(info.file, (*info.comment_path, 2, index))
                if text:
                    parameter["description"] = text
                if schema.get("type") == "array":
                    parameter.update(style="form", explode=True)
                yield parameter
            elif field.label != FieldProto.LABEL_REPEATED and info.full_name not in seen:
                nested = self.schemas.message(field.type_name)
                yield from self._query_fields(
                    nested, prefix=name + ".", bound=bound, seen=(*seen, info.full_name)
                )

    def _request_body(self, binding: Binding, request: MessageInfo) -> Schema | None:
        if not binding.body:
            return None
        if binding.body == "*":
            path_fields = frozenset(binding.path_fields)
            if path_fields:
                self._use_fields(request, Direction.REQUEST, leave_out=path_fields)
                schema = self.schemas.object_schema(
                    request, Direction.REQUEST, leave_out=path_fields
                )
            else:
                self.schemas.use(request.full_name, Direction.REQUEST)
                schema = self.schemas.ref(request.full_name, Direction.REQUEST)
        else:
            field = self._field(request, binding.body)
            if field.type == FieldProto.TYPE_MESSAGE:
                self.schemas.use(field.type_name, Direction.REQUEST)
            schema = self.schemas.field_schema(field, Direction.REQUEST)
        # An empty body is the empty message: every field is optional in proto3.
        return {"required": False, "content": {"application/json": {"schema": schema}}}

    def _use_fields(
        self, info: MessageInfo, direction: Direction, *, leave_out: frozenset[str]
    ) -> None:
        for field in info.proto.field:
            if field.name not in leave_out and field.type == FieldProto.TYPE_MESSAGE:
                self.schemas.use(field.type_name, direction)

    def _success(self, binding: Binding) -> Schema:
        output = binding.method.output_type
        if output == HTTP_BODY and not binding.method.server_streaming:
            media = RAW_MEDIA_TYPES.get(binding.rpc, "application/octet-stream")
            return {
                "description": "The document itself (not JSON), as the Content-Type says.",
                "content": {media: {"schema": {"type": "string"}}},
            }
        self.schemas.use(output, Direction.RESPONSE)
        ref = self.schemas.ref(output, Direction.RESPONSE)
        if binding.method.server_streaming:
            name = output.lstrip(".")
            return {
                "description": (
                    f"A server-sent event stream: one `data: <{name} as JSON>` event per "
                    "message, until the stream ends."
                ),
                "content": {
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "x-event-data": ref,
                    }
                },
            }
        return {"description": "OK", "content": {"application/json": {"schema": ref}}}

    def _errors(self, has_body: bool) -> dict[str, Schema]:
        return {
            status: response
            for status, response in self.error_responses.items()
            if has_body or status != "413"
        }

    def _security(self, binding: Binding) -> Operation:
        """PUBLIC methods take no token; the others a bearer token (the document's default),
        with the scope named."""
        required = self.policies.get(binding.rpc)
        if required == "public":
            return {"security": []}
        if required in (None, "authenticated"):
            return {}
        return {"security": security_for(required), "x-required-scope": required}

    def _field(self, info: MessageInfo, dotted: str) -> FieldProto:
        head, _dot, rest = dotted.partition(".")
        for field in info.proto.field:
            if field.name == head:
                if not rest:
                    return field
                return self._field(self.schemas.message(field.type_name), rest)
        raise ValueError(f"{info.full_name} has no field {dotted!r} (an HTTP rule names it)")
