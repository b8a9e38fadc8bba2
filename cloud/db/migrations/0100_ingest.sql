-- Ingest and footfall (range 0100-0199): devices with credentials, their cameras, lines and zones,
-- the dedupe ledger of envelopes, the dead-letter table, live state, and the per-local-day rollup.
CREATE TABLE IF NOT EXISTS devices (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    store_id         text NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    name             text NOT NULL DEFAULT '',
    secret_hash      text,            -- sha256 of the device credential (gRPC / API)
    mqtt_password_hash text,          -- mosquitto_passwd ($7$ PBKDF2-SHA512) form of the same secret
    online           boolean NOT NULL DEFAULT false,
    status_at        timestamptz,
    last_seen_at     timestamptz,
    software_version text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_store_idx ON devices (store_id);

CREATE TABLE IF NOT EXISTS cameras (
    store_id   text NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    device_id  text NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    id         text NOT NULL,
    name       text NOT NULL DEFAULT '',
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, id)
);

CREATE TABLE IF NOT EXISTS lines (
    store_id   text NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    id         text NOT NULL,
    name       text NOT NULL DEFAULT '',
    is_entrance boolean NOT NULL DEFAULT true,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id)
);

CREATE TABLE IF NOT EXISTS zones (
    store_id   text NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    id         text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('zone', 'queue', 'shelf')),
    name       text NOT NULL DEFAULT '',
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, kind, id)
);

-- One row per accepted envelope: the idempotency anchor (device, sequence).
CREATE TABLE IF NOT EXISTS envelopes (
    device_id    text NOT NULL,
    sequence     bigint NOT NULL,
    store_id     text NOT NULL,
    kind         text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, sequence)
);
CREATE INDEX IF NOT EXISTS envelopes_received_brin ON envelopes USING brin (received_at);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    transport   text NOT NULL,
    topic       text,
    device_id   text,
    store_id    text,
    sequence    bigint,
    reason_code text NOT NULL,
    reason      text NOT NULL,
    payload     bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_reason_idx ON dead_letters (reason_code, received_at);

-- Live state, upserted by ingest: the latest window end per zone / queue.
CREATE TABLE IF NOT EXISTS live_zones (
    store_id     text NOT NULL,
    zone_id      text NOT NULL,
    occupancy    integer NOT NULL,
    window_end   timestamptz NOT NULL,
    PRIMARY KEY (store_id, zone_id)
);
CREATE TABLE IF NOT EXISTS live_queues (
    store_id         text NOT NULL,
    zone_id          text NOT NULL,
    length           integer NOT NULL,
    estimated_wait_s double precision NOT NULL,
    window_end       timestamptz NOT NULL,
    PRIMARY KEY (store_id, zone_id)
);

-- Daily in/out per line in the store's local calendar day, kept current by ingest.
CREATE TABLE IF NOT EXISTS line_counts_1d (
    store_id  text NOT NULL,
    line_id   text NOT NULL,
    day       date NOT NULL,
    in_count  bigint NOT NULL,
    out_count bigint NOT NULL,
    PRIMARY KEY (store_id, day, line_id)
);

-- One row per store per ingest commit, replayed to SSE clients reconnecting with Last-Event-ID.
CREATE TABLE IF NOT EXISTS footfall_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    body       jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS footfall_events_store_idx ON footfall_events (store_id, id);

-- Remote device configuration published by admins (served over gRPC DeviceConfigService).
CREATE TABLE IF NOT EXISTS device_configs (
    device_id   text NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    version     bigint NOT NULL,
    config_json text NOT NULL,
    sha256      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    status      text,
    status_at   timestamptz,
    PRIMARY KEY (device_id, version)
);
