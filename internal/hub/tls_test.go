package hub

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/testenv"
	"github.com/candor-iot/candor/internal/tlscert"
)

// lanAddr is an address of this machine's own non-loopback interfaces,
// or "" when it has none.
func lanAddr(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var v6 string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
				continue
			}
			if n.IP.To4() != nil {
				return n.IP.String()
			}
			if v6 == "" {
				v6 = n.IP.String()
			}
		}
	}
	return v6
}

// firstVisit fetches from the hub as a first visit does, before it
// trusts the hub's authority; what it fetches is then checked against the
// fingerprint the hub shows.
func firstVisit() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // checked by fingerprint below
}

// fetchCA gets /ca.pem from the hub and checks it against the fingerprint
// the hub shows, as a person setting up a device would.
func fetchCA(t *testing.T, th *testHub) (*x509.Certificate, http.Header) {
	t.Helper()
	resp, err := firstVisit().Get(th.URL() + "/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /ca.pem: %d %s", resp.StatusCode, body)
	}
	blk, _ := pem.Decode(body)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("GET /ca.pem is not a PEM certificate: %q", body)
	}
	sum := sha256.Sum256(blk.Bytes)
	if got := fmt.Sprintf("%X", sum[:]); got != strings.ReplaceAll(th.CAFingerprint(), ":", "") {
		t.Fatalf("served CA has fingerprint %s, the hub shows %s", got, th.CAFingerprint())
	}
	onDisk, err := os.ReadFile(filepath.Join(th.dir, CAName))
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(body) {
		t.Error("GET /ca.pem differs from ca.pem in the data directory")
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca, resp.Header
}

// A device on the LAN, verifying the hub against the CA the hub serves,
// connects to MQTT over TLS by the machine's LAN address, with plain MQTT
// turned off. The certificate names the host and every address it has.
//
// The connection itself goes over loopback (tests send traffic to no
// other address); the device verifies the certificate as it would when
// dialling the LAN address, by naming that address as the server.
func TestTLSDeviceOnTheLAN(t *testing.T) {
	t.Parallel()
	host := lanAddr(t)
	if host == "" {
		name, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		host = name
		t.Logf("this machine has no non-loopback interface address: verifying as its host name %q", name)
	} else {
		t.Logf("verifying as this machine's interface address %s", host)
	}
	listen := "127.0.0.1"
	th := startHub(t, func(c *configT) {
		c.MQTTAddr = ""
		c.MQTTTLSAddr = net.JoinHostPort(listen, "0")
		c.TLSSelfSigned = true
	})
	if th.MQTTAddr() != "" {
		t.Fatalf("plain MQTT listens on %s though it was turned off", th.MQTTAddr())
	}
	ca, _ := fetchCA(t, th)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	// The certificate's names and addresses.
	_, port, _ := net.SplitHostPort(th.MQTTTLSAddr())
	addr := net.JoinHostPort("127.0.0.1", port)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s verifying as %s against the served CA: %v", addr, host, err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	want, err := tlscert.LocalHosts()
	if err != nil {
		t.Fatal(err)
	}
	if miss := want.MissingFrom(leaf); len(miss) > 0 {
		t.Errorf("the hub's certificate lacks %v (has %v %v)", miss, leaf.DNSNames, leaf.IPAddresses)
	}
	if name, err := os.Hostname(); err == nil {
		short, _, _ := strings.Cut(strings.ToLower(name), ".")
		if err := leaf.VerifyHostname(short + ".local"); err != nil {
			t.Errorf("certificate does not cover the mDNS name: %v", err)
		}
	}

	// A real MQTT 5 device session over that connection.
	id, secret := th.addDevice("Hall", "thermostat")
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: id, PasswordFlag: true, Password: []byte(secret)}); err != nil {
		t.Fatalf("MQTT connect over TLS: %v", err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1, Payload: []byte(`{"celsius": 19}`)}); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}
	if n := len(th.readings(id, "")); n != 1 {
		t.Errorf("stored %d readings, want 1", n)
	}

	// A client that trusts only the system's authorities refuses the hub.
	if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: host, RootCAs: x509.NewCertPool()}); err == nil {
		c.Close()
		t.Error("the hub's certificate verified without its CA")
	}
}

