-- Messaging tracking and the unified inbox (issue 14).

-- A campaign key on messages: statistics are kept per campaign.
ALTER TABLE crm_message_outbox ADD COLUMN IF NOT EXISTS campaign text;
CREATE INDEX IF NOT EXISTS crm_message_outbox_campaign_key ON crm_message_outbox (campaign)
    WHERE campaign IS NOT NULL;

-- What happened to a message after it left: receipts, opens, clicks, unsubscribes.
-- `dedup` is set for provider receipts (a webhook retried is stored once); opens and clicks
-- are stored each time (unique counts come from DISTINCT message_id).
CREATE TABLE IF NOT EXISTS crm_msg_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  bigint NOT NULL REFERENCES crm_message_outbox (id),
    kind        text NOT NULL CHECK (kind IN ('delivered', 'opened', 'clicked', 'bounced',
                                              'unsubscribed', 'complained')),
    detail      text NOT NULL DEFAULT '',
    url         text,
    dedup       text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS crm_msg_events_dedup ON crm_msg_events (message_id, kind, dedup)
    WHERE dedup IS NOT NULL;
CREATE INDEX IF NOT EXISTS crm_msg_events_message ON crm_msg_events (message_id, id);

-- The event-stream source the tracking events are stored under (no write key can match it).
INSERT INTO crm_event_sources (id, name, write_key_hash, write_key_prefix, consent_required,
                               revoked_at)
VALUES ('messaging', 'Messaging hub (internal)', 'internal:messaging', 'internal', false, now())
ON CONFLICT DO NOTHING;

-- The unified inbox: one conversation per customer across every channel.
CREATE TABLE IF NOT EXISTS crm_msg_conversations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id      bigint NOT NULL UNIQUE REFERENCES crm_profiles (id),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    assignee        text,
    channel         text NOT NULL,
    subject         text,
    last_message_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz
);
CREATE INDEX IF NOT EXISTS crm_msg_conversations_list
    ON crm_msg_conversations (status, last_message_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS crm_msg_conversation_items (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES crm_msg_conversations (id),
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    channel         text NOT NULL,
    address         text,
    subject         text,
    body            text NOT NULL,
    provider_id     text,
    in_reply_to     text,
    outbox_id       bigint REFERENCES crm_message_outbox (id),
    author          text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- A webhook or an SMTP delivery retried is stored once.
CREATE UNIQUE INDEX IF NOT EXISTS crm_msg_conversation_items_inbound
    ON crm_msg_conversation_items (channel, provider_id) WHERE direction = 'in';
CREATE INDEX IF NOT EXISTS crm_msg_conversation_items_conv
    ON crm_msg_conversation_items (conversation_id, id);

-- The template a reply from the inbox goes out with (the agent's text as it is).
INSERT INTO crm_msg_templates (name, channel, locale, format, subject, body)
SELECT 'inbox_reply', ch, 'en', 'text',
       CASE WHEN ch = 'email' THEN '{{ subject }}' END, '{{ body }}'
FROM unnest(ARRAY['email', 'sms', 'whatsapp', 'wechat']) AS ch
ON CONFLICT (name, channel, locale) DO NOTHING;
