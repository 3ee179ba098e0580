package advisories

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/problem"
	"github.com/gocsaf/csaf/v3/csaf"
)

// Feed kinds.
const (
	// FeedCSAF is a CSAF 2.0 provider-metadata.json (CSAF 2.0 section
	// 7.1.7); the hub follows its distributions to ROLIE feeds or
	// directory listings.
	FeedCSAF = "csaf"
	// FeedOSV is an OSV feed: a zip of OSV documents, as osv.dev
	// publishes per ecosystem (all.zip), or one OSV document.
	FeedOSV = "osv"
)

// Limits of one feed refresh. A document keeps the 5 MiB limit of a file
// import; an index or an OSV archive may be larger, but not unbounded.
const (
	MaxIndexBytes     = 16 << 20
	MaxArchiveBytes   = 64 << 20
	MaxFeedDocuments  = 10000
	feedRequestTimout = 30 * time.Second
	maxRedirects      = 5
)

// Kinds of feed failure.
var (
	// ErrFeedURL means a feed's address or kind is not acceptable.
	ErrFeedURL = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-feed", Text: "advisories: invalid feed"}
	// ErrFeed means a feed could not be read as a whole (its index or
	// metadata); documents refused one by one do not fail the feed.
	ErrFeed = &problem.Kind{Status: http.StatusBadGateway, Type: "feed-failed", Text: "advisories: feed refresh failed"}
	// ErrNoFeeds means the service was built without a feed store.
	ErrNoFeeds = &problem.Kind{Status: http.StatusNotImplemented, Type: "no-feeds", Text: "advisories: feeds are not available"}
)

// checkFeedURL accepts only https: an advisory fetched in the clear could
// be altered on the way to hide a flaw or raise a false alarm.
func checkFeedURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, ErrFeedURL.Errorf("%q must be an https URL without a user name", raw)
	}
	return u, nil
}

// fetcher reads feeds over https.
type fetcher struct {
	client *http.Client
}

func newFetcher(base *http.Client) *fetcher {
	c := http.Client{}
	if base != nil {
		c = *base
	}
	if c.Timeout == 0 {
		c.Timeout = feedRequestTimout
	}
	// A redirect to http would undo the https check of the first URL.
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused: only https", req.URL.Redacted())
		}
		return nil
	}
	return &fetcher{client: &c}
}

// get fetches one https URL and returns at most limit bytes; a longer
// body is refused rather than cut.
func (f *fetcher) get(ctx context.Context, u *url.URL, limit int64) ([]byte, error) {
	if u.Scheme != "https" {
		return nil, ErrFeedURL.Errorf("%s is not https", u.Redacted())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), tooLarge(u.Redacted(), limit))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), tooLarge(u.Redacted(), limit))
	}
	return data, nil
}

func tooLarge(source string, limit int64) error {
	return ErrTooLarge.Errorf("%s is larger than %d bytes, the most the hub reads", source, limit)
}

// fetched is what one refresh read: the documents, and the ones it could
// not fetch (each refused alone, as a file import would refuse it).
type fetched struct {
	docs []Document
	errs []error
	// signatures says how OpenPGP signatures were checked ("" for OSV).
	signatures string
	// unsigned counts documents let in without a signature.
	unsigned int
}

// fetch reads every document a feed lists. An error means the feed as a
// whole could not be read.
func (f *fetcher) fetch(ctx context.Context, kind, raw string, sig FeedSignatures) (fetched, error) {
	u, err := checkFeedURL(raw)
	if err != nil {
		return fetched{}, err
	}
	switch kind {
	case FeedCSAF:
		return f.fetchCSAF(ctx, u, sig)
	case FeedOSV:
		return f.fetchOSV(ctx, u)
	}
	return fetched{}, ErrFeedURL.Errorf("feed kind %q is neither %q nor %q", kind, FeedCSAF, FeedOSV)
}

// docRef is one document a CSAF distribution lists, with the URLs of its
// SHA-256 file and OpenPGP signature when the distribution names them (a
// signature not named is looked for at the document's URL + ".asc").
type docRef struct {
	url, sha256URL, sigURL *url.URL
}

