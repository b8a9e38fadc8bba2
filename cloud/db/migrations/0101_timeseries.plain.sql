-- Time series on plain PostgreSQL: BRIN on time (the base file has the btree indexes) and rollups kept by ingest.
CREATE INDEX IF NOT EXISTS line_counts_time_brin ON line_counts USING brin (window_start);
CREATE INDEX IF NOT EXISTS zone_occupancy_time_brin ON zone_occupancy USING brin (window_start);
CREATE INDEX IF NOT EXISTS queue_stats_time_brin ON queue_stats USING brin (window_start);
CREATE INDEX IF NOT EXISTS shelf_interactions_time_brin ON shelf_interactions USING brin (window_start);
CREATE INDEX IF NOT EXISTS demographics_time_brin ON demographics USING brin (window_start);
CREATE INDEX IF NOT EXISTS device_health_time_brin ON device_health USING brin (window_start);

-- Hourly rollup (UTC hours) of line counts; ingest upserts it in the same transaction.
CREATE TABLE IF NOT EXISTS line_counts_1h (
    store_id text NOT NULL, line_id text NOT NULL, bucket timestamptz NOT NULL,
    in_count bigint NOT NULL, out_count bigint NOT NULL,
    PRIMARY KEY (store_id, bucket, line_id)
);
