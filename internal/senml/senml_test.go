package senml_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/senml"
	"github.com/candor-iot/candor/internal/testsupport/senmldecode"
)

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc8428", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compact(t testing.TB, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return buf.String()
}

// rawRecords reads a Pack into Records label by label, without resolving
// anything, so that encoding them must reproduce the Pack.
func rawRecords(t *testing.T, data []byte) []senml.Record {
	t.Helper()
	var objs []map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&objs); err != nil {
		t.Fatal(err)
	}
	num := func(v any) float64 {
		f, err := v.(json.Number).Float64()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var out []senml.Record
	for _, o := range objs {
		var r senml.Record
		for k, v := range o {
			switch k {
			case "bn":
				r.BaseName = v.(string)
			case "bt":
				r.BaseTime = num(v)
			case "bu":
				r.BaseUnit = v.(string)
			case "bv":
				r.BaseValue = senml.F(num(v))
			case "bs":
				r.BaseSum = senml.F(num(v))
			case "bver":
				r.BaseVersion = int(num(v))
			case "n":
				r.Name = v.(string)
			case "u":
				r.Unit = v.(string)
			case "t":
				r.Time = num(v)
			case "v":
				r.Value = senml.F(num(v))
			case "vs":
				r.StringValue = senml.S(v.(string))
			case "vb":
				r.BoolValue = senml.B(v.(bool))
			case "vd":
				b, err := base64.RawURLEncoding.DecodeString(v.(string))
				if err != nil {
					t.Fatal(err)
				}
				r.DataValue = b
			case "s":
				r.Sum = senml.F(num(v))
			case "ut":
				r.UpdateTime = num(v)
			default:
				t.Fatalf("label %q", k)
			}
		}
		out = append(out, r)
	}
	return out
}

