-- Advisory feeds the hub refreshes over HTTPS, and how far each device got
-- with its latest update (kept so a restart does not forget it). No
-- foreign key from feeds to manifests: a feed a manifest named keeps its
-- refresh history if the manifest changes.

CREATE TABLE advisory_feeds (
	url          text PRIMARY KEY CHECK (url <> ''),
	kind         text NOT NULL CHECK (kind IN ('csaf', 'osv')),
	origin       text NOT NULL,
	added_at     bigint NOT NULL,
	last_attempt bigint NOT NULL,
	last_success bigint NOT NULL,
	last_error   text NOT NULL,
	documents    integer NOT NULL
);

CREATE TABLE update_stages (
	device_id  text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	version    text NOT NULL,
	sha256     text NOT NULL,
	stage      text NOT NULL CHECK (stage <> ''),
	reason     text NOT NULL,
	plain      text NOT NULL,
	fail_code  text NOT NULL,
	updated_at bigint NOT NULL
);
