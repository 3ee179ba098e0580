package logformat

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRecordRoundTripAndDamage(t *testing.T) {
	b := append([]byte(nil), FileHeader...)
	payloads := []string{`{"a":"1"}`, `{"b":"22"}`, strings.Repeat("x", 5000)}
	for i, p := range payloads {
		b = AppendRecord(b, uint64(i), []byte(p))
	}
	rr := NewRecordReader(bytes.NewReader(b), 0)
	for i, p := range payloads {
		r, err := rr.Next()
		if err != nil || r.Index != uint64(i) || string(r.Payload) != p {
			t.Fatalf("record %d: %+v %v", i, r, err)
		}
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	cases := []struct {
		name string
		mut  func([]byte) []byte
		want error
	}{
		{"cut header", func(b []byte) []byte { return b[:len(FileHeader)+5] }, ErrShortRecord},
		{"cut payload", func(b []byte) []byte { return b[:len(FileHeader)+20] }, ErrShortRecord},
		{"flip payload bit", func(b []byte) []byte { b[len(FileHeader)+17] ^= 1; return b }, ErrChecksum},
		{"flip index bit", func(b []byte) []byte { b[len(FileHeader)+9] ^= 1; return b }, ErrChecksum},
		{"zero length", func(b []byte) []byte { copy(b[len(FileHeader):], []byte{0, 0, 0, 0}); return b }, ErrBadLength},
		{"huge length", func(b []byte) []byte { copy(b[len(FileHeader):], []byte{0xff, 0, 0, 0}); return b }, ErrBadLength},
		{"bad file header", func(b []byte) []byte { b[0] = 'X'; return b }, ErrFileHeader},
	}
	for _, c := range cases {
		d := c.mut(append([]byte(nil), b...))
		_, err := NewRecordReader(bytes.NewReader(d), 0).Next()
		var re *RecordError
		if !errors.As(err, &re) || !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCheckpointFormat(t *testing.T) {
	root := bytes.Repeat([]byte{0xab}, 32)
	c := Checkpoint{Origin: "candor.audit/x", Size: 42, Root: root}
	text := c.Marshal()
	if text != "candor.audit/x\n42\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n" {
		t.Fatalf("marshal: %q", text)
	}
	got, err := ParseCheckpoint(text + "extension line\n")
	if err != nil || got.Size != 42 || !bytes.Equal(got.Root, root) || got.Origin != c.Origin {
		t.Fatalf("parse: %+v %v", got, err)
	}
	for _, bad := range []string{
		"", "o\n1\n", "o\n01\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n", "o\n-1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
		"o\n1\nq6ur\n", "\n1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n", "o\n1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=",
	} {
		if _, err := ParseCheckpoint(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestStateSlot(t *testing.T) {
	s := State{Seq: 7, Synced: 100, SyncedOffset: 4096, Signed: []byte("o\n1\nroot\n\n— o sig\n")}
	b := s.Marshal()
	got, err := ParseState(b)
	if err != nil || got.Seq != 7 || got.Synced != 100 || got.SyncedOffset != 4096 || !bytes.Equal(got.Signed, s.Signed) {
		t.Fatalf("%+v %v", got, err)
	}
	for i := range b {
		if _, err := ParseState(b[:i]); err == nil {
			t.Fatalf("torn slot of %d bytes accepted", i)
		}
	}
	d := append([]byte(nil), b...)
	d[len(d)-3] ^= 1
	if _, err := ParseState(d); err == nil {
		t.Fatal("damaged slot accepted")
	}
}

func TestCanonicalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b":"2", "a" : "1"}`, `{"a":"1","b":"2"}`},
		{`{"a":{"z":[1,true,null,"x"],"y":"\u00e9\u2028<&>"}}`, "{\"a\":{\"y\":\"é\u2028<&>\",\"z\":[1,true,null,\"x\"]}}"},
		{`"tab\there\u0001\/"`, `"tab\there\u0001/"`},
		{`-0`, `0`},
		{` 9007199254740992 `, `9007199254740992`},
	}
	for _, c := range cases {
		got, err := Canonicalize([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{
		`{"a":"1","a":"2"}`, `1.5`, `1e3`, `01`, `9007199254740993`, `{"a":1} x`, "\"\xff\"", `{`,
		strings.Repeat("[", 40) + strings.Repeat("]", 40),
	} {
		if got, err := Canonicalize([]byte(bad)); err == nil {
			t.Errorf("Canonicalize(%q) accepted: %s", bad, got)
		}
	}
}

func TestExportReader(t *testing.T) {
	in := `{"kind":"header","format":"` + ExportFormat + `","checkpoint":"x","complete":true,"future_field":1}

{"kind":"entry","index":3,"leaf_hash":"AAAA","event":{"a":"b"},"proof":["AAAA"]}
{"kind":"end","entries":1}`
	er := NewExportReader(strings.NewReader(in))
	var kinds []string
	for {
		v, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch l := v.(type) {
		case *ExportHeader:
			kinds = append(kinds, l.Kind)
		case *ExportEntry:
			if l.Index != 3 || string(l.Event) != `{"a":"b"}` {
				t.Fatalf("entry %+v", l)
			}
			kinds = append(kinds, l.Kind)
		case *ExportEnd:
			kinds = append(kinds, l.Kind)
		}
	}
	if strings.Join(kinds, ",") != "header,entry,end" {
		t.Fatalf("kinds %v", kinds)
	}
	if _, err := NewExportReader(strings.NewReader(`{"kind":"nope"}`)).Next(); err == nil {
		t.Fatal("unknown kind accepted")
	}
	long := `{"kind":"entry","event":"` + strings.Repeat("x", MaxExportLine) + `"}`
	if _, err := NewExportReader(strings.NewReader(long)).Next(); err == nil {
		t.Fatal("over-long line accepted")
	}
}
