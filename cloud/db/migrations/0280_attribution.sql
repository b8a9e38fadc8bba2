-- Attribution and ROI (issue 19): what a campaign costs, and who was held out of it. Attribution
-- itself is computed on demand from touchpoints, sent messages and transactions. Safe to re-run.
CREATE TABLE IF NOT EXISTS crm_campaign_costs (
    campaign          text PRIMARY KEY CHECK (length(campaign) BETWEEN 1 AND 200),
    currency          char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    cost_per_message  numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_per_message >= 0),
    fixed_cost        numeric(14, 2) NOT NULL DEFAULT 0 CHECK (fixed_cost >= 0),
    budget            numeric(14, 2) CHECK (budget >= 0),
    updated_by        text NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Holdout assignments: a campaign's treated and held-out people. Where a campaign has both, its
-- ROI uses the measured incremental revenue instead of attribution.
CREATE TABLE IF NOT EXISTS crm_campaign_holdouts (
    campaign     text NOT NULL CHECK (length(campaign) BETWEEN 1 AND 200),
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    held_out     boolean NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign, profile_id)
);
CREATE INDEX IF NOT EXISTS crm_transactions_time ON crm_transactions (occurred_at);
