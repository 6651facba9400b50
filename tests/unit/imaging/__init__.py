"""Tests for gouache.imaging."""
