package hub

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/export/exporttest"
)

// An export prepared in the background: started with the API, followed
// to done, downloaded as a ZIP whose every file matches index.json. While
// it waits on the hub, the archive is unreadable on disk; the hub deletes
// it when it closes, and deletes leftovers of a crash when it starts.
func TestExportJobRoundTrip(t *testing.T) {
	dir := shortTempDir(t)
	th := startHubIn(t, dir)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Meter", "type": "smart-meter"})
	if code != 201 {
		t.Fatal(code, out)
	}
	id := out["device"].(map[string]any)["id"].(string)
	secret := out["secret"].(string)
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const marker = 17531
	for i := range 30 {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/power", QoS: 1, Payload: fmt.Appendf(nil, `{"watts": %d}`, marker+i)}); err != nil {
			t.Fatal(err)
		}
	}

	code, job, hdr := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/exports", alex, nil)
	if code != http.StatusAccepted || job["state"] == nil || hdr.Get("Location") != job["status_url"] {
		t.Fatalf("start export: %d %v %v", code, job, hdr)
	}
	statusURL := th.URL() + job["status_url"].(string)
	deadline := time.Now().Add(60 * time.Second)
	for job["state"] == "running" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if code, job, _ = call(t, http.DefaultClient, "GET", statusURL, alex, nil); code != 200 {
			t.Fatalf("status: %d %v", code, job)
		}
	}
	if job["state"] != "done" || job["readings_done"] != 30.0 || job["readings_total"] != 30.0 || job["finished_at"] == nil {
		t.Fatalf("finished export: %v", job)
	}

	// At rest: one file in <data>/exports (mode 0700), with no plaintext.
	exportsDir := filepath.Join(dir, "exports")
	if fi, err := os.Stat(exportsDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("exports directory: %v %v", fi, err)
	}
	entries, err := os.ReadDir(exportsDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("exports directory holds %v (%v)", entries, err)
	}
	raw, err := os.ReadFile(filepath.Join(exportsDir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"PK\x03\x04", "index.json", "README.txt", fmt.Sprint(marker), id} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the export file on disk contains %q", plain)
		}
	}

	zb := getText(t, http.DefaultClient, th.URL()+job["download_url"].(string), alex)
	if int64(len(zb)) != int64(job["bytes"].(float64)) {
		t.Errorf("downloaded %d bytes, the job says %v", len(zb), job["bytes"])
	}
	files := unzipExport(t, zb)
	rows, err := csv.NewReader(bytes.NewReader(files["readings/"+id+"/power.csv"])).ReadAll()
	if err != nil || len(rows) != 31 {
		t.Fatalf("power.csv: %d rows, %v", len(rows), err)
	}
	if !bytes.Contains(files["readings/"+id+"/power.csv"], []byte(fmt.Sprint(marker))) {
		t.Error("power.csv lacks the readings sent (were they decrypted?)")
	}
	// Another household's person cannot see or take it.
	code, out, _ = call(t, th.local, "POST", "http://candor/api/v1/households", "",
		map[string]any{"name": "Next door", "owner": map[string]string{"username": "sam", "password": goodPassword}})
	if code != http.StatusCreated {
		t.Fatalf("create household: %d %v", code, out)
	}
	sam := th.token("sam", goodPassword)
	for _, u := range []string{statusURL, th.URL() + job["download_url"].(string)} {
		if code, _, _ := call(t, http.DefaultClient, "GET", u, sam, nil); code != http.StatusNotFound {
			t.Errorf("Sam GET %s: %d", u, code)
		}
	}

	// Closing the hub deletes the file; so does starting it after a crash
	// left one behind.
	th.close()
	if entries, _ := os.ReadDir(exportsDir); len(entries) != 0 {
		t.Errorf("after close the exports directory holds %v", entries)
	}
	leftover := filepath.Join(exportsDir, "export-exp_crashed.zip.age")
	if err := os.WriteFile(leftover, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	startHubIn(t, dir)
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("a leftover export survived the start: %v", err)
	}
}

// unzipExport opens an export archive and checks every file against the
// SHA-256 in index.json.
func unzipExport(t *testing.T, zb []byte) map[string][]byte {
	t.Helper()
	a := exporttest.Open(t, zb)
	if len(a.Index) < 4 {
		t.Fatalf("index lists %d files", len(a.Index))
	}
	return a.Files
}
