"""Routing: aliases with weights, deterministic per job, concrete versions, validation."""

from __future__ import annotations

from collections import Counter

import pytest

from gouache import catalogue
from gouache.db import new_id
from gouache.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.jobs.domain.routing import (
    MAX_ENDPOINT_CHARS,
    ModelEndpoint,
    ModelRoute,
    ModelVersion,
    RouteTarget,
    RoutingTable,
    parse_seed,
    validate_endpoint,
    validate_model_version,
    weighted_choice,
)
from services.jobs.settings import DEFAULT_SEED_MODELS

V1 = ModelVersion("gatys.lite0-v1", "gatys", "efficientnet-lite0", 512, {"eta_seconds": 60})
FAST = ModelVersion("gatys.lite0-fast", "gatys", "efficientnet-lite0", 256, {"eta_seconds": 5})


def table(**routes: list[tuple[str, int]]) -> RoutingTable:
    return RoutingTable(
        versions={V1.name: V1, FAST.name: FAST},
        routes={
            alias: ModelRoute(alias, tuple(RouteTarget(v, w) for v, w in targets))
            for alias, targets in routes.items()
        },
    )


def test_alias_resolves_to_its_single_target() -> None:
    assert table(default=[(V1.name, 100)]).resolve("default", "job_x") == V1


def test_concrete_version_resolves_to_itself() -> None:
    assert table().resolve("gatys.lite0-fast", "job_x") == FAST


def test_unknown_model_lists_what_exists() -> None:
    with pytest.raises(InvalidArgument) as caught:
        table(gatys=[(V1.name, 100)]).resolve("adain-1.0", "job_x")
    assert caught.value.field == "model_version"
    assert "'adain-1.0'" in caught.value.message
    assert "aliases: gatys" in caught.value.message
    assert "gatys.lite0-fast, gatys.lite0-v1" in caught.value.message


def test_choice_is_deterministic_per_job() -> None:
    routes = table(canary=[(V1.name, 50), (FAST.name, 50)])
    job_id = new_id("job")
    first = routes.resolve("canary", job_id)
    assert all(routes.resolve("canary", job_id) == first for _ in range(20))


def test_choice_follows_the_weights() -> None:
    routes = table(canary=[(V1.name, 90), (FAST.name, 10)])
    counts = Counter(routes.resolve("canary", new_id("job")).name for _ in range(5000))
    assert 0.07 < counts[FAST.name] / 5000 < 0.13


def test_zero_weight_target_never_chosen() -> None:
    routes = table(canary=[(V1.name, 0), (FAST.name, 1)])
    assert {routes.resolve("canary", new_id("job")).name for _ in range(200)} == {FAST.name}


def test_weighted_choice_needs_a_positive_weight() -> None:
    with pytest.raises(ValueError, match="positive"):
        weighted_choice([RouteTarget("a", 0)], "seed")


def test_alias_without_traffic() -> None:
    with pytest.raises(FailedPrecondition):
        table(dead=[(V1.name, 0)]).resolve("dead", "job_x")


def test_validate_route() -> None:
    route = table().validate_route(
        " canary ", [RouteTarget(V1.name, 95), RouteTarget(FAST.name, 5)]
    )
    assert route.alias == "canary"
    assert [t.weight for t in route.targets] == [95, 5]


