-- Messaging hub (issue 14). crm_message_outbox (0202, written by the consent double opt-in) becomes
-- the one durable outbox: hub messages and consent confirmations are worked by the same
-- dispatcher. New columns have defaults, so the consent flow's inserts keep working.
ALTER TABLE crm_message_outbox
    ADD COLUMN IF NOT EXISTS purpose text NOT NULL DEFAULT 'transactional'
        CHECK (purpose IN ('transactional', 'marketing')),
    ADD COLUMN IF NOT EXISTS priority text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('high', 'normal', 'low')),
    ADD COLUMN IF NOT EXISTS locale text,
    ADD COLUMN IF NOT EXISTS idempotency_key text,
    ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'claimed', 'sending', 'sent', 'skipped', 'failed', 'uncertain')),
    ADD COLUMN IF NOT EXISTS not_before timestamptz,
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS lease_token uuid,
    ADD COLUMN IF NOT EXISTS lease_until timestamptz,
    ADD COLUMN IF NOT EXISTS provider_id text,
    ADD COLUMN IF NOT EXISTS last_error text;
UPDATE crm_message_outbox SET status = 'sent' WHERE sent_at IS NOT NULL AND status <> 'sent';
CREATE UNIQUE INDEX IF NOT EXISTS crm_message_outbox_idem ON crm_message_outbox (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- What the dispatcher scans: due messages, high priority first.
CREATE INDEX IF NOT EXISTS crm_message_outbox_due ON crm_message_outbox (status, not_before, id)
    WHERE status IN ('queued', 'claimed', 'sending');
-- Frequency caps count a person's recent sends.
CREATE INDEX IF NOT EXISTS crm_message_outbox_sent ON crm_message_outbox (profile_id, sent_at)
    WHERE sent_at IS NOT NULL;

-- Templates: one row per name, channel and locale.
CREATE TABLE IF NOT EXISTS crm_msg_templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    channel     text NOT NULL,
    locale      text NOT NULL,
    format      text NOT NULL CHECK (format IN ('text', 'html', 'mjml')),
    subject     text,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, channel, locale)
);

-- Every send-time decision with its reason (append-only).
CREATE TABLE IF NOT EXISTS crm_msg_decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  bigint NOT NULL REFERENCES crm_message_outbox (id),
    decision    text NOT NULL,
    reason      text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_msg_decisions_message ON crm_msg_decisions (message_id, id);
DROP TRIGGER IF EXISTS crm_msg_decisions_append_only ON crm_msg_decisions;
CREATE TRIGGER crm_msg_decisions_append_only BEFORE UPDATE OR DELETE ON crm_msg_decisions
    FOR EACH ROW EXECUTE FUNCTION crm_append_only();

-- Suppressions: after a hard bounce, a complaint or an unsubscribe, per person and channel.
CREATE TABLE IF NOT EXISTS crm_msg_suppressions (
    profile_id  bigint NOT NULL REFERENCES crm_profiles (id),
    channel     text NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribe')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (profile_id, channel)
);

-- The in-app inbox: one row per outbox message, so a resend finds the first.
CREATE TABLE IF NOT EXISTS crm_msg_inbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id  bigint NOT NULL REFERENCES crm_profiles (id),
    message_id  bigint NOT NULL UNIQUE REFERENCES crm_message_outbox (id),
    title       text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX IF NOT EXISTS crm_msg_inbox_profile ON crm_msg_inbox (profile_id, id);
