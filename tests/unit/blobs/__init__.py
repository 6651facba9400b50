"""Tests of gouache.blobs."""
