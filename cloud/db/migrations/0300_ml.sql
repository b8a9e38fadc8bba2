-- Predictive analytics: persisted online models, per-customer feature state, scores, CLV fits,
-- drift events, footfall anomalies and the dead-letter table of rejected events. Safe to re-run.

-- One row per online model (churn, footfall:<store>). `version` increases by one on every save;
-- a save succeeds only if the version is still the one the writer loaded (optimistic versioning).
-- `watermarks` records how far each source was consumed, saved in the same transaction as the
-- state, so every source row is learnt exactly once.
CREATE TABLE IF NOT EXISTS ml_models (
    name          text PRIMARY KEY,
    kind          text NOT NULL,
    version       bigint NOT NULL CHECK (version >= 1),
    state         bytea NOT NULL,
    samples_seen  bigint NOT NULL DEFAULT 0,
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    watermarks    jsonb NOT NULL DEFAULT '{}'::jsonb,
    clock         timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The last versions of each model (state included) for audit and rollback; pruned on save.
CREATE TABLE IF NOT EXISTS ml_model_versions (
    name          text NOT NULL REFERENCES ml_models (name) ON DELETE CASCADE,
    version       bigint NOT NULL,
    state         bytea NOT NULL,
    samples_seen  bigint NOT NULL,
    metrics       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS ml_drift_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model         text NOT NULL,
    version       bigint NOT NULL,
    sample        bigint NOT NULL,
    clock         timestamptz,
    error_before  double precision,
    reset         boolean NOT NULL,
    detected_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ml_drift_events_model ON ml_drift_events (model, id DESC);

-- Incremental per-customer state of a model (features, pending snapshots awaiting labels).
CREATE TABLE IF NOT EXISTS ml_customers (
    model         text NOT NULL,
    customer_id   text NOT NULL,
    store_id      text,
    state         jsonb NOT NULL,
    next_due      timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, customer_id)
);
CREATE INDEX IF NOT EXISTS ml_customers_due ON ml_customers (model, next_due)
    WHERE next_due IS NOT NULL;

-- Latest scores per customer: churn probability, CLV, health, reasons and next best action.
CREATE TABLE IF NOT EXISTS ml_customer_scores (
    customer_id        text PRIMARY KEY,
    store_id           text,
    segment            text NOT NULL,
    churn_probability  double precision NOT NULL,
    p_alive            double precision,
    expected_purchases double precision,
    expected_spend     double precision,
    clv                double precision,
    engagement         double precision NOT NULL,
    health_score       double precision NOT NULL,
    risk_value         double precision NOT NULL,
    reasons            jsonb NOT NULL DEFAULT '[]'::jsonb,
    action             jsonb NOT NULL DEFAULT '{}'::jsonb,
    model_version      bigint NOT NULL,
    as_of              timestamptz NOT NULL,
    scored_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ml_customer_scores_store_risk
    ON ml_customer_scores (store_id, risk_value DESC);
CREATE INDEX IF NOT EXISTS ml_customer_scores_segment_risk
    ON ml_customer_scores (segment, risk_value DESC);

-- BG/NBD + Gamma-Gamma fits per scope ('all', 'store:<id>'), time unit weeks.
CREATE TABLE IF NOT EXISTS ml_clv_fits (
    scope         text PRIMARY KEY,
    bgnbd         jsonb NOT NULL,
    gamma_gamma   jsonb,
    n_customers   integer NOT NULL,
    as_of         timestamptz NOT NULL,
    fitted_at     timestamptz NOT NULL DEFAULT now()
);

-- Events that failed validation: counted here, never learnt from. One row per source row.
CREATE TABLE IF NOT EXISTS ml_rejected_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        text NOT NULL,
    source_id     text NOT NULL,
    reason        text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    rejected_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);

-- Footfall windows flagged by the online anomaly detector (scores of every scored window).
CREATE TABLE IF NOT EXISTS ml_footfall_scores (
    store_id      text NOT NULL,
    bucket_start  timestamptz NOT NULL,
    observed      double precision NOT NULL,
    expected      double precision,
    score         double precision NOT NULL,
    is_anomaly    boolean NOT NULL,
    PRIMARY KEY (store_id, bucket_start)
);
CREATE INDEX IF NOT EXISTS ml_footfall_scores_anomalies ON ml_footfall_scores (store_id, bucket_start)
    WHERE is_anomaly;
