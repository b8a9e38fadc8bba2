-- Core auth: API keys expire and can be rotated; bearer tokens can be revoked by id (jti).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS rotated_to bigint REFERENCES api_keys (id);
-- Keys made before expiry existed get 90 days, time enough to rotate them without an outage.
UPDATE api_keys SET expires_at = now() + interval '90 days' WHERE expires_at IS NULL;
ALTER TABLE api_keys ALTER COLUMN expires_at SET NOT NULL;

-- A row per revoked token, kept until the token would have expired anyway
-- (expires_at = revocation time + the longest token lifetime the settings allow).
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti         text PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 128),
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    reason      text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON revoked_tokens (expires_at);
