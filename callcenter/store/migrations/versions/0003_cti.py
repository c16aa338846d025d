"""CTI and CRM: desktop users and their sessions, the supervisor audit trail,
and the built-in contact directory used by the IVR and the screen-pop.

Sessions keep only a hash of the token: a stolen database does not log anyone
in. Contacts are looked up by any of their phone numbers (digits only, as
``callcenter.adapters.telephony.is_phone_number`` accepts them).

Revision ID: 0003_cti
Revises: 0002_stats
"""

from alembic import op

revision = "0003_cti"
down_revision = "0002_stats"
branch_labels = None
depends_on = None

SCHEMA = """
        CREATE TABLE users (
            login           text PRIMARY KEY CHECK (login ~ '^[A-Za-z0-9_.-]{1,64}$'),
            role            text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
            password_hash   text NOT NULL,
            agent_id        text,
            language        text NOT NULL DEFAULT 'fr',
            disabled        boolean NOT NULL DEFAULT false,
            created_at      timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE user_sessions (
            token_hash      text PRIMARY KEY,
            login           text NOT NULL REFERENCES users (login) ON DELETE CASCADE,
            created_at      timestamptz NOT NULL DEFAULT now(),
            expires_at      timestamptz NOT NULL,
            revoked         boolean NOT NULL DEFAULT false
        );
        CREATE INDEX user_sessions_login ON user_sessions (login);

        CREATE TABLE audit_log (
            id              bigserial PRIMARY KEY,
            at              timestamptz NOT NULL DEFAULT now(),
            actor           text NOT NULL,
            action          text NOT NULL,
            target          text,
            detail          jsonb NOT NULL DEFAULT '{}'::jsonb
        );
        CREATE INDEX audit_log_at ON audit_log (at);

        CREATE TABLE contacts (
            id              text PRIMARY KEY,
            name            text NOT NULL,
            company         text,
            phones          text[] NOT NULL DEFAULT '{}',
            email           text,
            language        text,
            vip             boolean NOT NULL DEFAULT false,
            account         text,
            pin_hash        text,
            pin_failures    integer NOT NULL DEFAULT 0,
            locked_until    timestamptz,
            notes           text,
            data            jsonb NOT NULL DEFAULT '{}'::jsonb,
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX contacts_phones ON contacts USING gin (phones);
        CREATE INDEX contacts_account ON contacts (account)
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE contacts, audit_log, user_sessions, users")
