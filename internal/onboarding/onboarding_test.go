package onboarding

import (
	"os/exec"
	"strings"
	"testing"
)

func TestBrokerHostPort(t *testing.T) {
	tests := []struct {
		addr, host, port string
	}{
		{"192.0.2.7:1884", "192.0.2.7", "1884"},
		{"[::]:1883", "127.0.0.1", "1883"},
		{"0.0.0.0:8883", "127.0.0.1", "8883"},
		{":1885", "127.0.0.1", "1885"},
		{"[2001:db8::1]:1883", "2001:db8::1", "1883"},
		{"not an address", "127.0.0.1", "1883"},
		{"", "127.0.0.1", "1883"},
	}
	for _, tt := range tests {
		host, port := BrokerHostPort(tt.addr)
		if host != tt.host || port != tt.port {
			t.Errorf("BrokerHostPort(%q) = %q, %q; want %q, %q", tt.addr, host, port, tt.host, tt.port)
		}
	}
}

func TestMosquittoPub(t *testing.T) {
	got := MosquittoPub("0.0.0.0:1883", false, "", "dev-1", "s3cret", "temperature", []byte(`{"celsius": 20.5}`))
	want := `mosquitto_pub -h 127.0.0.1 -p 1883 -V mqttv5 -q 1 -i dev-1 -u dev-1 -P 's3cret' -t candor/dev-1/temperature -m '{"celsius": 20.5}'`
	if got != want {
		t.Errorf("MosquittoPub:\n got %s\nwant %s", got, want)
	}
}

// TestShellQuoteRoundTrip hands quoted text to a real shell: what the
// person pastes must reach mosquitto_pub byte for byte, whatever the
// secret contains.
func TestShellQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no POSIX shell on this machine")
	}
	for _, s := range []string{
		"plain",
		"it's",
		`'"'"'`,
		"$HOME `id` $(id) \\ ; | & > < * ? ~ #",
		"new\nline",
		"",
	} {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil {
			t.Fatalf("sh with %q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("shell read %q as %q", s, out)
		}
	}
	if strings.Contains(shellQuote("a'b"), "a'b") {
		t.Error("a single quote inside the text is left unescaped")
	}
}