func encodeAll(t testing.TB, recs []senml.Record) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	e := senml.NewEncoder(&buf)
	for _, r := range recs {
		if err := e.Encode(r); err != nil {
			return nil, err
		}
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeBytes(t testing.TB, b []byte) []senml.Record {
	t.Helper()
	recs, err := senmldecode.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return recs
}

func num(name, unit string, tm, v float64) senml.Record {
	return senml.Record{Name: name, Unit: unit, Time: tm, Value: senml.F(v)}
}

// TestRFC8428Examples decodes every example of RFC 8428 §5.1 to the values
// the RFC describes, and encodes the Records of each back to the same JSON
// (except the one with version 5, an old version this encoder never writes).
func TestRFC8428Examples(t *testing.T) {
	const dev = "urn:dev:ow:10e2073a01080063"
	bt := 1.276020076001e+09
	humid := []senml.Record{
		num(dev, "%RH", 1.320067464e+09, 20), num(dev, "lon", 1.320067464e+09, 24.30621), num(dev, "lat", 1.320067464e+09, 60.07965),
		num(dev, "%RH", 1.320067524e+09, 20.3), num(dev, "lon", 1.320067524e+09, 24.30622), num(dev, "lat", 1.320067524e+09, 60.07965),
		num(dev, "%RH", 1.320067584e+09, 20.7), num(dev, "lon", 1.320067584e+09, 24.30623), num(dev, "lat", 1.320067584e+09, 60.07966),
		num(dev, "%EL", 1.320067614e+09, 98),
		num(dev, "%RH", 1.320067644e+09, 21.2), num(dev, "lon", 1.320067644e+09, 24.30628), num(dev, "lat", 1.320067644e+09, 60.07967),
	}
	withVersion := func(rs []senml.Record, v int) []senml.Record {
		for i := range rs {
			rs[i].BaseVersion = v
		}
		return rs
	}
	tests := []struct {
		file     string
		resolved []senml.Record
		encode   bool
	}{
		{"5.1.1-single-datapoint.json", []senml.Record{num(dev, "Cel", 0, 23.1)}, true},
		{"5.1.2-multiple-datapoints.json", []senml.Record{num(dev+":voltage", "V", 0, 120.1), num(dev+":current", "A", 0, 1.2)}, true},
		{"5.1.2-multiple-datapoints-and-time.json", withVersion([]senml.Record{
			num("urn:dev:ow:10e2073a0108006:voltage", "V", bt, 120.1),
			num("urn:dev:ow:10e2073a0108006:current", "A", bt-5, 1.2),
			num("urn:dev:ow:10e2073a0108006:current", "A", bt-4, 1.3),
			num("urn:dev:ow:10e2073a0108006:current", "A", bt-3, 1.4),
			num("urn:dev:ow:10e2073a0108006:current", "A", bt-2, 1.5),
			num("urn:dev:ow:10e2073a0108006:current", "A", bt-1, 1.6),
			num("urn:dev:ow:10e2073a0108006:current", "A", bt, 1.7),
		}, 5), false},
		{"5.1.3-multiple-measurements.json", humid, true},
		{"5.1.4-resolved-data.json", humid, true},
		{"5.1.5-multiple-data-types.json", []senml.Record{
			num(dev+":temp", "Cel", 0, 23.1),
			{Name: dev + ":label", StringValue: senml.S("Machine Room")},
			{Name: dev + ":open", BoolValue: senml.B(false)},
			{Name: dev + ":nfc-reader", DataValue: []byte("hi \n")},
		}, true},
		{"5.1.6-collection-of-resources.json", []senml.Record{
			num("2001:db8::2/temperature", "Cel", 1.320078429e+09, 25.2),
			num("2001:db8::2/humidity", "%RH", 1.320078429e+09, 30),
			num("2001:db8::1/temperature", "Cel", 1.320078429e+09, 12.3),
			num("2001:db8::1/humidity", "%RH", 1.320078429e+09, 67),
		}, true},
		{"5.1.7-setting-an-actuator.json", []senml.Record{
			num(dev+":temp", "Cel", 0, 23.1), num(dev+":heat", "/", 0, 1), num(dev+":fan", "/", 0, 0),
		}, true},
		{"5.1.7-lights-on.json", []senml.Record{
			num("2001:db8::3", "/", 1.320078429e+09, 1), num("2001:db8::4", "/", 1.320078429e+09, 1),
		}, true},
		{"5.1.7-lights-off.json", []senml.Record{
			num("2001:db8::3", "/", 1.320078429e+09, 0.5), num("2001:db8::4", "/", 1.320078429e+09, 0.5),
			num("2001:db8::3", "/", 1.320078429e+09+0.1, 0), num("2001:db8::4", "/", 1.320078429e+09+0.1, 0),
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data := readExample(t, tc.file)
			got := decodeBytes(t, data)
			if !reflect.DeepEqual(got, tc.resolved) {
				t.Errorf("resolved\n got %s\nwant %s", show(got), show(tc.resolved))
			}
			if !tc.encode {
				return
			}
			out, err := encodeAll(t, rawRecords(t, data))
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if g, w := compact(t, out), compact(t, data); g != w {
				t.Errorf("encoded\n got %s\nwant %s", g, w)
			}
		})
	}
}

func show(rs []senml.Record) string {
	var b strings.Builder
	for _, r := range rs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestEncoderRefusesOldVersions: the encoder writes versions 10 and 26 only.
func TestEncoderRefusesOldVersions(t *testing.T) {
	_, err := encodeAll(t, rawRecords(t, readExample(t, "5.1.2-multiple-datapoints-and-time.json")))
	if !errors.Is(err, senml.ErrVersion) {
		t.Fatalf("err = %v, want ErrVersion", err)
	}
}

// TestReadingRoundTrip writes readings with EncodeReading and reads them
// back with Decode: names, units, values and times survive.
func TestReadingRoundTrip(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	type reading struct {
		dev, stream string
		at          time.Time
		fields      map[string]any
		units       map[string]string
	}
	readings := []reading{
		{"dev_k3xq7wz2m4ab", "temperature", base, map[string]any{"celsius": 21.5, "humidity_percent": json.Number("40")},
			map[string]string{"celsius": "degree Celsius", "humidity_percent": "percent"}},
		{"dev_k3xq7wz2m4ab", "heating", base.Add(1500 * time.Millisecond), map[string]any{"on": true}, nil},
		{"dev_k3xq7wz2m4ab", "temperature", base.Add(48 * time.Hour), map[string]any{"celsius": -3.25}, map[string]string{"celsius": "Cel"}},
		{"dev_m0t10nc4m3r4", "motion", base.Add(-time.Minute), map[string]any{"detected": false, "zone": "door \"north\"\n", "confidence": float32(0.8)},
			map[string]string{"confidence": "ratio"}},
		{"dev_m0t10nc4m3r4", "steps", base.Add(time.Second), map[string]any{"count": int64(1234567)}, map[string]string{"count": "steps"}},
		{"dev_m0t10nc4m3r4", "blob", base.Add(2 * time.Second), map[string]any{"raw": []byte{0, 1, 2, 250}}, nil},
	}
	var buf bytes.Buffer
	e := senml.NewEncoder(&buf)
	for _, r := range readings {
		if err := e.EncodeReading(r.dev, r.stream, r.at, r.fields, r.units); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	got := decodeBytes(t, buf.Bytes())
	var want []senml.Record
	for _, r := range readings {
		keys := make([]string, 0, len(r.fields))
		for k := range r.fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w := senml.Record{Name: r.dev + ":" + r.stream + ":" + k, Unit: senml.UnitFor(r.units[k], r.stream+":"+k)}
			switch v := r.fields[k].(type) {
			case float64:
				w.Value = senml.F(v)
			case float32:
				// A float32 is written with its own shortest text ("0.8"
				// for float32(0.8)), which reads back as that decimal.
				f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
				w.Value = senml.F(f)
			case int64:
				w.Value = senml.F(float64(v))
			case json.Number:
				f, _ := v.Float64()
				w.Value = senml.F(f)
			case bool:
				w.BoolValue = senml.B(v)
			case string:
				w.StringValue = senml.S(v)
			case []byte:
				w.DataValue = v
			}
			want = append(want, w)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\n%s", len(got), len(want), buf.String())
	}
	i := 0
	for _, r := range readings {
		for range r.fields {
			g, w := got[i], want[i]
			at := g.Timestamp(time.Time{})
			if d := at.Sub(r.at); d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("%s: time %s, want %s (off by %s)", g.Name, at.Format(time.RFC3339Nano), r.at.Format(time.RFC3339Nano), d)
			}
			g.Time = 0
			if !reflect.DeepEqual(g, w) {
				t.Errorf("record %d\n got %s\nwant %s", i, show([]senml.Record{g}), show([]senml.Record{w}))
			}
			i++
		}
	}
	// The Pack states its bases once: one bt, and a bn per device change.
	out := buf.String()
	if n := strings.Count(out, `"bt":`); n != 1 {
		t.Errorf("%d base times, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `"bn":`); n != 2 {
		t.Errorf("%d base names, want 2 (one per device):\n%s", n, out)
	}
	if !strings.HasPrefix(out, "[\n{\"bn\":\"dev_k3xq7wz2m4ab:\",\"bt\":1.7723664e+09,") {
		t.Errorf("first record does not carry the bases:\n%s", out)
	}
	if !strings.Contains(out, `"v":1234567`) || !strings.Contains(out, `"v":40}`) {
		t.Errorf("integers are not written digit for digit:\n%s", out)
	}
}

// TestNumbersExact: every float64 reads back with the same bits, and
// integers and json.Numbers are written as given.
func TestNumbersExact(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 0.1, 0.2 + 0.1, 1.0 / 3, -2.5e-8, 123456789.123456789,
		1e21, 1e-7, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 4.9406564584124654e-324,
		math.Nextafter(1, 2), 9007199254740993, 1.7723664001234567e9, math.Pi, -math.E}
	var recs []senml.Record
	for i, f := range floats {
		recs = append(recs, senml.Record{Name: "x" + string(rune('a'+i)), Value: senml.F(f), Sum: senml.F(-f), Time: f / 1e300})
	}
	out, err := encodeAll(t, recs)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeBytes(t, out)
	for i, f := range floats {
		if math.Float64bits(*got[i].Value) != math.Float64bits(f) {
			t.Errorf("v %v came back as %v", f, *got[i].Value)
		}
		if math.Float64bits(*got[i].Sum) != math.Float64bits(-f) {
			t.Errorf("s %v came back as %v", -f, *got[i].Sum)
		}
		if got[i].Time != f/1e300 {
			t.Errorf("t %v came back as %v", f/1e300, got[i].Time)
		}
	}

	var buf bytes.Buffer
	e := senml.NewEncoder(&buf)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fields := map[string]any{
		"a": json.Number("21.50"), "b": json.Number("-0"), "c": json.Number("1E+2"),
		"d": int64(math.MaxInt64), "e": uint64(math.MaxUint64), "f": json.Number("12345678901234567890123"),
	}
	if err := e.EncodeReading("d1", "s", at, fields, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"v":21.50}`, `"v":-0}`, `"v":1E+2}`, `"v":9223372036854775807}`, `"v":18446744073709551615}`, `"v":12345678901234567890123}`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, buf.String())
		}
	}
	decodeBytes(t, buf.Bytes())
}

// TestEncoderRefuses: invalid names, values and units are refused with an
// error and leave nothing behind.
func TestEncoderRefuses(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		do   func(e *senml.Encoder) error
		want error
	}{
		{"empty name", func(e *senml.Encoder) error { return e.Encode(senml.Record{Value: senml.F(1)}) }, senml.ErrInvalidName},
		{"space in name", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "room temp", Value: senml.F(1)}) }, senml.ErrInvalidName},
		{"starts with dash", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "-x", Value: senml.F(1)}) }, senml.ErrInvalidName},
		{"starts with underscore", func(e *senml.Encoder) error {
			return e.Encode(senml.Record{BaseName: "_dev:", Name: "x", Value: senml.F(1)})
		}, senml.ErrInvalidName},
		{"non-ASCII", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "température", Value: senml.F(1)}) }, senml.ErrInvalidName},
		{"percent sign", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "a%20b", Value: senml.F(1)}) }, senml.ErrInvalidName},
		{"NaN", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "x", Value: senml.F(math.NaN())}) }, senml.ErrInvalidValue},
		{"infinite time", func(e *senml.Encoder) error {
			return e.Encode(senml.Record{Name: "x", Value: senml.F(1), Time: math.Inf(1)})
		}, senml.ErrInvalidValue},
		{"two values", func(e *senml.Encoder) error {
			return e.Encode(senml.Record{Name: "x", Value: senml.F(1), BoolValue: senml.B(true)})
		}, senml.ErrInvalidValue},
		{"no value", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "x", Unit: "Cel"}) }, senml.ErrInvalidValue},
		{"unknown unit", func(e *senml.Encoder) error {
			return e.Encode(senml.Record{Name: "x", Unit: "degC", Value: senml.F(1)})
		}, senml.ErrUnknownUnit},
		{"secondary unit undeclared", func(e *senml.Encoder) error { return e.Encode(senml.Record{Name: "x", Unit: "kWh", Value: senml.F(1)}) }, senml.ErrUnknownUnit},
		{"version 11", func(e *senml.Encoder) error {
			return e.Encode(senml.Record{Name: "x", BaseVersion: 11, Value: senml.F(1)})
		}, senml.ErrVersion},
		{"bad field name", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "s", at, map[string]any{"good": 1.0, "bad key": 2.0}, nil)
		}, senml.ErrInvalidName},
		{"bad device id", func(e *senml.Encoder) error { return e.EncodeReading("dev a", "s", at, map[string]any{"x": 1.0}, nil) }, senml.ErrInvalidName},
		{"nil value", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "s", at, map[string]any{"a": 1.0, "z": nil}, nil)
		}, senml.ErrInvalidValue},
		{"nested value", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "s", at, map[string]any{"a": map[string]any{"b": 1}}, nil)
		}, senml.ErrInvalidValue},
		{"not a JSON number", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "s", at, map[string]any{"a": json.Number("0x10")}, nil)
		}, senml.ErrInvalidValue},
		{"out of range", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "s", at, map[string]any{"a": json.Number("1e400")}, nil)
		}, senml.ErrInvalidValue},
		{"secondary unit in reading", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "energy", at, map[string]any{"kwh_total": 1.5}, map[string]string{"kwh_total": "kilowatt hour"})
		}, senml.ErrUnknownUnit},
		{"time before 2^28", func(e *senml.Encoder) error {
			return e.EncodeReading("dev_a", "s", time.Unix(1<<28-1, 0), map[string]any{"a": 1.0}, nil)
		}, senml.ErrTooEarly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			e := senml.NewEncoder(&buf)
			if err := tc.do(e); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if e.Records() != 0 {
				t.Errorf("%d records counted after a refusal", e.Records())
			}
			// The encoder stays usable and the refused data left no trace.
			if err := e.Encode(senml.Record{Name: "ok", Value: senml.F(1)}); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if got := compact(t, buf.Bytes()); got != `[{"n":"ok","v":1}]` {
				t.Errorf("output %s", got)
			}
		})
	}
}

func TestSecondaryUnits(t *testing.T) {
	var buf bytes.Buffer
	e := senml.NewEncoder(&buf)
	if err := e.UseSecondaryUnits(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := e.EncodeReading("dev_a", "energy", at, map[string]any{"kwh_total": json.Number("1234.5")}, map[string]string{"kwh_total": "kilowatt hour"}); err != nil {
		t.Fatal(err)
	}
	if err := e.UseSecondaryUnits(); err == nil {
		t.Error("UseSecondaryUnits after the first record succeeded")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want := `[{"bn":"dev_a:","bt":1.7672256e+09,"bver":26,"n":"energy:kwh_total","u":"kWh","v":1234.5}]`
	if got := compact(t, buf.Bytes()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	recs := decodeBytes(t, buf.Bytes())
	if recs[0].BaseVersion != 26 || recs[0].Unit != "kWh" {
		t.Errorf("decoded %+v", recs[0])
	}
}

func TestEmptyPackAndClose(t *testing.T) {
	var buf bytes.Buffer
	e := senml.NewEncoder(&buf)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "[]\n" {
		t.Errorf("empty pack %q", buf.String())
	}
	if err := e.Encode(senml.Record{Name: "x", Value: senml.F(1)}); !errors.Is(err, senml.ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
	if recs := decodeBytes(t, buf.Bytes()); len(recs) != 0 {
		t.Errorf("decoded %d records", len(recs))
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteErrorIsSticky(t *testing.T) {
	e := senml.NewEncoder(&failWriter{n: 100})
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = e.Encode(senml.Record{Name: "x", Value: senml.F(float64(i))})
	}
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if err2 := e.Encode(senml.Record{Name: "x", Value: senml.F(1)}); err2 == nil {
		t.Error("encoder usable after a write error")
	}
	if err2 := e.Close(); err2 == nil {
		t.Error("Close succeeded after a write error")
	}
}

func TestTimestamp(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    float64
		want time.Time
	}{
		{0, now},
		{-5, now.Add(-5 * time.Second)},
		{0.25, now.Add(250 * time.Millisecond)},
		{senml.RelativeTimeLimit - 1, now.Add((senml.RelativeTimeLimit - 1) * time.Second)},
		{senml.RelativeTimeLimit, time.Unix(senml.RelativeTimeLimit, 0).UTC()},
		{1.320067464e+09, time.Date(2011, 10, 31, 13, 24, 24, 0, time.UTC)},
		{1.276020076001e+09, time.Date(2010, 6, 8, 18, 1, 16, 1000000, time.UTC)},
	} {
		if got := (senml.Record{Time: tc.t}).Timestamp(now); !got.Equal(tc.want) {
			t.Errorf("Timestamp(%v) = %s, want %s", tc.t, got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano))
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "0", "urn:dev:ow:10e2073a01080063", "2001:db8::2/temperature", "dev_k3xq7wz2m4ab:temperature:celsius", "A-b.c/d_e:f"} {
		if err := senml.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "_a", "-a", ":a", ".a", "/a", "a b", "a%b", "a+b", "é", "a\x00"} {
		if err := senml.ValidName(bad); !errors.Is(err, senml.ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v", bad, err)
		}
	}
}

func TestStringEscaping(t *testing.T) {
	s := "quote\" backslash\\ nl\n tab\t nul\x00 bell\x07 <html>&amp; ünïcödé \u2028 bad\xff"
	out, err := encodeAll(t, []senml.Record{{Name: "x", StringValue: senml.S(s)}})
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	got := decodeBytes(t, out)
	want := strings.ToValidUTF8(s, "\uFFFD")
	if *got[0].StringValue != want {
		t.Errorf("got %q, want %q", *got[0].StringValue, want)
	}
	if strings.Contains(string(out), `\u003c`) {
		t.Errorf("HTML-escaped: %s", out)
	}
}
