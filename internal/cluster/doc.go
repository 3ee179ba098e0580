// Package cluster lets several hub nodes that share one PostgreSQL database
// behave as one hub. It provides two things over NATS, and nothing else:
//
//   - Change propagation. A node that changed something deciding what
//     happens to the next reading (consent, a credential, an app or what
//     it may receive, a manifest, a quarantine or the monitor's actions,
//     recipients, key settings) notes the change: each service reports its
//     own changes, and the hub notes them (see Kind). Before the person is
//     told "done" (Confirming), Sync publishes the noted changes on candor.<deployment>.changes
//     and waits until every live node has applied them (dropped its cached
//     decision, cut a revoked device) and confirmed. A node that stays
//     silent makes Sync fail, so the person hears that the change is stored
//     but not yet in force everywhere, rather than a false "done".
//   - MQTT session takeover across nodes. When a client connects to one
//     node, the others end any session under the same client id, as one
//     broker does locally (MQTT 3.1.1 section 3.1.4, MQTT 5 section 3.1.4).
//
// Which nodes are live is learnt from heartbeats on
// candor.<deployment>.nodes: a node not heard from for Options.Expire is
// taken as gone (killed, partitioned) and no longer waited for. A
// heartbeat also names the requests the node answers (ServeList), so that
// a node gathering a list (Gather) waits only for those, and not for a
// node of an older version during a rolling upgrade. The data
// itself never travels over NATS: readings, accounts, sessions and tokens
// are in PostgreSQL, which every node reads.
package cluster
