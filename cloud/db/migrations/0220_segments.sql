-- Segments: static (imported lists) and dynamic (a rule, see docs/segments.md). Membership rows
-- are never deleted: exit sets exited_at, a later re-entry first copies the past stint to the
-- history table, so entered_at of a current member is when this stint began. Safe to re-run.

CREATE TABLE IF NOT EXISTS crm_segments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    kind        text NOT NULL CHECK (kind IN ('static', 'dynamic')),
    rule        jsonb,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz,
    CHECK ((kind = 'dynamic') = (rule IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS crm_segments_name ON crm_segments (lower(name))
    WHERE archived_at IS NULL;

CREATE TABLE IF NOT EXISTS crm_segment_members (
    segment_id  bigint NOT NULL REFERENCES crm_segments (id),
    profile_id  bigint NOT NULL REFERENCES crm_profiles (id),
    entered_at  timestamptz NOT NULL,
    exited_at   timestamptz,
    PRIMARY KEY (segment_id, profile_id)
);
CREATE INDEX IF NOT EXISTS crm_segment_members_current ON crm_segment_members (segment_id, profile_id)
    WHERE exited_at IS NULL;
CREATE INDEX IF NOT EXISTS crm_segment_members_profile ON crm_segment_members (profile_id)
    WHERE exited_at IS NULL;

-- Past stints of members who left and came back (append-only).
CREATE TABLE IF NOT EXISTS crm_segment_member_history (
    segment_id  bigint NOT NULL REFERENCES crm_segments (id),
    profile_id  bigint NOT NULL REFERENCES crm_profiles (id),
    entered_at  timestamptz NOT NULL,
    exited_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_segment_member_history_member
    ON crm_segment_member_history (segment_id, profile_id);
