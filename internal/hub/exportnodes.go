package hub

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/export"
)

// Export jobs run on the node that was asked, and their encrypted file
// and its key stay there (the key in memory only). On a node that does not
// hold a job, requests for it (status, download, cancel, from the API or
// the pages) go to the node that does, found over NATS. Authentication is
// the holder's: sessions and tokens are in the shared database.

// exportJobPrefixes are the paths whose next segment is an export job id.
var exportJobPrefixes = []string{"/api/v1/exports/", "/my-data/exports/"}

func exportJobID(path string) string {
	for _, p := range exportJobPrefixes {
		if rest, ok := strings.CutPrefix(path, p); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id
		}
	}
	return ""
}

// nodeURL is the base URL the other nodes reach this one at: --node-url,
// or the HTTP listener when it names a host; "" when it cannot be told.
func (h *Hub) nodeURL() string {
	if h.cfg.NodeURL != "" {
		return strings.TrimSuffix(h.cfg.NodeURL, "/")
	}
	host, _, err := net.SplitHostPort(h.HTTPAddr())
	if ip := net.ParseIP(host); err != nil || ip == nil || ip.IsUnspecified() {
		return ""
	}
	return h.URL()
}

// serveExportJobs tells the other nodes which export jobs run here, once
// the HTTP listener is bound: who holds a job, and a person's jobs for
// the list of their exports any node shows.
func (h *Hub) serveExportJobs(context.Context) error {
	if h.node == nil {
		return nil
	}
	u := h.nodeURL()
	if u == "" {
		h.log.Warn("export jobs started on this node answer only here: set --node-url so the other nodes can send their requests about them")
		// Listed elsewhere, they would link to pages that answer 404
		// there; the node still answers, so nobody waits for it.
		return h.node.ServeList("export", func(string) any { return []export.JobStatus{} })
	}
	if err := h.node.ServeHolder("export", h.exports.Has, u); err != nil {
		return err
	}
	// The key is the account id of a person another node authenticated;
	// the answer holds that account's jobs only, their status and no
	// more (the archive and its key never leave this node).
	return h.node.ServeList("export", func(accountID string) any { return h.exports.List(accountID) })
}

// exportJobsElsewhere returns a person's export jobs that the other live
// nodes run, for the list of their exports, and names the nodes whose
// jobs it lacks: a node that did not answer within a second, one whose
// answer could not be read, and one that does not answer such requests
// (an older version during a rolling upgrade), which nobody waits for.
func (h *Hub) exportJobsElsewhere(ctx context.Context, accountID string) (export.JobList, error) {
	ctx, cancel := context.WithTimeout(ctx, exportListWait)
	defer cancel()
	got, err := h.node.Gather(ctx, "export", accountID)
	out := export.JobList{Unanswered: got.Unanswered, NotAsked: got.NotAsked}
	for node, raw := range got.Parts {
		var jobs []export.JobStatus
		if uerr := json.Unmarshal(raw, &jobs); uerr != nil {
			h.log.Warn("unreadable list of export jobs from another hub node", "node", node, "err", uerr)
			out.Unanswered = append(out.Unanswered, node)
			continue
		}
		out.Jobs = append(out.Jobs, jobs...)
	}
	slices.Sort(out.Unanswered)
	if len(out.Unanswered) > 0 {
		// Ids only. Nodes not asked are not logged: during a rolling
		// upgrade that is every list, and expected.
		h.log.Warn("hub nodes did not answer for a list of export jobs; it was shown without their jobs", "account", accountID,
			"nodes", out.Unanswered)
	}
	return out, err
}

// exportListWait bounds how long a list of export jobs waits for the
// other nodes' parts.
const exportListWait = time.Second

// exportJobRoutes sends requests about an export job this node does not
// hold to the node that does.
func (h *Hub) exportJobRoutes(next http.Handler) http.Handler {
	if h.node == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := exportJobID(r.URL.Path)
		if id == "" || h.exports.Has(id) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		holder, err := h.node.Holder(ctx, "export", id)
		cancel()
		if err != nil {
			h.log.Warn("find the node holding an export job", "job", id, "err", err)
		}
		target, perr := url.Parse(holder)
		if holder == "" || perr != nil || holder == h.nodeURL() {
			next.ServeHTTP(w, r) // nobody holds it: the local answer (404) is right
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	})
}
