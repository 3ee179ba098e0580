package logformat

import (
	"bytes"
	"io"
	"testing"
)

// FuzzDecodeRecord: the record decoder never panics, and whatever it
// accepts re-encodes to exactly the bytes it read.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, 0, []byte(`{"action":"readings.read"}`)))
	f.Add(AppendRecord(AppendRecord(nil, 5, []byte("x")), 6, []byte("yy")))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := DecodeRecord(b, 0)
		if err == nil {
			if got := AppendRecord(nil, rec.Index, rec.Payload); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoding differs")
			}
		}
		rr := NewRecordReader(bytes.NewReader(append(append([]byte(nil), FileHeader...), b...)), 0)
		for range 1000 {
			if _, err := rr.Next(); err != nil {
				break
			}
		}
		rr = NewRecordReader(bytes.NewReader(b), 0)
		rr.ReusePayloads()
		for range 1000 {
			if _, err := rr.Next(); err != nil {
				break
			}
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add(State{Seq: 1, Synced: 2, SyncedOffset: 16, Signed: []byte("o\n0\nx\n\n— o y\n")}.Marshal())
	f.Add([]byte("candor-auditlog-state/1 seq=1 synced=0 synced-offset=16 crc32c=00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err == nil && !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("accepted a non-canonical state slot")
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add(Checkpoint{Origin: "o", Size: 3, Root: make([]byte, 32)}.Marshal())
	f.Add("o\n18446744073709551615\nAAAA\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCheckpoint(s)
		if err == nil && !bytes.HasPrefix([]byte(s), []byte(c.Marshal())) {
			t.Fatalf("accepted checkpoint does not re-marshal to its prefix")
		}
	})
}

// FuzzCanonicalize: never panics; the canonical form is a fixed point.
func FuzzCanonicalize(f *testing.F) {
	f.Add([]byte(`{"b":"2","a":{"c":[1,"x",null,true]}}`))
	f.Add([]byte(`"\u0000\ud800"`))
	f.Add([]byte(`[[[[[]]]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonicalize(b)
		if err != nil {
			return
		}
		c2, err := Canonicalize(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not a fixed point: %q -> %q (%v)", c, c2, err)
		}
	})
}

// FuzzExportReader: the export line parser never panics.
func FuzzExportReader(f *testing.F) {
	f.Add([]byte(`{"kind":"header","format":"candor-auditlog-export/1","checkpoint":"x","complete":true}` + "\n" +
		`{"kind":"entry","index":0,"leaf_hash":"AAAA","event":{"a":"b"}}` + "\n" + `{"kind":"end","entries":1}`))
	f.Add([]byte("\n\n{\"kind\":1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		er := NewExportReader(bytes.NewReader(b))
		for range 1000 {
			if _, err := er.Next(); err == io.EOF || err != nil {
				return
			}
		}
	})
}