@pytest.mark.parametrize(
    ("alias", "targets", "field", "message"),
    [
        ("Bad Alias", [(V1.name, 1)], "alias", "lowercase"),
        ("gatys.lite0-v1", [(V1.name, 1)], "alias", "is a model version"),
        ("x", [], "targets", "at least one"),
        ("x", [(V1.name, 0)], "targets", "positive weight"),
        ("x", [(V1.name, 101)], "targets[0].weight", "between 0 and 100"),
        ("x", [(V1.name, -1)], "targets[0].weight", "between 0 and 100"),
        ("x", [("nope", 10)], "targets[0].model_version", "not registered"),
        ("x", [(V1.name, 1), (V1.name, 2)], "targets[1].model_version", "twice"),
    ],
)
def test_bad_routes(alias: str, targets: list[tuple[str, int]], field: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        table().validate_route(alias, [RouteTarget(v, w) for v, w in targets])
    assert caught.value.field == field


def test_eta_from_config() -> None:
    assert V1.eta_seconds == 60
    assert ModelVersion("x", "gatys", "e", 256).eta_seconds == 5
    assert ModelVersion("x", "gatys", "e", 256, {"eta_seconds": 2.2}).eta_seconds == 3


@pytest.mark.parametrize(
    ("version", "field"),
    [
        (ModelVersion("Bad Name", "gatys", "e", 256), "version.name"),
        (ModelVersion("x", "pix2pix", "e", 256), "version.family"),
        (ModelVersion("x", "gatys", " ", 256), "version.encoder"),
        (ModelVersion("x", "gatys", "e", 32), "version.tile_size"),
        (ModelVersion("x", "gatys", "e", 256, {"eta_seconds": -1}), "version.config_json"),
        (ModelVersion("x", "gatys", "e", 256, {"eta_seconds": "soon"}), "version.config_json"),
    ],
)
def test_bad_versions(version: ModelVersion, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_model_version(version)
    assert caught.value.field == field


def test_registration_is_idempotent_and_immutable() -> None:
    routes = table(gatys=[(V1.name, 100)])
    assert routes.check_registration(ModelVersion("new", "adain", "vgg19", 512)) is True
    assert routes.check_registration(V1) is False
    with pytest.raises(AlreadyExists):
        routes.check_registration(ModelVersion(V1.name, "gatys", "efficientnet-lite0", 256))
    with pytest.raises(InvalidArgument, match="alias"):
        routes.check_registration(ModelVersion("gatys", "gatys", "e", 256))


def test_default_seed_parses() -> None:
    versions, routes = parse_seed(DEFAULT_SEED_MODELS)
    assert [v.name for v in versions] == list(catalogue.names())
    assert {"adain.lite0-v1", "feedforward.lite0-v1", "gatys.lite0-v1", "gatys.lite0-fast"} <= {
        v.name for v in versions
    }
    by_alias = {r.alias: r.targets for r in routes}
    # A job without model_version gets the fast arbitrary-style model (issue 9).
    assert by_alias["default"] == (RouteTarget(catalogue.DEFAULT, 100),)
    assert next(v for v in versions if v.name == catalogue.DEFAULT).family == "wct"
    assert by_alias["adain"] == by_alias["adain-1.0"] == (RouteTarget("wct.lite0-v1", 100),)
    assert by_alias["feedforward"] == (RouteTarget("feedforward.lite0-v1", 100),)
    assert by_alias["gatys"] == (RouteTarget("gatys.lite0-v1", 100),)
    assert by_alias["gatys-fast"] == (RouteTarget("gatys.lite0-fast", 100),)
    fast = next(v for v in versions if v.name == "gatys.lite0-fast")
    assert (fast.tile_size, fast.eta_seconds) == (256, 5)


@pytest.mark.parametrize(
    "seed",
    [
        {"versions": [{"name": "x"}]},
        {"versions": [], "routes": {"default": [{"model_version": "missing", "weight": 1}]}},
    ],
)
def test_bad_seed_is_a_value_error(seed: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="seed_models"):
        parse_seed(seed)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("", ""),
        ("  ", ""),
        ("inference-gatys-v2.gouache.svc.cluster.local:50055", None),
        ("Inference-V2.Gouache.SVC:50055", "inference-v2.gouache.svc:50055"),
        ("localhost:1", None),
        ("10.0.0.7:65535", None),
        ("[::1]:50055", None),
        ("[2001:DB8:0:0::1]:443", "[2001:db8::1]:443"),
        (" inference:08080 ", "inference:8080"),
        ("a" * 63 + ".b:1", None),
    ],
)
def test_endpoints_are_host_and_port(given: str, stored: str | None) -> None:
    assert validate_endpoint(given) == (given.strip() if stored is None else stored)


@pytest.mark.parametrize(
    "bad",
    [
        "inference",
        "inference:",
        ":50055",
        "inference:0",
        "inference:65536",
        "inference:-1",
        "inference:+80",
        "inference:5oo55",
        "::1:50055",
        "[::1]",
        "[not-ipv6]:50055",
        "[fe80::1%eth0]:50055",
        "1.2.3:50055",
        "999.1.1.1:50055",
        "-inference:50055",
        "inference-:50055",
        "in_ference:50055",
        "infer ence:50055",
        "inference..svc:50055",
        "inference.svc.:50055",
        "dns:///inference:50055",
        "http://inference:50055",
        "user@inference:50055",
        "inference:50055/path",
        "a" * 64 + ":1",
        "ïnference:50055",
        ("a" * 62 + ".") * 4 + "a:1",
    ],
)
def test_bad_endpoints_are_invalid_argument(bad: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_endpoint(bad)
    assert caught.value.field == "endpoint"


def test_endpoints_are_at_most_253_characters() -> None:
    host = ".".join(["a" * 61] * 4)[: MAX_ENDPOINT_CHARS - 6]
    assert validate_endpoint(f"{host}:50055") == f"{host}:50055"
    with pytest.raises(InvalidArgument, match="253"):
        validate_endpoint(f"{host}a:50055")


def test_endpoint_needs_a_registered_version() -> None:
    routing = table(gatys=[(V1.name, 100)])
    assert routing.validate_endpoint(V1.name, "inference-v1:50055") == ModelEndpoint(
        V1.name, "inference-v1:50055"
    )
    with pytest.raises(NotFound, match=r"'gatys\.lite0-v9' is not registered") as unknown:
        routing.validate_endpoint("gatys.lite0-v9", "inference-v9:50055")
    assert unknown.value.field == "model_version"
    with pytest.raises(NotFound, match="alias"):
        routing.validate_endpoint("gatys", "inference-v1:50055")
    with pytest.raises(InvalidArgument):
        routing.validate_endpoint("", "inference-v1:50055")
    assert routing.endpoint_of(V1.name) == ""