// fetchCSAF follows provider-metadata.json to its distributions (CSAF 2.0
// section 7.1.7): ROLIE feeds (7.1.14) whose entries link each document
// and its hash, or directories (7.1.13) whose index.txt lists them.
// gocsaf's loaders parse and check the metadata and ROLIE JSON.
func (f *fetcher) fetchCSAF(ctx context.Context, pmdURL *url.URL, sig FeedSignatures) (fetched, error) {
	data, err := f.get(ctx, pmdURL, MaxIndexBytes)
	if err != nil {
		return fetched{}, ErrFeed.Errorf("provider metadata: %w", err)
	}
	pmd, err := csaf.LoadProviderMetadata(bytes.NewReader(data))
	if err != nil {
		return fetched{}, ErrFeed.Errorf("provider metadata %s is not valid CSAF provider metadata: %w", pmdURL.Redacted(), err)
	}
	keys, err := f.csafSigners(ctx, pmdURL, pmd.PGPKeys, sig)
	if err != nil {
		return fetched{}, err
	}
	var refs []docRef
	for i, d := range pmd.Distributions {
		var (
			rs  []docRef
			err error
		)
		switch {
		case d.Rolie != nil:
			rs, err = f.rolieRefs(ctx, pmdURL, d.Rolie)
		case d.DirectoryURL != "":
			rs, err = f.directoryRefs(ctx, pmdURL, d.DirectoryURL)
		default:
			err = fmt.Errorf("distribution %d names neither a ROLIE feed nor a directory", i)
		}
		if err != nil {
			return fetched{}, ErrFeed.Errorf("provider metadata %s: %w", pmdURL.Redacted(), err)
		}
		refs = append(refs, rs...)
	}
	if len(pmd.Distributions) == 0 {
		return fetched{}, ErrFeed.Errorf("provider metadata %s lists no distributions", pmdURL.Redacted())
	}
	seen := map[string]bool{}
	out := fetched{signatures: keys.plain}
	for _, r := range refs {
		key := r.url.String()
		if seen[key] {
			continue // a document listed by both a ROLIE feed and a directory
		}
		seen[key] = true
		if len(seen) > MaxFeedDocuments {
			return fetched{}, ErrFeed.Errorf("provider metadata %s lists more than %d documents", pmdURL.Redacted(), MaxFeedDocuments)
		}
		doc, err := f.csafDocument(ctx, r)
		if err != nil {
			out.errs = append(out.errs, err)
			continue
		}
		unsigned, err := f.verify(ctx, keys, r, doc.Data)
		if err != nil {
			out.errs = append(out.errs, err)
			continue
		}
		if unsigned && keys.ring != nil {
			out.unsigned++
		}
		out.docs = append(out.docs, doc)
	}
	return out, nil
}

// publicTLP tells whether a ROLIE feed is meant for everyone. Feeds of
// other labels need credentials the hub does not have.
func publicTLP(l *csaf.TLPLabel) bool {
	return l == nil || *l == csaf.TLPLabelWhite || *l == "CLEAR"
}

func (f *fetcher) rolieRefs(ctx context.Context, base *url.URL, r *csaf.ROLIE) ([]docRef, error) {
	var refs []docRef
	for _, fd := range r.Feeds {
		if fd.URL == nil || !publicTLP(fd.TLPLabel) {
			continue
		}
		fu, err := base.Parse(string(*fd.URL))
		if err != nil {
			return nil, fmt.Errorf("ROLIE feed %q: %w", string(*fd.URL), err)
		}
		data, err := f.get(ctx, fu, MaxIndexBytes)
		if err != nil {
			return nil, fmt.Errorf("ROLIE feed: %w", err)
		}
		feed, err := csaf.LoadROLIEFeed(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("ROLIE feed %s: %w", fu.Redacted(), err)
		}
		for _, e := range feed.Feed.Entry {
			var ref docRef
			href := e.Content.Src
			for _, l := range e.Link {
				switch {
				case l.Rel == "self" && href == "":
					href = l.HRef
				case l.Rel == "hash" && strings.HasSuffix(l.HRef, ".sha256"):
					if hu, err := fu.Parse(l.HRef); err == nil {
						ref.sha256URL = hu
					}
				case l.Rel == "signature":
					if su, err := fu.Parse(l.HRef); err == nil && su.Scheme == "https" {
						ref.sigURL = su
					}
				}
			}
			if href == "" {
				return nil, fmt.Errorf("ROLIE feed %s: entry %q links no document", fu.Redacted(), e.ID)
			}
			if ref.url, err = fu.Parse(href); err != nil {
				return nil, fmt.Errorf("ROLIE feed %s: entry %q: %w", fu.Redacted(), e.ID, err)
			}
			refs = append(refs, ref)
		}
	}
	return refs, nil
}

