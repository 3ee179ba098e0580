package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/broker"
	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/store"
)

// The hub as one node of several (--nats): the services report changes
// that decide the next reading, the front ends wait until every live node
// has them before saying "done", and each node applies the others'
// changes to what it keeps in memory. See package cluster and
// docs/deployment.md.

// SharedKeyFiles are the files, relative to the data directory, that
// every node of a deployment must hold the same copy of: the vault key
// (data keys are wrapped to it in the shared database, so a node with
// another one could not open readings sealed by the others, nor they its),
// the transparency log key (every node signs checkpoints of the one
// deployment log) and the consent receipt, forwarding and assessment
// report signing keys (one deployment, one signer). The first node makes
// them; the operator copies them to every other node before its first
// start, like a TLS certificate.
var SharedKeyFiles = []string{"vault.key", filepath.Join("audit", logformat.KeyFile),
	filepath.Join("consent", signkey.KeyFile(receiptKeyName)), filepath.Join("forward", signkey.KeyFile(forwardKeyName)),
	filepath.Join("assess", signkey.KeyFile(reportKeyName))}

// checkSharedKeys refuses to start a node that lacks the deployment's
// vault key while the shared database already holds data keys: it would
// make a key of its own and seal readings no other node can open.
func (h *Hub) checkSharedKeys(ctx context.Context) error {
	if h.cfg.NATS == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "vault.key")); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	kos, err := h.st.KeyOwners(ctx)
	if err != nil {
		return fmt.Errorf("check for the deployment's keys: %w", err)
	}
	if len(kos) > 0 {
		return fmt.Errorf("this node has no vault.key in %s, but the shared database already holds data keys: copy %s from the data directory of a node that runs, then start again",
			h.cfg.DataDir, strings.Join(SharedKeyFiles, ", "))
	}
	return nil
}

// connectCluster joins the deployment when --nats is set, right after the
// transparency log opens: from here on the services record through the
// deployment's one log (package cluster's LogMirror), and changes from
// other nodes are confirmed (applied once the services exist, joinCluster).
func (h *Hub) connectCluster(ctx context.Context) (err error) {
	if h.cfg.NATS == "" {
		return nil
	}
	h.node, err = cluster.Join(ctx, cluster.Options{URL: h.cfg.NATS, Deployment: h.cfg.Deployment,
		Logger: h.log.With("component", "cluster")}, h.applyChanges)
	if err != nil {
		return err
	}
	h.mirror, err = h.node.Log(ctx, h.alog)
	if errors.Is(err, cluster.ErrDiverged) {
		h.log.Warn("transparency log: this node's copy differs from the deployment's (a crash repair?); rebuilding it from the deployment's log", "err", err)
		if err = h.rebuildAuditLog(ctx); err == nil {
			h.mirror, err = h.node.Log(ctx, h.alog)
		}
	}
	if err != nil {
		_ = h.node.Close()
		return err
	}
	h.rec = h.mirror
	return nil
}

