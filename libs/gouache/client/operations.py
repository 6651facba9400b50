"""Every unary call of the SDK, described once for both transports.

An `Operation` names the RPC, its REST mapping (from the protos' google.api.http
annotations) and its fields in the API's JSON form; the REST clients send the fields as the
path, query or body the edge transcodes, and the gRPC clients parse the same fields into
the request message, so the two transports cannot drift apart. Replies are parsed by the
same functions too: a gRPC reply is first turned into the JSON the edge would have sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from gouache.client.types import (
    Batch,
    Feedback,
    Job,
    JobCreated,
    Models,
    ModelVersionStats,
    Page,
    Style,
    Token,
    UsageRecord,
    Webhook,
    items_of,
)

# Imported for their descriptors: the methods below are looked up in the default pool.
from gouache.contracts.auth.v1 import auth_pb2 as _auth  # noqa: F401
from gouache.contracts.feedback.v1 import feedback_pb2 as _feedback  # noqa: F401
from gouache.contracts.jobs.v1 import jobs_pb2 as _jobs  # noqa: F401
from gouache.contracts.storage.v1 import storage_pb2 as _storage  # noqa: F401

T = TypeVar("T")

AUTH = "gouache.auth.v1.AuthService"
STORAGE = "gouache.storage.v1.StorageService"
JOBS = "gouache.jobs.v1.JobsService"
FEEDBACK = "gouache.feedback.v1.FeedbackService"
# The server refuses a longer WaitJob.
MAX_WAIT_S = 60.0
_PATH_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class RestRequest:
    """What a REST client sends for an operation."""

    method: str
    path: str
    params: Mapping[str, str]
    json: Mapping[str, Any] | None


@dataclass(frozen=True)
class Operation(Generic[T]):
    """One unary RPC with its fields (JSON names and values) and how to read its answer.

    repeatable: sending it twice is harmless (reads, cancels, deletes, creates with an
    idempotency key), so an UNAVAILABLE answer or a lost connection may be retried.
    """

    service: str
    method: str
    http: str
    fields: Mapping[str, Any]
    parse: Callable[[Mapping[str, Any]], T]
    repeatable: bool = True
    authenticated: bool = True
    # How long the server may hold the call on purpose (a long poll): added to the
    # client's own timeout for it.
    held_s: float = 0.0

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method}"

    def rest(self) -> RestRequest:
        """The HTTP method, path, query and body the edge transcodes into this RPC."""
        verb, template = self.http.split(" ", 1)
        rest = dict(self.fields)

        def fill(match: re.Match[str]) -> str:
            return str(rest.pop(match.group(1)))

        path = _PATH_FIELD.sub(fill, template)
        if verb in ("GET", "DELETE"):
            params = {name: _query(value) for name, value in rest.items() if value is not None}
            return RestRequest(verb, path, params, None)
        return RestRequest(verb, path, {}, rest)

    def grpc_request(self) -> Message:
        """The request message, parsed from the same JSON fields."""
        request = request_class(self.service, self.method)()
        json_format.ParseDict(dict(self.fields), request)
        return request

    def parse_grpc(self, reply: Message) -> T:
        """The result from a gRPC reply, through its JSON form (what REST would answer)."""
        return self.parse(message_json(reply))


def message_json(message: Message) -> dict[str, Any]:
    """A message as the edge's transcoder writes it: proto field names, every field."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def request_class(service: str, method: str) -> type[Message]:
    found = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    cls: type[Message] = message_factory.GetMessageClass(found.input_type)
    return cls


def response_class(service: str, method: str) -> type[Message]:
    found = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    cls: type[Message] = message_factory.GetMessageClass(found.output_type)
    return cls


