"""Unit tests of the jobs service."""
