package sim

import (
	"testing"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/manifest/importer"
)

// What the simulated Zigbee2MQTT publishes passes the manifest the
// importer drafts from its own definitions, property by property, as the
// hub's bridge checks it: the demo's Zigbee devices refuse nothing.
func TestZigbeeMessagesFitTheirImportedManifests(t *testing.T) {
	st := &zigbeeState{plugOn: map[string]bool{"plug": true}, energy: map[string]float64{}, battery: map[string]float64{}}
	for _, model := range []string{ZigbeeMotion, ZigbeePlug} {
		t.Run(model, func(t *testing.T) {
			draft, err := importer.FromZigbee2MQTT("demo-zigbee-"+model, ZigbeeDefinition(model))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := importer.Confirm(draft)
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse(model, doc)
			if err != nil {
				t.Fatal(err)
			}
			c := manifest.Compile(m)
			for i := 0; i < 50; i++ {
				msg := st.message(ZigbeeDevice{FriendlyName: model, Model: model})
				parts, err := importer.SplitZigbee2MQTT(msg)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range parts {
					if _, v := c.Check(p.Stream, p.Payload, false); v != nil {
						t.Fatalf("%s: %s refused: %v", msg, p.Payload, v)
					}
				}
			}
		})
	}
	if ZigbeeDefinition("toaster") != nil {
		t.Error("a definition for an unknown model")
	}
}