def _query(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rfc3339(value: datetime) -> str:
    """An aware datetime as the API's timestamps are written; a naive one is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} has no time zone; pass an aware datetime (e.g. UTC)")
    return value.isoformat().replace("+00:00", "Z")


def _none(_: Mapping[str, Any]) -> None:
    return None


def _page(
    key: str, item: Callable[[Mapping[str, Any]], T]
) -> Callable[[Mapping[str, Any]], Page[T]]:
    def parse(data: Mapping[str, Any]) -> Page[T]:
        return Page(
            items=tuple(item(entry) for entry in items_of(data, key)),
            next_page_token=str(data.get("next_page_token", "")),
            raw=data,
        )

    return parse


def _listing(
    key: str, item: Callable[[Mapping[str, Any]], T]
) -> Callable[[Mapping[str, Any]], list[T]]:
    def parse(data: Mapping[str, Any]) -> list[T]:
        return [item(entry) for entry in items_of(data, key)]

    return parse


def _paging(page_size: int, page_token: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if page_size:
        fields["page_size"] = page_size
    if page_token:
        fields["page_token"] = page_token
    return fields


# -- auth and uploads ---------------------------------------------------------------------


def issue_token(api_key: str, project: str = "") -> Operation[Token]:
    """POST /v1/auth/token: an access token for an API key, acting in `project` (a shared
    project's id; empty: the key owner's personal project)."""
    fields = {"grant_type": "client_credentials", "api_key": api_key}
    if project:
        fields["project"] = project
    return Operation(
        AUTH, "IssueToken", "POST /v1/auth/token", fields, Token.from_json, authenticated=False
    )


def sign_upload(filename: str, content_type: str, kind: str) -> Operation[dict[str, Any]]:
    """POST /v1/uploads/sign: where to PUT an image, and the file URL naming it after."""
    return Operation(
        STORAGE,
        "SignUpload",
        "POST /v1/uploads/sign",
        {"filename": filename, "content_type": content_type, "kind": kind},
        dict,
    )


# -- jobs ---------------------------------------------------------------------------------


def stylize_params(
    params: Mapping[str, Any] | None,
    *,
    weights: Sequence[float] | None = None,
    alpha: float | None = None,
    preserve_color: bool | None = None,
    histogram_match: bool | None = None,
    max_side: int | None = None,
    seed: int | None = None,
    output_format: str | None = None,
    quality: int | None = None,
    tv_weight: float | None = None,
    tile_size: int | None = None,
) -> dict[str, Any]:
    """StylizeParams as JSON: `params` (the API's own names) with the keyword arguments,
    when given, set over it. preserve_color is the API's luminance_only: stylize the
    luminance and keep the content's colours."""
    merged = dict(params or {})
    named = {
        "weights": list(weights) if weights is not None else None,
        "alpha": alpha,
        "luminance_only": preserve_color,
        "histogram_match": histogram_match,
        "max_side": max_side,
        "seed": seed,
        "output_format": output_format,
        "quality": quality,
        "tv_weight": tv_weight,
        "tile_size": tile_size,
    }
    merged.update({name: value for name, value in named.items() if value is not None})
    return merged


def styles_and_weights(
    styles: Sequence[str] | Mapping[str, float], weights: Sequence[float] | None
) -> tuple[list[str], list[float] | None]:
    """Style URLs and their weights, from a list (with optional weights) or a mapping of
    style URL to weight; a weight count that does not match the styles is refused."""
    if isinstance(styles, Mapping):
        if weights is not None:
            raise ValueError("give weights either in the styles mapping or as weights=, not both")
        return list(styles), [float(weight) for weight in styles.values()]
    if isinstance(styles, str):
        raise ValueError("styles must be a list of style URLs (or ids), not one string")
    urls = list(styles)
    if weights is not None and len(weights) != len(urls):
        raise ValueError(f"{len(weights)} weights for {len(urls)} styles: give one per style")
    return urls, None if weights is None else [float(weight) for weight in weights]


def new_idempotency_key() -> str:
    """A fresh key, so that a create can be retried without creating twice."""
    return f"sdk-{uuid.uuid4().hex}"


def create_job(
    content_url: str,
    style_urls: Sequence[str],
    *,
    model_version: str,
    params: Mapping[str, Any],
    idempotency_key: str,
    no_cache: bool,
    lane: str,
) -> Operation[JobCreated]:
    """POST /v1/jobs; repeatable when it carries an idempotency key."""
    fields: dict[str, Any] = {
        "content_url": content_url,
        "style_urls": list(style_urls),
        "model_version": model_version,
        "params": dict(params),
    }
    if idempotency_key:
        fields["idempotency_key"] = idempotency_key
    if no_cache:
        fields["no_cache"] = True
    if lane:
        fields["lane"] = lane
    return Operation(
        JOBS,
        "CreateJob",
        "POST /v1/jobs",
        fields,
        JobCreated.from_json,
        repeatable=bool(idempotency_key),
    )


def get_job(job_id: str) -> Operation[Job]:
    return Operation(JOBS, "GetJob", "GET /v1/jobs/{job_id}", {"job_id": job_id}, Job.from_json)


def wait_job(job_id: str, timeout_s: float) -> Operation[Job]:
    """GET /v1/jobs/{job_id}:wait: the job once final, or as it is after timeout_s."""
    if not 0 < timeout_s <= MAX_WAIT_S:
        raise ValueError(f"timeout_s must be within (0, {MAX_WAIT_S:.0f}] s, got {timeout_s}")
    return Operation(
        JOBS,
        "WaitJob",
        "GET /v1/jobs/{job_id}:wait",
        {"job_id": job_id, "timeout": f"{timeout_s:.3f}s"},
        Job.from_json,
        held_s=timeout_s,
    )


def cancel_job(job_id: str) -> Operation[Job]:
    return Operation(
        JOBS, "CancelJob", "POST /v1/jobs/{job_id}:cancel", {"job_id": job_id}, Job.from_json
    )


def list_jobs(page_size: int, page_token: str, status: str) -> Operation[Page[Job]]:
    fields = _paging(page_size, page_token)
    if status:
        fields["status"] = status
    return Operation(JOBS, "ListJobs", "GET /v1/jobs", fields, _page("jobs", Job.from_json))


# -- batches ------------------------------------------------------------------------------


def create_batch(
    content_urls: Sequence[str],
    style_urls: Sequence[str],
    *,
    model_version: str,
    params: Mapping[str, Any],
    idempotency_key: str,
    no_cache: bool,
    lane: str,
) -> Operation[Batch]:
    """POST /v1/batches; repeatable when it carries an idempotency key."""
    fields: dict[str, Any] = {
        "content_urls": list(content_urls),
        "style_urls": list(style_urls),
        "model_version": model_version,
        "params": dict(params),
    }
    if idempotency_key:
        fields["idempotency_key"] = idempotency_key
    if no_cache:
        fields["no_cache"] = True
    if lane:
        fields["lane"] = lane
    return Operation(
        JOBS,
        "CreateBatch",
        "POST /v1/batches",
        fields,
        Batch.from_json,
        repeatable=bool(idempotency_key),
    )


def get_batch(batch_id: str, page_size: int, page_token: str) -> Operation[Batch]:
    fields = {"batch_id": batch_id, **_paging(page_size, page_token)}
    return Operation(JOBS, "GetBatch", "GET /v1/batches/{batch_id}", fields, Batch.from_json)


def list_batches(page_size: int, page_token: str) -> Operation[Page[Batch]]:
    return Operation(
        JOBS,
        "ListBatches",
        "GET /v1/batches",
        _paging(page_size, page_token),
        _page("batches", Batch.from_json),
    )


def cancel_batch(batch_id: str) -> Operation[Batch]:
    return Operation(
        JOBS,
        "CancelBatch",
        "POST /v1/batches/{batch_id}:cancel",
        {"batch_id": batch_id},
        Batch.from_json,
    )


# -- webhooks -----------------------------------------------------------------------------


def create_webhook(url: str, secret: str, events: Sequence[str]) -> Operation[Webhook]:
    """POST /v1/webhooks. Not repeatable: a retry after a lost answer would register twice."""
    if isinstance(events, str):
        raise ValueError("events must be a list of event names, not one string")
    return Operation(
        JOBS,
        "CreateWebhook",
        "POST /v1/webhooks",
        {"url": url, "secret": secret, "events": list(events)},
        lambda data: Webhook.from_json(data.get("webhook") or {}),
        repeatable=False,
    )


def list_webhooks() -> Operation[list[Webhook]]:
    return Operation(
        JOBS, "ListWebhooks", "GET /v1/webhooks", {}, _listing("webhooks", Webhook.from_json)
    )


def delete_webhook(webhook_id: str) -> Operation[None]:
    return Operation(
        JOBS,
        "DeleteWebhook",
        "DELETE /v1/webhooks/{webhook_id}",
        {"webhook_id": webhook_id},
        _none,
    )


# -- models, styles, feedback, usage ------------------------------------------------------


def list_models() -> Operation[Models]:
    return Operation(JOBS, "ListModels", "GET /v1/models", {}, Models.from_json)


def list_styles(curated: bool | None, page_size: int, page_token: str) -> Operation[Page[Style]]:
    fields = _paging(page_size, page_token)
    if curated is not None:
        fields["curated"] = curated
    return Operation(
        STORAGE, "ListStyles", "GET /v1/styles", fields, _page("styles", Style.from_json)
    )


def submit_feedback(job_id: str, rating: int, comments: str) -> Operation[Feedback]:
    """POST /v1/feedback: a second rating of the same job replaces the first, so a retry
    is harmless."""
    return Operation(
        FEEDBACK,
        "SubmitFeedback",
        "POST /v1/feedback",
        {"job_id": job_id, "rating": rating, "comments": comments},
        Feedback.from_json,
    )


def list_model_stats() -> Operation[list[ModelVersionStats]]:
    return Operation(
        FEEDBACK,
        "ListModelVersionStats",
        "GET /v1/feedback/stats",
        {},
        _listing("stats", ModelVersionStats.from_json),
    )


def get_usage(
    since: datetime | None,
    until: datetime | None,
    user_id: str,
    group_by: str = "",
    project_id: str = "",
) -> Operation[list[UsageRecord]]:
    """GET /v1/usage: jobs per project, user and model version in the window (per day or
    month with group_by), of one project with project_id."""
    fields: dict[str, Any] = {}
    if since is not None:
        fields["since"] = rfc3339(since)
    if until is not None:
        fields["until"] = rfc3339(until)
    if user_id:
        fields["user_id"] = user_id
    if group_by:
        fields["group_by"] = group_by
    if project_id:
        fields["project_id"] = project_id
    return Operation(
        FEEDBACK, "GetUsage", "GET /v1/usage", fields, _listing("usage", UsageRecord.from_json)
    )
