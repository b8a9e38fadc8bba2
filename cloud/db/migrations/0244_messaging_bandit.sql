-- Best channel and send time (issue 14): the Thompson-sampling bandit's state. A trial is one
-- marketing message; it settles once (engaged / no_engagement within window_h, or not_sent) and
-- is then counted in the person's arms and in the pooled arms of their segments at that moment.
CREATE TABLE IF NOT EXISTS crm_msg_bandit_trials (
    message_id      bigint PRIMARY KEY REFERENCES crm_message_outbox (id),
    profile_id      bigint NOT NULL REFERENCES crm_profiles (id),
    channel         text NOT NULL,
    picked_channel  boolean NOT NULL,          -- the bandit chose the channel (else the caller)
    hour_bucket     smallint CHECK (hour_bucket BETWEEN 0 AND 23),  -- the bandit's hour, if asked
    time_zone       text NOT NULL,
    window_h        integer NOT NULL CHECK (window_h > 0),
    posterior       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- means and draws when it chose
    created_at      timestamptz NOT NULL DEFAULT now(),
    outcome         text CHECK (outcome IN ('engaged', 'no_engagement', 'not_sent')),
    outcome_event   text,
    settled_bucket  smallint CHECK (settled_bucket BETWEEN 0 AND 23),  -- local hour bucket sent in
    settled_at      timestamptz,
    CHECK ((outcome IS NULL) = (settled_at IS NULL))
);
CREATE INDEX IF NOT EXISTS crm_msg_bandit_trials_open ON crm_msg_bandit_trials (profile_id)
    WHERE settled_at IS NULL;
CREATE INDEX IF NOT EXISTS crm_msg_bandit_trials_due ON crm_msg_bandit_trials (created_at)
    WHERE settled_at IS NULL;

-- Per person: trials and engagements per channel and per local hour bucket.
CREATE TABLE IF NOT EXISTS crm_msg_bandit_arms (
    profile_id  bigint NOT NULL REFERENCES crm_profiles (id),
    dimension   text NOT NULL CHECK (dimension IN ('channel', 'hour')),
    arm         text NOT NULL,
    trials      bigint NOT NULL DEFAULT 0,
    successes   bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (profile_id, dimension, arm),
    CHECK (successes >= 0 AND successes <= trials)
);

-- Per segment: the pooled counts of its members (the cold-start prior).
CREATE TABLE IF NOT EXISTS crm_msg_bandit_segment_arms (
    segment_id  bigint NOT NULL REFERENCES crm_segments (id),
    dimension   text NOT NULL CHECK (dimension IN ('channel', 'hour')),
    arm         text NOT NULL,
    trials      bigint NOT NULL DEFAULT 0,
    successes   bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, dimension, arm),
    CHECK (successes >= 0 AND successes <= trials)
);
