-- Second login factors (TOTP). The secret is sealed by identity before it
-- gets here; recovery codes are kept only as SHA-256 hashes.

CREATE TABLE second_factors (
	account_id   text PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	secret       bytea NOT NULL,
	created_at   bigint NOT NULL,
	confirmed_at bigint NOT NULL DEFAULT 0,
	last_step    bigint NOT NULL DEFAULT 0
);

CREATE TABLE recovery_codes (
	account_id text NOT NULL REFERENCES second_factors (account_id) ON DELETE CASCADE,
	code_hash  bytea NOT NULL,
	PRIMARY KEY (account_id, code_hash)
);
