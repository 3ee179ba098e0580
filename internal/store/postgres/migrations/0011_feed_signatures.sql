-- OpenPGP signatures of CSAF feed documents: a fingerprint the operator
-- pinned, the operator's explicit choice to let unsigned documents in, and
-- how the last refresh checked signatures, in plain words.

ALTER TABLE advisory_feeds ADD COLUMN fingerprint text NOT NULL DEFAULT '';
ALTER TABLE advisory_feeds ADD COLUMN unsigned_allowed boolean NOT NULL DEFAULT false;
ALTER TABLE advisory_feeds ADD COLUMN signatures text NOT NULL DEFAULT '';
