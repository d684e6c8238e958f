"""Apply Alembic migrations from code: at start-up on the embedded default, and from the release step."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

SCRIPT_LOCATION = Path(migrations.__file__).parent
MIGRATION_LOCK_KEY = 0x70D0C4A7  # an arbitrary constant naming our advisory lock


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade on one of the engine's connections (Alembic's 'connection sharing' recipe)."""

    def run(connection: Connection) -> None:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several workers may start at once with AUTO_MIGRATE: one migrates, the rest wait.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await connection.run_sync(run)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


class SchemaNotCurrentError(RuntimeError):
    """The database's schema is older than this code's (or was never created): refuse to serve."""


async def check_current(engine: AsyncEngine) -> None:
    """Raise `SchemaNotCurrentError`, with a one-line fix, unless the database is at this code's head.

    A database *ahead* of the code (a newer release migrated it during a rolling deploy) is
    accepted: migrations add before they remove, so the previous release keeps working on it.
    """
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    head = script.get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        revision = await connection.run_sync(current)
    if revision == head:
        return
    if revision is not None and not _known(script, revision):
        return  # a newer release's migration
    found = f"at revision {revision}" if revision else "not migrated (no schema)"
    raise SchemaNotCurrentError(
        f"The database is {found}, this code needs {head}: run `alembic upgrade head` "
        "(the Procfile's release step) or set AUTO_MIGRATE=true"
    )
