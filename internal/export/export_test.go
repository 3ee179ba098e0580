package export

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/senml"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
	"github.com/candor-iot/candor/internal/testsupport/senmldecode"
)

// fakeSource keeps everything in memory. Export is the unit under test;
// the Source is what the API layer will supply.
type fakeSource struct {
	devices   []Device
	manifests map[string][]byte // "<type>/<version>"
	readings  map[string][]store.Reading
	consent   [][]byte
	audit     []byte
	pages     int
	failPage  int // Readings fails on this call (1-based); 0: never
}

func (f *fakeSource) Devices(context.Context) ([]Device, error) { return f.devices, nil }

func (f *fakeSource) Manifest(_ context.Context, typ string, v int) ([]byte, error) {
	b, ok := f.manifests[typ+"/"+strconv.Itoa(v)]
	if !ok {
		return nil, store.ErrNotFound
	}
	return b, nil
}

func (f *fakeSource) Readings(ctx context.Context, dev, stream string, after int64, limit int) ([]store.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.pages++
	if f.pages == f.failPage {
		return nil, errors.New("database is locked")
	}
	all := f.readings[dev]
	i := sort.Search(len(all), func(i int) bool { return all[i].Seq > after })
	var out []store.Reading
	for ; i < len(all) && len(out) < limit; i++ {
		if stream == "" || all[i].Stream == stream {
			out = append(out, all[i])
		}
	}
	return out, nil
}

func (f *fakeSource) ConsentRecords(context.Context) ([][]byte, error) { return f.consent, nil }

func (f *fakeSource) AuditLog(context.Context) (io.ReadCloser, error) {
	if f.audit == nil {
		return nil, nil
	}
	return io.NopCloser(bytes.NewReader(f.audit)), nil
}

func template(t testing.TB, typ string) map[string]any {
	t.Helper()
	ts, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(ts[typ].Raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	exportTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	firstTime  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const perStream = 5000

// roundTripSource: three devices with two streams each, 5000 readings per
// stream, with numbers, booleans and text, readings from before the device
// had a manifest, two manifest versions, a secondary unit (kWh), text that
// needs CSV quoting or a formula guard, and readings after the export time
// (which must be left out).
func roundTripSource(t testing.TB) *fakeSource {
	thermo1 := template(t, "thermostat")
	thermo2 := template(t, "thermostat")
	temp := thermo2["properties"].(map[string]any)["temperature"].(map[string]any)["properties"].(map[string]any)
	temp["feels_like"] = map[string]any{"type": "number", "unit": "degree Celsius", "minimum": -30, "maximum": 60, "description": "felt temperature"}
	thermo2["version"] = map[string]any{"model": "1.1.0"}

	f := &fakeSource{
		manifests: map[string][]byte{
			"thermostat/1":    mustJSON(t, thermo1),
			"thermostat/2":    mustJSON(t, thermo2),
			"motion-camera/1": mustJSON(t, template(t, "motion-camera")),
			"smart-meter/1":   mustJSON(t, template(t, "smart-meter")),
		},
		readings: map[string][]store.Reading{},
		consent:  [][]byte{[]byte(`{"stream":"temperature","purpose":"dpv:ServiceOptimisation","given":true}`), []byte(`{"stream":"motion","given":false}`)},
		audit:    []byte("{\"kind\":\"header\",\"format\":\"candor-auditlog-export/1\"}\n{\"kind\":\"end\",\"entries\":0}\n"),
	}
	f.devices = []Device{
		{ID: "dev_thermostat01", Name: "Kitchen\nthermostat", Type: "thermostat", ManifestVersions: []int{2, 1}},
		{ID: "dev_camera000001", Name: "Front door", Type: "motion-camera", ManifestVersions: []int{1},
			Streams: []string{"status", "motion"}, Readings: 2 * perStream},
		{ID: "dev_meter0000001", Name: "", Type: "smart-meter", ManifestVersions: []int{1}},
	}
	zones := []string{"hall", "garden", `front, "left"`, "=HYPERLINK(\"http://x\")", "-1", "line\nbreak", "caf\u00e9"}
	add := func(dev, stream string, gen func(i int) (string, int)) {
		rs := f.readings[dev]
		for i := 0; i < perStream; i++ {
			payload, version := gen(i)
			seq := int64(len(rs) + 1)
			at := firstTime.Add(time.Duration(seq)*1500*time.Millisecond + time.Duration(i%1000)*time.Microsecond + 7)
			rs = append(rs, store.Reading{Seq: seq, DeviceID: dev, Stream: stream, Time: at, Payload: []byte(payload), ManifestVersion: version})
		}
		f.readings[dev] = rs
	}
	interleave := func(dev string) {
		rs := f.readings[dev]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Time.Before(rs[j].Time) })
		for i := range rs {
			rs[i].Seq = int64(i + 1)
		}
	}
	add("dev_thermostat01", "temperature", func(i int) (string, int) {
		switch {
		case i < 100: // before the device had a manifest
			return fmt.Sprintf(`{"celsius": %d.25, "legacy_note": "=1+1", "raw": {"a": [1, 2]}}`, 15+i%10), 0
		case i < 3000:
			return fmt.Sprintf(`{"celsius":%g,"humidity_percent":%d}`, 18+float64(i%70)/10, 30+i%50), 1
		}
		return fmt.Sprintf(`{"celsius":%g,"feels_like":%g,"humidity_percent":%d}`, -2.5+float64(i%300)/10, 1e-3*float64(i), 40), 2
	})
	add("dev_thermostat01", "heating", func(i int) (string, int) {
		return fmt.Sprintf(`{"on":%t}`, i%3 == 0), 1 + i/3000
	})
	interleave("dev_thermostat01")
	add("dev_camera000001", "motion", func(i int) (string, int) {
		z, _ := json.Marshal(zones[i%len(zones)])
		return fmt.Sprintf(`{"detected":%t,"zone":%s,"confidence":0.%03d}`, i%2 == 0, z, i%1000), 1
	})
	add("dev_camera000001", "status", func(i int) (string, int) {
		return fmt.Sprintf(`{"recording":%t}`, i%5 == 0), 1
	})
	add("dev_meter0000001", "power", func(i int) (string, int) {
		return fmt.Sprintf(`{"watts":%d}`, 100+i), 1
	})
	add("dev_meter0000001", "energy", func(i int) (string, int) {
		return fmt.Sprintf(`{"kwh_total":%d.%03d}`, 1000+i/10, i%1000), 1
	})
	interleave("dev_meter0000001")
	// Two readings after the export time, which must be left out.
	for _, dev := range []string{"dev_thermostat01", "dev_meter0000001"} {
		rs := f.readings[dev]
		last := rs[len(rs)-1]
		for k := 1; k <= 2; k++ {
			rs = append(rs, store.Reading{Seq: last.Seq + int64(k), DeviceID: dev, Stream: last.Stream,
				Time: exportTime.Add(time.Duration(k) * time.Second), Payload: last.Payload, ManifestVersion: last.ManifestVersion})
		}
		f.readings[dev] = rs
	}
	return f
}

