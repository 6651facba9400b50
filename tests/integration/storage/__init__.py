"""Storage against real SQLite and PostgreSQL."""
