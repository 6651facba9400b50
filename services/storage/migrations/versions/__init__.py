"""Revisions of the storage schema, one file each, oldest first."""
