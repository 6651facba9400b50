"""Shared pytest configuration: fixtures that start real servers live in tests/fixtures."""

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.postgres",
    "tests.fixtures.envoy",
    "tests.fixtures.kube",
    "tests.fixtures.minio",
    "tests.fixtures.otlp",
]
