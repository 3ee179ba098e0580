package operator

import (
	"strings"
	"time"
)

// SecurityTxtValidity is how long a served security.txt says it is valid.
// RFC 9116 asks for less than a year; the file is generated on every
// request, so a short window costs nothing and stays current.
const SecurityTxtValidity = 30 * 24 * time.Hour

// SecurityTxt renders /.well-known/security.txt (RFC 9116) from the
// settings. canonical is the file's own https URL (empty: no Canonical
// line, as when the hub is not served over TLS). ok is false when there is
// no contact: RFC 9116 requires at least one Contact, so the hub then
// serves nothing rather than an invalid file.
func (st Settings) SecurityTxt(canonical string, now time.Time) (body string, ok bool) {
	if st.Contact == "" {
		return "", false
	}
	var b strings.Builder
	b.WriteString("# Security contact of this Candor hub's operator (RFC 9116).\n")
	b.WriteString("Contact: " + st.Contact + "\n")
	b.WriteString("Expires: " + now.UTC().Add(SecurityTxtValidity).Truncate(time.Second).Format(time.RFC3339) + "\n")
	if st.DisclosurePolicy != "" {
		b.WriteString("Policy: " + st.DisclosurePolicy + "\n")
	}
	b.WriteString("Preferred-Languages: en\n")
	if canonical != "" {
		b.WriteString("Canonical: " + canonical + "\n")
	}
	return b.String(), true
}
