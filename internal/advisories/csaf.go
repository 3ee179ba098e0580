package advisories

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The part of a CSAF 2.0 document matching reads. github.com/gocsaf/csaf/v3
// validates the document; its Go model is not used for reading because it
// declares product_groups and group_ids as objects where the schema has
// arrays, so valid documents that use product groups would not decode.
type csafDoc struct {
	Document struct {
		Title    string `json:"title"`
		Tracking struct {
			ID                 string    `json:"id"`
			CurrentReleaseDate time.Time `json:"current_release_date"`
			Aliases            []string  `json:"aliases"`
		} `json:"tracking"`
		Notes []csafNote `json:"notes"`
	} `json:"document"`
	ProductTree struct {
		Branches         []csafBranch `json:"branches"`
		FullProductNames []csafFPN    `json:"full_product_names"`
		Relationships    []struct {
			FullProductName           csafFPN `json:"full_product_name"`
			ProductReference          string  `json:"product_reference"`
			RelatesToProductReference string  `json:"relates_to_product_reference"`
		} `json:"relationships"`
		ProductGroups []struct {
			GroupID    string   `json:"group_id"`
			ProductIDs []string `json:"product_ids"`
		} `json:"product_groups"`
	} `json:"product_tree"`
	Vulnerabilities []struct {
		CVE           string              `json:"cve"`
		Title         string              `json:"title"`
		Notes         []csafNote          `json:"notes"`
		ProductStatus map[string][]string `json:"product_status"`
		Remediations  []struct {
			Category   string   `json:"category"`
			Details    string   `json:"details"`
			URL        string   `json:"url"`
			ProductIDs []string `json:"product_ids"`
			GroupIDs   []string `json:"group_ids"`
		} `json:"remediations"`
		Scores []struct {
			CVSSV3 *struct {
				VectorString string  `json:"vectorString"`
				BaseScore    float64 `json:"baseScore"`
				BaseSeverity string  `json:"baseSeverity"`
				Version      string  `json:"version"`
			} `json:"cvss_v3"`
			CVSSV2 *struct {
				BaseScore float64 `json:"baseScore"`
			} `json:"cvss_v2"`
		} `json:"scores"`
		Threats []struct {
			Category string `json:"category"`
			Details  string `json:"details"`
		} `json:"threats"`
	} `json:"vulnerabilities"`
}

type csafNote struct {
	Category string `json:"category"`
	Text     string `json:"text"`
}

type csafBranch struct {
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Branches []csafBranch `json:"branches"`
	Product  *csafFPN     `json:"product"`
}

type csafFPN struct {
	Name      string `json:"name"`
	ProductID string `json:"product_id"`
	Helper    *struct {
		CPE          string   `json:"cpe"`
		PURL         string   `json:"purl"`
		ModelNumbers []string `json:"model_numbers"`
	} `json:"product_identification_helper"`
}

// csafProduct is a product id resolved to what a device can be matched on.
type csafProduct struct {
	Product  Product
	Versions VersionSet
}

// statusOf maps CSAF product status categories to what they mean for a
// device. under_investigation says nothing yet.
var statusOf = map[string]Status{
	"known_affected":     StatusAffected,
	"first_affected":     StatusAffected,
	"last_affected":      StatusAffected,
	"fixed":              StatusFixed,
	"first_fixed":        StatusFixed,
	"recommended":        StatusFixed,
	"known_not_affected": StatusNotAffected,
}

