-- The advisory a hold until fixed waits for, kept when an alarm's
-- quarantine joins the hold: the hold ends only when both reasons are gone.

ALTER TABLE quarantines ADD COLUMN advisory text NOT NULL DEFAULT '';
