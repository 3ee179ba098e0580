package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/senml"
	"github.com/candor-iot/candor/internal/store"
)

// plan is everything decided before the first byte is written: which files
// there will be (README.txt lists them all) and the columns of each table.
type plan struct {
	devices   []*devicePlan
	manifests []*manifestFile // by type, then version
	consent   []byte          // consent/records.json
	audit     io.ReadCloser   // nil: no audit file
	total     int64           // readings in all, -1 when unknown
}

type manifestFile struct {
	typ     string
	version int
	path    string
	raw     []byte
	streams map[string][]fieldDecl // from a lenient read of raw
}

// fieldDecl is one field a manifest declares for a stream.
type fieldDecl struct {
	name, typ, unit string
}

type devicePlan struct {
	Device
	streams []*streamPlan
}

type streamPlan struct {
	name      string
	csvPath   string
	senmlPath string
	columns   []column
	colIndex  map[string]int
	// units maps a manifest version to the units of the stream's fields
	// in that version, as the manifest words them.
	units map[int]map[string]string
	// secondary: some unit needs SenML's secondary units (kWh).
	secondary bool
	// senmlOK: the device id and stream name make valid SenML names.
	senmlOK bool
}

// column is one value column of a CSV file.
type column struct {
	field     string // payload member name
	header    string // column title
	typ       string // as declared by the newest manifest version declaring it
	unit      string
	senmlUnit string
}

// Fixed CSV columns. A declared field with one of these names gets the
// header "field:<name>" instead (':' never occurs in manifest field names).
var fixedColumns = []string{"time", "seq", "manifest_version"}

const otherColumn = "other_fields"

func makePlan(ctx context.Context, src Source, now time.Time) (*plan, error) {
	p := &plan{}
	devs, err := src.Devices(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: list devices: %w", err)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })

	manifests := map[string]*manifestFile{}
	known := true
	for i, d := range devs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if i > 0 && d.ID == devs[i-1].ID {
			continue // listed twice: export it once
		}
		dp := &devicePlan{Device: d}
		versions := append([]int(nil), d.ManifestVersions...)
		sort.Ints(versions)
		var mfs []*manifestFile
		for _, v := range versions {
			key := d.Type + "\x00" + strconv.Itoa(v)
			mf := manifests[key]
			if mf == nil {
				raw, err := src.Manifest(ctx, d.Type, v)
				if err != nil {
					return nil, fmt.Errorf("export: manifest %s version %d: %w", d.Type, v, err)
				}
				mf = &manifestFile{typ: d.Type, version: v, raw: raw, streams: readManifest(raw),
					path: "manifests/" + pathSegment(d.Type) + "-v" + strconv.Itoa(v) + ".json"}
				manifests[key] = mf
				p.manifests = append(p.manifests, mf)
			}
			mfs = append(mfs, mf)
		}

		streams := d.Streams
		switch {
		case streams == nil:
			counts, err := streamCounts(ctx, src, d.ID, now)
			if err != nil {
				return nil, err
			}
			for s, n := range counts {
				streams = append(streams, s)
				p.total += n
			}
		case len(streams) > 0 && d.Readings <= 0:
			known = false
		default:
			p.total += d.Readings
		}
		streams = append([]string(nil), streams...)
		sort.Strings(streams)
		for i, s := range streams {
			if i > 0 && s == streams[i-1] {
				continue
			}
			dp.streams = append(dp.streams, planStream(d.ID, s, mfs))
		}
		p.devices = append(p.devices, dp)
	}
	if !known {
		p.total = -1
	}
	sort.Slice(p.manifests, func(i, j int) bool {
		a, b := p.manifests[i], p.manifests[j]
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		return a.version < b.version
	})

	docs, err := src.ConsentRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: consent records: %w", err)
	}
	p.consent = []byte("[")
	for i, doc := range docs {
		if !json.Valid(doc) {
			return nil, fmt.Errorf("export: consent record %d is not valid JSON", i)
		}
		if i > 0 {
			p.consent = append(p.consent, ',')
		}
		p.consent = append(p.consent, "\n"...)
		p.consent = append(p.consent, doc...)
	}
	if len(docs) > 0 {
		p.consent = append(p.consent, '\n')
	}
	p.consent = append(p.consent, "]\n"...)

	audit, err := src.AuditLog(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: audit log: %w", err)
	}
	p.audit = audit
	return p, nil
}

