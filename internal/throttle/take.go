package throttle

// Take spends one attempt of key at once, for an attempt that failed
// somewhere this table cannot see (another hub node checking the same
// account). It never waits and never refuses: an empty bucket stays empty.
// A table without room for key forgets nothing for it.
func (t *Table) Take(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, err := t.bucketLocked(key)
	if err != nil {
		return
	}
	t.refillLocked(b, t.now())
	b.tokens = max(b.tokens-1, 0)
}
