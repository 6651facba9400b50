"""Integration tests for gouache.bus against a real NATS JetStream server."""
