"""Interval statistics: 15-minute aggregates per queue, skill, agent, team and
agent kind (regular / extended), recomputed from the interactions and agent
states (callcenter.store.stats.recompute_intervals), idempotently.

Counts and second sums are stored, never ratios: a day's SL is the sum of its
intervals' numerators over the sum of their denominators.

Revision ID: 0002_stats
Revises: 0002_callbacks
"""

from alembic import op

revision = "0002_stats"
down_revision = "0002_callbacks"
branch_labels = None
depends_on = None

SCHEMA = """
        CREATE TABLE interval_stats (
            interval_start   timestamptz NOT NULL,
            interval_seconds integer NOT NULL DEFAULT 900,
            dimension        text NOT NULL
                             CHECK (dimension IN ('queue', 'skill', 'agent', 'team', 'agent_kind')),
            key              text NOT NULL,
            offered          integer NOT NULL DEFAULT 0,
            answered         integer NOT NULL DEFAULT 0,
            answered_in_sl   integer NOT NULL DEFAULT 0,
            abandoned        integer NOT NULL DEFAULT 0,
            abandoned_in_sl  integer NOT NULL DEFAULT 0,
            short_abandoned  integer NOT NULL DEFAULT 0,
            callbacks        integer NOT NULL DEFAULT 0,
            transferred      integer NOT NULL DEFAULT 0,
            handled          integer NOT NULL DEFAULT 0,
            wait_answered_s  double precision NOT NULL DEFAULT 0,
            wait_abandoned_s double precision NOT NULL DEFAULT 0,
            max_wait_s       double precision NOT NULL DEFAULT 0,
            talk_s           double precision NOT NULL DEFAULT 0,
            hold_s           double precision NOT NULL DEFAULT 0,
            wrap_s           double precision NOT NULL DEFAULT 0,
            ready_s          double precision NOT NULL DEFAULT 0,
            reserved_s       double precision NOT NULL DEFAULT 0,
            agent_talk_s     double precision NOT NULL DEFAULT 0,
            agent_wrap_s     double precision NOT NULL DEFAULT 0,
            paused_s         double precision NOT NULL DEFAULT 0,
            computed_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (interval_start, dimension, key)
        );
        CREATE INDEX interval_stats_key ON interval_stats (dimension, key, interval_start);
        CREATE INDEX interactions_enqueued ON interactions (enqueued_at)
"""


def upgrade() -> None:
    # asyncpg runs one statement per call.
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX interactions_enqueued")
    op.execute("DROP TABLE interval_stats")
