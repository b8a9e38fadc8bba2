-- Late windows reach the continuous aggregates. Ingest accepts windows that ended up to
-- MALLPULSE_INGEST_MAX_AGE_DAYS (default 30) days ago, e.g. a gateway replaying its outbox after
-- a long outage. TimescaleDB logs every insert below an aggregate's watermark as an
-- invalidation, but a refresh policy re-materialises only invalidations inside its own window:
-- the 3-day window of 0101 left windows 3-30 days late stored yet never in line_counts_1h.
-- The window now spans the whole acceptance period (30 days, plus up to one day of window
-- length, plus bucket alignment). A refresh recomputes only the invalidated buckets, so the
-- wider window costs nothing while no late data arrives. Raise start_offset with the setting.
SELECT remove_continuous_aggregate_policy('line_counts_1h', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('line_counts_1h', start_offset => INTERVAL '32 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');

-- The daily aggregate: the same window, and real-time like line_counts_1h (it lagged a day).
ALTER MATERIALIZED VIEW line_counts_utc_1d SET (timescaledb.materialized_only = false);
SELECT remove_continuous_aggregate_policy('line_counts_utc_1d', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('line_counts_utc_1d', start_offset => INTERVAL '33 days',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
