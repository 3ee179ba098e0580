-- Someone else removed a person's second factor; the person is told at
-- their next login.

CREATE TABLE second_factor_resets (
	account_id text PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	reset_at   bigint NOT NULL,
	by_kind    text NOT NULL CHECK (by_kind <> ''),
	by_id      text NOT NULL
);
