-- Firmware versions devices report, imported advisories, the operator.

-- Only changes are kept, so a device that reports on every connect does
-- not grow the table.
CREATE TABLE firmware_reports (
	device_id   text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	seq         bigint NOT NULL,
	firmware    text NOT NULL CHECK (firmware <> ''),
	hardware    text NOT NULL,
	reported_at bigint NOT NULL,
	PRIMARY KEY (device_id, seq)
);

CREATE TABLE advisories (
	id          text PRIMARY KEY CHECK (id <> ''),
	format      text NOT NULL CHECK (format IN ('osv', 'csaf')),
	modified    bigint NOT NULL,
	document    bytea NOT NULL,
	imported_at bigint NOT NULL
);

-- One row: the hub has one operator.
CREATE TABLE operator (
	one               integer PRIMARY KEY CHECK (one = 1),
	name              text NOT NULL,
	contact           text NOT NULL,
	privacy_contact   text NOT NULL,
	disclosure_policy text NOT NULL,
	updated_at        bigint NOT NULL
);
