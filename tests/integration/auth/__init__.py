"""Tests of the auth service (integration)."""
