-- CRM core: profiles, source records, identifiers, merges, touchpoints, POS transactions,
-- lifecycle, consent. Profiles are connected components of source records linked by shared
-- identifiers (see docs/crm.md). Safe to re-run.

CREATE TABLE IF NOT EXISTS crm_profiles (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merged_into  bigint REFERENCES crm_profiles (id),
    identified   boolean NOT NULL DEFAULT false,
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,
    lifecycle_stage text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (merged_into IS NULL OR merged_into <> id)
);
CREATE INDEX IF NOT EXISTS crm_profiles_merged_into ON crm_profiles (merged_into)
    WHERE merged_into IS NOT NULL;

-- The id a profile id resolves to today: itself, or the survivor of the merge(s) that absorbed it.
CREATE OR REPLACE FUNCTION crm_resolve_profile(p bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain(id, merged_into, depth) AS (
        SELECT id, merged_into, 0 FROM crm_profiles WHERE id = p
        UNION ALL
        SELECT c.id, c.merged_into, chain.depth + 1
        FROM crm_profiles c JOIN chain ON c.id = chain.merged_into
        WHERE chain.depth < 64
    )
    SELECT id FROM chain WHERE merged_into IS NULL LIMIT 1
$$;

CREATE TABLE IF NOT EXISTS crm_records (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    source       text NOT NULL,
    source_key   text,
    trust        smallint NOT NULL DEFAULT 0,
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,
    observed_at  timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS crm_records_source_key ON crm_records (source, source_key)
    WHERE source_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS crm_records_profile ON crm_records (profile_id);

CREATE TABLE IF NOT EXISTS crm_identifiers (
    record_id    bigint NOT NULL REFERENCES crm_records (id),
    kind         text NOT NULL CHECK (kind IN ('email', 'phone', 'loyalty_number',
                     'pos_customer_id', 'device_id', 'app_user_id', 'wechat_id', 'whatsapp_id')),
    value        text NOT NULL,
    raw_value    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (record_id, kind, value)
);
CREATE INDEX IF NOT EXISTS crm_identifiers_lookup ON crm_identifiers (kind, value);

-- Identifiers that no longer link records (set by unmerge): shared by people who are not one.
CREATE TABLE IF NOT EXISTS crm_identifier_blocks (
    kind         text NOT NULL,
    value        text NOT NULL,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

CREATE TABLE IF NOT EXISTS crm_merges (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    survivor_id  bigint NOT NULL REFERENCES crm_profiles (id),
    absorbed_id  bigint NOT NULL REFERENCES crm_profiles (id),
    record_ids   bigint[] NOT NULL,
    reason       text NOT NULL,
    merged_at    timestamptz NOT NULL DEFAULT now(),
    undone_at    timestamptz,
    undone_by    text
);
CREATE INDEX IF NOT EXISTS crm_merges_survivor ON crm_merges (survivor_id);
CREATE INDEX IF NOT EXISTS crm_merges_absorbed ON crm_merges (absorbed_id);

CREATE TABLE IF NOT EXISTS crm_touchpoints (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    record_id    bigint NOT NULL REFERENCES crm_records (id),
    channel      text NOT NULL CHECK (channel IN ('web', 'app', 'pos', 'store_visit', 'email',
                     'sms', 'support')),
    event        text NOT NULL,
    store_id     text REFERENCES stores (id),
    occurred_at  timestamptz NOT NULL,
    properties   jsonb NOT NULL DEFAULT '{}'::jsonb,
    external_id  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_touchpoints_profile ON crm_touchpoints (profile_id, occurred_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS crm_touchpoints_external ON crm_touchpoints (channel, external_id)
    WHERE external_id IS NOT NULL;

-- POS transactions: read incrementally by analytics with `WHERE id > watermark`.
CREATE TABLE IF NOT EXISTS crm_transactions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    record_id    bigint NOT NULL REFERENCES crm_records (id),
    store_id     text NOT NULL REFERENCES stores (id),
    external_id  text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    currency     char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_amount numeric(14, 2) NOT NULL,
    kind         text NOT NULL DEFAULT 'sale' CHECK (kind IN ('sale', 'return')),
    reversed_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store_id, external_id)
);
CREATE INDEX IF NOT EXISTS crm_transactions_profile ON crm_transactions (profile_id, occurred_at);

CREATE TABLE IF NOT EXISTS crm_transaction_items (
    transaction_id bigint NOT NULL REFERENCES crm_transactions (id),
    line_no      integer NOT NULL CHECK (line_no >= 1),
    sku          text NOT NULL,
    category     text,
    quantity     numeric(12, 3) NOT NULL CHECK (quantity > 0),
    unit_price   numeric(14, 2) NOT NULL CHECK (unit_price >= 0),
    amount       numeric(14, 2) NOT NULL,
    PRIMARY KEY (transaction_id, line_no)
);

CREATE TABLE IF NOT EXISTS crm_lifecycle_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    from_stage   text,
    to_stage     text NOT NULL CHECK (to_stage IN ('awareness', 'consideration', 'purchase',
                     'retention', 'advocacy')),
    reason       text NOT NULL,
    store_id     text REFERENCES stores (id),
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_lifecycle_profile ON crm_lifecycle_transitions (profile_id, id);
CREATE INDEX IF NOT EXISTS crm_lifecycle_time ON crm_lifecycle_transitions (occurred_at);

CREATE TABLE IF NOT EXISTS crm_consents (
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    channel      text NOT NULL,
    purpose      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('granted', 'denied', 'pending')),
    source       text NOT NULL,
    proof        text,
    token_hash   text,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (profile_id, channel, purpose)
);

CREATE TABLE IF NOT EXISTS crm_consent_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    channel      text NOT NULL,
    purpose      text NOT NULL,
    status       text NOT NULL,
    source       text NOT NULL,
    proof        text,
    actor        text NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_consent_events_profile ON crm_consent_events (profile_id, id);

-- Append-only tables refuse UPDATE and DELETE.
CREATE OR REPLACE FUNCTION crm_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;
DROP TRIGGER IF EXISTS crm_consent_events_append_only ON crm_consent_events;
CREATE TRIGGER crm_consent_events_append_only BEFORE UPDATE OR DELETE ON crm_consent_events
    FOR EACH ROW EXECUTE FUNCTION crm_append_only();
DROP TRIGGER IF EXISTS crm_lifecycle_append_only ON crm_lifecycle_transitions;
CREATE TRIGGER crm_lifecycle_append_only BEFORE UPDATE OR DELETE ON crm_lifecycle_transitions
    FOR EACH ROW EXECUTE FUNCTION crm_append_only();

-- Idempotency keys: one row per (scope, key); a retry returns the stored response.
CREATE TABLE IF NOT EXISTS crm_idempotency (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Rows rejected by bulk imports, kept with the reason (the import dead-letter table).
CREATE TABLE IF NOT EXISTS crm_import_rejects (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    import_id    text NOT NULL,
    line_no      integer NOT NULL,
    raw          text NOT NULL,
    errors       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_import_rejects_import ON crm_import_rejects (import_id);
