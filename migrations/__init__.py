"""Alembic migrations (the package lets the server find them when installed)."""
