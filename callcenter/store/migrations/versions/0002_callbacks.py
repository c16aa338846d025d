"""Callbacks: a caller who left the queue keeps their place; we call them back.

Pending callbacks survive a daemon restart: at start-up every pending row is
put back into the ACD with its original enqueue time. Every attempt is kept.

Revision ID: 0002_callbacks
Revises: 0001
"""

from alembic import op

revision = "0002_callbacks"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
        CREATE TABLE callbacks (
            id              uuid PRIMARY KEY,
            origin          uuid,
            node            text NOT NULL,
            queue           text NOT NULL,
            number          text NOT NULL CHECK (number ~ '^[0-9]{2,20}$'),
            language        text NOT NULL,
            priority        integer NOT NULL DEFAULT 0,
            enqueued_at     timestamptz NOT NULL,
            not_before      timestamptz,
            status          text NOT NULL
                            CHECK (status IN ('pending', 'done', 'failed', 'cancelled')),
            attempts        jsonb NOT NULL DEFAULT '[]'::jsonb,
            agent_id        text,
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX callbacks_pending ON callbacks (node, status) WHERE status = 'pending'
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE callbacks")
