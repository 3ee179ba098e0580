-- Households, accounts, devices and sessions. pos is insertion order, the
-- tie-break SQLite gets from rowid when two rows share created_at.
CREATE TABLE households (
	id         text PRIMARY KEY CHECK (id <> ''),
	name       text NOT NULL,
	created_at bigint NOT NULL,
	pos        bigint GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE accounts (
	id            text PRIMARY KEY CHECK (id <> ''),
	household_id  text NOT NULL REFERENCES households (id),
	username      text NOT NULL UNIQUE CHECK (username <> ''),
	password_hash text NOT NULL,
	role          text NOT NULL,
	admin         boolean NOT NULL DEFAULT false,
	created_at    bigint NOT NULL,
	pos           bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX accounts_household ON accounts (household_id);

-- key_owner '' means the household's keys (a device added before anyone
-- had an account).
CREATE TABLE devices (
	id                text PRIMARY KEY CHECK (id <> ''),
	household_id      text NOT NULL REFERENCES households (id),
	name              text NOT NULL,
	type              text NOT NULL,
	secret_hash       text NOT NULL,
	credential_set_at bigint NOT NULL DEFAULT 0,
	revoked_at        bigint NOT NULL DEFAULT 0,
	created_at        bigint NOT NULL,
	acl_denied        bigint NOT NULL DEFAULT 0,
	refused           bigint NOT NULL DEFAULT 0,
	auth_failures     bigint NOT NULL DEFAULT 0,
	key_owner         text NOT NULL DEFAULT '',
	pos               bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX devices_household ON devices (household_id);

CREATE TABLE sessions (
	id           text PRIMARY KEY CHECK (id <> ''),
	account_id   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	kind         text NOT NULL,
	name         text NOT NULL,
	token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) > 0),
	created_at   bigint NOT NULL,
	last_seen_at bigint NOT NULL DEFAULT 0,
	expires_at   bigint NOT NULL DEFAULT 0,
	pos          bigint GENERATED ALWAYS AS IDENTITY
);
-- Serves Sessions(accountID) and the ON DELETE CASCADE.
CREATE INDEX sessions_account ON sessions (account_id);

-- Readings, partitioned by month of ts (nanoseconds since the epoch). The
-- partitions are created on demand by the store. seq comes from a
-- sequence, which never hands a number out twice, even after the newest
-- rows are deleted, so a client's AfterSeq cursor can never skip a
-- reading. No primary key: PostgreSQL would require it to include ts, and
-- the sequence already makes seq unique. No foreign key to devices: the
-- broker only stores readings of devices it authenticated, and a per-row
-- parent lookup on the hottest insert path buys nothing.
CREATE SEQUENCE readings_seq AS bigint;
CREATE TABLE readings (
	seq              bigint NOT NULL,
	device_id        text NOT NULL CHECK (device_id <> ''),
	stream           text NOT NULL,
	ts               bigint NOT NULL,
	payload          bytea NOT NULL,
	manifest_version integer NOT NULL DEFAULT 0
) PARTITION BY RANGE (ts);
CREATE INDEX readings_device_stream_ts ON readings (device_id, stream, ts);
CREATE INDEX readings_device_seq ON readings (device_id, seq);

CREATE TABLE manifests (
	device_type text NOT NULL CHECK (device_type <> ''),
	version     integer NOT NULL CHECK (version > 0),
	doc         bytea NOT NULL,
	draft       boolean NOT NULL DEFAULT false,
	created_at  bigint NOT NULL,
	PRIMARY KEY (device_type, version)
);

CREATE TABLE violations (
	device_id text NOT NULL,
	stream    text NOT NULL,
	field     text NOT NULL,
	reason    text NOT NULL,
	count     bigint NOT NULL,
	last_at   bigint NOT NULL,
	PRIMARY KEY (device_id, stream, field, reason)
);

