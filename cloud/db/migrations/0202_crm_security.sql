-- CRM data protection: double opt-in tokens expire and reach the subject only through the
-- message outbox; goodwill credits above a threshold wait for a second admin. Safe to re-run.

ALTER TABLE crm_consents ADD COLUMN IF NOT EXISTS token_expires_at timestamptz;
CREATE INDEX IF NOT EXISTS crm_consents_token_hash ON crm_consents (token_hash)
    WHERE token_hash IS NOT NULL;

-- Messages for the subject's own channel, written in the transaction that needs them and read
-- by a sender (the messaging hub), which sets sent_at and clears `secret` once delivered.
CREATE TABLE IF NOT EXISTS crm_message_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    channel      text NOT NULL,
    address      text NOT NULL,
    template     text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    secret       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX IF NOT EXISTS crm_message_outbox_unsent ON crm_message_outbox (id)
    WHERE sent_at IS NULL;

-- Goodwill credits waiting for approval: points move only when another admin approves.
CREATE TABLE IF NOT EXISTS loyalty_point_approvals (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES loyalty_accounts (id),
    points        integer NOT NULL CHECK (points > 0),
    reason        text NOT NULL,
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by    text,
    decided_at    timestamptz,
    note          text,
    entry_id      bigint REFERENCES loyalty_entries (id),
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX IF NOT EXISTS loyalty_point_approvals_pending ON loyalty_point_approvals (id)
    WHERE status = 'pending';

-- Touchpoint properties stored before the API bounded them (8 levels): a deeper document broke
-- every later read of its customer. Such properties move to a quarantine table and the row keeps
-- a marker. Only rows with at least 9 brackets are walked.
CREATE OR REPLACE FUNCTION crm_jsonb_depth(doc jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    WITH RECURSIVE walk(v, depth) AS (
        SELECT doc, 1
        UNION ALL
        SELECT c.value, w.depth + 1
        FROM walk w CROSS JOIN LATERAL (
            SELECT value FROM jsonb_each(
                CASE WHEN jsonb_typeof(w.v) = 'object' THEN w.v ELSE '{}'::jsonb END)
            UNION ALL
            SELECT value FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(w.v) = 'array' THEN w.v ELSE '[]'::jsonb END)
        ) c
        WHERE jsonb_typeof(c.value) IN ('object', 'array')
    )
    SELECT coalesce(max(depth), 0) FROM walk WHERE jsonb_typeof(v) IN ('object', 'array')
$$;

CREATE TABLE IF NOT EXISTS crm_touchpoint_quarantine (
    touchpoint_id   bigint PRIMARY KEY REFERENCES crm_touchpoints (id),
    properties      jsonb NOT NULL,
    reason          text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);

WITH moved AS (
    INSERT INTO crm_touchpoint_quarantine (touchpoint_id, properties, reason)
    SELECT id, properties, 'nested deeper than 8 levels' FROM crm_touchpoints
    WHERE length(properties::text) - length(translate(properties::text, '{[', '')) >= 9
        AND crm_jsonb_depth(properties) > 8
    ON CONFLICT (touchpoint_id) DO NOTHING
    RETURNING touchpoint_id
)
UPDATE crm_touchpoints t
SET properties = jsonb_build_object('_quarantined', 'crm_touchpoint_quarantine')
FROM moved WHERE t.id = moved.touchpoint_id;
