"""Integration tests of the jobs service."""
