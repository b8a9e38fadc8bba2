-- Messaging dispatch at volume (issue 14): campaigns queued set-based, the send order of a
-- batch (so a worker lost mid-batch leaves one message in doubt, not the batch), the provider
-- that took each message (failover), and per-provider token buckets shared by every worker.
CREATE TABLE IF NOT EXISTS crm_msg_campaigns (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL,
    channel          text NOT NULL,
    template         text NOT NULL,
    purpose          text NOT NULL CHECK (purpose IN ('transactional', 'marketing')),
    priority         text NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    locale           text,
    segment_id       bigint REFERENCES crm_segments (id),
    variables        jsonb NOT NULL DEFAULT '{}',
    idempotency_key  text NOT NULL UNIQUE,
    request_hash     text NOT NULL,
    audience         integer NOT NULL DEFAULT 0,
    queued           integer NOT NULL DEFAULT 0,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE crm_message_outbox
    ADD COLUMN IF NOT EXISTS campaign_id bigint REFERENCES crm_msg_campaigns (id),
    ADD COLUMN IF NOT EXISTS send_seq integer,
    ADD COLUMN IF NOT EXISTS send_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS provider text;
-- One message per person and campaign (a retried queueing cannot double it).
CREATE UNIQUE INDEX IF NOT EXISTS crm_message_outbox_campaign
    ON crm_message_outbox (campaign_id, profile_id) WHERE campaign_id IS NOT NULL;
-- Recovery looks up the lost sends of one lease.
CREATE INDEX IF NOT EXISTS crm_message_outbox_lease ON crm_message_outbox (lease_token, send_seq)
    WHERE status = 'sending';

-- Token buckets per provider: `tokens` as of `refilled_at`; refilled at the configured rate.
CREATE TABLE IF NOT EXISTS crm_msg_rate_buckets (
    provider     text PRIMARY KEY,
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL
);
-- The claim's order (priority, then age) straight from an index: without it every claim sorted
-- all queued messages, which at campaign volume (10^5..10^6 queued) cost more than the sends.
CREATE INDEX IF NOT EXISTS crm_message_outbox_claim ON crm_message_outbox
    ((CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END), id)
    WHERE status = 'queued';
