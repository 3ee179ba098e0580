package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestAdvisoriesBlock(t *testing.T) {
	ts, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	with := func(block string) []byte {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(ts["thermostat"].Raw, &doc); err != nil {
			t.Fatal(err)
		}
		doc["candor:advisories"] = json.RawMessage(block)
		b, _ := json.Marshal(doc)
		return b
	}
	for _, tc := range []struct {
		name, block string
		wantPath    string // "" for valid
	}{
		{"csaf", `{"csafProviderMetadata":"https://maker.example/.well-known/csaf/provider-metadata.json"}`, ""},
		{"both", `{"csafProviderMetadata":"https://maker.example/.well-known/csaf/provider-metadata.json","osvFeed":"https://maker.example/osv/all.zip"}`, ""},
		{"plain http", `{"osvFeed":"http://maker.example/osv/all.zip"}`, "candor:advisories.osvFeed"},
		{"not provider metadata", `{"csafProviderMetadata":"https://maker.example/feed.json"}`, "candor:advisories.csafProviderMetadata"},
		{"empty", `{}`, "candor:advisories"},
		{"unknown member", `{"osvFeed":"https://maker.example/a.zip","rss":"https://x"}`, "candor:advisories"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse("thermostat.json", with(tc.block))
			if tc.wantPath == "" {
				if err != nil || m.Advisories == nil {
					t.Fatalf("Parse = %+v, %v", m, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(ve.Error(), tc.wantPath) {
				t.Fatalf("error %v, want a problem at %s", err, tc.wantPath)
			}
		})
	}
}
