"""Revisions of the auth schema, one file each, oldest first."""
