package manifest

import "net/url"

// AdvisoryFeeds names where the maker publishes vulnerability advisories
// for this device type, so the hub can refresh them without the operator
// looking them up: a CSAF 2.0 provider-metadata.json (CSAF 2.0 section
// 7.1.7) and/or an OSV feed. Both must be https: an advisory fetched in
// the clear could be altered to hide a flaw.
type AdvisoryFeeds struct {
	CSAFProviderMetadata string `json:"csafProviderMetadata,omitempty"`
	OSVFeed              string `json:"osvFeed,omitempty"`
}

func buildAdvisoryFeeds(r *AdvisoryFeeds, ps *problems) *AdvisoryFeeds {
	const at = "candor:advisories"
	if r.CSAFProviderMetadata == "" && r.OSVFeed == "" {
		ps.add(at, "name csafProviderMetadata, osvFeed or both")
	}
	for _, f := range []struct{ key, val string }{{"csafProviderMetadata", r.CSAFProviderMetadata}, {"osvFeed", r.OSVFeed}} {
		if f.val == "" {
			continue
		}
		if u, err := url.Parse(f.val); err != nil || u.Scheme != "https" || u.Host == "" {
			ps.add(at+"."+f.key, "%q must be an https URL", f.val)
		}
	}
	out := *r
	return &out
}
