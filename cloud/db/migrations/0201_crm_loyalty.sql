-- Loyalty: accounts, an immutable points ledger, lots with expiry, tiers, rewards. Safe to re-run.

CREATE TABLE IF NOT EXISTS loyalty_accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id      bigint NOT NULL REFERENCES crm_profiles (id),
    member_number   text NOT NULL UNIQUE,
    tier            text NOT NULL,
    tier_period_end timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS loyalty_accounts_profile ON loyalty_accounts (profile_id);

-- Every movement of points; never updated or deleted. Signed: earn > 0, burn/expire < 0.
CREATE TABLE IF NOT EXISTS loyalty_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES loyalty_accounts (id),
    kind            text NOT NULL CHECK (kind IN ('earn', 'burn', 'expire', 'transfer_in',
                        'transfer_out', 'reversal', 'refund')),
    points          bigint NOT NULL CHECK (points <> 0 OR kind = 'reversal'),
    qualifying      bigint NOT NULL DEFAULT 0,
    transaction_id  bigint REFERENCES crm_transactions (id),
    reference       text,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_entries_account ON loyalty_entries (account_id, occurred_at);
CREATE INDEX IF NOT EXISTS loyalty_entries_txn ON loyalty_entries (transaction_id)
    WHERE transaction_id IS NOT NULL;

-- A lot is the points of one crediting entry with their expiry; `remaining` is a cache of
-- points - sum(consumptions), changed only under the account row lock.
CREATE TABLE IF NOT EXISTS loyalty_lots (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES loyalty_accounts (id),
    entry_id        bigint NOT NULL REFERENCES loyalty_entries (id),
    points          bigint NOT NULL CHECK (points > 0),
    remaining       bigint NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_lots_open ON loyalty_lots (account_id, expires_at, id)
    WHERE remaining > 0;
CREATE INDEX IF NOT EXISTS loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0;

CREATE TABLE IF NOT EXISTS loyalty_consumptions (
    entry_id        bigint NOT NULL REFERENCES loyalty_entries (id),
    lot_id          bigint NOT NULL REFERENCES loyalty_lots (id),
    points          bigint NOT NULL CHECK (points > 0),
    PRIMARY KEY (entry_id, lot_id)
);

CREATE TABLE IF NOT EXISTS loyalty_tier_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES loyalty_accounts (id),
    from_tier       text,
    to_tier         text NOT NULL,
    reason          text NOT NULL,
    qualifying      bigint NOT NULL,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_tier_history_account ON loyalty_tier_history (account_id, id);

DROP TRIGGER IF EXISTS loyalty_entries_append_only ON loyalty_entries;
CREATE TRIGGER loyalty_entries_append_only BEFORE UPDATE OR DELETE ON loyalty_entries
    FOR EACH ROW EXECUTE FUNCTION crm_append_only();
DROP TRIGGER IF EXISTS loyalty_consumptions_append_only ON loyalty_consumptions;
CREATE TRIGGER loyalty_consumptions_append_only BEFORE UPDATE OR DELETE ON loyalty_consumptions
    FOR EACH ROW EXECUTE FUNCTION crm_append_only();
DROP TRIGGER IF EXISTS loyalty_tier_history_append_only ON loyalty_tier_history;
CREATE TRIGGER loyalty_tier_history_append_only BEFORE UPDATE OR DELETE ON loyalty_tier_history
    FOR EACH ROW EXECUTE FUNCTION crm_append_only();

CREATE TABLE IF NOT EXISTS loyalty_rewards (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    cost_points     bigint NOT NULL CHECK (cost_points > 0),
    stock           integer NOT NULL CHECK (stock >= 0),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS loyalty_redemptions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reward_id       bigint NOT NULL REFERENCES loyalty_rewards (id),
    account_id      bigint NOT NULL REFERENCES loyalty_accounts (id),
    points          bigint NOT NULL CHECK (points > 0),
    status          text NOT NULL CHECK (status IN ('reserved', 'fulfilled', 'cancelled')),
    burn_entry_id   bigint NOT NULL REFERENCES loyalty_entries (id),
    refund_entry_id bigint REFERENCES loyalty_entries (id),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_redemptions_account ON loyalty_redemptions (account_id);
