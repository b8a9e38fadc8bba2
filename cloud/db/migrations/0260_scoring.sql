-- Lead scoring (issue 16): programmes (rules, weights, thresholds), per-profile scores and their
-- history, rule counters for daily caps and once-only rules, MQL/SQL transitions, and the
-- predictive model's pending snapshots awaiting their delayed label. Safe to re-run.

CREATE TABLE IF NOT EXISTS crm_scoring_programmes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    config       jsonb NOT NULL,
    -- bumped by every change of the config; `rescored_version` says which one the stored
    -- scores were fully recomputed with (the beat task rescores a programme that lags)
    version      bigint NOT NULL DEFAULT 1,
    rescored_version bigint NOT NULL DEFAULT 0,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The current score of a profile in a programme. `behaviour_raw` is the decayed point sum as of
-- `behaviour_at` (the value at t is behaviour_raw * 2^-((t - behaviour_at) / half-life)).
CREATE TABLE IF NOT EXISTS crm_scores (
    programme_id bigint NOT NULL REFERENCES crm_scoring_programmes (id) ON DELETE CASCADE,
    profile_id   bigint NOT NULL,
    behaviour_raw double precision NOT NULL DEFAULT 0,
    behaviour_at timestamptz NOT NULL,
    behaviour    double precision NOT NULL DEFAULT 0 CHECK (behaviour BETWEEN 0 AND 100),
    fit          double precision NOT NULL DEFAULT 0 CHECK (fit BETWEEN 0 AND 100),
    predictive   double precision CHECK (predictive BETWEEN 0 AND 100),
    combined     double precision NOT NULL DEFAULT 0 CHECK (combined BETWEEN 0 AND 100),
    level        text NOT NULL DEFAULT 'none' CHECK (level IN ('none', 'mql', 'sql')),
    features     jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen   timestamptz,
    last_event_at timestamptz,
    snapshot_at  timestamptz,
    converted_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (programme_id, profile_id)
);
CREATE INDEX IF NOT EXISTS crm_scores_combined ON crm_scores (programme_id, combined DESC);
CREATE INDEX IF NOT EXISTS crm_scores_profile ON crm_scores (profile_id);

-- Points awarded per rule and UTC day (day 1970-01-01 holds the once-only rules): daily caps.
CREATE TABLE IF NOT EXISTS crm_score_rule_counts (
    programme_id bigint NOT NULL REFERENCES crm_scoring_programmes (id) ON DELETE CASCADE,
    profile_id   bigint NOT NULL,
    rule_key     text NOT NULL,
    day          date NOT NULL,
    hits         integer NOT NULL DEFAULT 0,
    points       double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (programme_id, profile_id, rule_key, day)
);

-- Score history: one row per change of the combined score (and per full rescore).
CREATE TABLE IF NOT EXISTS crm_score_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    programme_id bigint NOT NULL REFERENCES crm_scoring_programmes (id) ON DELETE CASCADE,
    profile_id   bigint NOT NULL,
    combined     double precision NOT NULL,
    behaviour    double precision NOT NULL,
    fit          double precision NOT NULL,
    predictive   double precision,
    reason       text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_score_history_profile
    ON crm_score_history (programme_id, profile_id, id);

-- MQL / SQL threshold crossings, logged with the reason (also emitted as score.threshold_crossed).
CREATE TABLE IF NOT EXISTS crm_score_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    programme_id bigint NOT NULL REFERENCES crm_scoring_programmes (id) ON DELETE CASCADE,
    profile_id   bigint NOT NULL,
    level        text NOT NULL CHECK (level IN ('mql', 'sql')),
    direction    text NOT NULL CHECK (direction IN ('up', 'down')),
    score        double precision NOT NULL,
    threshold    double precision NOT NULL,
    reason       text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_score_transitions_profile
    ON crm_score_transitions (programme_id, profile_id, id);

-- Snapshots of a profile's features with the prediction made then, waiting for their label
-- (converted within the horizon or not); learnt once the stream clock passes at + horizon.
CREATE TABLE IF NOT EXISTS crm_score_pending (
    programme_id bigint NOT NULL REFERENCES crm_scoring_programmes (id) ON DELETE CASCADE,
    profile_id   bigint NOT NULL,
    at           timestamptz NOT NULL,
    x            jsonb NOT NULL,
    p_raw        double precision NOT NULL,
    p_cal        double precision NOT NULL,
    behaviour    double precision NOT NULL,
    combined     double precision NOT NULL,
    seen         bigint NOT NULL,
    converted    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (programme_id, profile_id, at)
);
CREATE INDEX IF NOT EXISTS crm_score_pending_due ON crm_score_pending (programme_id, at);