// exported is one archive opened for checking.
type exported struct {
	zr    *zip.Reader
	files map[string][]byte
	names []string
}

func openExport(t *testing.T, path string) *exported {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a readable ZIP: %v", err)
	}
	e := &exported{zr: zr, files: map[string][]byte{}}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc) // also checks the CRC-32
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		e.files[f.Name] = data
		e.names = append(e.names, f.Name)
	}
	return e
}

type indexDoc struct {
	Format     string `json:"format"`
	ExportedAt string `json:"exported_at"`
	Person     struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"person"`
	Files []struct {
		Name     string `json:"name"`
		Bytes    int64  `json:"bytes"`
		SHA256   string `json:"sha256"`
		Readings *int64 `json:"readings"`
		Records  *int   `json:"senml_records"`
	} `json:"files"`
}

func TestRoundTrip(t *testing.T) {
	src := roundTripSource(t)
	dir := t.TempDir()
	if d := os.Getenv("CANDOR_EXPORT_KEEP"); d != "" {
		dir = d // to look at the archive by hand
	}
	path := filepath.Join(dir, "export.zip")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var calls []int64
	var total int64
	err = Write(context.Background(), out, src, Person{ID: "acc_1", Username: "alex"}, exportTime, func(done, tot int64) {
		calls = append(calls, done)
		total = tot
	})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	e := openExport(t, path)

	// Layout: README first, index last, everything else listed in between.
	wantNames := []string{"README.txt", "devices.json",
		"manifests/motion-camera-v1.json", "manifests/smart-meter-v1.json", "manifests/thermostat-v1.json", "manifests/thermostat-v2.json",
		"readings/dev_camera000001/motion.csv", "readings/dev_camera000001/motion.senml.json",
		"readings/dev_camera000001/status.csv", "readings/dev_camera000001/status.senml.json",
		"readings/dev_meter0000001/energy.csv", "readings/dev_meter0000001/energy.senml.json",
		"readings/dev_meter0000001/power.csv", "readings/dev_meter0000001/power.senml.json",
		"readings/dev_thermostat01/heating.csv", "readings/dev_thermostat01/heating.senml.json",
		"readings/dev_thermostat01/temperature.csv", "readings/dev_thermostat01/temperature.senml.json",
		"consent/records.json", "audit/transparency-log.jsonl", "SHA256SUMS", "index.json"}
	if !reflect.DeepEqual(e.names, wantNames) {
		t.Fatalf("files\n got %q\nwant %q", e.names, wantNames)
	}

	// index.json lists every other file with its true size and SHA-256.
	var idx indexDoc
	if err := json.Unmarshal(e.files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Format != Format || idx.Person.Username != "alex" || idx.ExportedAt != "2026-03-01T12:00:00.000Z" {
		t.Errorf("index header %+v", idx)
	}
	if len(idx.Files) != len(e.names)-1 {
		t.Fatalf("index lists %d files, archive has %d besides it", len(idx.Files), len(e.names)-1)
	}
	var sums strings.Builder
	for i, f := range idx.Files {
		data := e.files[f.Name]
		sum := sha256.Sum256(data)
		if f.Name != e.names[i] || f.Bytes != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("index entry %d %+v does not match %s (%d bytes, %x)", i, f, e.names[i], len(data), sum)
		}
		if f.Name != "SHA256SUMS" {
			fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
		}
	}
	if got := string(e.files["SHA256SUMS"]); got != sums.String() {
		t.Errorf("SHA256SUMS\n%s\nwant\n%s", got, sums.String())
	}

	// README.txt names every file and reads plainly.
	readme := string(e.files["README.txt"])
	for _, name := range e.names {
		if !strings.Contains(readme, name) {
			t.Errorf("README.txt does not mention %s", name)
		}
	}
	words := strings.Join(strings.Fields(readme), " ")
	for _, want := range []string{"UTC", "ISO 8601", "RFC 8428", "sha256sum -c SHA256SUMS", `"Kitchen thermostat" (dev_thermostat01)`} {
		if !strings.Contains(words, want) {
			t.Errorf("README.txt lacks %q", want)
		}
	}
	score := readability.Score(readme)
	t.Logf("README.txt: %d bytes, Flesch Reading Ease %.1f (%d words, %d sentences)", len(readme), score.Ease, score.Words, score.Sentences)
	if score.Ease < 50 {
		t.Errorf("README.txt scores %.1f, want at least 50", score.Ease)
	}

	// The readings: each file holds exactly the readings up to the export
	// time, CSV and SenML alike.
	counts := map[string]*int64{}
	for _, f := range idx.Files {
		counts[f.Name] = f.Readings
	}
	var exportedReadings int64
	for _, d := range src.devices {
		for _, stream := range []string{"temperature", "heating", "motion", "status", "power", "energy"} {
			want := readingsOf(src, d.ID, stream)
			if len(want) == 0 {
				continue
			}
			base := "readings/" + d.ID + "/" + stream
			if len(want) != perStream {
				t.Fatalf("%s: %d readings up to the export time, want %d", base, len(want), perStream)
			}
			checkCSV(t, e.files[base+".csv"], src, d, want)
			checkSenML(t, e.files[base+".senml.json"], src, d, want)
			for _, name := range []string{base + ".csv", base + ".senml.json"} {
				if c := counts[name]; c == nil || *c != int64(len(want)) {
					t.Errorf("index counts %v readings in %s, want %d", c, name, len(want))
				}
			}
			exportedReadings += int64(len(want))
		}
	}
	if exportedReadings != 6*perStream {
		t.Errorf("exported %d readings", exportedReadings)
	}

	// Progress: started at 0, rose at most every 1000 readings (and at
	// least that often), ended at the total.
	if total != exportedReadings || calls[0] != 0 || calls[len(calls)-1] != exportedReadings {
		t.Errorf("progress calls %v, last total %d", calls, total)
	}
	for i := 1; i < len(calls)-1; i++ {
		if d := calls[i] - calls[i-1]; d < 1000 || d > 1000 {
			t.Errorf("progress step %d → %d", calls[i-1], calls[i])
		}
	}

	checkDevicesJSON(t, e.files["devices.json"])
	if got := e.files["manifests/thermostat-v2.json"]; !bytes.Equal(got, src.manifests["thermostat/2"]) {
		t.Error("manifest not exported as stored")
	}
	var consent []map[string]any
	if err := json.Unmarshal(e.files["consent/records.json"], &consent); err != nil || len(consent) != 2 {
		t.Errorf("consent/records.json: %v %v", consent, err)
	}
	if !bytes.Equal(e.files["audit/transparency-log.jsonl"], src.audit) {
		t.Error("audit log not exported as given")
	}
}

func readingsOf(src *fakeSource, dev, stream string) []store.Reading {
	var out []store.Reading
	for _, r := range src.readings[dev] {
		if r.Stream == stream && !r.Time.After(exportTime) {
			out = append(out, r)
		}
	}
	return out
}

// payloadOf decodes a reading's payload with numbers kept as text.
func payloadOf(t *testing.T, r store.Reading) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(r.Payload))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func checkCSV(t *testing.T, data []byte, src *fakeSource, d Device, want []store.Reading) {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("%s/%s CSV: %v", d.ID, want[0].Stream, err)
	}
	wantHeader := map[string][]string{
		"temperature": {"time", "seq", "manifest_version", "celsius", "feels_like", "humidity_percent", "other_fields"},
		"heating":     {"time", "seq", "manifest_version", "on", "other_fields"},
		"motion":      {"time", "seq", "manifest_version", "confidence", "detected", "zone", "other_fields"},
		"status":      {"time", "seq", "manifest_version", "recording", "other_fields"},
		"power":       {"time", "seq", "manifest_version", "watts", "other_fields"},
		"energy":      {"time", "seq", "manifest_version", "kwh_total", "other_fields"},
	}[want[0].Stream]
	if !reflect.DeepEqual(rows[0], wantHeader) {
		t.Fatalf("%s/%s header %q, want %q", d.ID, want[0].Stream, rows[0], wantHeader)
	}
	if len(rows)-1 != len(want) {
		t.Fatalf("%s/%s: %d rows, want %d", d.ID, want[0].Stream, len(rows)-1, len(want))
	}
	for i, r := range want {
		row := rows[i+1]
		at, err := time.Parse(time.RFC3339Nano, row[0])
		// Times are cut to milliseconds: spreadsheets read no more.
		if err != nil || !at.Equal(r.Time.Truncate(time.Millisecond)) || !strings.HasSuffix(row[0], "Z") || len(row[0]) != len("2006-01-02T15:04:05.000Z") {
			t.Fatalf("row %d time %q (%v), want %s", i, row[0], err, r.Time.Format(time.RFC3339Nano))
		}
		if row[1] != strconv.FormatInt(r.Seq, 10) || row[2] != strconv.Itoa(r.ManifestVersion) {
			t.Fatalf("row %d seq/version %q", i, row[1:3])
		}
		payload := payloadOf(t, r)
		other := map[string]any{}
		for k, v := range payload {
			col := -1
			for j, h := range rows[0][3 : len(rows[0])-1] {
				if h == k {
					col = 3 + j
				}
			}
			if col < 0 {
				other[k] = v
				continue
			}
			var want string
			switch v := v.(type) {
			case json.Number:
				want = string(v)
			case bool:
				want = strconv.FormatBool(v)
			case string:
				want = v
				if strings.ContainsAny(v[:1], "=+-@") {
					want = "'" + v
				}
			}
			if row[col] != want {
				t.Fatalf("row %d %s = %q, want %q", i, k, row[col], want)
			}
		}
		last := row[len(row)-1]
		if len(other) == 0 {
			if last != "" {
				t.Fatalf("row %d other_fields %q, want empty", i, last)
			}
			continue
		}
		d := json.NewDecoder(strings.NewReader(last))
		d.UseNumber()
		var got map[string]any
		if err := d.Decode(&got); err != nil || !reflect.DeepEqual(got, other) {
			t.Fatalf("row %d other_fields %q (%v), want %v", i, last, err, other)
		}
	}
}

func checkSenML(t *testing.T, data []byte, src *fakeSource, d Device, want []store.Reading) {
	t.Helper()
	recs, err := senmldecode.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s/%s SenML: %v", d.ID, want[0].Stream, err)
	}
	units := map[int]map[string]string{}
	for _, v := range d.ManifestVersions {
		units[v] = map[string]string{}
		for stream, fields := range readManifest(src.manifests[d.Type+"/"+strconv.Itoa(v)]) {
			for _, f := range fields {
				units[v][stream+":"+f.name] = f.unit
			}
		}
	}
	i := 0
	for _, r := range want {
		payload := payloadOf(t, r)
		keys := make([]string, 0, len(payload))
		for k, v := range payload {
			if _, nested := v.(map[string]any); !nested {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if i >= len(recs) {
				t.Fatalf("SenML has only %d records", len(recs))
			}
			g := recs[i]
			i++
			name := r.Stream + ":" + k
			if g.Name != d.ID+":"+name {
				t.Fatalf("record %d name %q, want %q", i, g.Name, d.ID+":"+name)
			}
			if u := senml.UnitFor(units[r.ManifestVersion][name], name); g.Unit != u {
				t.Fatalf("%s (v%d) unit %q, want %q", g.Name, r.ManifestVersion, g.Unit, u)
			}
			if at := g.Timestamp(time.Time{}); at.Sub(r.Time).Abs() > time.Microsecond {
				t.Fatalf("%s time %s, want %s", g.Name, at.Format(time.RFC3339Nano), r.Time.Format(time.RFC3339Nano))
			}
			switch v := payload[k].(type) {
			case json.Number:
				f, _ := v.Float64()
				if g.Value == nil || *g.Value != f {
					t.Fatalf("%s value %v, want %v", g.Name, g.Value, f)
				}
			case bool:
				if g.BoolValue == nil || *g.BoolValue != v {
					t.Fatalf("%s value %v, want %v", g.Name, g.BoolValue, v)
				}
			case string:
				if g.StringValue == nil || *g.StringValue != v {
					t.Fatalf("%s value %v, want %q", g.Name, g.StringValue, v)
				}
			}
		}
	}
	if i != len(recs) {
		t.Fatalf("SenML has %d records, want %d", len(recs), i)
	}
	secondary := bytes.Contains(data, []byte(`"u":"kWh"`))
	if declared := bytes.Contains(data, []byte(`"bver":26`)); declared != secondary {
		t.Errorf("%s/%s: bver 26 declared %v, kWh used %v", d.ID, want[0].Stream, declared, secondary)
	}
}

func checkDevicesJSON(t *testing.T, data []byte) {
	t.Helper()
	var doc struct {
		Devices []struct {
			ID        string   `json:"id"`
			Name      string   `json:"name"`
			Manifests []string `json:"manifests"`
			Streams   []struct {
				Name    string `json:"name"`
				CSV     string `json:"csv"`
				Columns []struct {
					Name, Column, Type, Unit string
					SenMLUnit                string `json:"senml_unit"`
				} `json:"columns"`
			} `json:"streams"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Devices) != 3 || doc.Devices[2].ID != "dev_thermostat01" || doc.Devices[2].Name != "Kitchen\nthermostat" {
		t.Fatalf("devices.json: %s", data)
	}
	th := doc.Devices[2]
	if !reflect.DeepEqual(th.Manifests, []string{"manifests/thermostat-v1.json", "manifests/thermostat-v2.json"}) {
		t.Errorf("thermostat manifests %q", th.Manifests)
	}
	temp := th.Streams[1]
	if temp.Name != "temperature" || len(temp.Columns) != 3 || temp.Columns[2].Name != "humidity_percent" || temp.Columns[2].SenMLUnit != "%RH" ||
		temp.Columns[2].Unit != "percent" {
		t.Errorf("temperature stream %+v", temp)
	}
}

