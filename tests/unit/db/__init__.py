"""Unit tests for gouache.db."""
