-- Idempotency keys of config publications: a retried POST returns the version it created.
ALTER TABLE device_configs ADD COLUMN IF NOT EXISTS idempotency_key text;
ALTER TABLE device_configs ADD COLUMN IF NOT EXISTS request_sha256 text;
CREATE UNIQUE INDEX IF NOT EXISTS device_configs_idem_idx
    ON device_configs (device_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
