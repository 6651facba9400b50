"""Tests of the object stores against real backends."""
