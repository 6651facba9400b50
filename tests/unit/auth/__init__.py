"""Tests of the auth service (unit)."""