// The CA survives restarts; the server certificate is reissued when it
// lacks a name or address, and kept when nothing changed.
func TestTLSCertificateReissuedCAStable(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	tlsOn := func(c *configT) { c.TLSSelfSigned = true; c.MQTTTLSAddr = "127.0.0.1:0" }
	leafOf := func(th *testHub) *x509.Certificate {
		c, err := tls.Dial("tcp", th.MQTTTLSAddr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // inspecting the certificate only
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	th := startHubIn(t, dir, tlsOn)
	fp, first := th.CAFingerprint(), leafOf(th)
	if fp == "" {
		t.Fatal("no CA fingerprint")
	}
	th.close()

	// Unchanged: the same certificate.
	th = startHubIn(t, dir, tlsOn)
	if th.CAFingerprint() != fp {
		t.Error("the CA changed across a restart")
	}
	if !leafOf(th).Equal(first) {
		t.Error("the certificate was reissued though nothing changed")
	}
	th.close()

	// A certificate that lacks the host's names and addresses, as after a
	// move to another network, is replaced at start.
	ca, err := tlscert.LoadOrCreateCA(filepath.Join(dir, CAName), filepath.Join(dir, "tls", caKeyName), "")
	if err != nil {
		t.Fatal(err)
	}
	var only tlscert.Hosts
	if err := only.Add("localhost"); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if _, _, err := ca.ServerCert(filepath.Join(tmp, "c.pem"), filepath.Join(tmp, "k.pem"), only, time.Now()); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{"c.pem": serverCertName, "k.pem": serverKeyName} {
		if err := os.Rename(filepath.Join(tmp, from), filepath.Join(dir, "tls", to)); err != nil {
			t.Fatal(err)
		}
	}
	th = startHubIn(t, dir, tlsOn, func(c *configT) { c.TLSNames = "hub.example.org,203.0.113.5" })
	leaf := leafOf(th)
	want, err := tlscert.LocalHosts("hub.example.org", "203.0.113.5")
	if err != nil {
		t.Fatal(err)
	}
	if miss := want.MissingFrom(leaf); len(miss) > 0 {
		t.Errorf("after restart the certificate still lacks %v", miss)
	}
	if th.CAFingerprint() != fp {
		t.Error("the CA changed when the certificate was reissued")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "hub.example.org"}); err != nil {
		t.Errorf("the reissued certificate does not verify against the same CA: %v", err)
	}
	for _, name := range []string{filepath.Join(dir, "tls", caKeyName), filepath.Join(dir, "tls", serverKeyName)} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

func TestHSTSOnHTTPSOnly(t *testing.T) {
	t.Parallel()
	tlsHub := startHub(t, func(c *configT) { c.TLSSelfSigned = true })
	_, hdr := fetchCA(t, tlsHub)
	if got := hdr.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("HTTPS /ca.pem: Strict-Transport-Security %q", got)
	}
	for _, path := range []string{"/login", "/livez", "/api/v1/devices"} {
		resp, err := firstVisit().Get(tlsHub.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != hstsHeader {
			t.Errorf("HTTPS %s: Strict-Transport-Security %q, want %q", path, got, hstsHeader)
		}
	}

	plain := startHub(t)
	for _, path := range []string{"/login", "/livez", "/ca.pem"} {
		resp, err := http.Get(plain.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("plain HTTP %s: Strict-Transport-Security %q", path, got)
		}
		if path == "/ca.pem" && resp.StatusCode != http.StatusNotFound {
			t.Errorf("a hub without its own CA answers /ca.pem with %d", resp.StatusCode)
		}
	}
}

// The onboarding line points at the TLS port with the CA file when MQTT
// over TLS is on, and mosquitto_pub, run with exactly that line,
// publishes over TLS.
func TestOnboardingLineUsesTLS(t *testing.T) {
	th := startHub(t, func(c *configT) { c.TLSSelfSigned = true; c.MQTTTLSAddr = "127.0.0.1:0" })
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices", "", map[string]string{"name": "Kitchen", "type": "thermostat"})
	if code != http.StatusCreated {
		t.Fatalf("add device: %d %v", code, out)
	}
	id := out["device"].(map[string]any)["id"].(string)
	line := out["mosquitto_pub"].(string)
	_, tlsPort, _ := net.SplitHostPort(th.MQTTTLSAddr())
	_, plainPort, _ := net.SplitHostPort(th.MQTTAddr())
	caPath, _ := filepath.Abs(filepath.Join(th.dir, CAName))
	if !strings.Contains(line, " -p "+tlsPort+" --cafile '"+caPath+"' ") || strings.Contains(line, " -p "+plainPort+" ") {
		t.Fatalf("onboarding line with TLS on (TLS port %s, plain %s): %s", tlsPort, plainPort, line)
	}
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		testenv.Missing(t, "mosquitto_pub not installed (Debian package mosquitto-clients); the line was checked, not run")
	}
	if b, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", line, err, b)
	}
	if n := len(th.readings(id, "")); n != 1 {
		t.Errorf("stored %d readings from the onboarding line, want 1", n)
	}
}

func TestOnboardingLinePlainWhenOnlyPlain(t *testing.T) {
	th := startHub(t)
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices", "", map[string]string{"name": "Kitchen", "type": "thermostat"})
	if code != http.StatusCreated {
		t.Fatalf("add device: %d %v", code, out)
	}
	line := out["mosquitto_pub"].(string)
	_, port, _ := net.SplitHostPort(th.MQTTAddr())
	if !strings.Contains(line, " -p "+port+" -V mqttv5 ") || strings.Contains(line, "cafile") {
		t.Errorf("onboarding line with only plain MQTT: %s", line)
	}
}

// A demo hub with plain MQTT off runs its simulated devices over TLS,
// verifying the hub with its CA.
func TestDemoOverTLSOnly(t *testing.T) {
	th := startHub(t, func(c *configT) {
		c.MQTTAddr, c.MQTTTLSAddr, c.TLSSelfSigned, c.Demo, c.DemoSpeed = "", "127.0.0.1:0", true, true, 1000
	})
	waitFor(t, "a demo device connected over TLS", 20*time.Second, func() bool {
		code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
		if code != 200 {
			return false
		}
		list, _ := out["devices"].([]any)
		for _, d := range list {
			if m, _ := d.(map[string]any); m["connected"] == true {
				return true
			}
		}
		return false
	})
}

func TestNoMQTTListenerRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, shortTempDir(t))
	cfg.MQTTAddr = ""
	_, err := Start(context.Background(), cfg, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no MQTT listener") {
		t.Fatalf("start without any MQTT listener: %v", err)
	}
}
