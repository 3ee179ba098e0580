-- Requests that whoever decides for a device turn one use of a stream on
-- or off. No foreign keys, like the consent log: a request names ids.

CREATE TABLE consent_requests (
	id           text PRIMARY KEY CHECK (id <> ''),
	household_id text NOT NULL CHECK (household_id <> ''),
	device_id    text NOT NULL CHECK (device_id <> ''),
	account_id   text NOT NULL CHECK (account_id <> ''),
	stream       text NOT NULL CHECK (stream <> ''),
	purpose      text NOT NULL,
	recipient    text NOT NULL,
	is_on        boolean NOT NULL,
	created_at   bigint NOT NULL
);

CREATE INDEX consent_requests_household ON consent_requests (household_id, created_at);
