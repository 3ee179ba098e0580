package manifest

import (
	"encoding/json"
	"net"
	"net/url"
	"regexp"
)

// Updates names the maker's update repository for this device type: a
// TUF repository (theupdateframework.io) whose signed metadata the hub
// checks before it offers a device any firmware. The trusted root is
// pinned here, either as the root metadata itself or as its SHA-256, so
// whoever runs the update server cannot swap the keys.
type Updates struct {
	MetadataURL string `json:"metadataUrl"`
	// TargetPrefix starts every target path of this device type's images
	// in the repository, e.g. "thermostat/".
	TargetPrefix      string          `json:"targetPrefix"`
	TrustedRoot       json.RawMessage `json:"trustedRoot,omitempty"`
	TrustedRootSHA256 string          `json:"trustedRootSha256,omitempty"`
}

type rawUpdates struct {
	MetadataURL       string          `json:"metadataUrl"`
	TargetPrefix      string          `json:"targetPrefix"`
	TrustedRoot       json.RawMessage `json:"trustedRoot"`
	TrustedRootSHA256 string          `json:"trustedRootSha256"`
}

var (
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*/$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func buildUpdates(r *rawUpdates, ps *problems) *Updates {
	const at = "candor:updates"
	u := &Updates{MetadataURL: r.MetadataURL, TargetPrefix: r.TargetPrefix, TrustedRoot: r.TrustedRoot, TrustedRootSHA256: r.TrustedRootSHA256}
	if p, err := url.Parse(r.MetadataURL); err != nil || p.Host == "" || !(p.Scheme == "https" || p.Scheme == "http" && loopback(p.Hostname())) {
		ps.add(at+".metadataUrl", "%q must be an https URL (plain http only on this machine, for testing)", r.MetadataURL)
	}
	if !prefixRE.MatchString(r.TargetPrefix) {
		ps.add(at+".targetPrefix", "%q must be a relative path ending in /, such as thermostat/", r.TargetPrefix)
	}
	hasRoot, hasSum := len(r.TrustedRoot) > 0 && string(r.TrustedRoot) != "null", r.TrustedRootSHA256 != ""
	switch {
	case hasRoot == hasSum:
		ps.add(at, "pin the repository's root with exactly one of trustedRoot (its root.json) or trustedRootSha256")
	case hasSum && !sha256RE.MatchString(r.TrustedRootSHA256):
		ps.add(at+".trustedRootSha256", "must be 64 lower-case hex digits (the SHA-256 of 1.root.json)")
	case hasRoot:
		var root struct {
			Signed struct {
				Type string `json:"_type"`
			} `json:"signed"`
			Signatures []json.RawMessage `json:"signatures"`
		}
		if err := json.Unmarshal(r.TrustedRoot, &root); err != nil || root.Signed.Type != "root" || len(root.Signatures) == 0 {
			ps.add(at+".trustedRoot", "must be a signed TUF root metadata document (signed._type \"root\", with signatures)")
		}
	}
	return u
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
