"""One call, several interactions: a caller transferred to a queue or an
agent, or queued again, keeps their channel (and so the call's linkedid) and
gets a new interaction whose ``origin`` is the one before. The unique index
on (node, linkedid) refused the second row, which the writer then set aside
as rejected: it becomes an ordinary index, still serving "every interaction
of this call".

Revision ID: 0007_call_interactions
Revises: 0006_row_versions
"""

from alembic import op

revision = "0007_call_interactions"
down_revision = "0006_row_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX interactions_call")
    op.execute("CREATE INDEX interactions_call ON interactions (node, linkedid)")


def downgrade() -> None:
    # Fails, naming the index, while a call has several interactions stored:
    # the older schema cannot hold them.
    op.execute("DROP INDEX interactions_call")
    op.execute(
        "CREATE UNIQUE INDEX interactions_call ON interactions (node, linkedid)"
        " WHERE linkedid IS NOT NULL"
    )
