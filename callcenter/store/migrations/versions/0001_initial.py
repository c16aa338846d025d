"""Initial schema: interactions, their legs, ACD decisions, agent states.

Asterisk identifiers (uniqueid, linkedid) are unique per node only, so every
table that holds one also holds the node name.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


SCHEMA = """
        CREATE TABLE interactions (
            id              uuid PRIMARY KEY,
            channel         text NOT NULL DEFAULT 'voice'
                            CHECK (channel IN ('voice', 'chat', 'email', 'sms')),
            direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
            node            text,
            linkedid        text,
            queue           text,
            caller_number   text,
            customer_id     text,
            language        text,
            priority        integer NOT NULL DEFAULT 0,
            created_at      timestamptz NOT NULL DEFAULT now(),
            enqueued_at     timestamptz,
            answered_at     timestamptz,
            ended_at        timestamptz,
            agent_id        text,
            outcome         text,
            context         jsonb NOT NULL DEFAULT '{}'::jsonb
        );
        CREATE UNIQUE INDEX interactions_call ON interactions (node, linkedid)
            WHERE linkedid IS NOT NULL;
        CREATE INDEX interactions_created ON interactions (created_at);

        CREATE TABLE call_legs (
            node            text NOT NULL,
            uniqueid        text NOT NULL,
            interaction_id  uuid REFERENCES interactions (id),
            channel_name    text NOT NULL,
            role            text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            ended_at        timestamptz,
            hangup_cause    integer,
            PRIMARY KEY (node, uniqueid)
        );

        CREATE TABLE acd_decisions (
            id              bigserial PRIMARY KEY,
            at              timestamptz NOT NULL DEFAULT now(),
            interaction_id  uuid,
            agent_id        text,
            kind            text NOT NULL,
            reason          text NOT NULL,
            detail          jsonb NOT NULL DEFAULT '{}'::jsonb
        );
        CREATE INDEX acd_decisions_interaction ON acd_decisions (interaction_id);

        CREATE TABLE agent_states (
            id              bigserial PRIMARY KEY,
            agent_id        text NOT NULL,
            state           text NOT NULL,
            reason          text,
            since           timestamptz NOT NULL,
            until           timestamptz
        );
        CREATE INDEX agent_states_agent ON agent_states (agent_id, since);
"""


def upgrade() -> None:
    # asyncpg runs one statement per call.
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE agent_states, acd_decisions, call_legs, interactions")
