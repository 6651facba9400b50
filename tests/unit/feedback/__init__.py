"""Tests of the feedback service (unit)."""
