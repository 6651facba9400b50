"""Tests of the gouache command line: pure parts."""
