package config

import (
	"strings"
	"testing"
)

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"mqtt_addr": ":1883", "demo": true, "batch_max_rows": 10, "batch_max_wait": "1ms"}`))
	f.Add([]byte("{\n  \"log_level\": \"debug\",,\n}"))
	f.Add([]byte(`{"batch_max_rows": 1e400}`))
	f.Add([]byte(`{"unknown": {"nested": [1, 2, 3]}}`))
	f.Add([]byte("\ufeff{}"))
	f.Add([]byte(`{} trailing`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, err := parseFile("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		cfg := Default()
		src := map[string]string{}
		for key, v := range vals {
			s := lookupKey(key)
			if s == nil || s.noFile {
				t.Fatalf("parse accepted key %q", key)
			}
			if v.line < 1 {
				t.Fatalf("key %q on line %d", key, v.line)
			}
			_ = s.setJSON(&cfg, v.raw)
			src[s.name] = "fuzz.json: " + key
		}
		_ = cfg.validate(src)
	})
}