// streamCounts counts the device's readings up to now per stream, with
// the Source's StreamCounts if it has one, else by reading them all.
func streamCounts(ctx context.Context, src Source, deviceID string, now time.Time) (map[string]int64, error) {
	sc, ok := src.(StreamCounter)
	if !ok {
		return discover(ctx, src, deviceID, now)
	}
	// Up to and including now: until is exclusive, stored times are
	// nanoseconds.
	counts, err := sc.StreamCounts(ctx, deviceID, now.Add(time.Nanosecond))
	if errors.Is(err, errors.ErrUnsupported) {
		return discover(ctx, src, deviceID, now)
	}
	if err != nil {
		return nil, fmt.Errorf("export: count readings of %s: %w", deviceID, err)
	}
	return counts, nil
}

// discover pages through all readings of a device once and counts them per
// stream (up to now).
func discover(ctx context.Context, src Source, deviceID string, now time.Time) (map[string]int64, error) {
	counts := map[string]int64{}
	var after int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		page, err := src.Readings(ctx, deviceID, "", after, PageSize)
		if err != nil {
			return nil, fmt.Errorf("export: readings of %s: %w", deviceID, err)
		}
		if len(page) == 0 {
			return counts, nil
		}
		for i := range page {
			r := &page[i]
			if err := checkReading(r, deviceID, "", after); err != nil {
				return nil, err
			}
			after = r.Seq
			if !r.Time.After(now) {
				counts[r.Stream]++
			}
		}
	}
}

// checkReading guards against a Source that ignores its arguments, which
// would otherwise loop forever or mix up devices.
func checkReading(r *store.Reading, deviceID, stream string, after int64) error {
	switch {
	case r.DeviceID != deviceID:
		return fmt.Errorf("export: source returned a reading of device %q when asked for %q", r.DeviceID, deviceID)
	case stream != "" && r.Stream != stream:
		return fmt.Errorf("export: source returned a reading of stream %q when asked for %q", r.Stream, stream)
	case r.Seq <= after:
		return fmt.Errorf("export: source returned readings of %s out of order (seq %d after %d)", deviceID, r.Seq, after)
	}
	return nil
}

func planStream(deviceID, name string, mfs []*manifestFile) *streamPlan {
	dir := "readings/" + pathSegment(deviceID) + "/" + pathSegment(name)
	s := &streamPlan{
		name: name, csvPath: dir + ".csv", senmlPath: dir + ".senml.json",
		colIndex: map[string]int{}, units: map[int]map[string]string{},
		senmlOK: senml.ValidName(senml.BaseName(deviceID)+name+":x") == nil,
	}
	// Newest version first, so a column takes the newest type and unit.
	for i := len(mfs) - 1; i >= 0; i-- {
		mf := mfs[i]
		units := map[string]string{}
		for _, f := range mf.streams[name] {
			units[f.name] = f.unit
			sym := senml.UnitFor(f.unit, name+":"+f.name)
			if senml.IsSecondaryUnit(sym) {
				s.secondary = true
			}
			if _, ok := s.colIndex[f.name]; ok {
				continue
			}
			s.colIndex[f.name] = -1
			s.columns = append(s.columns, column{field: f.name, header: f.name, typ: f.typ, unit: f.unit, senmlUnit: sym})
		}
		s.units[mf.version] = units
	}
	sort.Slice(s.columns, func(i, j int) bool { return s.columns[i].field < s.columns[j].field })
	for i := range s.columns {
		c := &s.columns[i]
		s.colIndex[c.field] = i
		c.header = guardFormula(c.field) // names from old manifests are not checked
		for _, fixed := range append(fixedColumns, otherColumn) {
			if c.field == fixed {
				c.header = "field:" + c.field
			}
		}
	}
	return s
}

