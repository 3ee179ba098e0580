package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

const (
	tableRows   = 10   // readings per stream in the table
	chartPoints = 120  // readings per stream in the chart
	readPage    = 1000 // readings per store query
	maxPages    = 20   // at most this many rows are read per stream and window
)

// recentWindows are the time spans searched, smallest first, for a
// stream's latest readings: the store returns readings oldest first, so
// the newest are found by narrowing the time instead of reading them all.
var recentWindows = []time.Duration{
	15 * time.Minute, 2 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 60 * 24 * time.Hour, 0,
}

// recent returns up to want of a stream's latest readings, oldest first.
func (s *Server) recent(ctx context.Context, deviceID, stream string, want int) ([]store.Reading, error) {
	now := s.now()
	var kept []store.Reading
	for _, w := range recentWindows {
		q := store.ReadingQuery{DeviceID: deviceID, Stream: stream, Limit: s.readPage}
		if w > 0 {
			q.Since = now.Add(-w)
		}
		kept = kept[:0]
		for range maxPages {
			batch, err := s.st.Readings(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("readings of %s/%s: %w", deviceID, stream, err)
			}
			kept = append(kept, batch...)
			if len(kept) > want {
				kept = append(kept[:0], kept[len(kept)-want:]...)
			}
			if len(batch) < s.readPage {
				break
			}
			q.AfterSeq = batch[len(batch)-1].Seq
		}
		if len(kept) >= want {
			break
		}
	}
	return kept, nil
}

// streamData is what "See my data" shows for one stream.
type streamData struct {
	Name    string
	Title   string
	Columns []column
	Rows    []row // newest first
	Charts  []chartView
	Shown   int // readings in the table
	Read    int // readings read for the table and the charts
}

type column struct {
	Name   string
	Header string
}

type row struct {
	Time   time.Time
	Values []string
}

// streamReadings builds the table and charts of one stream.
func (s *Server) streamReadings(ctx context.Context, deviceID string, st *manifest.Stream) (streamData, error) {
	rs, err := s.recent(ctx, deviceID, st.Name, chartPoints)
	if err != nil {
		return streamData{}, err
	}
	sd := streamData{Name: st.Name, Title: st.Title, Read: len(rs)}
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
	return sd, nil
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