// TestDeterministic: the same data gives the same bytes.
func TestDeterministic(t *testing.T) {
	src := roundTripSource(t)
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		if err := Write(context.Background(), buf, src, Person{ID: "acc_1", Username: "alex"}, exportTime, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two exports of the same data differ")
	}
}

func TestCancel(t *testing.T) {
	src := roundTripSource(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var buf bytes.Buffer
	err := Write(ctx, &buf, src, Person{Username: "alex"}, exportTime, func(done, _ int64) {
		if done >= 7000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertUnusable(t, buf.Bytes())
}

// assertUnusable: a failed export is no readable archive and claims
// nothing: no central directory, no index.json.
func assertUnusable(t *testing.T, b []byte) {
	t.Helper()
	if len(b) == 0 {
		return
	}
	if _, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err == nil {
		t.Error("the partial output opens as a ZIP archive")
	}
	if bytes.Contains(b, []byte("index.json")) {
		t.Error("the partial output names index.json")
	}
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errDiskFull
	}
	w.left -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	for _, after := range []int{0, 100, 50_000, 400_000} {
		err := Write(context.Background(), &failingWriter{left: after}, roundTripSource(t), Person{Username: "alex"}, exportTime, nil)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("failing after %d bytes: err = %v, want disk full", after, err)
		}
	}
}

func TestSourceErrors(t *testing.T) {
	src := roundTripSource(t)
	src.failPage = 40
	var buf bytes.Buffer
	err := Write(context.Background(), &buf, src, Person{Username: "alex"}, exportTime, nil)
	if err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("err = %v", err)
	}
	assertUnusable(t, buf.Bytes())

	src = roundTripSource(t)
	src.devices[0].ManifestVersions = []int{3}
	if err := Write(context.Background(), io.Discard, src, Person{}, exportTime, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing manifest: err = %v", err)
	}

	src = roundTripSource(t)
	src.consent = [][]byte{[]byte(`{"broken"`)}
	if err := Write(context.Background(), io.Discard, src, Person{}, exportTime, nil); err == nil {
		t.Error("invalid consent record accepted")
	}
}

