"""Tests of the feedback service (integration)."""
