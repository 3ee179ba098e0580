package updates

import (
	"context"
	"testing"
	"time"
)

// TestMetadataExpiries: after a verified refresh the service reports each
// role's expiry; when the repository freezes (its timestamp runs out and
// the next refresh is refused), the report keeps the old, expired
// timestamp, which is what the audit flags.
func TestMetadataExpiries(t *testing.T) {
	f := newFixture(t)
	if n := f.svc.Repositories(); n != 1 {
		t.Fatalf("Repositories = %d, want 1", n)
	}
	if ex := f.svc.MetadataExpiries(); len(ex) != 0 {
		t.Fatalf("expiries before a refresh: %+v", ex)
	}
	f.repo.add(t, "thermostat", "1.2.0", false)
	f.check(t)
	ex := f.svc.MetadataExpiries()
	roles := map[string]time.Time{}
	for _, e := range ex {
		if e.Repository != f.repo.url {
			t.Errorf("repository %q, want %q", e.Repository, f.repo.url)
		}
		roles[e.Role] = e.Expires
	}
	if len(roles) != 4 || ex[0].Role != "timestamp" {
		t.Fatalf("expiries %+v, want the four roles, the timestamp (a day) first", ex)
	}
	if d := time.Until(roles["timestamp"]); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("timestamp expires in %v, want about a day", d)
	}
	// Two days later the timestamp has run out: the refresh is refused
	// as a freeze, and the expiry the audit sees is in the past.
	later := time.Now().Add(48 * time.Hour)
	c, _ := f.svc.client("thermostat")
	c.SetClock(func() time.Time { return later })
	if _, err := f.svc.CheckNow(context.Background(), f.dev); err == nil {
		t.Fatal("a refresh past the timestamp's expiry was not refused")
	}
	for _, e := range f.svc.MetadataExpiries() {
		if e.Role == "timestamp" && !e.Expires.Before(later) {
			t.Errorf("timestamp expiry %v after the freeze, want before %v", e.Expires, later)
		}
	}
}