// directoryRefs reads index.txt, the list of every document's path
// relative to the directory (CSAF 2.0 requirement 7.1.13). Directory
// distributions keep name.json.sha256 beside each document (7.1.18).
func (f *fetcher) directoryRefs(ctx context.Context, base *url.URL, dir string) ([]docRef, error) {
	du, err := base.Parse(dir)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", dir, err)
	}
	if !strings.HasSuffix(du.Path, "/") {
		du.Path += "/"
	}
	data, err := f.get(ctx, du.JoinPath("index.txt"), MaxIndexBytes)
	if err != nil {
		return nil, fmt.Errorf("directory index: %w", err)
	}
	return parseIndex(du, data)
}

// parseIndex reads a CSAF directory's index.txt: one relative path of a
// .json document per line.
func parseIndex(du *url.URL, data []byte) ([]docRef, error) {
	var refs []docRef
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if path.IsAbs(line) || strings.Contains(line, "..") || !strings.HasSuffix(line, ".json") {
			return nil, fmt.Errorf("directory index %s: %q is not a relative path of a .json document", du.Redacted(), line)
		}
		u, err := du.Parse(line)
		if err != nil {
			return nil, fmt.Errorf("directory index %s: %q: %w", du.Redacted(), line, err)
		}
		// A full URL on a line would send the hub to another host.
		if !strings.HasPrefix(u.String(), du.String()) {
			return nil, fmt.Errorf("directory index %s: %q leaves the directory", du.Redacted(), line)
		}
		refs = append(refs, docRef{url: u})
	}
	return refs, nil
}

// csafDocument fetches one document and, when its feed named a SHA-256
// file, checks the document against it.
func (f *fetcher) csafDocument(ctx context.Context, r docRef) (Document, error) {
	src := r.url.Redacted()
	data, err := f.get(ctx, r.url, MaxDocumentBytes)
	if err != nil {
		return Document{}, fmt.Errorf("document %s: %w", src, err)
	}
	if r.sha256URL != nil {
		sum, err := f.get(ctx, r.sha256URL, 4<<10)
		if err != nil {
			return Document{}, fmt.Errorf("document %s: hash: %w", src, err)
		}
		want, _, _ := strings.Cut(strings.TrimSpace(string(sum)), " ")
		got := sha256.Sum256(data)
		if !strings.EqualFold(want, hex.EncodeToString(got[:])) {
			return Document{}, ErrInvalid.Errorf("document %s does not match its SHA-256 file %s", src, r.sha256URL.Redacted())
		}
	}
	return Document{Source: src, Data: data}, nil
}

// zipMagic starts every zip archive.
var zipMagic = []byte("PK\x03\x04")

// fetchOSV reads a zip of OSV documents or one OSV document.
func (f *fetcher) fetchOSV(ctx context.Context, u *url.URL) (fetched, error) {
	data, err := f.get(ctx, u, MaxArchiveBytes)
	if err != nil {
		return fetched{}, ErrFeed.Errorf("OSV feed: %w", err)
	}
	return parseOSVFeed(u, data)
}

// parseOSVFeed splits an OSV feed's body into its documents.
func parseOSVFeed(u *url.URL, data []byte) (fetched, error) {
	if !bytes.HasPrefix(data, zipMagic) {
		return fetched{docs: []Document{{Source: u.Redacted(), Data: data}}}, nil
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fetched{}, ErrFeed.Errorf("OSV feed %s: not a readable zip archive: %w", u.Redacted(), err)
	}
	var out fetched
	n := 0
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() || !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		if n++; n > MaxFeedDocuments {
			return fetched{}, ErrFeed.Errorf("OSV feed %s holds more than %d documents", u.Redacted(), MaxFeedDocuments)
		}
		src := u.Redacted() + "#" + zf.Name
		doc, err := readZipDoc(zf, src)
		if err != nil {
			out.errs = append(out.errs, err)
			continue
		}
		out.docs = append(out.docs, doc)
	}
	return out, nil
}

// readZipDoc reads one archive member, bounded by the document limit
// whatever its header claims (a zip bomb lies about its size).
func readZipDoc(zf *zip.File, src string) (Document, error) {
	if zf.UncompressedSize64 > MaxDocumentBytes {
		return Document{}, tooLarge(src, MaxDocumentBytes)
	}
	rc, err := zf.Open()
	if err != nil {
		return Document{}, fmt.Errorf("document %s: %w", src, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxDocumentBytes+1))
	if errors.Is(err, zip.ErrChecksum) {
		return Document{}, ErrInvalid.Errorf("document %s: %w", src, err)
	}
	if err != nil {
		return Document{}, fmt.Errorf("document %s: %w", src, err)
	}
	if len(data) > MaxDocumentBytes {
		return Document{}, tooLarge(src, MaxDocumentBytes)
	}
	return Document{Source: src, Data: data}, nil
}
