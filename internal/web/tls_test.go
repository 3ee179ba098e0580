package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// With MQTT over TLS and the hub's own authority, the add page shows the
// authority's fingerprint, and the credential page sends the device to
// the TLS port with the authority's file.
func TestAddDeviceShowsTLSAndFingerprint(t *testing.T) {
	t.Parallel()
	const fp = "0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9"
	h := startHub(t, func(c *Config) {
		c.MQTTAddr, c.MQTTTLS, c.MQTTCAFile, c.CAFingerprint = "0.0.0.0:8883", true, "/srv/candor data/ca.pem", fp
	})
	h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)
	add := b.get("/add?type=thermostat")
	if !strings.Contains(add.body, fp) || !strings.Contains(add.body, `href="/ca.pem"`) {
		t.Errorf("the add page lacks the fingerprint or the link to ca.pem:\n%s", visibleText(add.body))
	}
	p := b.post("/add", url.Values{"type": {"thermostat"}, "name": {"Kitchen"}, csrfField: {b.csrf()}})
	if p.status != 200 || !strings.HasSuffix(p.url, "/credential") {
		t.Fatalf("POST /add: %d at %s", p.status, p.url)
	}
	text := visibleText(p.body)
	for _, want := range []string{fp, "-h 127.0.0.1 -p 8883 --cafile '/srv/candor data/ca.pem' -V mqttv5", "TLS is on"} {
		if !strings.Contains(text, want) {
			t.Errorf("the credential page lacks %q:\n%s", want, text)
		}
	}
	for name, body := range map[string]string{"add": add.body, "credential": p.body} {
		if s := readability.Score(visibleText(body)); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f", name, s.Ease, readability.PlainEnglish)
		}
	}
}

// Without TLS the same pages say nothing of certificates, and the
// command uses the plain port.
func TestAddDeviceWithoutTLS(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)
	add := b.get("/add?type=thermostat")
	if strings.Contains(add.body, "ca.pem") {
		t.Error("the add page mentions ca.pem without TLS")
	}
	p := b.post("/add", url.Values{"type": {"thermostat"}, "name": {"Kitchen"}, csrfField: {b.csrf()}})
	text := visibleText(p.body)
	if !strings.Contains(text, "-h 127.0.0.1 -p 1883 -V mqttv5") || strings.Contains(text, "cafile") {
		t.Errorf("the credential page's command is not the plain one:\n%s", text)
	}
}
