package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/testenv"
)

// TestQuickFanout runs the fan-out bench briefly on both brokers and
// checks what must hold whatever the machine's speed: the app received
// readings, and every reading Candor acknowledged was either received or
// counted as dropped for the app (no silent loss). It asserts no timing.
func TestQuickFanout(t *testing.T) {
	if _, err := os.Stat(DefaultMosquitto); err != nil {
		testenv.Missing(t, "mosquitto not found at %s: install Debian package mosquitto", DefaultMosquitto)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := RunFanout(ctx, FanoutOptions{HubArgv: testHubArgv(t), HubEnv: []string{hubEnv}, Mosquitto: DefaultMosquitto,
		Devices: 10, Duration: time.Second, QoS: 1, Progress: &progress})
	if err != nil {
		t.Fatalf("fan-out: %v\n%s", err, progress.String())
	}
	c := rep.Sides[0]
	if c.Published == 0 || c.Received == 0 {
		t.Fatalf("Candor: published %d, received %d", c.Published, c.Received)
	}
	if c.Unaccounted != 0 {
		t.Errorf("Candor lost %d readings without counting them (published %d, received %d, dropped %d)", c.Unaccounted, c.Published, c.Received, c.Dropped)
	}
	if m := rep.Sides[1]; m.Received == 0 {
		t.Errorf("Mosquitto: received nothing (%+v)", m)
	}
	var out bytes.Buffer
	if err := WriteFanout(&out, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "delivered msg/s") {
		t.Errorf("table:\n%s", out.String())
	}
	t.Logf("\n%s", out.String())
}
