-- Events on plain PostgreSQL: declarative range partitioning by month on occurred_at, a
-- default partition for rows no monthly partition holds yet, and a function the beat task
-- calls to create the months ahead (moving any rows of a new month out of the default).
SELECT crm_events_create('PARTITION BY RANGE (occurred_at)');
CREATE TABLE IF NOT EXISTS crm_events_default PARTITION OF crm_events DEFAULT;

-- Create the monthly partitions from `months_back` months before the current one to
-- `months_ahead` after it; returns how many it created. Rows of a new month already in the
-- default partition are moved into it first (attaching would fail otherwise).
CREATE OR REPLACE FUNCTION crm_events_ensure_partitions(months_back integer, months_ahead integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    first_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    m date;
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    FOR i IN -months_back..months_ahead LOOP
        m := (first_month + make_interval(months => i))::date;
        part := format('crm_events_%s', to_char(m, 'YYYYMM'));
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        lo := (m::timestamp AT TIME ZONE 'UTC');
        hi := ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('CREATE TABLE %I (LIKE crm_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format('WITH moved AS (DELETE FROM crm_events_default WHERE occurred_at >= %L'
                       ' AND occurred_at < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                       lo, hi, part);
        EXECUTE format('ALTER TABLE crm_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;

-- Drop whole monthly partitions that end before `cutoff` (retention when every source's
-- rows there are past their retention); returns how many it dropped.
CREATE OR REPLACE FUNCTION crm_events_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    FOR r IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'crm_events'::regclass AND c.relname ~ '^crm_events_[0-9]{6}$'
    LOOP
        IF (to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month')::timestamp
                AT TIME ZONE 'UTC' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', r.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

SELECT crm_events_ensure_partitions(1, 3);
