"""Revisions of the jobs schema, one file each, oldest first."""
