"""Callback windows: a callback may have an end (``not_after``); still pending
then, nobody took it and it is dropped with the status ``expired``. Rows
written before this revision have no end (NULL: no window end).

Revision ID: 0005_callback_window
Revises: 0004_row_keys
"""

from alembic import op

revision = "0005_callback_window"
down_revision = "0004_row_keys"
branch_labels = None
depends_on = None

SCHEMA = """
        ALTER TABLE callbacks ADD COLUMN not_after timestamptz;
        ALTER TABLE callbacks DROP CONSTRAINT callbacks_status_check;
        ALTER TABLE callbacks ADD CONSTRAINT callbacks_status_check
            CHECK (status IN ('pending', 'done', 'failed', 'expired', 'cancelled'))
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    # The previous schema has no "expired": such a callback was dropped.
    op.execute("UPDATE callbacks SET status = 'cancelled' WHERE status = 'expired'")
    op.execute("ALTER TABLE callbacks DROP CONSTRAINT callbacks_status_check")
    op.execute(
        "ALTER TABLE callbacks ADD CONSTRAINT callbacks_status_check"
        " CHECK (status IN ('pending', 'done', 'failed', 'cancelled'))"
    )
    op.execute("ALTER TABLE callbacks DROP COLUMN not_after")
