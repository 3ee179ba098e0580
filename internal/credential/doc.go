// Package credential generates, checks and hashes the secrets that let
// devices and people into Candor: device secrets, bearer tokens, random
// ids, password policy and slow password hashing.
//
// It serves clause 2C of the IoT Good Practice paper (no default
// passwords; every credential unique): secrets are made from crypto/rand
// per device rather than shipped with the firmware, and a password or
// device secret that someone chooses is refused when it is empty, short,
// trivially guessable or on the list of known IoT default credentials that
// botnets such as Mirai try first (shipped as default-credentials.tsv).
//
// Two kinds of hash are used on purpose. Tokens and generated secrets carry
// at least 160 random bits, so a single SHA-256 is enough and lets the store
// look them up by hash (HashToken). Anything a person may have chosen is
// hashed with argon2id (Hash, Verify), which is slow and memory-hard so a
// stolen database does not give the passwords away; a Hasher bounds how
// many of those run at once because each one holds about 19 MiB.
package credential
