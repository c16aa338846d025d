"""Idempotent audit rows: ACD decisions and agent states get the key the
records writer gives each row when it is submitted (``row_key``), unique, so
a write retried after an unclear failure (the commit happened, its reply was
lost) or replayed from the writer's spool is stored once. Rows written before
this revision have no key (NULL, allowed any number of times).

Revision ID: 0004_row_keys
Revises: 0003_cti
"""

from alembic import op

revision = "0004_row_keys"
down_revision = "0003_cti"
branch_labels = None
depends_on = None

SCHEMA = """
        ALTER TABLE acd_decisions ADD COLUMN row_key uuid;
        CREATE UNIQUE INDEX acd_decisions_row_key ON acd_decisions (row_key);
        ALTER TABLE agent_states ADD COLUMN row_key uuid;
        CREATE UNIQUE INDEX agent_states_row_key ON agent_states (row_key)
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX agent_states_row_key, acd_decisions_row_key")
    op.execute("ALTER TABLE agent_states DROP COLUMN row_key")
    op.execute("ALTER TABLE acd_decisions DROP COLUMN row_key")
