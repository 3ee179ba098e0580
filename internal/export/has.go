package export

// Has reports whether a job with this id runs or waits here, whoever owns
// it: another hub node asks, to send the owner's requests for it here.
func (j *Jobs) Has(id string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.jobs[id]
	return ok
}