// ignoringSource ignores the stream filter, as a buggy Source might.
type ignoringSource struct{ *fakeSource }

func (s ignoringSource) Readings(ctx context.Context, dev, _ string, after int64, limit int) ([]store.Reading, error) {
	return s.fakeSource.Readings(ctx, dev, "", after, limit)
}

// stuckSource returns the same page again and again.
type stuckSource struct{ *fakeSource }

func (s stuckSource) Readings(ctx context.Context, dev, stream string, _ int64, limit int) ([]store.Reading, error) {
	return s.fakeSource.Readings(ctx, dev, stream, 0, limit)
}

func TestSourceMisbehaves(t *testing.T) {
	for name, src := range map[string]Source{"ignores the stream": ignoringSource{roundTripSource(t)}, "repeats a page": stuckSource{roundTripSource(t)}} {
		err := Write(context.Background(), io.Discard, src, Person{}, exportTime, nil)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEmptyExport(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, &fakeSource{}, Person{ID: "acc_1", Username: "sam"}, exportTime, nil); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if want := []string{"README.txt", "devices.json", "consent/records.json", "SHA256SUMS", "index.json"}; !reflect.DeepEqual(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}
}

// TestReadManifestMatchesParser: the lenient reader finds the same streams,
// fields, types and units as package manifest in every shipped template.
func TestReadManifestMatchesParser(t *testing.T) {
	ts, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	for typ, m := range ts {
		got := readManifest(m.Raw)
		want := map[string][]fieldDecl{}
		for _, s := range m.Streams {
			for _, f := range s.Fields {
				want[s.Name] = append(want[s.Name], fieldDecl{name: f.Name, typ: f.Type, unit: f.Unit})
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", typ, got, want)
		}
	}
	if got := readManifest([]byte(`not json`)); len(got) != 0 {
		t.Errorf("garbage gave %v", got)
	}
}

func TestPathSegment(t *testing.T) {
	for in, want := range map[string]string{
		"dev_k3xq7wz2m4ab": "dev_k3xq7wz2m4ab", "motion-camera": "motion-camera", "a.b": "a.b",
		"..": "%2E.", "a/b": "a%2Fb", "": "%", "x y\n": "x%20y%0A", "%": "%25", "é": "%C3%A9",
	} {
		if got := pathSegment(in); got != want {
			t.Errorf("pathSegment(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMembers(t *testing.T) {
	var got []string
	ok := members([]byte(` { "a" : 1 , "b\"q":"x\u0041" ,"c":{"d":[1,"]}"]},"e":null, "f":true,"g":-1.5e3 } `), func(k, rk, v []byte) {
		got = append(got, string(k)+"|"+string(rk)+"|"+string(v))
	})
	want := []string{`a|"a"|1`, `b"q|"b\"q"|"x\u0041"`, `c|"c"|{"d":[1,"]}"]}`, `e|"e"|null`, `f|"f"|true`, `g|"g"|-1.5e3`}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("members = %v %q", ok, got)
	}
	for _, bad := range []string{``, `[1]`, `{"a":}`, `"x"`, `{"a":1} x`} {
		if members([]byte(bad), func(_, _, _ []byte) { t.Errorf("called for %q", bad) }) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestGuardFormula: text a spreadsheet would run is defused in the CSV.
func TestGuardFormula(t *testing.T) {
	for in, want := range map[string]string{"=1+1": "'=1+1", "+1": "'+1", "-x": "'-x", "@SUM": "'@SUM", "\tx": "'\tx", "ok": "ok", "": ""} {
		if got := guardFormula(in); got != want {
			t.Errorf("guardFormula(%q) = %q", in, got)
		}
	}
}

// generatedSource makes readings on the fly: nothing is kept, so memory
// measured during an export is the exporter's own.
type generatedSource struct {
	devices int
	each    int64 // readings per device, alternating between two streams
}

func (g *generatedSource) Devices(context.Context) ([]Device, error) {
	var ds []Device
	for i := 0; i < g.devices; i++ {
		ds = append(ds, Device{ID: fmt.Sprintf("dev_gen%09d", i), Name: "generated", Type: "thermostat", ManifestVersions: []int{1},
			Streams: []string{"heating", "temperature"}, Readings: g.each})
	}
	return ds, nil
}

func (g *generatedSource) Manifest(context.Context, string, int) ([]byte, error) {
	ts, err := manifest.Templates()
	if err != nil {
		return nil, err
	}
	return ts["thermostat"].Raw, nil
}

var genBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (g *generatedSource) Readings(ctx context.Context, dev, stream string, after int64, limit int) ([]store.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]store.Reading, 0, limit)
	for seq := after + 1; seq <= g.each && len(out) < limit; seq++ {
		s := "temperature"
		if seq%2 == 0 {
			s = "heating"
		}
		if stream != "" && s != stream {
			continue
		}
		var p []byte
		if s == "heating" {
			p = strconv.AppendBool(append(p, `{"on":`...), seq%4 == 0)
		} else {
			p = strconv.AppendFloat(append(p, `{"celsius":`...), 15+float64(seq%1000)/100, 'g', -1, 64)
			p = strconv.AppendInt(append(p, `,"humidity_percent":`...), 30+seq%40, 10)
		}
		p = append(p, '}')
		out = append(out, store.Reading{Seq: seq, DeviceID: dev, Stream: s, Time: genBase.Add(time.Duration(seq) * time.Second),
			Payload: p, ManifestVersion: 1})
	}
	return out, nil
}

func (g *generatedSource) ConsentRecords(context.Context) ([][]byte, error) { return nil, nil }
func (g *generatedSource) AuditLog(context.Context) (io.ReadCloser, error)  { return nil, nil }

// TestConstantMemory exports many small readings and samples the live heap
// (after a GC) along the way: it must stay under 64 MiB whatever the
// history size. 200,000 readings always; 1,000,000 too unless -short or
// the race detector (which makes it take minutes) is on.
func TestConstantMemory(t *testing.T) {
	t.Run("200k", func(t *testing.T) { exportMemory(t, 200_000) })
	t.Run("1M", func(t *testing.T) {
		switch {
		case testing.Short():
			t.Skip("-short: skipping the 1,000,000-reading export (the 200k run checks the same bound)")
		case raceEnabled:
			t.Skip("race detector on: the 1,000,000-reading export would take minutes; run without -race to measure it")
		}
		exportMemory(t, 1_000_000)
	})
}

func exportMemory(t *testing.T, n int64) {
	const limit = 64 << 20
	src := &generatedSource{devices: 4, each: n / 4}
	var ms runtime.MemStats
	gcAndRead(&ms)
	before := ms.HeapAlloc
	var peak uint64
	var samples int
	var out countingDiscard
	start := time.Now()
	err := Write(context.Background(), &out, src, Person{Username: "alex"}, time.Now(), func(done, total int64) {
		if done%(n/20) == 0 || done == total {
			gcAndRead(&ms)
			peak = max(peak, ms.HeapAlloc)
			samples++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("%d readings in %s (%.0f readings/s with %d GC samples), archive %.1f MiB; live heap before %.1f MiB, peak during export %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), samples, float64(out)/(1<<20), float64(before)/(1<<20), float64(peak)/(1<<20))
	if samples < 10 {
		t.Fatalf("only %d heap samples", samples)
	}
	if peak > limit {
		t.Errorf("live heap reached %.1f MiB during the export, want under %d MiB", float64(peak)/(1<<20), limit>>20)
	}
}

type countingDiscard int64

func (c *countingDiscard) Write(p []byte) (int, error) {
	*c += countingDiscard(len(p))
	return len(p), nil
}

func BenchmarkWrite(b *testing.B) {
	const n = 100_000
	src := &generatedSource{devices: 2, each: n / 2}
	var out countingDiscard
	b.ReportAllocs()
	for b.Loop() {
		out = 0
		if err := Write(context.Background(), &out, src, Person{Username: "alex"}, time.Now(), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(out)/n, "bytes/reading")
}

func gcAndRead(ms *runtime.MemStats) {
	runtime.GC()
	runtime.ReadMemStats(ms)
}

// TestOddData: names and payloads the hub's rules do not allow today (old
// data, imported manifests) still export, safely: unsafe paths are
// escaped, clashing and formula-like column names are defused, values
// SenML cannot hold stay in the CSV file only, broken payloads are kept as
// text.
func TestOddData(t *testing.T) {
	doc := map[string]any{"properties": map[string]any{"s": map[string]any{"type": "object", "properties": map[string]any{
		"time":     map[string]any{"type": "number", "unit": "furlongs"},
		"=evil":    map[string]any{"type": "string"},
		"bad name": map[string]any{"type": "number", "unit": "watt"},
	}}}}
	at := func(i int) time.Time { return firstTime.Add(time.Duration(i) * time.Minute) }
	src := &fakeSource{
		manifests: map[string][]byte{"custom/1": mustJSON(t, doc)},
		readings: map[string][]store.Reading{"dev_odd": {
			{Seq: 1, DeviceID: "dev_odd", Stream: "s", Time: at(1), ManifestVersion: 1, Payload: []byte(`{"time":5,"=evil":"x","bad name":3,"list":[1, 2],"n":null}`)},
			{Seq: 2, DeviceID: "dev_odd", Stream: "s", Time: at(2), ManifestVersion: 1, Payload: []byte(`=not json`)},
			{Seq: 3, DeviceID: "dev_odd", Stream: "s", Time: at(3), ManifestVersion: 1, Payload: []byte(`{"time":1e400}`)},
			{Seq: 4, DeviceID: "dev_odd", Stream: "we/ird", Time: at(4), Payload: []byte(`{"v":1}`)},
			{Seq: 5, DeviceID: "dev_odd", Stream: "a b", Time: at(5), Payload: []byte(`{"v":2}`)},
			{Seq: 6, DeviceID: "dev_odd", Stream: "..", Time: at(6), Payload: []byte(`{"v":3}`)},
		}},
	}
	d := Device{ID: "dev_odd", Name: "Odd", Type: "custom", ManifestVersions: []int{1}}
	src.devices = []Device{d, d}
	path := filepath.Join(t.TempDir(), "odd.zip")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), out, src, Person{Username: "alex"}, exportTime, nil); err != nil {
		t.Fatal(err)
	}
	out.Close()
	e := openExport(t, path)
	for _, name := range e.names {
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, " \\\n") {
				t.Errorf("unsafe name %q", name)
			}
		}
		if !strings.Contains(string(e.files["README.txt"]), name) {
			t.Errorf("README.txt does not mention %s", name)
		}
	}
	for _, name := range []string{"readings/dev_odd/%2E..csv", "readings/dev_odd/a%20b.csv", "readings/dev_odd/s.csv", "readings/dev_odd/we%2Fird.csv"} {
		if _, ok := e.files[name]; !ok {
			t.Errorf("missing %s in %q", name, e.names)
		}
	}
	rows, err := csv.NewReader(bytes.NewReader(e.files["readings/dev_odd/s.csv"])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"time", "seq", "manifest_version", "'=evil", "bad name", "field:time", "other_fields"},
		{"2026-01-01T00:01:00.000Z", "1", "1", "x", "3", "5", `{"list":[1,2],"n":null}`},
		{"2026-01-01T00:02:00.000Z", "2", "1", "", "", "", "'=not json"},
		{"2026-01-01T00:03:00.000Z", "3", "1", "", "", "1e400", ""},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("s.csv\n got %q\nwant %q", rows, want)
	}
	recs, err := senmldecode.Decode(bytes.NewReader(e.files["readings/dev_odd/s.senml.json"]))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Name != "dev_odd:s:time" || recs[0].Unit != "" || *recs[0].Value != 5 {
		t.Errorf("s.senml.json: %s", e.files["readings/dev_odd/s.senml.json"])
	}
	if got := string(e.files["readings/dev_odd/a%20b.senml.json"]); got != "[]\n" {
		t.Errorf("a b: %q", got)
	}
	if recs, err := senmldecode.Decode(bytes.NewReader(e.files["readings/dev_odd/we%2Fird.senml.json"])); err != nil || len(recs) != 1 || recs[0].Name != "dev_odd:we/ird:v" {
		t.Errorf("we/ird: %v %v", recs, err)
	}
	var idx indexDoc
	if err := json.Unmarshal(e.files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Files) != len(e.names)-1 {
		t.Errorf("index lists %d files for %d", len(idx.Files), len(e.names)-1)
	}
}

// FuzzMembers: the payload scanner never panics, and finds exactly the
// members encoding/json finds, with values that mean the same.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, ` {"a" : "x\"y" , "b":[1,{"c":"]"}],"d":null} `, `{"é":true,"\u00e9":false}`, `[1]`, `{"a":`, `{"a":"\xff"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]json.RawMessage
		isObject := json.Unmarshal(b, &want) == nil && want != nil
		got := map[string]json.RawMessage{}
		ok := members(b, func(k, rk, v []byte) {
			var key string
			if err := json.Unmarshal(rk, &key); err != nil || key != string(k) {
				t.Fatalf("key %q from %q (%v)", k, rk, err)
			}
			if !json.Valid(v) {
				t.Fatalf("value %q is not JSON", v)
			}
			got[string(k)] = append(json.RawMessage(nil), v...)
			var scratch bytes.Buffer
			cell(v, &scratch)
		})
		if ok != isObject {
			t.Fatalf("members says object=%v, encoding/json %v, for %q", ok, isObject, b)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, encoding/json %d", len(got), len(want))
		}
		for k, v := range want {
			var a, c any
			if json.Unmarshal(v, &a) != nil || json.Unmarshal(got[k], &c) != nil || !reflect.DeepEqual(a, c) {
				t.Fatalf("member %q: %s, encoding/json %s", k, got[k], v)
			}
		}
	})
}
