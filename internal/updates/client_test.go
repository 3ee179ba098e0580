package updates

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/updates/repo"
)

func TestRefreshListsOnlyThisDeviceTypesSignedTargets(t *testing.T) {
	r := newTestRepo(t)
	r.add(t, "thermostat", "1.1.0", false)
	newest := r.add(t, "thermostat", "1.10.0", true, "CVE-2026-0001")
	r.add(t, "plug", "9.0.0", true)
	c := r.client(t, "thermostat/")
	cat, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Targets) != 2 || cat.Targets[0].Path != newest || cat.Targets[1].Release.Version != "1.1.0" {
		t.Fatalf("targets %+v, want 1.10.0 then 1.1.0 (semantic order, no plug firmware)", cat.Targets)
	}
	got := cat.Targets[0].Release
	if !got.Security || got.Fixes[0] != "CVE-2026-0001" || got.DeviceType != "thermostat" {
		t.Fatalf("release metadata %+v", got)
	}
	if !bytes.Contains(cat.TargetsMetadata, []byte(`"signatures"`)) {
		t.Fatalf("targets metadata is not the signed document: %.80s", cat.TargetsMetadata)
	}
	data, err := c.Download(context.Background(), cat.Targets[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, firmware("thermostat", "1.10.0")) {
		t.Fatalf("downloaded %q", data)
	}
}

func TestTargetWithoutReleaseMetadataIsSkippedWithReason(t *testing.T) {
	r := newTestRepo(t)
	if err := r.Add("thermostat/notes.txt", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("thermostat/bad.bin", []byte("x"), []byte(`{"candor":{"deviceType":"thermostat","version":"one"}}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(); err != nil {
		t.Fatal(err)
	}
	cat, err := r.client(t, "thermostat/").Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Targets) != 0 || cat.Skipped["thermostat/notes.txt"] != "no custom metadata" ||
		cat.Skipped["thermostat/bad.bin"] == "" {
		t.Fatalf("targets %+v skipped %v", cat.Targets, cat.Skipped)
	}
}

func TestRefreshRefusesAttacks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, r *testRepo, c *Client)
		want   Reason
	}{
		{"tampered timestamp (bad signature)", func(t *testing.T, r *testRepo, c *Client) {
			editJSON(t, filepath.Join(r.PublicDir(), "timestamp.json"), func(m map[string]any) {
				m["signed"].(map[string]any)["version"] = 1000.0
			})
		}, ReasonSignature},
		{"signatures removed (threshold not met)", func(t *testing.T, r *testRepo, c *Client) {
			editJSON(t, filepath.Join(r.PublicDir(), "timestamp.json"), func(m map[string]any) {
				m["signatures"] = []any{}
			})
		}, ReasonSignature},
		{"targets signed by the wrong key", func(t *testing.T, r *testRepo, c *Client) {
			other := newTestRepo(t)
			other.add(t, "thermostat", "6.6.6", true)
			b, err := os.ReadFile(filepath.Join(other.PublicDir(), "2.targets.json"))
			if err != nil {
				t.Fatal(err)
			}
			r.add(t, "thermostat", "1.3.0", true)
			if err := os.WriteFile(filepath.Join(r.PublicDir(), "3.targets.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ReasonSignature},
		{"frozen: timestamp expired", func(t *testing.T, r *testRepo, c *Client) {
			c.SetClock(func() time.Time { return time.Now().Add(repo.DefaultExpiry.Timestamp + time.Hour) })
		}, ReasonExpired},
		{"rollback to an older timestamp", func(t *testing.T, r *testRepo, c *Client) {
			file := filepath.Join(r.PublicDir(), "timestamp.json")
			old, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r.add(t, "thermostat", "1.3.0", true)
			if _, err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, old, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ReasonRollback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			r.add(t, "thermostat", "1.2.0", true)
			c := r.client(t, "thermostat/")
			if _, err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			tc.attack(t, r, c)
			_, err := c.Refresh(ctx)
			wantRefused(t, err, tc.want)
		})
	}
}

func TestDownloadRefusesAFileThatDiffersFromItsMetadata(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace []byte
	}{
		{"same length, other bytes", bytes.ToUpper(firmware("thermostat", "1.2.0"))},
		{"longer", append(firmware("thermostat", "1.2.0"), "and a backdoor"...)},
		{"shorter", []byte("fw")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			path := r.add(t, "thermostat", "1.2.0", true)
			file, err := r.TargetFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, tc.replace, 0o644); err != nil {
				t.Fatal(err)
			}
			c := r.client(t, "thermostat/")
			cat, err := c.Refresh(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Download(context.Background(), cat.Targets[0])
			wantRefused(t, err, ReasonMismatch)
		})
	}
}

func TestRootPinnedBySHA256(t *testing.T) {
	r := newTestRepo(t)
	r.add(t, "thermostat", "1.2.0", true)
	root, err := os.ReadFile(filepath.Join(r.PublicDir(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := NewClient(Source{MetadataURL: r.url, TargetPrefix: "thermostat/", RootSHA256: repo.RootSHA256(root)}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := good.Refresh(context.Background()); err != nil {
		t.Fatalf("root pinned by its hash: %v", err)
	}
	other := repo.RootSHA256([]byte("another root"))
	bad, err := NewClient(Source{MetadataURL: r.url, TargetPrefix: "thermostat/", RootSHA256: other}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Refresh(context.Background())
	wantRefused(t, err, ReasonSignature)
}

func TestRootKeyRotationIsFollowed(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.add(t, "thermostat", "1.2.0", true)
	c := r.client(t, "thermostat/")
	if _, err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.RotateRootKey(); err != nil {
		t.Fatal(err)
	}
	r.add(t, "thermostat", "1.3.0", true)

	cat, err := c.Refresh(ctx)
	if err != nil {
		t.Fatalf("refresh after rotation: %v", err)
	}
	if cat.RootVersion != 2 || cat.Targets[0].Release.Version != "1.3.0" {
		t.Fatalf("root version %d, newest %s; want root 2 and 1.3.0", cat.RootVersion, cat.Targets[0].Release.Version)
	}
	// A hub that pinned the first root and never saw the rotation follows
	// the chain of roots from 1.root.json on.
	fresh, err := r.client(t, "thermostat/").Refresh(ctx)
	if err != nil || fresh.RootVersion != 2 {
		t.Fatalf("fresh client after rotation: root %v, %v", fresh, err)
	}
}

func TestRepositoryKeepsStagedTargetsAcrossOpen(t *testing.T) {
	r := newTestRepo(t)
	custom, err := Release{DeviceType: "thermostat", Version: "2.0.0", Notes: "New schedule screen."}.Custom()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add("thermostat/fw-2.0.0.bin", firmware("thermostat", "2.0.0"), custom); err != nil {
		t.Fatal(err)
	}
	reopened, err := repo.Open(filepath.Dir(r.PublicDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := reopened.Publish(); err != nil {
		t.Fatal(err)
	}
	cat, err := r.client(t, "thermostat/").Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Targets) != 1 || cat.Targets[0].Release.Version != "2.0.0" || cat.Targets[0].Release.Security {
		t.Fatalf("targets %+v", cat.Targets)
	}
	if _, err := (Release{DeviceType: "thermostat", Version: "2"}).Custom(); err == nil {
		t.Fatal("a release with version \"2\" was accepted")
	}
}
