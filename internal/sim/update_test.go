package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A simulated thermostat takes an offer on its control topic like a real
// device: it downloads the image with its own credential, checks length
// and SHA-256, reports each stage, and after installing reports its new
// firmware on the state topic. A wrong hash or a refused download ends in
// "failed" with a reason code and the old firmware.
func TestDeviceInstallsOfferedUpdate(t *testing.T) {
	image := []byte("thermostat firmware 1.4.2\n")
	sum := sha256.Sum256(image)
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name      string
		sha       string
		badSecret bool
		want      []string // stages reported, in order
		wantFW    string   // firmware on the state topic at the end
	}{
		{"installs", good, false, []string{"downloading", "verified", "installing", "installed"}, "1.4.2"},
		{"hash mismatch", strings.Repeat("0", 64), false, []string{"downloading", "failed:hash-mismatch"}, "1.3.0"},
		{"download refused", good, true, []string{"downloading", "failed:download-failed"}, "1.3.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dev := Device{ID: "dev_upd12345", Secret: secret(t), Kind: "thermostat"}
			files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, pw, ok := r.BasicAuth()
				if !ok || id != dev.ID || pw != dev.Secret || tc.badSecret {
					http.Error(w, "no", http.StatusUnauthorized)
					return
				}
				_, _ = w.Write(image)
			}))
			t.Cleanup(files.Close)
			b := startBroker(t, "127.0.0.1:0", map[string]string{dev.ID: dev.Secret})
			s, err := New(Config{Broker: b.addr, Devices: []Device{dev}, Speed: 1000, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			start(t, ctx, s)
			state := StateTopic(dev.ID)
			if err := b.got.awaitCount(ctx, state, 1); err != nil {
				t.Fatal(err)
			}
			offer, _ := json.Marshal(map[string]any{"version": "1.4.2", "url": files.URL + "/fw", "length": len(image), "sha256": tc.sha})
			b.control(t, dev.ID, updateStream, string(offer))
			progress := TopicRoot + "/" + dev.ID + progressSuffix
			stages := func() []string {
				var out []string
				for _, m := range b.got.snapshot() {
					if m.topic != progress {
						continue
					}
					var p struct{ Version, Stage, Reason string }
					if err := json.Unmarshal(m.payload, &p); err != nil || p.Version != "1.4.2" {
						t.Errorf("progress %s", m.payload)
					}
					if p.Reason != "" {
						p.Stage += ":" + p.Reason
					}
					out = append(out, p.Stage)
				}
				return out
			}
			if err := b.got.awaitCount(ctx, progress, len(tc.want)); err != nil {
				t.Fatalf("%v; stages so far %v", err, stages())
			}
			if got := stages(); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("stages %v, want %v", got, tc.want)
			}
			if tc.wantFW == "1.4.2" {
				if err := b.got.awaitCount(ctx, state, 2); err != nil {
					t.Fatal(err)
				}
			}
			var last []byte
			for _, m := range b.got.snapshot() {
				if m.topic == state {
					last = m.payload
				}
			}
			if !strings.Contains(string(last), `"firmware":"`+tc.wantFW+`"`) {
				t.Errorf("last state %s, want firmware %s", last, tc.wantFW)
			}
		})
	}
}
