package updates

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/candor-iot/candor/internal/auditlog"
)

// mochiPublisher publishes the service's offer as the hub does on a
// change, through the broker's inline client, not retained.
type mochiPublisher struct {
	srv *mqtt.Server
	svc *Service
}

func (p *mochiPublisher) OfferChanged(deviceID string) {
	_ = p.srv.Publish(OfferTopic(deviceID), p.svc.Offer(deviceID), false, 1)
}

// allowHook lets every client in: this broker stands in for the hub's,
// whose authentication has its own tests; here the device's credential
// matters for the file download.
type allowHook struct{ mqtt.HookBase }

func (allowHook) ID() string { return "allow" }
func (allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (allowHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (allowHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

const deviceSecret = "s3cret-of-dev_thermo1"

// TestUpdateOfferedDownloadedVerifiedInstalled runs the whole flow with
// real parts: a TUF repository generated here and served over HTTP, an
// MQTT broker and a device speaking MQTT 5 with paho, the hub's file
// endpoint over HTTP, and a transparency log on disk.
func TestUpdateOfferedDownloadedVerifiedInstalled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	r := newTestRepo(t)
	r.add(t, "thermostat", "1.2.0", true, "CVE-2026-0001")
	pinnedRoot, err := os.ReadFile(filepath.Join(r.PublicDir(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}

	key, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	log, err := auditlog.Open(ctx, filepath.Join(t.TempDir(), "log"), key, auditlog.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	rec := &recorder{log: log, notify: make(chan auditlog.Event, 16)}

	broker := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	if err := broker.AddHook(new(allowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := broker.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	go func() { _ = broker.Serve() }()
	t.Cleanup(func() { broker.Close() })

	dev := Device{ID: "dev_thermo1", Household: "hh_1", Type: "thermostat"}
	ver := &versions{m: map[string]string{dev.ID: "1.1.0"}}
	mux := http.NewServeMux()
	hub := httptest.NewServer(mux)
	t.Cleanup(hub.Close)
	pub := &mochiPublisher{srv: broker}
	svc, err := New(Config{Dir: t.TempDir(), BaseURL: func() string { return hub.URL }, Versions: ver, Recorder: rec,
		Announce: pub, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	pub.svc = svc
	if err := svc.SetSource("thermostat", Source{MetadataURL: r.url, TargetPrefix: "thermostat/", TrustedRoot: pinnedRoot}); err != nil {
		t.Fatal(err)
	}
	mux.Handle(FilePattern, svc.FileHandler(AuthFunc(func(_ context.Context, _, id, secret string) error {
		if secret != "s3cret-of-"+id {
			return errors.New("wrong secret")
		}
		return nil
	})))
	progressErrs := make(chan error, 8)
	if err := broker.Subscribe("candor/+/"+ProgressSuffix, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		id := strings.Split(pk.TopicName, "/")[1]
		progressErrs <- svc.HandleProgress(ctx, Device{ID: id, Household: "hh_1", Type: "thermostat"}, pk.Payload)
	}); err != nil {
		t.Fatal(err)
	}

	// The device: connects, subscribes to its offer topic, and on an offer
	// checks the maker's signed targets metadata against the root it
	// shipped with, downloads the image with its own credential, checks
	// length and hash, and reports each stage.
	offers := make(chan []byte, 1)
	conn, err := net.Dial("tcp", tcp.Address())
	if err != nil {
		t.Fatal(err)
	}
	device := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: dev.ID,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if len(pr.Packet.Payload) > 0 {
				offers <- pr.Packet.Payload
			}
			return true, nil
		}}})
	if _, err := device.Connect(ctx, &paho.Connect{KeepAlive: 30, ClientID: dev.ID, CleanStart: true,
		Username: dev.ID, UsernameFlag: true, Password: []byte(deviceSecret), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = device.Disconnect(&paho.Disconnect{}) })
	if _, err := device.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: OfferTopic(dev.ID), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	st, err := svc.Check(ctx, dev)
	if err != nil || st.Stage != StatusOffered {
		t.Fatalf("check: %+v, %v", st, err)
	}
	if ev := <-rec.notify; ev.Action != auditlog.ActionUpdateOffer || ev.Detail["version"] != "1.2.0" {
		t.Fatalf("first event %+v", ev)
	}

	var offer offerMessage
	if err := json.Unmarshal(<-offers, &offer); err != nil {
		t.Fatal(err)
	}
	report := func(stage string) {
		t.Helper()
		if _, err := device.Publish(ctx, &paho.Publish{Topic: ProgressTopic(dev.ID), QoS: 1,
			Payload: []byte(`{"version":"` + offer.Version + `","stage":"` + stage + `"}`)}); err != nil {
			t.Fatal(err)
		}
		if err := <-progressErrs; err != nil {
			t.Fatalf("hub took %s: %v", stage, err)
		}
	}
	trustedRoot, err := metadata.Root().FromBytes(pinnedRoot)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := metadata.Targets().FromBytes(offer.Targets)
	if err != nil {
		t.Fatal(err)
	}
	if err := trustedRoot.VerifyDelegate(metadata.TARGETS, targets); err != nil {
		t.Fatalf("device could not verify the maker's targets metadata: %v", err)
	}
	signed := targets.Signed.Targets[offer.Path]
	if signed == nil || hex.EncodeToString(signed.Hashes["sha256"]) != offer.SHA256 || signed.Length != offer.Length {
		t.Fatalf("the offer does not match the signed metadata: %+v", offer)
	}

	report("downloading")
	get := func(id, secret string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, offer.URL, nil)
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, _ := get(dev.ID, "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %s", resp.Status)
	}
	if resp, _ := get("dev_other", "s3cret-of-dev_other"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another device: %s", resp.Status)
	}
	resp, image := get(dev.ID, deviceSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %s", resp.Status)
	}
	sum := sha256.Sum256(image)
	if int64(len(image)) != offer.Length || hex.EncodeToString(sum[:]) != offer.SHA256 || !bytes.Equal(image, firmware("thermostat", "1.2.0")) {
		t.Fatalf("downloaded image does not match the offer")
	}
	report("verified")
	report("installing")
	ver.set(dev.ID, "1.2.0")
	report("installed")

	if ev := <-rec.notify; ev.Action != auditlog.ActionUpdateInstall || ev.Actor.ID != dev.ID {
		t.Fatalf("install event %+v", ev)
	}
	st, _ = svc.Status(dev.ID)
	if st.Stage != string(StageInstalled) || st.Installed != "1.2.0" {
		t.Fatalf("state after install %+v", st)
	}
	// The offer is withdrawn, and the file is no longer served.
	if resp, _ := get(dev.ID, deviceSecret); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("download after install: %s", resp.Status)
	}
	if st, err := svc.Check(ctx, dev); err != nil || st.Stage != StatusUpToDate {
		t.Fatalf("check after install: %+v, %v", st, err)
	}
	var actions []string
	for e, err := range log.Entries(ctx, 0, log.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Event.Action)
	}
	if fmt.Sprint(actions) != "[update.offer update.install]" {
		t.Fatalf("transparency log %v", actions)
	}
}
