-- Time series on TimescaleDB: hypertables, an hourly continuous aggregate, compression and
-- retention. (The per-local-day rollup line_counts_1d is a plain table kept by ingest.)
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT create_hypertable('line_counts', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
ALTER TABLE line_counts SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('line_counts', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('line_counts', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('zone_occupancy', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
ALTER TABLE zone_occupancy SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('zone_occupancy', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('zone_occupancy', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('queue_stats', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
ALTER TABLE queue_stats SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('queue_stats', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('queue_stats', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('shelf_interactions', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
ALTER TABLE shelf_interactions SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('shelf_interactions', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('shelf_interactions', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('demographics', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
ALTER TABLE demographics SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('demographics', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('demographics', INTERVAL '400 days', if_not_exists => TRUE);
SELECT create_hypertable('device_health', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
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
