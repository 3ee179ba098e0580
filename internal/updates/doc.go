// Package updates delivers signed firmware updates from a device maker's
// TUF repository to the devices of a household, through the hub.
//
// It follows The Update Framework (theupdateframework.io, specification
// 1.0) on the client side, using go-tuf v2's updater for every check: the
// hub walks root → timestamp → snapshot → targets for each maker's
// repository named in a manifest's candor:updates block, keeps a local
// metadata cache per repository in the data directory, and refuses bad
// signatures or thresholds, expired metadata (freeze), metadata rollback
// and target files whose length or hash differ. On top of TUF it refuses
// a firmware version lower than the one a device has installed
// (downgrade).
//
// In Uptane's terms (uptane.org, Design) the maker's repository is the
// image repository and the hub acts as the director for its household: it
// knows each device's installed version and its owner's policy, and
// decides what each device is offered. An offer goes to the device's
// control topic with the maker's signed targets metadata, so a device that
// can verify TUF itself need not trust the hub; the hub then serves the
// verified file to that device only, and the device reports progress on
// its reserved update topic (see progress.go).
//
// Policy: security updates are offered automatically unless the device's
// owner opted out; an owner can postpone one update for a bounded time.
// Every offer, postponement, install, failure and refusal is recorded in
// the transparency log by this package, through the injected Recorder.
package updates
