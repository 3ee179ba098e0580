package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestTopicHelpers(t *testing.T) {
	if got := ReadingTopic("dev_a", "temperature"); got != "candor/dev_a/temperature" {
		t.Errorf("ReadingTopic = %q", got)
	}
	if got := ControlTopic("dev_a", "temperature"); got != "candor/dev_a/control/temperature" {
		t.Errorf("ControlTopic = %q", got)
	}
	// The hub's own control topics are never something a device may
	// publish to.
	if _, ok := publishStream("dev_a", ControlTopic("dev_a", "temperature")); ok {
		t.Error("a device may publish to its control topic")
	}
	if _, ok := publishStream("dev_a", ReadingTopic("dev_a", "temperature")); !ok {
		t.Error("a device may not publish to its reading topic")
	}
}

func TestAllowedClientID(t *testing.T) {
	tests := []struct {
		clientID, deviceID string
		want               bool
	}{
		{"", "dev_a", true},          // the broker assigns one
		{"dev_a", "dev_a", true},     // the device id itself
		{"dev_a-1", "dev_a", true},   // "<device-id>-" prefix
		{"dev_a-", "dev_a", true},    // empty suffix is still inside
		{"dev_a-x-y", "dev_a", true}, // any suffix after the dash
		{"dev_b", "dev_a", false},    // another device's session
		{"dev_ab", "dev_a", false},   // prefix of another id is not enough
		{"dev_a_1", "dev_a", false},  // only "-" separates the suffix
		{"dev_a1", "dev_a", false},   // no separator at all
		{"xdev_a", "dev_a", false},   // must start with the id
		{"DEV_A", "dev_a", false},    // client ids are case-sensitive
		{"dev_b-dev_a", "dev_a", false},
		{"dev_", "dev_a", false}, // a prefix of the id
		{"-", "dev_a", false},
		{" dev_a", "dev_a", false},
		{"inline", "dev_a", false}, // mochi's inline client
	}
	for _, tc := range tests {
		if got := allowedClientID(tc.clientID, tc.deviceID); got != tc.want {
			t.Errorf("allowedClientID(%q, %q) = %v, want %v", tc.clientID, tc.deviceID, got, tc.want)
		}
	}
}

func TestPublishStream(t *testing.T) {
	tests := []struct {
		deviceID, topic string
		stream          string
		ok              bool
	}{
		{"dev_a", "candor/dev_a/temperature", "temperature", true},
		{"dev_a", "candor/dev_a/heart_rate_2", "heart_rate_2", true},
		{"dev_a", "candor/dev_a/" + strings.Repeat("s", 64), strings.Repeat("s", 64), true},
		{"dev_a", "candor/dev_a/" + strings.Repeat("s", 65), "", false},
		{"dev_a", "candor/dev_b/temperature", "", false},  // another device
		{"dev_a", "candor/dev_ab/temperature", "", false}, // id that extends ours
		{"dev_ab", "candor/dev_a/temperature", "", false}, // id that ours extends
		{"dev_a", "candor/dev_a/control", "", false},      // reserved for the hub
		{"dev_a", "candor/dev_a/control/temperature", "", false},
		{"dev_a", "candor/dev_a/a/b", "", false}, // nested levels
		{"dev_a", "candor/dev_a/", "", false},    // empty stream
		{"dev_a", "candor/dev_a", "", false},
		{"dev_a", "candor/dev_a/#", "", false},
		{"dev_a", "candor/dev_a/+", "", false},
		{"dev_a", "candor/+/temperature", "", false},
		{"dev_a", "candor/dev_a/Temperature", "", false}, // stream names are lower case
		{"dev_a", "candor/dev_a/temp-c", "", false},
		{"dev_a", "candor/dev_a/temp c", "", false},
		{"dev_a", "candor/dev_a/tempé", "", false},
		{"dev_a", "Candor/dev_a/temperature", "", false},
		{"dev_a", "/candor/dev_a/temperature", "", false},
		{"dev_a", "candor//dev_a/temperature", "", false},
		{"dev_a", "$SYS/broker/clients", "", false},
		{"dev_a", "elsewhere/topic", "", false},
		{"dev_a", "", "", false},                         // MQTT 5 alias-only publish, before resolution
		{"", "candor//temperature", "temperature", true}, // never reached: auth requires a username
		{"", "", "", false},
	}
	for _, tc := range tests {
		stream, ok := publishStream(tc.deviceID, tc.topic)
		if stream != tc.stream || ok != tc.ok {
			t.Errorf("publishStream(%q, %q) = %q, %v; want %q, %v", tc.deviceID, tc.topic, stream, ok, tc.stream, tc.ok)
		}
	}
}

