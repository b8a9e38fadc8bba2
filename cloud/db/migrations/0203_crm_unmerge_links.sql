-- Unmerge cuts the links of the records that bridged two people instead of blocking an
-- identifier everywhere (which split a person whose own records shared it). Safe to re-run.

-- The records whose arrival or change made the merge (empty for merges logged before 0203).
ALTER TABLE crm_merges ADD COLUMN IF NOT EXISTS bridge_record_ids bigint[] NOT NULL DEFAULT '{}';

-- Set when an unmerge stops this record's identifier from linking it to other records; the
-- identifier stays on the record (it is what the source sent) but links nothing.
ALTER TABLE crm_identifiers
    ADD COLUMN IF NOT EXISTS unlinked_by_merge bigint REFERENCES crm_merges (id);
