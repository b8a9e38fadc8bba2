-- Time-series tables of every aggregate kind, on any PostgreSQL. The storage engine comes
-- from the variant of this version that fits the database: 0101_timeseries.plain.sql
-- (BRIN indexes, rollup tables kept by ingest) or 0101_timeseries.timescale.sql (hypertables,
-- continuous aggregate, compression, retention).

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
CREATE INDEX IF NOT EXISTS line_counts_store_time_idx ON line_counts (store_id, window_start);
CREATE INDEX IF NOT EXISTS zone_occupancy_store_time_idx ON zone_occupancy (store_id, window_start);
CREATE INDEX IF NOT EXISTS queue_stats_store_time_idx ON queue_stats (store_id, window_start);
CREATE INDEX IF NOT EXISTS shelf_interactions_store_time_idx ON shelf_interactions (store_id, window_start);
CREATE INDEX IF NOT EXISTS demographics_store_time_idx ON demographics (store_id, window_start);
CREATE INDEX IF NOT EXISTS device_health_store_time_idx ON device_health (store_id, window_start);
