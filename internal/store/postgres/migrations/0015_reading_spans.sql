-- Issue #19: GET readings in seq order without a time range (a device's
-- oldest readings, or the page after a cursor) gave PostgreSQL nothing to
-- prune monthly partitions by, so it merged the (device_id, seq) index of
-- every partition: one descent per month stored, 1.12-1.15x the blocks
-- per query at 10M readings (four months) against 100k (one).
--
-- reading_spans keeps, for each partition holding readings, a range of
-- seqs lo..hi that every reading in it lies within; the store reads it
-- first and queries only the months whose range can hold the answer. A
-- span may be wider than its readings (deletions do not narrow it), never
-- narrower: the trigger below widens it in the transaction that inserts
-- the rows, and ReclaimSpace deletes it with the partition it drops.
-- month is the partition's lower bound as the store computes it (the
-- first nanosecond of the month, or the lowest storable time for
-- MINVALUE).
CREATE TABLE reading_spans (
	month bigint PRIMARY KEY,
	lo    bigint NOT NULL,
	hi    bigint NOT NULL CHECK (hi >= lo)
);

-- The spans are kept by the database, not by the code that appends: in a
-- rolling upgrade (docs/deployment.md) hubs of the previous version share
-- the database and append with nextval and COPY, knowing nothing of
-- reading_spans. A reading outside every span would never be read in seq
-- order (a month without a span is not queried; a seq above its month's
-- hi is skipped by cursors), so exports and app catch-up would miss it
-- for good. An AFTER INSERT trigger fires for COPY as for INSERT, and a
-- statement-level one on the partitioned parent sees, in its transition
-- table, every row routed to a partition: one upsert per month per
-- statement, whoever wrote it.
--
-- The month is the partition's lower bound, computed from ts (bigint ns
-- since the epoch, UTC) as the store's monthStart does: floor to whole
-- seconds in bigint arithmetic (a float or numeric division rounds the
-- last nanosecond of a month into the next: TestSpansCoverReadings),
-- truncate to the UTC month, back to
-- nanoseconds, and the lowest bigint for the first, partial month (its
-- partition starts at MINVALUE and its month start is below bigint).
--
-- Appends hold the readings advisory lock (pg_advisory_xact_lock) from
-- before drawing their seqs to commit, old hubs' as new ones', so the
-- trigger runs under it; it does not take it itself, since a writer that
-- did not hold it before drawing its seqs gains no order by taking it
-- after. Months are upserted in order, so two writers that do not hold it
-- lock the spans' rows in the same order.
CREATE FUNCTION reading_spans_widen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO reading_spans (month, lo, hi)
	SELECT month, min(seq), max(seq)
	  FROM (SELECT greatest(extract(epoch FROM date_trunc('month',
	                 to_timestamp(ts / 1000000000 - (ts % 1000000000 < 0)::int) AT TIME ZONE 'UTC')) * 1000000000,
	                 -9223372036854775808)::bigint AS month, seq
	          FROM new_readings) n
	 GROUP BY month
	 ORDER BY month
	ON CONFLICT (month) DO UPDATE SET lo = least(reading_spans.lo, excluded.lo), hi = greatest(reading_spans.hi, excluded.hi);
	RETURN NULL;
END
$$;

-- From here until this migration commits no reading can be inserted:
-- SHARE ROW EXCLUSIVE (on readings and, LOCK recursing, every partition)
-- conflicts with the ROW EXCLUSIVE an INSERT or COPY takes, and it is the
-- lock CREATE TRIGGER needs, so nothing is upgraded later. An append in
-- flight when the LOCK is asked for finishes first and is in the backfill;
-- one that starts after waits, and commits with the trigger in place. So
-- no reading lands between the backfill and the trigger, whichever
-- version of the hub writes it.
LOCK TABLE readings IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER readings_widen_spans AFTER INSERT ON readings
	REFERENCING NEW TABLE AS new_readings
	FOR EACH STATEMENT EXECUTE FUNCTION reading_spans_widen();

-- The spans of the readings already stored: one pass over the table.
INSERT INTO reading_spans (month, lo, hi)
SELECT CASE b.lower WHEN 'MINVALUE' THEN -9223372036854775808 ELSE b.lower::bigint END, s.lo, s.hi
  FROM (SELECT tableoid, min(seq) AS lo, max(seq) AS hi FROM readings GROUP BY tableoid) s
  CROSS JOIN LATERAL (SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''?([^'')]+)') AS lower
                        FROM pg_class c WHERE c.oid = s.tableoid) b;
