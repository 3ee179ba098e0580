package storetest

import (
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func testAdvisoryFeeds(t *testing.T, s store.Store) {
	ctx := t.Context()
	if fs, err := s.AdvisoryFeeds(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("AdvisoryFeeds(empty) = %+v, %v", fs, err)
	}
	a := store.AdvisoryFeed{URL: "https://maker.example/.well-known/csaf/provider-metadata.json", Kind: "csaf", Origin: "operator", AddedAt: at(0)}
	b := store.AdvisoryFeed{URL: "https://osv.example/all.zip", Kind: "osv", Origin: "manifest:thermostat", AddedAt: at(time.Hour)}
	for _, f := range []store.AdvisoryFeed{a, b} {
		if err := s.PutAdvisoryFeed(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	// A refresh replaces the row with its outcome.
	a.LastAttempt, a.LastSuccess, a.LastError, a.Documents = at(2*time.Hour), at(2*time.Hour), "1 document refused", 3
	a.Fingerprint, a.UnsignedAllowed, a.Signatures = "0123456789ABCDEF0123456789ABCDEF01234567", true, "2 documents signed"
	if err := s.PutAdvisoryFeed(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAdvisoryFeed(ctx, store.AdvisoryFeed{URL: "https://x.example/", Kind: "rss", AddedAt: at(0)}); err == nil {
		t.Error("PutAdvisoryFeed(kind rss) succeeded, want an error")
	}
	fs, err := s.AdvisoryFeeds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("AdvisoryFeeds = %+v, want 2", fs)
	}
	for _, got := range fs {
		want := b
		if got.URL == a.URL {
			want = a
		}
		if got.Kind != want.Kind || got.Origin != want.Origin || !got.AddedAt.Equal(want.AddedAt) || !got.LastAttempt.Equal(want.LastAttempt) ||
			!got.LastSuccess.Equal(want.LastSuccess) || got.LastError != want.LastError || got.Documents != want.Documents ||
			got.Fingerprint != want.Fingerprint || got.UnsignedAllowed != want.UnsignedAllowed || got.Signatures != want.Signatures {
			t.Errorf("feed %s = %+v, want %+v", got.URL, got, want)
		}
		if got.URL == b.URL && !got.LastSuccess.IsZero() {
			t.Errorf("feed never refreshed has LastSuccess %v, want zero", got.LastSuccess)
		}
	}
	if err := s.DeleteAdvisoryFeed(ctx, b.URL); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteAdvisoryFeed(again)", s.DeleteAdvisoryFeed(ctx, b.URL), store.ErrNotFound)
	if fs, err := s.AdvisoryFeeds(ctx); err != nil || len(fs) != 1 || fs[0].URL != a.URL {
		t.Errorf("AdvisoryFeeds after delete = %+v, %v; want only %s", fs, err, a.URL)
	}
}

func testUpdateStages(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))
	steps := []store.UpdateStage{
		{DeviceID: "d1", Version: "1.2.0", SHA256: "ab", Stage: "offered", UpdatedAt: at(time.Hour)},
		{DeviceID: "d1", Version: "1.2.0", SHA256: "ab", Stage: "failed", FailCode: "hash-mismatch", Plain: "could not", UpdatedAt: at(2 * time.Hour)},
		{DeviceID: "d2", Stage: "refused", Reason: "expired", UpdatedAt: at(time.Hour)},
	}
	for _, st := range steps {
		if err := s.PutUpdateStage(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "PutUpdateStage(no device)", s.PutUpdateStage(ctx, store.UpdateStage{DeviceID: "nope", Stage: "offered", UpdatedAt: at(0)}), store.ErrNotFound)
	got, err := s.UpdateStages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byDev := map[string]store.UpdateStage{}
	for _, g := range got {
		byDev[g.DeviceID] = g
	}
	if len(got) != 2 || byDev["d1"].Stage != "failed" || byDev["d1"].FailCode != "hash-mismatch" || byDev["d1"].SHA256 != "ab" ||
		!byDev["d1"].UpdatedAt.Equal(at(2*time.Hour)) || byDev["d2"].Reason != "expired" {
		t.Errorf("UpdateStages = %+v, want d1 failed (replaced) and d2 refused", got)
	}
	// An erased device takes its stage with it.
	if err := s.Erase(ctx, store.Erasure{DeleteDevices: []string{"d1"}, Reason: "test", At: at(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UpdateStages(ctx); err != nil || len(got) != 1 {
		t.Errorf("UpdateStages after erasing d1 = %+v, %v; want only d2", got, err)
	}
}
