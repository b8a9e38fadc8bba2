-- Behavioural events (Segment-style track/identify/page/screen/alias) from write-key sources.
-- This base file holds the small tables and the one definition of the events table
-- (crm_events_create); the variant that fits the database creates it with its storage engine:
-- 0210_events.plain.sql (native monthly range partitions plus a default partition) or
-- 0210_events.timescale.sql (a hypertable).
-- Storage contract (segments, funnels and cohorts read it): see docs/events.md.

-- A source sends events with its own write key (only the SHA-256 of the key is stored).
CREATE TABLE IF NOT EXISTS crm_event_sources (
    id               text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name             text NOT NULL,
    write_key_hash   text NOT NULL UNIQUE,
    write_key_prefix text NOT NULL,
    -- what a tracking-plan violation does: 'flag' stores the event and counts the violation,
    -- 'reject' answers 4xx and counts it
    plan_mode        text NOT NULL DEFAULT 'flag' CHECK (plan_mode IN ('flag', 'reject')),
    retention_days   integer CHECK (retention_days IS NULL OR retention_days >= 1),
    consent_required boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

-- message_id idempotency per source (a unique index on the partitioned table would have to
-- include occurred_at, which a retry with another clock would change).
CREATE TABLE IF NOT EXISTS crm_event_message_ids (
    source_id   text NOT NULL,
    message_id  text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (source_id, message_id)
);
CREATE INDEX IF NOT EXISTS crm_event_message_ids_received ON crm_event_message_ids (received_at);

-- Tracking plan: one JSON schema per (source, event type, event name) for the properties
-- (track, page, screen) or traits (identify).
CREATE TABLE IF NOT EXISTS crm_event_plans (
    source_id  text NOT NULL REFERENCES crm_event_sources (id) ON DELETE CASCADE,
    type       text NOT NULL CHECK (type IN ('track', 'identify', 'page', 'screen')),
    event      text NOT NULL,
    schema     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, type, event)
);

-- Violations (tracking plan, oversized properties, skewed clocks...), counted per source,
-- event and kind; a few recent examples are kept so a reader can see what went wrong.
CREATE TABLE IF NOT EXISTS crm_event_violation_counts (
    source_id    text NOT NULL,
    event        text NOT NULL,
    kind         text NOT NULL,
    action       text NOT NULL CHECK (action IN ('flagged', 'rejected', 'corrected')),
    count        bigint NOT NULL DEFAULT 0,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    last_message_id text,
    last_detail  text NOT NULL,
    PRIMARY KEY (source_id, event, kind, action)
);

-- anonymous_id -> profile once the person is identified (identify with user_id or traits).
CREATE TABLE IF NOT EXISTS crm_event_identities (
    anonymous_id text PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    user_id      text,
    source_id    text NOT NULL,
    identified_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_event_identities_profile ON crm_event_identities (profile_id);

-- The events table and its indexes, declared once for both engines: `storage` is what follows
-- the column list (the plain variant's partitioning clause; empty for a hypertable, which
-- TimescaleDB makes of a plain table). Idempotent, as every migration.
CREATE OR REPLACE FUNCTION crm_events_create(storage text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE 'CREATE TABLE IF NOT EXISTS crm_events (' || $cols$
    id          bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    source_id   text NOT NULL,
    message_id  text NOT NULL,
    type        text NOT NULL CHECK (type IN ('track', 'identify', 'page', 'screen', 'alias')),
    event       text,
    profile_id  bigint,
    anonymous_id text,
    user_id     text,
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    store_id    text,
    revenue     numeric,
    PRIMARY KEY (id, occurred_at)
)$cols$ || ' ' || storage;
    CREATE INDEX IF NOT EXISTS crm_events_profile_time ON crm_events (profile_id, occurred_at);
    CREATE INDEX IF NOT EXISTS crm_events_event_time ON crm_events (event, occurred_at);
    CREATE INDEX IF NOT EXISTS crm_events_anonymous ON crm_events (anonymous_id)
        WHERE anonymous_id IS NOT NULL AND profile_id IS NULL;
    CREATE INDEX IF NOT EXISTS crm_events_source_time ON crm_events (source_id, occurred_at);
END $fn$;
