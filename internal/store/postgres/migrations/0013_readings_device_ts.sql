-- Issue #19: a time range of all a device's streams (GET readings with
-- since and until, no stream) could only seek the (device_id, stream, ts)
-- index by device and read every entry of the device in the month's
-- partition: 3-13 ms at 10M stored readings against 0.5 ms at 100k. With
-- ts second the range is one seek; stream stays in the index, so a
-- stream's range is checked there without reading the rows, and the
-- per-stream count of an export still reads only the index. Still two
-- indexes per row. On a large database this rebuilds the index of every
-- partition once, holding writes to readings meanwhile.

DROP INDEX readings_device_stream_ts;
CREATE INDEX readings_device_ts_stream ON readings (device_id, ts, stream);
