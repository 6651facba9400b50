"""The auth service's Alembic migrations (env.py and versions/), run by gouache.db.migrate."""
