-- Events on TimescaleDB: a hypertable on occurred_at (weekly chunks). The two partition
-- functions exist here too, so the beat task calls the same thing on either engine.
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT crm_events_create('');
SELECT create_hypertable('crm_events', 'occurred_at', chunk_time_interval => INTERVAL '7 days',
                         if_not_exists => TRUE);

-- TimescaleDB creates chunks as rows arrive: nothing to create ahead.
CREATE OR REPLACE FUNCTION crm_events_ensure_partitions(months_back integer, months_ahead integer)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

-- Drop whole chunks that end before `cutoff`; returns how many it dropped.
CREATE OR REPLACE FUNCTION crm_events_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE sql AS $$
    SELECT count(*)::integer FROM drop_chunks('crm_events', older_than => cutoff)
$$;
