"""Tests of the tiling service."""
