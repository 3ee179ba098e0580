// Package export writes a person's data export: one ZIP archive with the
// readings of their household's devices, the manifests that describe them,
// their consent records and the hub's transparency log, in open, documented
// formats, with a plain-language README.txt and a SHA-256 checksum for
// every file.
//
// It serves clause 2B(e) of the IoT Good Practice paper: people can take
// their data with them, in a form other programs read. Readings come twice:
// as CSV tables for spreadsheets and as SenML (RFC 8428, package senml) for
// IoT tools.
//
// # Layout
//
//	README.txt                          what each file is, in plain words
//	devices.json                        devices, their streams, columns and units
//	manifests/<type>-v<N>.json          each manifest version, exactly as enforced
//	readings/<device-id>/<stream>.csv         one row per reading
//	readings/<device-id>/<stream>.senml.json  the same readings as a SenML Pack
//	consent/records.json                the consent records, as a JSON array
//	audit/transparency-log.jsonl        the transparency log export, if any
//	SHA256SUMS                          for sha256sum -c
//	index.json                          every file above: size, SHA-256, count
//
// index.json is always the last entry, and is written only when every
// other file was written completely.
//
// # Constant memory
//
// Write streams: it holds one page of readings (PageSize) at a time, never
// a whole history, so its memory does not grow with the number of readings
// (only, slightly, with the number of files). ZIP entries are written one
// after the other, yet each stream is read from the Source once, with the
// Source's stream filter: the CSV file goes into the archive while the
// SenML file of the same readings is spooled to a temporary file (in
// os.TempDir, unlinked at once where the system allows it, encrypted with
// age to a key held only in memory), then copied into the archive. Both
// files hold the same readings: those the hub accepted up to the export
// time. The spool needs disk space for one stream's SenML file, not memory.
//
// # Failure
//
// If the context is cancelled, the Source fails or the writer fails, Write
// stops and returns the error. It then never writes the ZIP central
// directory nor index.json, so the bytes written so far are not a readable
// archive; the caller must discard them (delete the partial file) rather
// than offer them to the person.
package export

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Format names this export layout in index.json; an incompatible change
// must bump it.
const Format = "candor-export/1"

// PageSize is how many readings Write asks the Source for at a time. With
// payloads of at most 64 KiB (the manifest limit) one page stays under
// 32 MiB; typical readings (under 300 bytes) need a few hundred KiB.
const PageSize = 500

// timeLayout is RFC 3339 in UTC with a fixed three-digit fraction
// (milliseconds), so times sort as text too and spreadsheets read them:
// most stop at milliseconds, and some refuse more digits.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Person is whom the export is for.
type Person struct {
	ID       string
	Username string
}

// Device is one device whose readings go into the export.
type Device struct {
	ID   string
	Name string
	Type string
	// ManifestVersions are the versions of the device type's manifest to
	// include; their fields become the columns of the CSV files.
	ManifestVersions []int
	// Streams, when not nil, lists the streams the device has readings on.
	// When nil, Write finds them (and counts the readings, for Progress)
	// with the Source's StreamCounts if it is a StreamCounter, else with
	// one extra pass over the device's readings (stream "").
	Streams []string
	// Readings is how many readings the device has, for the Progress total
	// only, when Streams is given; 0 means unknown.
	Readings int64
}

// Source supplies what goes into the export. Its methods are called from
// the goroutine that called Write, one at a time.
type Source interface {
	// Devices lists the devices whose readings the person may export.
	Devices(ctx context.Context) ([]Device, error)
	// Manifest returns the document of one version of a device type's
	// manifest, exactly as stored.
	Manifest(ctx context.Context, deviceType string, version int) ([]byte, error)
	// Readings returns up to limit readings of the device with Seq greater
	// than afterSeq, in increasing Seq order; only those of the given stream
	// unless stream is "". An empty result means there are no more.
	Readings(ctx context.Context, deviceID, stream string, afterSeq int64, limit int) ([]store.Reading, error)
	// ConsentRecords returns the person's consent records, each one JSON
	// document. None is fine: the export then holds an empty list.
	ConsentRecords(ctx context.Context) ([][]byte, error)
	// AuditLog returns the transparency log export (JSON lines, format
	// candor-auditlog-export/1: header with the signed checkpoint, entries
	// with their proofs, end line), or nil when there is none. Write closes
	// it.
	AuditLog(ctx context.Context) (io.ReadCloser, error)
}

// StreamCounter is a Source that can count a device's readings per stream
// without reading them (a database's GROUP BY), which spares Write a pass
// over every reading to find the streams.
type StreamCounter interface {
	// StreamCounts returns how many readings of the device each stream has
	// with a time before until; streams without such readings are absent.
	// An error matching errors.ErrUnsupported makes Write read the
	// readings instead.
	StreamCounts(ctx context.Context, deviceID string, until time.Time) (map[string]int64, error)
}