-- Key owners of package vault (accounts, or households without an
-- account). No foreign key to accounts or households: the shredded mark
-- must outlive a deleted account. mode is '' only for an owner shredded
-- before it was ever enrolled.
CREATE TABLE vault_owners (
	owner_id    text PRIMARY KEY CHECK (owner_id <> ''),
	mode        text NOT NULL CHECK (mode IN ('hub-assisted', 'user-held', '')),
	recipient   text NOT NULL DEFAULT '',
	created_at  bigint NOT NULL,
	updated_at  bigint NOT NULL,
	shredded_at bigint NOT NULL DEFAULT 0
);
-- Wrapped data keys: age files, never a key in plain form. The primary key
-- serves Keys(owner) and the single DELETE that shreds an owner, whose
-- cost is the owner's few keys and not the number of readings.
CREATE TABLE vault_keys (
	owner_id   text NOT NULL REFERENCES vault_owners (owner_id),
	key_id     text NOT NULL CHECK (key_id <> ''),
	mode       text NOT NULL CHECK (mode IN ('hub-assisted', 'user-held')),
	recipient  text NOT NULL DEFAULT '',
	wrapped    bytea NOT NULL CHECK (length(wrapped) > 0),
	created_at bigint NOT NULL,
	retired_at bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (owner_id, key_id)
);

-- The consent log: seq orders records as appended; doc is the document
-- receipts are signed over. No foreign keys: a record outlives its account
-- and device.
CREATE TABLE consent_records (
	seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id         text NOT NULL UNIQUE CHECK (id <> ''),
	account_id text NOT NULL,
	device_id  text NOT NULL CHECK (device_id <> ''),
	stream     text NOT NULL CHECK (stream <> ''),
	purpose    text NOT NULL,
	recipient  text NOT NULL CHECK (recipient <> ''),
	created_at bigint NOT NULL,
	doc        bytea NOT NULL
);
CREATE INDEX consent_records_account ON consent_records (account_id, seq);
CREATE INDEX consent_records_device ON consent_records (device_id, seq);

-- Records are evidence: refuse to rewrite one, whoever asks.
CREATE FUNCTION consent_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'consent records are append-only';
END
$$;
CREATE TRIGGER consent_records_append_only BEFORE UPDATE ON consent_records
	FOR EACH ROW EXECUTE FUNCTION consent_records_append_only();

CREATE TABLE consent_decisions (
	device_id  text NOT NULL CHECK (device_id <> ''),
	stream     text NOT NULL CHECK (stream <> ''),
	purpose    text NOT NULL CHECK (purpose <> ''),
	recipient  text NOT NULL CHECK (recipient <> ''),
	is_on      boolean NOT NULL,
	account_id text NOT NULL,
	record_id  text NOT NULL REFERENCES consent_records (id),
	decided_at bigint NOT NULL,
	PRIMARY KEY (device_id, stream, purpose, recipient)
);

CREATE TABLE consent_routing (
	device_id   text NOT NULL CHECK (device_id <> ''),
	stream      text NOT NULL CHECK (stream <> ''),
	keep_on_hub boolean NOT NULL,
	retention   text NOT NULL,
	account_id  text NOT NULL,
	record_id   text NOT NULL REFERENCES consent_records (id),
	decided_at  bigint NOT NULL,
	PRIMARY KEY (device_id, stream)
);

-- Background removal queue. No foreign key: the device row is usually gone.
CREATE TABLE purges (
	device_id    text PRIMARY KEY CHECK (device_id <> ''),
	until_seq    bigint NOT NULL CHECK (until_seq >= 0),
	reason       text NOT NULL,
	requested_at bigint NOT NULL
);

-- Anonymised hourly cells: deliberately no device, household or account.
CREATE TABLE aggregates (
	device_type text NOT NULL CHECK (device_type <> ''),
	stream      text NOT NULL CHECK (stream <> ''),
	field       text NOT NULL CHECK (field <> ''),
	hour        bigint NOT NULL,
	n           bigint NOT NULL CHECK (n > 0),
	sum         double precision NOT NULL,
	PRIMARY KEY (device_type, stream, field, hour)
);

CREATE TABLE recipient_endpoints (
	household_id text NOT NULL REFERENCES households (id) ON DELETE CASCADE,
	recipient    text NOT NULL CHECK (recipient <> ''),
	url          text NOT NULL CHECK (url <> ''),
	created_at   bigint NOT NULL,
	PRIMARY KEY (household_id, recipient)
);