// readCSAF reads a document that passed the CSAF schema.
func readCSAF(data []byte) (*Advisory, []Problem) {
	var d csafDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, []Problem{{Path: "$", Message: err.Error()}}
	}
	tr := d.Document.Tracking
	a := &Advisory{ID: tr.ID, Format: FormatCSAF, Title: d.Document.Title, Aliases: tr.Aliases, Modified: tr.CurrentReleaseDate.UTC()}

	products := map[string]csafProduct{}
	for _, b := range d.ProductTree.Branches {
		walkBranch(b, branchPath{}, products)
	}
	for _, f := range d.ProductTree.FullProductNames {
		products[f.ProductID] = fromHelper(f, Product{Model: f.Name}, nil)
	}
	// A relationship such as "firmware 1.2 installed_on thermostat T1"
	// makes a product that is the device model (relates_to) at the
	// component's version (product_reference).
	for _, r := range d.ProductTree.Relationships {
		dev, comp := products[r.RelatesToProductReference], products[r.ProductReference]
		p := csafProduct{Product: dev.Product, Versions: comp.Versions}
		if p.Product == (Product{}) {
			p.Product = comp.Product
		}
		if p.Versions == nil {
			p.Versions = dev.Versions
		}
		products[r.FullProductName.ProductID] = p
	}
	groups := map[string][]string{}
	for _, g := range d.ProductTree.ProductGroups {
		groups[g.GroupID] = g.ProductIDs
	}

	var ps []Problem
	for i, v := range d.Vulnerabilities {
		vu := Vuln{ID: cmpOr(v.CVE, a.ID), Impact: csafImpact(v.Title, v.Notes, v.Threats)}
		for j, s := range v.Scores {
			switch {
			case s.CVSSV3 != nil:
				sev, err := FromVector(s.CVSSV3.VectorString)
				if err != nil {
					ps = append(ps, Problem{Path: fmt.Sprintf("$.vulnerabilities[%d].scores[%d].cvss_v3.vectorString", i, j), Message: err.Error()})
					continue
				}
				vu.Severity = worst(vu.Severity, sev)
			case s.CVSSV2 != nil:
				// CVSS v2 has no qualitative scale of its own; its score is
				// taken as stated, on the v3 bands.
				vu.Severity = worst(vu.Severity, Severity{Level: level(s.CVSSV2.BaseScore), Score: s.CVSSV2.BaseScore, Version: "2.0"})
			}
		}
		if vu.Severity.Level == "" {
			vu.Severity = Severity{Level: "unknown"}
		}
		for cat, ids := range v.ProductStatus {
			st, ok := statusOf[cat]
			if !ok {
				continue
			}
			for _, id := range ids {
				p, known := products[id]
				if !known {
					ps = append(ps, Problem{Path: fmt.Sprintf("$.vulnerabilities[%d].product_status.%s", i, cat),
						Message: fmt.Sprintf("product id %q is not in the product tree", id)})
					continue
				}
				vu.Rules = append(vu.Rules, Rule{Product: p.Product, Status: st, Versions: p.Versions, ProductIDs: []string{id}})
			}
		}
		for _, r := range v.Remediations {
			ids := append([]string(nil), r.ProductIDs...)
			for _, g := range r.GroupIDs {
				ids = append(ids, groups[g]...)
			}
			vu.Actions = append(vu.Actions, Action{Kind: r.Category, Details: strings.TrimSpace(r.Details), URL: r.URL, ProductIDs: ids})
		}
		a.Vulns = append(a.Vulns, vu)
	}
	return a, ps
}

// csafImpact is what the flaw lets an attacker do as the document says
// it: a threat of category impact, else a summary or description note,
// else the vulnerability's title.
func csafImpact(title string, notes []csafNote, threats []struct {
	Category string `json:"category"`
	Details  string `json:"details"`
}) string {
	for _, t := range threats {
		if t.Category == "impact" && strings.TrimSpace(t.Details) != "" {
			return firstLine(t.Details)
		}
	}
	for _, want := range []string{"summary", "description"} {
		for _, n := range notes {
			if n.Category == want {
				return firstLine(n.Text)
			}
		}
	}
	return firstLine(title)
}

// branchPath is what the branches above a product say about it.
type branchPath struct {
	vendor, name string
	versions     VersionSet
}

func walkBranch(b csafBranch, at branchPath, out map[string]csafProduct) {
	switch b.Category {
	case "vendor":
		at.vendor = b.Name
	case "product_name":
		at.name = b.Name
	case "product_version":
		at.versions = Exact(b.Name)
	case "product_version_range":
		if v, ok := ParseVers(b.Name); ok {
			at.versions = v
		} else {
			// Free text ("all versions before 1.4") cannot be compared:
			// such a range never claims a device.
			at.versions = unknownSet{}
		}
	}
	if b.Product != nil {
		out[b.Product.ProductID] = fromHelper(*b.Product, Product{Maker: at.vendor, Model: at.name}, at.versions)
	}
	for _, c := range b.Branches {
		walkBranch(c, at, out)
	}
}

// fromHelper adds what a product identification helper says: a PURL, a
// CPE, and the version either carries.
func fromHelper(f csafFPN, p Product, versions VersionSet) csafProduct {
	if h := f.Helper; h != nil {
		if pu := normPURL(h.PURL); pu != "" {
			p.PURL = pu
			if v := purlVersion(h.PURL); v != "" && versions == nil {
				versions = Exact(v)
			}
		}
		if vp, ver := cpeParts(h.CPE); vp != "" {
			p.CPE = vp
			if ver != "" && versions == nil {
				versions = Exact(ver)
			}
		}
		if p.Model == "" && len(h.ModelNumbers) > 0 {
			p.Model = h.ModelNumbers[0]
		}
	}
	return csafProduct{Product: p, Versions: versions}
}

// cpeParts returns "vendor:product" and the version of a CPE 2.3 formatted
// string or a CPE 2.2 URI ("" for a wildcard version).
func cpeParts(cpe string) (vendorProduct, version string) {
	var f []string
	switch {
	case strings.HasPrefix(cpe, "cpe:2.3:"):
		f = strings.Split(cpe[len("cpe:2.3:"):], ":")
	case strings.HasPrefix(cpe, "cpe:/"):
		f = strings.Split(cpe[len("cpe:/"):], ":")
	default:
		return "", ""
	}
	if len(f) < 3 {
		return "", ""
	}
	vendorProduct = strings.ToLower(f[1] + ":" + f[2])
	if len(f) > 3 && f[3] != "*" && f[3] != "-" && f[3] != "" {
		version = strings.ReplaceAll(f[3], `\`, "")
	}
	return vendorProduct, version
}

// unknownSet contains no version it can name.
type unknownSet struct{}

func (unknownSet) Contains(string) (bool, bool) { return false, false }
