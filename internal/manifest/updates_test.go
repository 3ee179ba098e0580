package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// withUpdates returns the thermostat template with a candor:updates block.
func withUpdates(t *testing.T, block string) []byte {
	t.Helper()
	ts, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(ts["thermostat"].Raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["candor:updates"] = json.RawMessage(block)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUpdatesBlock(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	root := `{"signed":{"_type":"root","version":1},"signatures":[{"keyid":"k","sig":"s"}]}`
	for _, tc := range []struct {
		name, block string
		wantPaths   []string
	}{
		{"pinned by hash", `{"metadataUrl":"https://updates.example.com/tuf","targetPrefix":"thermostat/","trustedRootSha256":"` + sum + `"}`, nil},
		{"pinned root", `{"metadataUrl":"http://127.0.0.1:8080/tuf","targetPrefix":"acme/thermostat/","trustedRoot":` + root + `}`, nil},
		{"plain http elsewhere", `{"metadataUrl":"http://updates.example.com","targetPrefix":"thermostat/","trustedRootSha256":"` + sum + `"}`,
			[]string{"candor:updates.metadataUrl"}},
		{"no pin", `{"metadataUrl":"https://u.example.com","targetPrefix":"thermostat/"}`, []string{"candor:updates"}},
		{"both pins", `{"metadataUrl":"https://u.example.com","targetPrefix":"thermostat/","trustedRootSha256":"` + sum + `","trustedRoot":` + root + `}`,
			[]string{"candor:updates"}},
		{"bad prefix and hash", `{"metadataUrl":"https://u.example.com","targetPrefix":"../x","trustedRootSha256":"ABC"}`,
			[]string{"candor:updates.targetPrefix", "candor:updates.trustedRootSha256"}},
		{"not a root", `{"metadataUrl":"https://u.example.com","targetPrefix":"t/","trustedRoot":{"signed":{"_type":"targets"},"signatures":[]}}`,
			[]string{"candor:updates.trustedRoot"}},
		{"unknown member", `{"metadataUrl":"https://u.example.com","targetPrefix":"t/","trustedRootSha256":"` + sum + `","channel":"beta"}`,
			[]string{"candor:updates"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse("thermostat.json", withUpdates(t, tc.block))
			if tc.wantPaths == nil {
				if err != nil {
					t.Fatal(err)
				}
				if m.Updates == nil || m.Updates.TargetPrefix == "" {
					t.Fatalf("updates %+v", m.Updates)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			for _, want := range tc.wantPaths {
				found := false
				for _, p := range ve.Problems {
					found = found || p.Path == want
				}
				if !found {
					t.Errorf("no problem at %s in %v", want, ve)
				}
			}
		})
	}
}
