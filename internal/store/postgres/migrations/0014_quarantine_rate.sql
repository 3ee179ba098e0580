-- Issue #15: a rate limit's publishes per second, so that another hub node
-- (or this one after a restart) limits the device as the node that decided
-- did. 0 for holds kept before: one a second.

ALTER TABLE quarantines ADD COLUMN rate double precision NOT NULL DEFAULT 0;
