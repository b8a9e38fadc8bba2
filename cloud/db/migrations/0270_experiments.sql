-- Experiments (docs/experiments.md): the design (variants, weights, targeting, metrics, analysis
-- settings) as validated JSON, sticky per-customer assignments, per-stratum arrival counters for
-- stratified assignment, and daily result snapshots. Safe to re-run.

CREATE TABLE IF NOT EXISTS crm_experiments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'stopped')),
    design      jsonb NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    stopped_at  timestamptz,
    archived_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS crm_experiments_key ON crm_experiments (key)
    WHERE archived_at IS NULL;
CREATE INDEX IF NOT EXISTS crm_experiments_running ON crm_experiments (id)
    WHERE status = 'running';

-- One row per customer who reached the experiment: variant NULL is the holdout (served control,
-- not analysed). No foreign key to crm_profiles: profiles are never deleted, and a merged
-- profile keeps the assignment it had (analysis follows the stored id).
CREATE TABLE IF NOT EXISTS crm_experiment_assignments (
    experiment_id bigint NOT NULL REFERENCES crm_experiments (id),
    profile_id    bigint NOT NULL,
    variant       smallint CHECK (variant IS NULL OR variant >= 0),
    stratum       text,
    assigned_at   timestamptz NOT NULL,
    PRIMARY KEY (experiment_id, profile_id)
);

-- Arrivals per stratum: the position in the permuted block of stratified assignment.
CREATE TABLE IF NOT EXISTS crm_experiment_strata (
    experiment_id bigint NOT NULL REFERENCES crm_experiments (id),
    stratum       text NOT NULL,
    arrivals      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, stratum)
);

CREATE TABLE IF NOT EXISTS crm_experiment_snapshots (
    experiment_id bigint NOT NULL REFERENCES crm_experiments (id),
    day           date NOT NULL,
    taken_at      timestamptz NOT NULL,
    results       jsonb NOT NULL,
    PRIMARY KEY (experiment_id, day)
);
