-- Abuse monitoring: the devices the monitor holds back until a person
-- releases them, and which alarms reach each person.

CREATE TABLE quarantines (
	device_id    text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	kind         text NOT NULL CHECK (kind <> ''),
	stream       text NOT NULL,
	severity     text NOT NULL,
	observed     double precision NOT NULL,
	lim          double precision NOT NULL,
	rate_limited boolean NOT NULL,
	since        bigint NOT NULL
);

CREATE TABLE alert_prefs (
	account_id   text PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	min_severity text NOT NULL,
	email        text NOT NULL
);
