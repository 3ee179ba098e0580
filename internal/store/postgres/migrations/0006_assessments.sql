-- The security audit's findings, suppressions and marks, who chose each
-- device secret, and signed assessment reports. No foreign keys: a
-- finding or a signed report outlives the device or household it names.

CREATE TABLE audit_findings (
	id           text PRIMARY KEY CHECK (id <> ''),
	check_name   text NOT NULL,
	severity     text NOT NULL,
	household_id text NOT NULL,
	subject      text NOT NULL,
	doc          bytea NOT NULL,
	first_seen   bigint NOT NULL,
	last_seen    bigint NOT NULL,
	closed_at    bigint NOT NULL DEFAULT 0
);

CREATE TABLE audit_suppressions (
	finding_id   text PRIMARY KEY CHECK (finding_id <> ''),
	household_id text NOT NULL,
	reason       text NOT NULL,
	by_account   text NOT NULL,
	created_at   bigint NOT NULL,
	until        bigint NOT NULL
);

CREATE TABLE audit_marks (
	name text PRIMARY KEY CHECK (name <> ''),
	at   bigint NOT NULL
);

CREATE TABLE device_secret_origin (
	device_id text PRIMARY KEY CHECK (device_id <> ''),
	chosen    boolean NOT NULL,
	set_at    bigint NOT NULL
);

CREATE TABLE assessments (
	kind         text NOT NULL CHECK (kind <> ''),
	household_id text NOT NULL,
	version      integer NOT NULL CHECK (version > 0),
	digest       text NOT NULL,
	doc          bytea NOT NULL,
	signature    bytea NOT NULL,
	created_at   bigint NOT NULL,
	PRIMARY KEY (kind, household_id, version)
);
