-- TimescaleDB: a hypertable with compression and retention, as 0101's demographics.
SELECT create_hypertable('emotions', 'window_start', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE emotions SET (timescaledb.compress, timescaledb.compress_segmentby = 'store_id, device_id');
SELECT add_compression_policy('emotions', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('emotions', INTERVAL '400 days', if_not_exists => TRUE);
