"""Revisions of the feedback schema, one file each, oldest first."""
