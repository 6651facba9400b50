"""Model versions and the routing table: aliases with weighted targets, resolved per job."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gouache.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.jobs.domain.requests import MAX_TILE_SIZE, MIN_TILE_SIZE

FAMILIES = ("gatys", "adain", "feedforward", "wct")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
DEFAULT_ETA_SECONDS = 5
MAX_ROUTE_WEIGHT = 100
MAX_ROUTE_TARGETS = 10
MAX_DESCRIPTION_CHARS = 1000
MAX_CONFIG_CHARS = 64 * 1024
MAX_ENDPOINT_CHARS = 253
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class ModelVersion:
    """A concrete, loadable model version."""

    name: str
    family: str
    encoder: str
    tile_size: int
    config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    created_at: datetime | None = None

    @property
    def config_json(self) -> str:
        """The config as canonical JSON text (sorted keys)."""
        return json.dumps(dict(self.config), sort_keys=True, separators=(",", ":"))

    @property
    def eta_seconds(self) -> int:
        """Expected seconds per job: config "eta_seconds", else a small default."""
        value = self.config.get("eta_seconds")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return max(1, math.ceil(value))
        return DEFAULT_ETA_SECONDS

    def same_definition(self, other: ModelVersion) -> bool:
        """Whether two registrations describe the same version (creation time aside)."""
        return (
            self.name,
            self.family,
            self.encoder,
            self.tile_size,
            self.config_json,
            self.description,
        ) == (
            other.name,
            other.family,
            other.encoder,
            other.tile_size,
            other.config_json,
            other.description,
        )


@dataclass(frozen=True)
class RouteTarget:
    """One weighted target of an alias."""

    model_version: str
    weight: int


@dataclass(frozen=True)
class ModelRoute:
    """An alias and the versions its traffic goes to, by relative weight."""

    alias: str
    targets: tuple[RouteTarget, ...]


@dataclass(frozen=True)
class ModelEndpoint:
    """Where a version's inference runs: host:port, or "" for tiling's default inference."""

    model_version: str
    endpoint: str


def _endpoint_host(host: str) -> str | None:
    """The host of an endpoint, normalized; None when it is no DNS name, IPv4 or [IPv6]."""
    if host.startswith("[") and host.endswith("]") and "%" not in host:
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    host = host.lower()
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return None
    # A name whose last label is all digits would read as a malformed IPv4 address.
    return None if labels[-1].isdigit() else host


def validate_endpoint(endpoint: str) -> str:
    """An inference endpoint as `host:port` (DNS name, IPv4 or [IPv6]), normalized; "" stays "".

    Only a plain address is accepted (no scheme, path or credentials), since tiling
    opens a gRPC channel to it as is.
    """
    text = endpoint.strip()
    if not text:
        return ""
    example = "e.g. 'inference-gatys-v2.gouache.svc:50055', '10.0.0.7:50055' or '[::1]:50055'"
    if len(text) > MAX_ENDPOINT_CHARS:
        raise InvalidArgument(
            f"endpoint is {len(text)} characters; at most {MAX_ENDPOINT_CHARS} are allowed",
            field="endpoint",
        )
    host_text, colon, port_text = text.rpartition(":")
    host = _endpoint_host(host_text) if colon else None
    if host is None:
        raise InvalidArgument(
            f"endpoint must be host:port with a DNS name, IPv4 or [IPv6] host, {example}; "
            f"got {endpoint!r}",
            field="endpoint",
        )
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise InvalidArgument(
            f"endpoint port must be between 1 and 65535, {example}; got {endpoint!r}",
            field="endpoint",
        )
    return f"{host}:{int(port_text)}"


def _check_name(value: str, name: str) -> str:
    text = value.strip()
    if not NAME_PATTERN.fullmatch(text):
        raise InvalidArgument(
            f"{name} must be 1-128 characters of lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit; got {value!r}",
            field=name,
        )
    return text


def parse_config(config_json: str, *, name: str = "version.config_json") -> dict[str, Any]:
    """A version's config: a JSON object (empty text means {})."""
    if len(config_json) > MAX_CONFIG_CHARS:
        raise InvalidArgument(
            f"{name} is {len(config_json)} characters; at most {MAX_CONFIG_CHARS} are allowed",
            field=name,
        )
    if not config_json.strip():
        return {}
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{name} is not valid JSON: {exc}", field=name) from None
    if not isinstance(config, dict):
        raise InvalidArgument(
            f'{name} must be a JSON object such as {{"eta_seconds": 30}}', field=name
        )
    return config


