-- Segment size per day, and the change log that drives incremental membership: triggers note
-- the person a profile, consent, loyalty, reversal or late identification change touches
-- (scores, rewritten in bulk by ml.score_all after this migration's tables, are refreshed by the
-- sweep); the segments consumer reads this log (with crm_events and crm_transactions, read
-- directly) by id watermark. Safe to re-run.

CREATE TABLE IF NOT EXISTS crm_segment_sizes (
    segment_id  bigint NOT NULL REFERENCES crm_segments (id),
    day         date NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    taken_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, day)
);

CREATE TABLE IF NOT EXISTS crm_segment_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id  bigint NOT NULL,
    source      text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION crm_segment_note_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'crm_profiles' THEN
        -- the source says what changed: a new profile or a merge may change any segment, an
        -- attribute or stage change only the segments whose rules read the profile
        IF TG_OP = 'INSERT' THEN
            INSERT INTO crm_segment_changes (profile_id, source) VALUES (NEW.id, 'crm_profiles.new');
        ELSIF NEW.merged_into IS DISTINCT FROM OLD.merged_into THEN
            INSERT INTO crm_segment_changes (profile_id, source)
            SELECT x, 'crm_profiles.merge' FROM unnest(ARRAY[NEW.id, NEW.merged_into, OLD.merged_into]) x
            WHERE x IS NOT NULL;
        ELSE
            INSERT INTO crm_segment_changes (profile_id, source) VALUES (NEW.id, TG_TABLE_NAME);
        END IF;
    ELSE
        IF NEW.profile_id IS NOT NULL THEN
            INSERT INTO crm_segment_changes (profile_id, source) VALUES (NEW.profile_id, TG_TABLE_NAME);
        END IF;
        IF TG_OP = 'UPDATE' AND OLD.profile_id IS NOT NULL
           AND OLD.profile_id IS DISTINCT FROM NEW.profile_id THEN
            INSERT INTO crm_segment_changes (profile_id, source) VALUES (OLD.profile_id, TG_TABLE_NAME);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS crm_segment_profiles ON crm_profiles;
CREATE TRIGGER crm_segment_profiles AFTER INSERT OR UPDATE OF attributes, lifecycle_stage, merged_into
    ON crm_profiles FOR EACH ROW EXECUTE FUNCTION crm_segment_note_change();
DROP TRIGGER IF EXISTS crm_segment_consents ON crm_consents;
CREATE TRIGGER crm_segment_consents AFTER INSERT OR UPDATE
    ON crm_consents FOR EACH ROW EXECUTE FUNCTION crm_segment_note_change();
DROP TRIGGER IF EXISTS crm_segment_loyalty ON loyalty_accounts;
CREATE TRIGGER crm_segment_loyalty AFTER INSERT OR UPDATE OF tier, status, profile_id
    ON loyalty_accounts FOR EACH ROW EXECUTE FUNCTION crm_segment_note_change();
-- new rows of these two are read directly by id; only later changes are noted
DROP TRIGGER IF EXISTS crm_segment_transactions ON crm_transactions;
CREATE TRIGGER crm_segment_transactions AFTER UPDATE OF reversed_at, profile_id
    ON crm_transactions FOR EACH ROW EXECUTE FUNCTION crm_segment_note_change();
DROP TRIGGER IF EXISTS crm_segment_events ON crm_events;
CREATE TRIGGER crm_segment_events AFTER UPDATE OF profile_id
    ON crm_events FOR EACH ROW EXECUTE FUNCTION crm_segment_note_change();