// Progress is told how many readings have been exported so far and how
// many there are in all (-1 when unknown; an estimate when the Source gave
// counts). It is called at the start, at most once every 1000 readings,
// and at the end, when done equals total. A reading counts as done once
// its CSV row and SenML records are written (the SenML file is copied into
// the archive after its stream's readings are done).
type Progress func(done, total int64)

// fileEntry is one file of the archive, as index.json lists it.
type fileEntry struct {
	Name     string `json:"name"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
	Readings *int64 `json:"readings,omitempty"` // reading files: how many readings
	Records  *int   `json:"senml_records,omitempty"`
}

type exporter struct {
	ctx      context.Context
	src      Source
	zw       *zip.Writer
	now      time.Time
	files    []fileEntry
	progress Progress
	total    int64
	done     int64 // readings written
	reported int64
}

// Write writes the export of person's data to w as a ZIP archive (see the
// package documentation for its layout). now is the export time: readings
// the hub accepted after it are left out, and it dates the archive.
// progress may be nil.
//
// On error nothing usable has been written; see the package documentation.
func Write(ctx context.Context, w io.Writer, src Source, person Person, now time.Time, progress Progress) error {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	now = now.UTC()
	p, err := makePlan(ctx, src, now)
	if p != nil && p.audit != nil {
		defer p.audit.Close()
	}
	if err != nil {
		return err
	}
	x := &exporter{ctx: ctx, src: src, zw: zip.NewWriter(w), now: now, progress: progress, total: p.total}
	// Deflate level 1: on BenchmarkWrite it is 3 to 5 times faster than
	// the default level, for an archive about a quarter larger (13.7
	// instead of 11.2 bytes per reading).
	x.zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed)
	})
	x.zw.SetComment("Candor data export for " + oneLine(person.Username) + ", " + now.Format(time.RFC3339) + ". Start with README.txt.")
	// Never close x.zw on error: without its central directory the partial
	// output is not a readable archive.
	progress(0, x.total)

	if err := x.file("README.txt", func(w io.Writer) error { return writeReadme(w, p, person, now) }); err != nil {
		return err
	}
	if err := x.file("devices.json", func(w io.Writer) error { return writeJSON(w, p.devicesDoc()) }); err != nil {
		return err
	}
	for _, m := range p.manifests {
		if err := x.file(m.path, func(w io.Writer) error { _, err := w.Write(m.raw); return err }); err != nil {
			return err
		}
	}
	for _, d := range p.devices {
		for _, s := range d.streams {
			if err := x.stream(d, s); err != nil {
				return err
			}
		}
	}
	if err := x.file(consentPath, func(w io.Writer) error { _, err := w.Write(p.consent); return err }); err != nil {
		return err
	}
	if p.audit != nil {
		if err := x.file(auditPath, func(w io.Writer) error { return copyContext(ctx, w, p.audit) }); err != nil {
			return err
		}
	}
	if err := x.file(sumsPath, func(w io.Writer) error {
		for _, f := range x.files {
			if _, err := fmt.Fprintf(w, "%s  %s\n", f.SHA256, f.Name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	index := struct {
		Format     string      `json:"format"`
		ExportedAt string      `json:"exported_at"`
		Person     personDoc   `json:"person"`
		Files      []fileEntry `json:"files"`
	}{Format, now.Format(timeLayout), personDoc(person), x.files}
	if err := x.file(indexPath, func(w io.Writer) error { return writeJSON(w, index) }); err != nil {
		return err
	}
	if err := x.zw.Close(); err != nil {
		return fmt.Errorf("export: finish archive: %w", err)
	}
	progress(x.done, x.done)
	return nil
}

const (
	consentPath = "consent/records.json"
	auditPath   = "audit/transparency-log.jsonl"
	sumsPath    = "SHA256SUMS"
	indexPath   = "index.json"
)

type personDoc struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// file writes one archive entry, filled by fill, and records its size and
// SHA-256 (computed while it streams) for SHA256SUMS and index.json.
func (x *exporter) file(name string, fill func(io.Writer) error) error {
	_, err := x.entry(name, fill)
	return err
}

func (x *exporter) entry(name string, fill func(io.Writer) error) (*fileEntry, error) {
	if err := x.ctx.Err(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	zf, err := x.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: x.now})
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", name, err)
	}
	h := sha256.New()
	var n countWriter
	bw := bufio.NewWriterSize(io.MultiWriter(zf, h, &n), 64<<10)
	if err := fill(bw); err != nil {
		return nil, fmt.Errorf("export: %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("export: %s: %w", name, err)
	}
	x.files = append(x.files, fileEntry{Name: name, Bytes: int64(n), SHA256: hex.EncodeToString(h.Sum(nil))})
	return &x.files[len(x.files)-1], nil
}

// tick counts one written reading and reports progress every 1000.
func (x *exporter) tick() {
	x.done++
	if x.done-x.reported >= 1000 {
		x.reported = x.done
		x.progress(x.done, x.total)
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// writeJSON writes v indented, without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// copyContext copies r to w, checking ctx between chunks.
func copyContext(ctx context.Context, w io.Writer, r io.Reader) error {
	buf := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