def validate_model_version(version: ModelVersion) -> ModelVersion:
    """Checks a version to register; returns it normalized."""
    name = _check_name(version.name, "version.name")
    family = version.family.strip().lower()
    if family not in FAMILIES:
        raise InvalidArgument(
            f"version.family must be one of {', '.join(FAMILIES)}, got {version.family!r}",
            field="version.family",
        )
    encoder = version.encoder.strip()
    if not encoder:
        raise InvalidArgument(
            "version.encoder is required, e.g. 'efficientnet-lite0'", field="version.encoder"
        )
    if not MIN_TILE_SIZE <= version.tile_size <= MAX_TILE_SIZE:
        raise InvalidArgument(
            f"version.tile_size must be between {MIN_TILE_SIZE} and {MAX_TILE_SIZE} pixels, "
            f"got {version.tile_size}",
            field="version.tile_size",
        )
    eta = version.config.get("eta_seconds")
    if eta is not None and (
        isinstance(eta, bool) or not isinstance(eta, int | float) or not eta > 0
    ):
        raise InvalidArgument(
            f"version.config_json eta_seconds must be a positive number, got {eta!r}",
            field="version.config_json",
        )
    if len(version.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgument(
            f"version.description is {len(version.description)} characters; at most "
            f"{MAX_DESCRIPTION_CHARS} are allowed",
            field="version.description",
        )
    return ModelVersion(
        name=name,
        family=family,
        encoder=encoder,
        tile_size=version.tile_size,
        config=dict(version.config),
        description=version.description.strip(),
        created_at=version.created_at,
    )


def weighted_choice(targets: Sequence[RouteTarget], seed: str) -> str:
    """Picks a target in proportion to its weight, the same one every time for a seed.

    The seed (alias and job id) is hashed to a point on [0, total weight); targets own
    consecutive intervals in their listed order, zero-weight targets none.
    """
    total = sum(target.weight for target in targets if target.weight > 0)
    if total <= 0:
        raise ValueError("no target has a positive weight")
    digest = hashlib.sha256(seed.encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for target in targets:
        if target.weight <= 0:
            continue
        if point < target.weight:
            return target.model_version
        point -= target.weight
    raise AssertionError("unreachable: the point lies below the total weight")


@dataclass(frozen=True)
class RoutingTable:
    """The registered versions and aliases, as read for one decision."""

    versions: Mapping[str, ModelVersion]
    routes: Mapping[str, ModelRoute]
    # Inference endpoints of the versions that have their own (internal, never listed).
    endpoints: Mapping[str, str] = field(default_factory=dict)

    def endpoint_of(self, model_version: str) -> str:
        """The inference endpoint of a version; "" for tiling's default inference."""
        return self.endpoints.get(model_version, "")

    def known_names(self) -> str:
        """The aliases and versions a client may ask for, for error messages."""
        aliases = ", ".join(sorted(self.routes)) or "none"
        versions = ", ".join(sorted(self.versions)) or "none"
        return f"aliases: {aliases}; versions: {versions}"

    def resolve(self, requested: str, job_id: str) -> ModelVersion:
        """The concrete version a job runs on.

        An alias picks one of its targets by weight, seeded by the job id (so a retry of
        the same job lands on the same version); a concrete version name is used as is.
        """
        route = self.routes.get(requested)
        if route is not None:
            if not any(target.weight > 0 for target in route.targets):
                raise FailedPrecondition(
                    f"model alias {requested!r} has no traffic (all weights are 0); ask an "
                    "admin to route it, or name a version",
                    reason="alias_without_traffic",
                )
            chosen = weighted_choice(route.targets, f"{requested}\x00{job_id}")
            version = self.versions.get(chosen)
            if version is None:
                raise FailedPrecondition(
                    f"model alias {requested!r} routes to {chosen!r}, which is not registered",
                    reason="route_target_missing",
                )
            return version
        version = self.versions.get(requested)
        if version is None:
            raise InvalidArgument(
                f"unknown model_version {requested!r}; use one of the {self.known_names()}",
                field="model_version",
            )
        return version

    def check_registration(self, version: ModelVersion) -> bool:
        """Whether version is new; False if the very same version is already registered.

        Versions are immutable: registering a name again with another definition is
        refused, and a name may not shadow an alias.
        """
        if version.name in self.routes:
            raise InvalidArgument(
                f"{version.name!r} is an alias in the routing table; give the version another name",
                field="version.name",
            )
        existing = self.versions.get(version.name)
        if existing is None:
            return True
        if existing.same_definition(version):
            return False
        raise AlreadyExists(
            f"model version {version.name!r} is already registered with another definition; "
            "versions are immutable, so register the change under a new name",
            field="version.name",
        )

    def validate_route(self, alias: str, targets: Iterable[RouteTarget]) -> ModelRoute:
        """Checks a new route for an alias against the registered versions."""
        alias = _check_name(alias, "alias")
        if alias in self.versions:
            raise InvalidArgument(
                f"{alias!r} is a model version; an alias needs a name of its own",
                field="alias",
            )
        checked: list[RouteTarget] = []
        seen: set[str] = set()
        for index, target in enumerate(targets):
            name = f"targets[{index}]"
            if target.model_version not in self.versions:
                known = ", ".join(sorted(self.versions)) or "none"
                raise InvalidArgument(
                    f"{name}.model_version {target.model_version!r} is not registered; "
                    f"register it first (registered: {known})",
                    field=f"{name}.model_version",
                )
            if target.model_version in seen:
                raise InvalidArgument(
                    f"{name}.model_version {target.model_version!r} is listed twice",
                    field=f"{name}.model_version",
                )
            if not 0 <= target.weight <= MAX_ROUTE_WEIGHT:
                raise InvalidArgument(
                    f"{name}.weight must be between 0 and {MAX_ROUTE_WEIGHT}, got {target.weight}",
                    field=f"{name}.weight",
                )
            seen.add(target.model_version)
            checked.append(target)
        if not checked:
            raise InvalidArgument(
                "targets needs at least one model version with a weight", field="targets"
            )
        if len(checked) > MAX_ROUTE_TARGETS:
            raise InvalidArgument(
                f"targets has {len(checked)} entries; at most {MAX_ROUTE_TARGETS} are allowed",
                field="targets",
            )
        if not any(target.weight > 0 for target in checked):
            raise InvalidArgument(
                "targets needs at least one positive weight, or the alias would take no traffic",
                field="targets",
            )
        return ModelRoute(alias=alias, targets=tuple(checked))

    def validate_endpoint(self, model_version: str, endpoint: str) -> ModelEndpoint:
        """Checks an endpoint for a registered version (NOT_FOUND for any other name)."""
        name = _check_name(model_version, "model_version")
        if name not in self.versions:
            hint = (
                "it is an alias; endpoints belong to the versions it routes to"
                if name in self.routes
                else "register it first"
            )
            known = ", ".join(sorted(self.versions)) or "none"
            raise NotFound(
                f"model version {name!r} is not registered; {hint} (registered: {known})",
                field="model_version",
                reason="model_version_not_found",
            )
        return ModelEndpoint(model_version=name, endpoint=validate_endpoint(endpoint))


def parse_seed(
    data: Mapping[str, Any],
) -> tuple[list[ModelVersion], list[ModelRoute]]:
    """Reads the seed_models setting: {"versions": [...], "routes": {alias: [targets]}}.

    Raises ValueError with the problem, so a bad setting stops the service at start.
    """
    try:
        versions = [
            validate_model_version(
                ModelVersion(
                    name=str(item["name"]),
                    family=str(item["family"]),
                    encoder=str(item["encoder"]),
                    tile_size=int(item["tile_size"]),
                    config=dict(item.get("config", {})),
                    description=str(item.get("description", "")),
                )
            )
            for item in data.get("versions", [])
        ]
        table = RoutingTable(versions={v.name: v for v in versions}, routes={})
        routes = [
            table.validate_route(
                str(alias),
                [
                    RouteTarget(model_version=str(t["model_version"]), weight=int(t["weight"]))
                    for t in targets
                ],
            )
            for alias, targets in dict(data.get("routes", {})).items()
        ]
    except InvalidArgument as exc:
        raise ValueError(f"seed_models: {exc.message}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"seed_models is malformed: {type(exc).__name__}: {exc}") from exc
    return versions, routes
