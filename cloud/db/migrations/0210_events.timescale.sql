-- Events on TimescaleDB: a hypertable on occurred_at (weekly chunks). The two partition
-- functions exist here too, so the beat task calls the same thing on either engine.
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE IF NOT EXISTS crm_events (
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
);
SELECT create_hypertable('crm_events', 'occurred_at', chunk_time_interval => INTERVAL '7 days',
                         if_not_exists => TRUE);

CREATE INDEX IF NOT EXISTS crm_events_profile_time ON crm_events (profile_id, occurred_at);
CREATE INDEX IF NOT EXISTS crm_events_event_time ON crm_events (event, occurred_at);
CREATE INDEX IF NOT EXISTS crm_events_anonymous ON crm_events (anonymous_id)
    WHERE anonymous_id IS NOT NULL AND profile_id IS NULL;
CREATE INDEX IF NOT EXISTS crm_events_source_time ON crm_events (source_id, occurred_at);

-- TimescaleDB creates chunks as rows arrive: nothing to create ahead.
CREATE OR REPLACE FUNCTION crm_events_ensure_partitions(months_back integer, months_ahead integer)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

-- Drop whole chunks that end before `cutoff`; returns how many it dropped.
CREATE OR REPLACE FUNCTION crm_events_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE sql AS $$
    SELECT count(*)::integer FROM drop_chunks('crm_events', older_than => cutoff)
$$;
