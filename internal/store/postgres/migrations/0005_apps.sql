-- A household's local apps (their credentials, hashed) and the streams
-- people allowed each to receive.

CREATE TABLE apps (
	id                text PRIMARY KEY CHECK (id <> ''),
	household_id      text NOT NULL REFERENCES households (id) ON DELETE CASCADE,
	name              text NOT NULL,
	description       text NOT NULL,
	purposes          text NOT NULL,
	kind              text NOT NULL DEFAULT '',
	secret_hash       text NOT NULL,
	credential_set_at bigint NOT NULL,
	revoked_at        bigint NOT NULL DEFAULT 0,
	created_at        bigint NOT NULL
);

CREATE INDEX apps_household ON apps (household_id);

CREATE TABLE app_grants (
	app_id     text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	device_id  text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	stream     text NOT NULL CHECK (stream <> ''),
	decided_by text NOT NULL,
	decided_at bigint NOT NULL,
	PRIMARY KEY (app_id, device_id, stream)
);

CREATE INDEX app_grants_device ON app_grants (device_id);
