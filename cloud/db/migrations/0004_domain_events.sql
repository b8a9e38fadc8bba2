-- The domain-event outbox: a change other features care about is written here in the same
-- transaction as the change; readers follow it by id watermark (see docs/architecture.md,
-- "How features talk") and keep their position in domain_event_cursors. Safe to re-run.

CREATE TABLE IF NOT EXISTS domain_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic       text NOT NULL CHECK (topic ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    subject     text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS domain_events_topic ON domain_events (topic, id);

-- One row per consumer (or per consumer and source table): the last id it has handled.
CREATE TABLE IF NOT EXISTS domain_event_cursors (
    consumer    text PRIMARY KEY,
    watermark   bigint NOT NULL DEFAULT 0 CHECK (watermark >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