// rebuildAuditLog moves this node's copy of the log aside (kept for
// inspection, with a name saying why) and opens an empty one with the
// same key, which the deployment's log then fills.
func (h *Hub) rebuildAuditLog(ctx context.Context) error {
	dir := h.alog.Dir()
	if err := h.alog.Close(); err != nil {
		return fmt.Errorf("close the transparency log: %w", err)
	}
	aside := fmt.Sprintf("%s.diverged-%d", dir, time.Now().Unix())
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("move the transparency log aside: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{logformat.KeyFile, logformat.PubFile} {
		b, err := os.ReadFile(filepath.Join(aside, name))
		if errors.Is(err, fs.ErrNotExist) && name == logformat.PubFile {
			continue // a convenience copy; a node given the key has none
		}
		if err != nil {
			return fmt.Errorf("keep the log key: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("keep the log key: %w", err)
		}
	}
	return h.openAuditLog(ctx)
}

// joinCluster lets this node's services take part once they exist: the
// changes they make are noted for the other nodes, and the changes of
// others apply here.
//
// Every service that keeps in memory something deciding the next reading
// reports its own changes through a hook, wired here to a Change (or, for
// the services built after this part, with noteFor where they are built:
// recipients and key settings in openFrontEnds, erasure's shreds,
// deleted readings and deleted households in openErasure). The front ends then only Sync what
// was noted (cluster.Node.Confirming), whatever the path of the request,
// the pages', the API's or the CLI's over the control socket. The
// operator's details are read from the shared store at each use, so they
// need no Change.
func (h *Hub) joinCluster(ctx context.Context) error {
	if h.node == nil {
		return nil
	}
	h.vault.ShareStore()
	h.consent.OnChange(func(deviceID, _ string, _ bool) {
		h.node.Note(cluster.Change{Kind: cluster.KindConsent, ID: deviceID})
	})
	h.id.OnRevoke(h.noteFor(cluster.KindDevice)) // rotated, revoked or erased
	h.apps.OnRevoke(h.noteFor(cluster.KindApp))
	h.apps.OnChange(h.noteFor(cluster.KindGrants))
	h.cat.OnChange(h.noteFor(cluster.KindManifest))
	h.mon.OnPolicyChange(func() { h.note(cluster.KindMonitorActions, "") })
	h.mon.OnHoldChange(h.noteHold)
	// Wrong guesses count on every node, as on one hub.
	h.id.OnSpent(h.node.Spent)
	h.node.OnSpentElsewhere(h.id.SpentElsewhere)
	h.nodeReady.Store(true)
	// Anything changed by others while the services loaded is in the
	// database (its confirmation here was a no-op): read it once more.
	if err := h.reloadAll(ctx); err != nil {
		return err
	}
	h.log.Info("joined hub nodes", "deployment", h.cfg.Deployment, "node", h.node.Name(), "live", len(h.node.Live()))
	return nil
}

// note remembers a change this node made, for the other nodes; the next
// Sync (the front ends' before they answer) passes it on. A single hub
// has no one to tell.
func (h *Hub) note(kind cluster.Kind, id string) {
	if h.node != nil {
		h.node.Note(cluster.Change{Kind: kind, ID: id})
	}
}

// noteFor is note as a service's hook: nil on a single hub, so the
// service calls nothing.
func (h *Hub) noteFor(kind cluster.Kind) func(id string) {
	if h.node == nil {
		return nil
	}
	return func(id string) { h.note(kind, id) }
}

// leaveNodes runs as soon as the broker has stopped taking devices: the
// other nodes stop waiting for this one, so their changes are not held
// up while it finishes shutting down.
func (h *Hub) leaveNodes(context.Context) error {
	if h.node != nil {
		h.nodeReady.Store(false)
		h.node.Leave()
	}
	return nil
}

func (h *Hub) leaveCluster(context.Context) error {
	if h.node == nil {
		return nil
	}
	if h.mirror != nil {
		h.mirror.Close()
	}
	return h.node.Close()
}

// clusterBroker is set once the broker exists; changes that arrive before
// have no connection to end.
func (h *Hub) clusterBroker() *broker.Broker { return h.nodeBroker.Load() }

// startSessions lets other nodes end sessions here once the broker exists.
func (h *Hub) startSessions() {
	if h.node == nil {
		return
	}
	h.nodeBroker.Store(h.br)
	h.node.OnTakeover(func(clientID string) {
		if h.br.EndSession(clientID) {
			h.log.Info("MQTT session taken over by another hub node", "client", clientID)
		}
	})
	// Readings accepted by other nodes for apps connected here; the
	// broker asks the apps service which app may see each.
	if err := h.node.OnReading(h.br.PublishReading); err != nil {
		h.log.Error("receive readings for apps from other hub nodes", "err", err)
	}
}

// applyChanges makes one round of changes (another node's, or this
// one's) take effect here, each as applyChange does, except the
// monitor's: its holds and actions are reread whole, so a round that
// carries any of them rereads them once, after the rest, however many
// devices were held (a flood of many devices in one window would
// otherwise reread the table once per device on every node, and could
// take longer than the round waits).
func (h *Hub) applyChanges(ctx context.Context, changes []cluster.Change) error {
	if !h.nodeReady.Load() {
		return nil // nothing loaded yet; joinCluster reads it all afterwards
	}
	var errs []error
	monitor := false
	for _, c := range changes {
		if c.Kind == cluster.KindHold || c.Kind == cluster.KindMonitorActions {
			monitor = true
			continue
		}
		if err := h.applyChange(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", c.Kind, c.ID, err))
		}
	}
	if monitor {
		if err := h.mon.Reload(ctx); err != nil {
			errs = append(errs, fmt.Errorf("monitor holds and actions: %w", err))
		}
	}
	return errors.Join(errs...)
}

// applyChange makes another node's change take effect here. Each kind
// redoes here what the service that made the change did in its own
// memory; a hook of a service that fires while applying (consent's when a
// device's collect state changed, the monitor's for a hold that came or
// went) passes the change on once more, which ends there: applying it
// again changes nothing. Hold and monitor-action changes do not come here:
// applyChanges reloads the monitor once for all of them in a round.
func (h *Hub) applyChange(ctx context.Context, c cluster.Change) error {
	switch c.Kind {
	case cluster.KindConsent:
		return h.consent.Refresh(ctx, c.ID)
	case cluster.KindDevice:
		if br := h.clusterBroker(); br != nil {
			br.Disconnect(c.ID) // revoked, rotated or erased: its credential no longer holds
		}
		if _, err := h.st.Device(ctx, c.ID); errors.Is(err, store.ErrNotFound) {
			// Erased: forget it as erasure's Erased hook does on the node
			// that erased it (openErasure), without telling identity's
			// listeners, which would pass the erasure on again.
			ids := []string{c.ID}
			h.owners.forget(ids)
			h.mon.Forget(ids)
			h.id.ForgetDevices(ids)
			h.apps.Forget(ctx, ids)
			// Refresh drops what consent held of it; that it reports the
			// device unknown is the point.
			_ = h.consent.Refresh(ctx, c.ID)
			return nil
		} else if err != nil {
			return fmt.Errorf("look up device: %w", err)
		}
		return h.consent.Refresh(ctx, c.ID)
	case cluster.KindApp:
		if br := h.clusterBroker(); br != nil {
			br.Disconnect(c.ID)
		}
		return h.apps.Reload(ctx)
	case cluster.KindGrants:
		// Home Assistant discovery messages are retained in each node's
		// broker: this one announces or removes its own.
		return h.apps.ReloadAnnouncing(ctx)
	case cluster.KindReadingsDeleted:
		h.apps.Forget(ctx, []string{c.ID})
		return nil
	case cluster.KindManifest:
		return h.cat.Reload(ctx)
	case cluster.KindRecipients:
		return h.forward.Reload(ctx, c.ID)
	case cluster.KindKeys:
		return h.vault.Refresh(ctx, c.ID)
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// reloadAll rereads everything this node keeps in memory that another
// node may have changed, once, when it joins: manifests in force (and so
// every device's decisions), app grants, the monitor's actions and holds,
// recipients and key settings.
func (h *Hub) reloadAll(ctx context.Context) error {
	var errs []error
	if err := h.cat.Reload(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := h.consent.Refresh(ctx); err != nil {
		errs = append(errs, fmt.Errorf("consent: %w", err))
	}
	if err := h.apps.Reload(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := h.mon.Reload(ctx); err != nil {
		errs = append(errs, err)
	}
	hhs, err := h.st.Households(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("households: %w", err))
	}
	for _, hh := range hhs {
		if err := h.forward.Reload(ctx, hh.ID); err != nil {
			errs = append(errs, fmt.Errorf("recipients of %s: %w", hh.ID, err))
		}
	}
	kos, err := h.st.KeyOwners(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("key owners: %w", err))
	}
	for _, ko := range kos {
		if err := h.vault.Refresh(ctx, ko.OwnerID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// confirming wraps a front end so changes are in force on every node
// before it answers; a single hub needs no wrapping. What a request
// changed, the services noted (joinCluster), so any path is covered.
func (h *Hub) confirming(next http.Handler) http.Handler {
	if h.node == nil {
		return next
	}
	confirmed := h.node.Confirming(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/ingest/") {
			// Readings over HTTP change no decision, and must not queue
			// behind a change round waiting for a silent node.
			next.ServeHTTP(w, r)
			return
		}
		confirmed.ServeHTTP(w, r)
	})
}

// noteHold passes on a hold this node's monitor placed, changed or
// lifted: a quarantine, a rate limit, a hold until fixed. The monitor
// often acts on its own (a flooding device), with nobody waiting for an
// answer, so the round runs in the background at once; a node that does
// not confirm is logged, and learns the hold at its next reload. When a
// person's request made the change (a release through the API), the
// front end's own Sync waits for the same round before answering.
func (h *Hub) noteHold(deviceID string) {
	if h.node == nil || !h.nodeReady.Load() {
		return
	}
	h.node.Note(cluster.Change{Kind: cluster.KindHold, ID: deviceID})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.node.Sync(ctx); err != nil {
			h.log.Warn("pass a hold on to the other hub nodes", "device", deviceID, "err", err)
		}
	}()
}

// appsPublisher is what the apps service hands readings and discovery
// messages to: the broker, and on a node also the other nodes' brokers
// (for readings; discovery messages are announced by every node itself,
// at start and for each grant change, applyChange).
func (h *Hub) appsPublisher() apps.Publisher {
	if h.node == nil {
		return h.br
	}
	return nodePublisher{Broker: h.br, node: h.node}
}

type nodePublisher struct {
	*broker.Broker
	node *cluster.Node
}

func (p nodePublisher) PublishReading(deviceID, stream string, payload []byte) {
	p.Broker.PublishReading(deviceID, stream, payload)
	p.node.Reading(deviceID, stream, payload)
}

// brokerMonitor is the monitor the broker reports connections to; on a
// node it also tells the other nodes, so they end the client's session.
func (h *Hub) brokerMonitor() broker.Monitor {
	if h.node == nil {
		return h.mon
	}
	return sessionMonitor{Monitor: h.mon, node: h.node}
}

// appLogin is what the broker tells of each app that logged in: on a
// node, the other nodes end a session under the same client id, as they
// do for devices (sessionMonitor).
func (h *Hub) appLogin() func(clientID string) {
	if h.node == nil {
		return nil
	}
	return h.node.Connected
}

type sessionMonitor struct {
	broker.Monitor
	node *cluster.Node
}

func (m sessionMonitor) Connect(deviceID, clientID string, addr netip.Addr) {
	m.Monitor.Connect(deviceID, clientID, addr)
	m.node.Connected(clientID)
}

// nodeBroker is the broker as seen from NATS callbacks.
type nodeBroker = atomic.Pointer[broker.Broker]

// startLeader takes part in electing the node that runs the background
// jobs (retention sweeps, erasure purges, the security audit, update
// checks, advisory feed refreshes): on several nodes they would all run
// them at once. The election is a PostgreSQL advisory lock (package
// cluster's Leader); a single hub runs them itself.
func (h *Hub) startLeader(context.Context) error {
	if h.node == nil {
		return nil
	}
	leading := prometheus.NewGauge(prometheus.GaugeOpts{Name: "candor_jobs_leader",
		Help: "1 while this hub node runs the deployment's background jobs (retention, purges, audits, update checks, advisory feeds), else 0."})
	h.reg.MustRegister(leading)
	h.leader = cluster.NewLeader(h.cfg.Store, h.cfg.Deployment, cluster.LeaderOptions{
		Logger: h.log.With("component", "cluster"),
		OnChange: func(l bool) {
			if l {
				leading.Set(1)
			} else {
				leading.Set(0)
			}
		},
	})
	h.leaderJob.run(h.leader.Run)
	return nil
}

// onLeader wraps a background job so it runs only while this node leads
// (always on a single hub), and starts again when it becomes leader.
func (h *Hub) onLeader(fn func(ctx context.Context)) func(ctx context.Context) {
	return func(ctx context.Context) {
		h.leader.Do(ctx, func(ctx context.Context) {
			h.jobStarts.Add(1)
			fn(ctx)
		})
	}
}
