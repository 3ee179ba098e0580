-- The abuse monitor's counts per device and window (issue 15): metadata
-- only, purged after a set time; and the admin's actions per severity.

CREATE TABLE monitor_windows (
	device_id     text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	start         bigint NOT NULL,
	length        bigint NOT NULL CHECK (length > 0),
	readings      bigint NOT NULL,
	bytes         bigint NOT NULL,
	max_bytes     bigint NOT NULL,
	refused       bigint NOT NULL,
	wrong_secrets bigint NOT NULL,
	probes        bigint NOT NULL,
	connects      bigint NOT NULL,
	PRIMARY KEY (device_id, start)
);

-- The purge deletes by start across all devices.
CREATE INDEX monitor_windows_start ON monitor_windows (start);

-- What the admin chose to do about alarms of each severity, when set on
-- the page rather than by --monitor-actions.
CREATE TABLE monitor_actions (
	severity text PRIMARY KEY CHECK (severity <> ''),
	action   text NOT NULL CHECK (action <> '')
);
