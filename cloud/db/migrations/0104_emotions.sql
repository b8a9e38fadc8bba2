-- Facial expression by zone (issue 20): one vote per tracked person whose face the gateway read,
-- counted by valence. Aggregates only, as demographics. Safe to re-run.
CREATE TABLE IF NOT EXISTS emotions (
    store_id text NOT NULL, device_id text NOT NULL, camera_id text NOT NULL,
    zone_id text NOT NULL,  -- '' for people outside every configured zone
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
    valence text NOT NULL CHECK (valence IN ('positive', 'neutral', 'negative', 'unspecified')),
    count integer NOT NULL CHECK (count >= 0)
);
CREATE INDEX IF NOT EXISTS emotions_store_time_idx ON emotions (store_id, window_start);
