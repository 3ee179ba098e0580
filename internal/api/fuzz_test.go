package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzDecodeJSON feeds arbitrary request bodies to the API's JSON decoder:
// it must never panic, and every failure must be a bad-request error that
// says what was wrong.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"name":"Kitchen","type":"thermostat"}`,
		`{"name":"x","type":"thermostat","extra":1}`,
		`{"name":1}`, `{`, ``, `null`, `[]`, `{"name":"a"} {}`, "\xff\xfe", `{"secret":"` + strings.Repeat("a", 300) + `"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var in struct {
			Name      string `json:"name"`
			Type      string `json:"type"`
			Household string `json:"household,omitempty"`
			Secret    string `json:"secret,omitempty"`
		}
		r := httptest.NewRequest("POST", "/api/v1/devices", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		err := decodeJSON(httptest.NewRecorder(), r, &in)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("decode error is not a bad request: %v", err)
			}
			if !strings.Contains(err.Error(), "body") {
				t.Fatalf("decode error does not say where: %v", err)
			}
		}
	})
}

// FuzzReadingQuery checks the readings query parser with arbitrary query
// strings: no panic, and limits always within bounds when accepted.
func FuzzReadingQuery(f *testing.F) {
	for _, seed := range []string{
		"stream=temperature&limit=10", "since=2026-01-02T15:04:05Z&until=2026-01-03T00:00:00Z",
		"after=-1", "limit=0", "limit=99999", "since=yesterday", "since=0001-01-01T00:00:00Z", "since=9999-12-31T23:59:59Z",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := url.ParseQuery(raw); err != nil {
			return
		}
		r := &http.Request{URL: &url.URL{Path: "/x", RawQuery: raw}}
		q, err := readingQuery(r, "dev_x")
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("query error is not a bad request: %v", err)
			}
			return
		}
		if q.Limit < 0 || q.Limit > 10000 || q.AfterSeq < 0 {
			t.Fatalf("accepted out-of-range query: %+v", q)
		}
		for _, tm := range []struct {
			name string
			y    int
		}{{"since", q.Since.Year()}, {"until", q.Until.Year()}} {
			if tm.y != 1 && (tm.y < 1700 || tm.y > 2200) {
				t.Fatalf("%s accepted with year %d", tm.name, tm.y)
			}
		}
	})
}
