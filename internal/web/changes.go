package web

import (
	"context"

	"github.com/candor-iot/candor/internal/consent"
)

// changeView is what a newer manifest asks of the viewer about one
// stream of a device they decide for, with a yes and a no per part.
type changeView struct {
	DeviceID string
	Device   string
	Sentence string
	Parts    []changePart
}

// changePart is one part of a change, answered with one of two forms
// posted to the device's ordinary consent or routing form handler.
type changePart struct {
	Text   string
	Action string // "consent" or "consent/routing"
	Yes    map[string]string
	No     map[string]string
}

// pendingChanges lists the manifest changes that wait for the viewer's
// answer. It is best effort: the home page matters more than this list.
func (s *Server) pendingChanges(ctx context.Context, v viewer) []changeView {
	if s.cfg.Consent == nil {
		return nil
	}
	devs, err := s.st.Devices(ctx, v.Account.HouseholdID)
	if err != nil {
		return nil
	}
	var out []changeView
	for _, d := range devs {
		if !v.CanDecide(d) {
			continue
		}
		pcs, err := s.cfg.Consent.Pending(ctx, d.ID)
		if err != nil {
			continue
		}
		for _, pc := range pcs {
			cv := changeView{DeviceID: d.ID, Device: d.Name, Sentence: pc.Sentence}
			if pc.Retention != nil {
				cv.Parts = append(cv.Parts, changePart{
					Text:   "Keep " + lowerFirst(pc.Title) + " for " + pc.Retention.Human() + " instead of " + pc.Agreed.Human() + ".",
					Action: "consent/routing",
					Yes:    map[string]string{"stream": pc.Stream, "keep": "yes", "retention": pc.Retention.Text},
					No:     map[string]string{"stream": pc.Stream, "keep": "yes", "retention": pc.Agreed.Text},
				})
			}
			for _, u := range pc.Uses {
				use := map[string]string{"stream": pc.Stream, "purpose": u.Purpose, "recipient": u.Recipient}
				yes, no := copyOf(use), copyOf(use)
				yes["on"], no["on"] = "1", "0"
				text := "Send " + lowerFirst(pc.Title) + " to " + nameInSentence(u.Recipient) + " " + lowerFirst(u.PurposeText) + "."
				if u.Recipient == consent.RecipientHub {
					text = "Use " + lowerFirst(pc.Title) + " on this hub " + lowerFirst(u.PurposeText) + "."
				}
				cv.Parts = append(cv.Parts, changePart{Text: text, Action: "consent", Yes: yes, No: no})
			}
			out = append(out, cv)
		}
	}
	return out
}

func copyOf(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
