"""Row versions: interactions, callbacks and agent states keep when the
version stored was submitted to the records writer (``version_at``, the
time its idempotency key was given), so an older version written late (a
rejected row replayed, rows out of order) never replaces a newer one: an
interaction or a callback is updated only by a version not older than the
stored one; agent states are ordered by ``since``, then ``version_at``.
Rows written before this revision have none (NULL: older than any version).

Revision ID: 0006_row_versions
Revises: 0005_callback_window
"""

from alembic import op

revision = "0006_row_versions"
down_revision = "0005_callback_window"
branch_labels = None
depends_on = None

SCHEMA = """
        ALTER TABLE interactions ADD COLUMN version_at timestamptz;
        ALTER TABLE callbacks ADD COLUMN version_at timestamptz;
        ALTER TABLE agent_states ADD COLUMN version_at timestamptz
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE agent_states DROP COLUMN version_at")
    op.execute("ALTER TABLE callbacks DROP COLUMN version_at")
    op.execute("ALTER TABLE interactions DROP COLUMN version_at")
