"""Integration tests for gouache.db against SQLite and a real PostgreSQL."""
