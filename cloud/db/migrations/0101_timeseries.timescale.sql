-- Time series on TimescaleDB: hypertables, an hourly continuous aggregate, compression and
-- retention. (The per-local-day rollup line_counts_1d is a plain table kept by ingest.)
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS line_counts (
    store_id text NOT NULL, device_id text NOT NULL, camera_id text NOT NULL, line_id text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    in_count integer NOT NULL, out_count integer NOT NULL
);
CREATE TABLE IF NOT EXISTS zone_occupancy (
    store_id text NOT NULL, device_id text NOT NULL, camera_id text NOT NULL, zone_id text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    avg_occupancy double precision NOT NULL, max_occupancy integer NOT NULL,
    occupancy_at_end integer NOT NULL, entries integer NOT NULL, exits integer NOT NULL,
    dwell_total_s double precision NOT NULL, dwell_count integer NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_stats (
    store_id text NOT NULL, device_id text NOT NULL, camera_id text NOT NULL, zone_id text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    avg_length double precision NOT NULL, max_length integer NOT NULL, length_at_end integer NOT NULL,
    served integer NOT NULL, service_rate_per_min double precision NOT NULL,
    estimated_wait_s double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS shelf_interactions (
    store_id text NOT NULL, device_id text NOT NULL, camera_id text NOT NULL, shelf_id text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    interactions integer NOT NULL, total_dwell_s double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS demographics (
    store_id text NOT NULL, device_id text NOT NULL, camera_id text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    age_band text NOT NULL, gender text NOT NULL, count integer NOT NULL
);
CREATE TABLE IF NOT EXISTS device_health (
    store_id text NOT NULL, device_id text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    uptime_s double precision NOT NULL, cpu_percent double precision NOT NULL,
    memory_used_mb double precision NOT NULL, memory_total_mb double precision NOT NULL,
    temperature_c double precision, outbox_depth bigint NOT NULL,
    outbox_oldest_age_s double precision NOT NULL, cameras_connected integer NOT NULL,
    cameras_total integer NOT NULL, software_version text NOT NULL, config_version bigint NOT NULL
);
SELECT create_hypertable('line_counts', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS line_counts_store_time_idx ON line_counts (store_id, window_start);
ALTER TABLE line_counts SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('line_counts', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('line_counts', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('zone_occupancy', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS zone_occupancy_store_time_idx ON zone_occupancy (store_id, window_start);
ALTER TABLE zone_occupancy SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('zone_occupancy', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('zone_occupancy', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('queue_stats', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS queue_stats_store_time_idx ON queue_stats (store_id, window_start);
ALTER TABLE queue_stats SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('queue_stats', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('queue_stats', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('shelf_interactions', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS shelf_interactions_store_time_idx ON shelf_interactions (store_id, window_start);
ALTER TABLE shelf_interactions SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('shelf_interactions', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('shelf_interactions', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('demographics', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS demographics_store_time_idx ON demographics (store_id, window_start);
ALTER TABLE demographics SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('demographics', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('demographics', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('device_health', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS device_health_store_time_idx ON device_health (store_id, window_start);
ALTER TABLE device_health SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('device_health', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('device_health', INTERVAL '400 days', if_not_exists => TRUE);

-- Hourly continuous aggregate with real-time aggregation (same columns as the plain rollup table).
CREATE MATERIALIZED VIEW IF NOT EXISTS line_counts_1h WITH (timescaledb.continuous) AS
    SELECT store_id, line_id, time_bucket(INTERVAL '1 hour', window_start) AS bucket,
           sum(in_count)::bigint AS in_count, sum(out_count)::bigint AS out_count
    FROM line_counts GROUP BY store_id, line_id, time_bucket(INTERVAL '1 hour', window_start)
    WITH NO DATA;
ALTER MATERIALIZED VIEW line_counts_1h SET (timescaledb.materialized_only = false);
SELECT add_continuous_aggregate_policy('line_counts_1h', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes', if_not_exists => TRUE);
-- Daily continuous aggregate (UTC days) for chain-wide reports over long ranges.
CREATE MATERIALIZED VIEW IF NOT EXISTS line_counts_utc_1d WITH (timescaledb.continuous) AS
    SELECT store_id, line_id, time_bucket(INTERVAL '1 day', window_start) AS bucket,
           sum(in_count)::bigint AS in_count, sum(out_count)::bigint AS out_count
    FROM line_counts GROUP BY store_id, line_id, time_bucket(INTERVAL '1 day', window_start)
    WITH NO DATA;
SELECT add_continuous_aggregate_policy('line_counts_utc_1d', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
