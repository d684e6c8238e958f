"""Tasks that know when: priority, tags, due and reminder times, recurrence, full-text search; users' time zones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_REMINDER = sa.text("remind_at IS NOT NULL")


def _search_column() -> sa.Column[str]:
    """Generated from title and description: a tsvector on PostgreSQL, lower-cased text for LIKE on SQLite."""
    if op.get_context().dialect.name == "postgresql":
        document = "to_tsvector('english', title || ' ' || coalesce(description, ''))"
        return sa.Column("search", postgresql.TSVECTOR(), sa.Computed(document, persisted=True), nullable=True)
    document = "lower(title || ' ' || coalesce(description, ''))"
    return sa.Column("search", sa.Text(), sa.Computed(document, persisted=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False))

    # SQLite cannot add a stored generated column to a table: the batch copies the table instead.
    with _tasks_batch(recreate="auto" if _is_postgres() else "always") as tasks:
        tasks.add_column(sa.Column("priority", sa.SmallInteger(), server_default="1", nullable=False))
        tasks.add_column(sa.Column("tags", sa.JSON(), server_default="[]", nullable=False))
        tasks.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        tasks.add_column(sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
        tasks.add_column(sa.Column("remind_lead", sa.Integer(), nullable=True))
        tasks.add_column(sa.Column("recurrence", sa.String(length=100), nullable=True))
        tasks.add_column(_search_column())
    op.create_index("ix_tasks_user_due", "tasks", ["user_id", "due_at"])
    op.create_index("ix_tasks_user_priority", "tasks", ["user_id", "priority"])
    op.create_index(
        "ix_tasks_remind_at",
        "tasks",
        ["remind_at", "user_id"],
        postgresql_where=PENDING_REMINDER,
        sqlite_where=PENDING_REMINDER,
    )
    op.create_index("ix_tasks_user_title", "tasks", ["user_id", sa.text("lower(title)")])
    if _is_postgres():  # SQLite searches with LIKE '%word%', which no B-tree index can serve
        op.create_index("ix_tasks_search", "tasks", ["search"], postgresql_using="gin")

    op.create_table(
        "task_tags",
        sa.Column("task_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_task_tags_task_id_tasks"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_task_tags_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "tag", name=op.f("pk_task_tags")),
    )
    op.create_index("ix_task_tags_user_tag", "task_tags", ["user_id", "tag", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_tags_user_tag", table_name="task_tags")
    op.drop_table("task_tags")
    if _is_postgres():
        op.drop_index("ix_tasks_search", table_name="tasks")
    for index in ("ix_tasks_user_title", "ix_tasks_remind_at", "ix_tasks_user_priority", "ix_tasks_user_due"):
        op.drop_index(index, table_name="tasks")
    with _tasks_batch(recreate="auto") as tasks:
        for column in ("search", "recurrence", "remind_lead", "remind_at", "due_at", "tags", "priority"):
            tasks.drop_column(column)
    with op.batch_alter_table("users") as users:
        users.drop_column("timezone")


def _is_postgres() -> bool:
    return op.get_context().dialect.name == "postgresql"


@contextmanager
def _tasks_batch(*, recreate: Literal["auto", "always"]) -> Iterator[BatchOperations]:
    """Alter `tasks`; where SQLite copies the table, its ids still never come back.

    The copy keeps AUTOINCREMENT (`sqlite_autoincrement`) and the highest id ever handed out
    (sqlite_sequence), which may belong to a deleted task: "task 7" must never name two tasks.
    """
    if _is_postgres():
        with op.batch_alter_table("tasks", recreate=recreate) as batch:
            yield batch
        return
    connection = op.get_bind()
    highest = connection.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'")).scalar()
    with op.batch_alter_table("tasks", recreate=recreate, table_kwargs={"sqlite_autoincrement": True}) as batch:
        yield batch
    if highest is not None:
        now = connection.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'")).scalar()
        if now is None:
            connection.execute(
                sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('tasks', :seq)"), {"seq": highest}
            )
        else:
            connection.execute(
                sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'tasks'"), {"seq": max(now, highest)}
            )
