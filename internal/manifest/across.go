package manifest

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRevealsLen bounds a candor:revealsAcross sentence: it is shown
// inside a sentence on the home page and in the sharing confirmation.
const maxRevealsLen = 300

// buildAcross checks the manifest's candor:revealsAcross rules and returns
// them with From set to the manifest's device type. A manifest speaks for
// its own data only: every rule must include a category that one of its
// own streams declares, so no maker can attach claims to other makers'
// devices alone.
func buildAcross(m *Manifest, raw []rawAcross, ps *problems) []InferenceRule {
	var own []string
	for _, s := range m.Streams {
		for _, c := range s.PersonalData {
			if !slices.Contains(own, c) {
				own = append(own, c)
			}
		}
	}
	var out []InferenceRule
	for i, r := range raw {
		path := fmt.Sprintf("candor:revealsAcross[%d]", i)
		ok := true
		if len(r.Categories) == 0 {
			ps.add(path+".categories", "list at least one personal-data category, such as candor:Presence")
			ok = false
		}
		mine := false
		for j, c := range r.Categories {
			cp := fmt.Sprintf("%s.categories[%d]", path, j)
			switch {
			case !termRE.MatchString(c):
				ps.add(cp, "%q is not a pd:, dpv: or candor: term such as pd:Location", c)
				ok = false
			case slices.Index(r.Categories, c) != j:
				ps.add(cp, "%q is listed twice", c)
				ok = false
			}
			mine = mine || slices.Contains(own, c)
		}
		if len(r.Categories) > 0 && !mine {
			ps.add(path+".categories", "name at least one category this manifest's streams declare in dpv:hasPersonalData (%s): a manifest says what its own data shows with others", ownWords(own))
			ok = false
		}
		for j, t := range r.DeviceTypes {
			tp := fmt.Sprintf("%s.deviceTypes[%d]", path, j)
			switch {
			case !typeRE.MatchString(t):
				ps.add(tp, "%q must be 1-40 characters of a-z, 0-9 and -", t)
				ok = false
			case t == m.DeviceType:
				ps.add(tp, "%q is this manifest's own device type: list only the other device types", t)
				ok = false
			case slices.Index(r.DeviceTypes, t) != j:
				ps.add(tp, "%q is listed twice", t)
				ok = false
			}
		}
		reveals := strings.TrimSpace(r.Reveals)
		switch {
		case reveals == "":
			ps.add(path+".reveals", "say in plain words what these devices show together, such as \"when people are at home\"")
			ok = false
		case utf8.RuneCountInString(reveals) > maxRevealsLen:
			ps.add(path+".reveals", "keep it under %d characters: it is shown inside a sentence", maxRevealsLen)
			ok = false
		case strings.ContainsFunc(reveals, unicode.IsControl):
			ps.add(path+".reveals", "must be one line of text, without control characters")
			ok = false
		}
		if ok {
			out = append(out, InferenceRule{Categories: r.Categories, Reveals: reveals, From: m.DeviceType, DeviceTypes: r.DeviceTypes})
		}
	}
	return out
}

func ownWords(own []string) string {
	if len(own) == 0 {
		return "it declares none, so it can declare no such rule"
	}
	return strings.Join(own, ", ")
}
