-- Plain PostgreSQL: BRIN on time, as 0101's time series; retention by the footfall prune task.
CREATE INDEX IF NOT EXISTS emotions_time_brin ON emotions USING brin (window_start);
