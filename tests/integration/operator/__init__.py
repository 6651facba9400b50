"""Tests of the GPU-pool operator against a simulated cluster (integration)."""
