package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// benchDeviceType is the device type of the bench's devices. The hub
// accepts readings only from device types with a data manifest, so the
// bench declares one for its synthetic readings, like any maker would, and
// the manifest check is part of what is measured.
const benchDeviceType = "candor-bench"

// benchManifest is the data manifest of the bench devices: one stream per
// load phase, each declaring exactly the fields AppendPayload writes, no
// personal data, and a message rate high enough that full-speed load is
// what the device declares rather than a flagged anomaly.
//
// retention is each stream's (ISO 8601, "P1D" by default): with a
// prefilled history it covers the history's span, so the hub may keep
// what was prefilled, as a hub keeps history younger than its retention.
func benchManifest(payloadBytes int, streams []string, retention string) ([]byte, error) {
	num := func(kind, unit, desc string, lo, hi float64) map[string]any {
		return map[string]any{"type": kind, "unit": unit, "description": desc, "minimum": lo, "maximum": hi}
	}
	fields := map[string]any{
		"t":         num("integer", "nanosecond", "send time, Unix nanoseconds", 0, 9e18),
		"seq":       num("integer", "count", "sequence number of the reading", 0, 9e15),
		"celsius":   num("number", "degree Celsius", "synthetic temperature", -50, 100),
		"humidity":  num("number", "percent", "synthetic relative humidity", 0, 100),
		"battery_v": num("number", "volt", "synthetic battery voltage", 0, 10),
		"pad":       map[string]any{"type": "string", "maxLength": maxPayload, "description": "padding to the chosen reading size"},
	}
	props := map[string]any{}
	for _, st := range streams {
		props[st] = map[string]any{
			"title":                fmt.Sprintf("Benchmark readings (%s)", st),
			"description":          "Synthetic readings sent at full speed by candor bench.",
			"type":                 "object",
			"properties":           fields,
			"required":             []string{"t", "seq"},
			"additionalProperties": false,
			"readOnly":             true,
			"observable":           true,
			"forms": []map[string]any{{
				"href": "mqtt://{{HUB}}", "mqv:topic": "candor/{{DEVICE_ID}}/" + st, "op": "observeproperty",
			}},
			"dpv:hasPersonalData": []string{},
			"dpv:hasPurpose": []map[string]any{{
				"@id": "dpv:ServiceProvision", "candor:essential": true,
				"description": "to measure how fast the hub checks, stores and acknowledges readings",
			}},
			"candor:use":                  "Counted and read back by the benchmark, then deleted with its temporary hub.",
			"candor:automatedDecisions":   false,
			"candor:machineLearning":      false,
			"candor:retention":            retention,
			"candor:continuous":           true,
			"candor:maxMessagesPerMinute": 1e9,
			"candor:maxPayloadBytes":      max(payloadBytes, 1024),
		}
	}
	doc := map[string]any{
		"@context": []any{
			"https://www.w3.org/2022/wot/td/v1.1",
			map[string]string{
				"dpv":    "https://w3id.org/dpv#",
				"pd":     "https://w3id.org/dpv/pd#",
				"candor": "https://w3id.org/candor#",
				"mqv":    "http://www.example.org/mqtt-binding#",
			},
		},
		"@type":             "tm:ThingModel",
		"title":             "Candor benchmark device",
		"description":       "A simulated device of candor bench that sends synthetic sensor readings as fast as the hub takes them.",
		"version":           map[string]string{"model": "1.0.0"},
		"candor:deviceType": benchDeviceType,
		"candor:maker": map[string]string{
			"name": "Candor benchmark", "url": "https://github.com/candor-iot/candor", "contact": "mailto:bench@candor.invalid",
		},
		"candor:support": map[string]string{
			"contact":                 "mailto:bench@candor.invalid",
			"securityUpdatesUntil":    "2035-12-31",
			"vulnerabilityDisclosure": "mailto:security@candor.invalid",
			"updateMechanism":         "none: it exists only for the length of a benchmark run",
		},
		"candor:canStopStreams": true,
		"properties":            props,
	}
	return json.Marshal(doc)
}

// putManifest stores the bench devices' manifest in the hub, through the
// control socket (as the hub operator). A hub without manifests (a build
// that predates them) answers 404, which is not an error: it then accepts any
// JSON-object reading.
func (h *hubProc) putManifest(ctx context.Context, doc []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://candor/api/v1/manifests", bytes.NewReader(doc))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("store the bench manifest: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	case resp.StatusCode >= 300:
		return false, fmt.Errorf("store the bench manifest: hub answered %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return true, nil
}
