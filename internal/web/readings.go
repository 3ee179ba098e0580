package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

const (
	tableRows   = 10  // readings per stream in the table
	chartPoints = 120 // readings per stream in the chart
)

// latest reads the readings the device page shows: up to chartPoints of
// each stream's latest, through history, which records the read.
// Without history the page shows none.
func (s *Server) latest(ctx context.Context, d store.Device, m *manifest.Manifest, open history.Open) (map[string][]store.Reading, error) {
	if s.cfg.History == nil {
		return nil, nil
	}
	streams := make([]string, 0, len(m.Streams))
	for _, st := range m.Streams {
		streams = append(streams, st.Name)
	}
	if open != nil {
		return s.cfg.History.LatestOpened(ctx, d, streams, chartPoints, "viewing history", open)
	}
	return s.cfg.History.Latest(ctx, d, streams, chartPoints, "viewing history")
}

// postOpenReadings shows the device page with its readings opened by the
// person's own age key (user-held mode). The key is used for this one
// answer and kept nowhere.
func (s *Server) postOpenReadings(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.ownDevice(r.Context(), v, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.KeyOpener == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	id, err := vault.ParseIdentity(strings.TrimSpace(r.PostFormValue("identity")))
	if err != nil {
		s.showDevice(w, r, v, d, http.StatusUnprocessableEntity, []formError{{Field: "open-identity",
			Message: "This is not an age secret key. It starts with AGE-SECRET-KEY-1."}})
		return
	}
	open := func(rs []store.Reading) error {
		return s.cfg.KeyOpener.OpenReadingsWithIdentity(d.KeyOwnerID(), d.ID, rs, id)
	}
	s.renderDevice(w, r, v, d, http.StatusOK, nil, open)
}

// streamData is what "See my data" shows for one stream.
type streamData struct {
	Name    string
	Title   string
	Columns []column
	Rows    []row // newest first
	Charts  []chartView
	Shown   int // readings in the table
}

type column struct {
	Name   string
	Header string
}

type row struct {
	Time   time.Time
	Values []string
}

// streamReadings builds the table and charts of one stream from its
// latest readings, oldest first.
func streamReadings(deviceID string, st *manifest.Stream, rs []store.Reading) streamData {
	sd := streamData{Name: st.Name, Title: st.Title}
	for _, f := range st.Fields {
		h := f.Name
		if f.Description != "" {
			h = upperFirst(f.Description)
		}
		if f.Unit != "" {
			h += " (" + f.Unit + ")"
		}
		sd.Columns = append(sd.Columns, column{Name: f.Name, Header: h})
	}
	decoded := make([]map[string]json.RawMessage, len(rs))
	for i, r := range rs {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r.Payload, &m); err == nil {
			decoded[i] = m
		}
	}
	for i := len(rs) - 1; i >= 0 && len(sd.Rows) < tableRows; i-- {
		rw := row{Time: rs[i].Time}
		for _, f := range st.Fields {
			rw.Values = append(rw.Values, valueWords(decoded[i][f.Name], f))
		}
		sd.Rows = append(sd.Rows, rw)
	}
	sd.Shown = len(sd.Rows)
	for _, f := range st.Fields {
		if f.Type != "number" && f.Type != "integer" {
			continue
		}
		var pts []point
		for i, r := range rs {
			raw, ok := decoded[i][f.Name]
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
			if err != nil {
				continue
			}
			pts = append(pts, point{T: r.Time, V: v})
		}
		if len(pts) == 0 {
			continue
		}
		name := f.Description
		if name == "" {
			name = f.Name
		}
		sd.Charts = append(sd.Charts, newChart(deviceID+"-"+st.Name+"-"+f.Name, st.Title, name, f.Unit, pts))
	}
	return sd
}

// valueWords shows one stored value: numbers as stored, true and false as
// yes and no, text as text; "–" when the reading has no such field.
func valueWords(raw json.RawMessage, f *manifest.Field) string {
	if len(raw) == 0 {
		return "–"
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "–"
	}
	switch x := v.(type) {
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case json.Number:
		return x.String()
	case string:
		return x
	case nil:
		return "–"
	}
	return string(raw)
}
