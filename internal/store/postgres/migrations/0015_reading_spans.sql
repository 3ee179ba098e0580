-- Issue #19: GET readings in seq order without a time range (a device's
-- oldest readings, or the page after a cursor) gave PostgreSQL nothing to
-- prune monthly partitions by, so it merged the (device_id, seq) index of
-- every partition: one descent per month stored, 1.12-1.15x the blocks
-- per query at 10M readings (four months) against 100k (one).
--
-- reading_spans keeps, for each partition holding readings, a range of
-- seqs lo..hi that every reading in it lies within; the store reads it
-- first and queries only the months whose range can hold the answer. A
-- span may be wider than its readings (deletions do not narrow it; a batch
-- spanning two months gives both the batch's range), never narrower:
-- AppendReadings widens it in the transaction that copies the rows in, and
-- ReclaimSpace deletes it with the partition it drops. month is the
-- partition's lower bound as the store computes it (the first nanosecond
-- of the month, or the lowest storable time for MINVALUE).
CREATE TABLE reading_spans (
	month bigint PRIMARY KEY,
	lo    bigint NOT NULL,
	hi    bigint NOT NULL CHECK (hi >= lo)
);

-- The spans of the readings already stored: one pass over the table,
-- holding appends meanwhile so that none lands after the pass and before
-- the spans are in.
LOCK TABLE readings IN SHARE MODE;
INSERT INTO reading_spans (month, lo, hi)
SELECT CASE b.lower WHEN 'MINVALUE' THEN -9223372036854775808 ELSE b.lower::bigint END, s.lo, s.hi
  FROM (SELECT tableoid, min(seq) AS lo, max(seq) AS hi FROM readings GROUP BY tableoid) s
  CROSS JOIN LATERAL (SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''?([^'')]+)') AS lower
                        FROM pg_class c WHERE c.oid = s.tableoid) b;
