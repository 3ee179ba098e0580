package apps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
)

// Commands. A device type's manifest may declare what can be sent to its
// devices: WoT Thing Model actions (their "input" schema) and properties
// that are not readOnly (the property's own schema). An app that a person
// allowed a command publishes it to
//
//	candor/<device-id>/command/<name>
//
// and, once the payload is checked against the declared schema, the
// device receives it on its control namespace,
//
//	candor/<device-id>/control/command/<name>
//
// Nothing undeclared, unallowed or outside the schema reaches a device.
// Each command sent is recorded in the transparency log (ids only).

// ActionCommand is the transparency-log action of a command sent to a
// device on an app's behalf.
const ActionCommand = "device.command"

// commandPrefix marks a command grant: a grant's stream is
// "command/<name>", which no reading stream can be (stream names have no
// '/').
const commandPrefix = "command/"

// CommandTopic is where an app sends a command to a device, and
// DeviceCommandTopic where the device receives it.
func CommandTopic(deviceID, name string) string {
	return TopicRoot + "/" + deviceID + "/command/" + name
}

// DeviceCommandTopic is the control topic a device receives a command on.
func DeviceCommandTopic(deviceID, name string) string {
	return TopicRoot + "/" + deviceID + "/control/command/" + name
}

// SplitCommandTopic splits candor/<device>/command/<name>.
func SplitCommandTopic(topic string) (device, name string, ok bool) {
	rest, found := strings.CutPrefix(topic, TopicRoot+"/")
	if !found {
		return "", "", false
	}
	device, name, found = strings.Cut(rest, "/command/")
	if !found || device == "" || strings.Contains(device, "/") || !validCommandName(name) {
		return "", "", false
	}
	return device, name, true
}

func validCommandName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// CommandSender hands a checked command to the broker for the device.
type CommandSender interface {
	SendCommand(deviceID, name string, payload []byte) error
}

// Errors of Command, which the broker turns into reason codes.
var (
	// ErrCommandNotAllowed: undeclared, or not allowed for this app.
	ErrCommandNotAllowed = errors.New("command not declared by the device's manifest or not allowed for this app")
	// ErrCommandInvalid: the payload does not match the declared schema.
	ErrCommandInvalid = errors.New("command payload does not match the schema its manifest declares")
)

// schemas caches compiled command schemas per manifest version.
type commandSchemas struct {
	mu sync.Mutex
	m  map[schemaKey]*jsonschema.Schema // nil value: declared nothing usable
}

type schemaKey struct {
	deviceType string
	version    int
	name       string
}

// Commands lists what a manifest lets be sent to a device, by name.
func Commands(e *catalog.Entry) map[string]json.RawMessage {
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Actions    map[string]struct {
			Input json.RawMessage `json:"input"`
		} `json:"actions"`
	}
	out := map[string]json.RawMessage{}
	if e == nil || e.Manifest == nil || json.Unmarshal(e.Manifest.Raw, &doc) != nil {
		return out
	}
	for name, raw := range doc.Properties {
		var p struct {
			ReadOnly *bool `json:"readOnly"`
		}
		// WoT: a property without readOnly is writable.
		if json.Unmarshal(raw, &p) == nil && (p.ReadOnly == nil || !*p.ReadOnly) && validCommandName(name) {
			out[name] = raw
		}
	}
	for name, a := range doc.Actions {
		if validCommandName(name) && len(a.Input) > 0 {
			out[name] = a.Input
		}
	}
	return out
}

// schemaFor compiles the declared schema of a command. Only a closed
// object schema (additionalProperties false) is usable: anything it does
// not name must not reach the device.
func (s *Service) schemaFor(e *catalog.Entry, name string) *jsonschema.Schema {
	k := schemaKey{e.Manifest.DeviceType, e.Version, name}
	s.schemas.mu.Lock()
	defer s.schemas.mu.Unlock()
	if sch, ok := s.schemas.m[k]; ok {
		return sch
	}
	var sch *jsonschema.Schema
	if raw, ok := Commands(e)[name]; ok {
		var closed struct {
			Type                 string `json:"type"`
			AdditionalProperties *bool  `json:"additionalProperties"`
		}
		if json.Unmarshal(raw, &closed) == nil && closed.Type == "object" && closed.AdditionalProperties != nil && !*closed.AdditionalProperties {
			if doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw)); err == nil {
				c := jsonschema.NewCompiler()
				if c.AddResource("command.json", doc) == nil {
					sch, _ = c.Compile("command.json")
				}
			}
		}
	}
	if s.schemas.m == nil {
		s.schemas.m = map[schemaKey]*jsonschema.Schema{}
	}
	s.schemas.m[k] = sch
	return sch
}

// Command checks a command an app sent and hands it to the device: the
// device must be of the app's household, the command declared by its
// manifest in force with a closed object schema, allowed for the app, and
// the payload valid against the schema. It is recorded in the
// transparency log before it is sent.
func (s *Service) Command(ctx context.Context, appID, deviceID, name string, payload []byte) error {
	if !s.mayCommand(appID, deviceID, name) {
		return ErrCommandNotAllowed
	}
	e, err := s.manifests.ForDevice(ctx, deviceID)
	if err != nil {
		return ErrCommandNotAllowed
	}
	sch := s.schemaFor(e, name)
	if sch == nil {
		return ErrCommandNotAllowed
	}
	if !validPayload(sch, payload) {
		return ErrCommandInvalid
	}
	t := s.table.Load()
	if err := s.record(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorRecipient, ID: appID}, Action: ActionCommand,
		Household: t.apps[appID].household, Subject: auditlog.Subject{Device: deviceID, Recipient: appID},
		Detail: map[string]string{"command": name}}); err != nil {
		return err
	}
	b := s.cmd.Load()
	if b == nil {
		return errors.New("apps: no broker to send commands through")
	}
	if err := b.c.SendCommand(deviceID, name, payload); err != nil {
		return fmt.Errorf("send command %s to device %s: %w", name, deviceID, err)
	}
	s.log.Info("command sent", "app", appID, "device", deviceID, "command", name)
	return nil
}

type senderBox struct{ c CommandSender }

// mayCommand reports whether a person allowed the app to send the command
// to the device.
func (s *Service) mayCommand(appID, deviceID, name string) bool {
	t := s.table.Load()
	if ai, ok := t.apps[appID]; !ok || ai.revoked {
		return false
	}
	return slices.Contains(t.allowed[streamKey{deviceID, commandPrefix + name}], appID)
}

// SetCommandSender connects the service to the broker for commands.
func (s *Service) SetCommandSender(c CommandSender) { s.cmd.Store(&senderBox{c}) }

// validPayload reports whether a command payload (outside input, from an
// app) is one JSON document that the declared schema accepts.
func validPayload(sch *jsonschema.Schema, payload []byte) bool {
	if !json.Valid(payload) {
		return false // also refuses trailing data after the document
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	return err == nil && sch.Validate(inst) == nil
}

// MayCommand reports whether a person let the app send the command to
// the device (for the pages).
func (s *Service) MayCommand(appID, deviceID, name string) bool {
	return s.mayCommand(appID, deviceID, name)
}

// CommandNames lists, sorted, the commands the manifest in force of a
// device declares that an app could be allowed: those with a closed
// object schema.
func (s *Service) CommandNames(ctx context.Context, deviceID string) []string {
	e, err := s.manifests.ForDevice(ctx, deviceID)
	if err != nil {
		return nil
	}
	var out []string
	for name := range Commands(e) {
		if s.schemaFor(e, name) != nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