// readManifest reads the streams and fields of a manifest document
// leniently: a Thing Model's properties carry their fields under
// "properties", its events under "data"."properties" (as package manifest
// reads them). It does not validate: an old version must export even if
// today's rules would refuse it. What it cannot read yields no columns;
// those values then land in other_fields.
func readManifest(raw []byte) map[string][]fieldDecl {
	type fieldDoc struct {
		Type string `json:"type"`
		Unit string `json:"unit"`
	}
	type schemaDoc struct {
		Properties map[string]fieldDoc `json:"properties"`
	}
	type affordance struct {
		schemaDoc
		Data *schemaDoc `json:"data"`
	}
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Events     map[string]json.RawMessage `json:"events"`
	}
	out := map[string][]fieldDecl{}
	if json.Unmarshal(raw, &doc) != nil {
		return out
	}
	add := func(group map[string]json.RawMessage, event bool) {
		for name, body := range group {
			var a affordance
			if json.Unmarshal(body, &a) != nil {
				continue
			}
			fields := a.Properties
			if event {
				if a.Data == nil {
					continue
				}
				fields = a.Data.Properties
			}
			for fname, f := range fields {
				out[name] = append(out[name], fieldDecl{name: fname, typ: f.Type, unit: f.Unit})
			}
			sort.Slice(out[name], func(i, j int) bool { return out[name][i].name < out[name][j].name })
		}
	}
	add(doc.Properties, false)
	add(doc.Events, true)
	return out
}

// pathSegment makes s safe as one path segment inside the archive: bytes
// other than A-Z a-z 0-9 _ - and '.' (not leading) become %XX. Candor's
// ids, types and stream names never need it; it guards the archive against
// names from elsewhere ("..", "/", control characters).
func pathSegment(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	if b.Len() == 0 {
		return "%"
	}
	return b.String()
}

// devicesDoc is the content of devices.json.
func (p *plan) devicesDoc() any {
	type columnDoc struct {
		Name      string `json:"name"`
		Column    string `json:"column"`
		Type      string `json:"type,omitempty"`
		Unit      string `json:"unit,omitempty"`
		SenMLUnit string `json:"senml_unit,omitempty"`
	}
	type streamDoc struct {
		Name    string      `json:"name"`
		CSV     string      `json:"csv"`
		SenML   string      `json:"senml"`
		Columns []columnDoc `json:"columns"`
	}
	type deviceDoc struct {
		ID               string      `json:"id"`
		Name             string      `json:"name"`
		Type             string      `json:"type"`
		ManifestVersions []int       `json:"manifest_versions"`
		Manifests        []string    `json:"manifests"`
		Streams          []streamDoc `json:"streams"`
	}
	out := struct {
		Devices []deviceDoc `json:"devices"`
	}{Devices: []deviceDoc{}}
	for _, d := range p.devices {
		dd := deviceDoc{ID: d.ID, Name: d.Name, Type: d.Type, ManifestVersions: []int{}, Manifests: []string{}, Streams: []streamDoc{}}
		versions := append([]int(nil), d.ManifestVersions...)
		sort.Ints(versions)
		for i, v := range versions {
			if i > 0 && v == versions[i-1] {
				continue
			}
			dd.ManifestVersions = append(dd.ManifestVersions, v)
			dd.Manifests = append(dd.Manifests, "manifests/"+pathSegment(d.Type)+"-v"+strconv.Itoa(v)+".json")
		}
		for _, s := range d.streams {
			sd := streamDoc{Name: s.name, CSV: s.csvPath, SenML: s.senmlPath, Columns: []columnDoc{}}
			for _, c := range s.columns {
				sd.Columns = append(sd.Columns, columnDoc{Name: c.field, Column: c.header, Type: c.typ, Unit: c.unit, SenMLUnit: c.senmlUnit})
			}
			dd.Streams = append(dd.Streams, sd)
		}
		out.Devices = append(out.Devices, dd)
	}
	return out
}