func TestSubscribeAllowed(t *testing.T) {
	tests := []struct {
		deviceID, filter string
		want             bool
	}{
		{"dev_a", "candor/dev_a/temperature", true}, // own stream
		{"dev_a", "candor/dev_a/control/temperature", true},
		{"dev_a", "candor/dev_a/control/+", true},
		{"dev_a", "candor/dev_a/#", true},
		{"dev_a", "candor/dev_a/+", true},
		{"dev_a", "candor/dev_a/+/temperature", true}, // nested levels stay inside
		{"dev_a", "candor/dev_a/a/b/c", true},
		{"dev_a", "candor/dev_b/temperature", false}, // other device
		{"dev_a", "candor/dev_b/#", false},
		{"dev_a", "candor/dev_b/control/+", false},
		{"dev_a", "candor/dev_ab/x", false}, // prefix-of-other-id trick
		{"dev_a", "candor/dev_ab/#", false},
		{"dev_ab", "candor/dev_a/x", false},
		{"dev_a", "candor/dev_a", false}, // not inside the namespace
		{"dev_a", "candor/dev_a+", false},
		{"dev_a", "candor/dev_a#", false},
		{"dev_a", "#", false},
		{"dev_a", "+", false},
		{"dev_a", "+/dev_a/#", false},
		{"dev_a", "candor/#", false},
		{"dev_a", "candor/+", false},
		{"dev_a", "candor/+/#", false},
		{"dev_a", "candor/+/control/+", false},
		{"dev_a", "$share/g/candor/dev_a/x", false}, // shared subscriptions are refused
		{"dev_a", "$share/g/candor/dev_a/#", false},
		{"dev_a", "$share/g/#", false},
		{"dev_a", "$SHARE/g/candor/dev_b/x", false},
		{"dev_a", "$SYS/#", false},
		{"dev_a", "$SYS/broker/clients/connected", false},
		{"dev_a", "Candor/dev_a/#", false},
		{"dev_a", "/candor/dev_a/#", false},
		{"dev_a", "", false},
		{"", "", false},
		{"", "#", false},
	}
	for _, tc := range tests {
		if got := subscribeAllowed(tc.deviceID, tc.filter); got != tc.want {
			t.Errorf("subscribeAllowed(%q, %q) = %v, want %v", tc.deviceID, tc.filter, got, tc.want)
		}
	}
}

const secretPayload = "s3cret-payload-4242"

func redactedLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(redact{slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
}

func TestRedactTopLevelAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := redactedLogger(&buf)
	type packet struct{ Payload []byte }
	log.Debug("publish packet rejected",
		"packet", packet{Payload: []byte(secretPayload)},
		"payload", secretPayload,
		"pk", secretPayload,
		"will", secretPayload,
		"client", "dev_a")
	log.Info("failed", slog.Any("packet", &packet{Payload: []byte(secretPayload)}), slog.String("payload", secretPayload))
	out := buf.String()
	if strings.Contains(out, secretPayload) {
		t.Errorf("payload reached the log: %s", out)
	}
	if !strings.Contains(out, "packet=[redacted]") || !strings.Contains(out, "payload=[redacted]") {
		t.Errorf("redacted keys missing from the log: %s", out)
	}
	// Everything else is kept.
	if !strings.Contains(out, "client=dev_a") || !strings.Contains(out, "publish packet rejected") {
		t.Errorf("other attributes lost: %s", out)
	}
}

func TestRedactWithGroup(t *testing.T) {
	var buf bytes.Buffer
	log := redactedLogger(&buf).WithGroup("mqtt")
	log.Warn("error processing packet", "packet", []byte(secretPayload), "payload", secretPayload, "client", "dev_a")
	log.WithGroup("inner").Info("again", "payload", secretPayload)
	out := buf.String()
	if strings.Contains(out, secretPayload) {
		t.Errorf("payload reached the log through WithGroup: %s", out)
	}
	if !strings.Contains(out, "mqtt.client=dev_a") || !strings.Contains(out, "mqtt.packet=[redacted]") {
		t.Errorf("grouped attributes not as expected: %s", out)
	}
	// Level filtering still goes through the wrapped handler.
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("redact changed the wrapped handler's level")
	}
}

func TestRedactWithAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := redactedLogger(&buf)
	log.With("packet", []byte(secretPayload)).Info("m")
	log.WithGroup("g").With(slog.String("payload", secretPayload)).Info("m")
	if out := buf.String(); strings.Contains(out, secretPayload) {
		t.Errorf("payload reached the log through WithAttrs: %s", out)
	}
}

func TestRedactNestedGroupAttr(t *testing.T) {
	var buf bytes.Buffer
	log := redactedLogger(&buf)
	log.Info("m", slog.Group("publish", slog.String("payload", secretPayload)))
	if out := buf.String(); strings.Contains(out, secretPayload) {
		t.Errorf("payload reached the log through a group attribute: %s", out)
	}
}
