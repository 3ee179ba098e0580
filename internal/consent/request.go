package consent

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
)

// ActionConsentRequest is the transparency-log action of a request that
// whoever decides for a device change one of its choices.
const ActionConsentRequest = "consent.request"

// Ask stores a person's request that whoever decides for a device turn
// one use of a stream on or off. It decides nothing: it waits, listed by
// Requests, until someone who decides makes a choice about that use (Set
// closes it). The use is checked against the manifest in force like a
// Set; the caller checks that the person may see the device.
func (s *Service) Ask(ctx context.Context, c Change) (store.ConsentRequest, error) {
	c.Purpose = compactTerm(strings.TrimSpace(c.Purpose))
	if err := checkAccount(c.AccountID); err != nil {
		return store.ConsentRequest{}, err
	}
	e, err := s.resolve(ctx, c.DeviceID)
	if err != nil {
		return store.ConsentRequest{}, err
	}
	st, err := findStream(e, c.DeviceID, c.Stream)
	if err != nil {
		return store.ConsentRequest{}, err
	}
	purpose, _, err := findUse(st, c.DeviceID, c.Purpose, c.Recipient)
	if err != nil {
		return store.ConsentRequest{}, err
	}
	d, err := s.st.Device(ctx, c.DeviceID)
	if err != nil {
		return store.ConsentRequest{}, fmt.Errorf("consent: request about %s: %w", c.DeviceID, err)
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	r := store.ConsentRequest{ID: "crq_" + idEncoding.EncodeToString(b[:]), HouseholdID: d.HouseholdID, DeviceID: d.ID,
		AccountID: c.AccountID, Stream: c.Stream, Purpose: purpose.ID, Recipient: c.Recipient, On: c.On,
		CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := s.st.AddConsentRequest(ctx, r); err != nil {
		return store.ConsentRequest{}, fmt.Errorf("consent: store request: %w", err)
	}
	if s.audit != nil {
		ev := auditlog.Event{Action: ActionConsentRequest, Household: d.HouseholdID,
			Subject: auditlog.Subject{Device: d.ID, Stream: c.Stream}, Purpose: "consent request",
			Detail: map[string]string{"request": r.ID}}
		if err := s.audit.Record(ctx, ev); err != nil {
			s.log.Error("consent request not recorded in the transparency log", "request", r.ID, "device", d.ID, "err", err)
		}
	}
	return r, nil
}

// Requests lists the open requests about a household's devices, oldest
// first. Whoever decides for a device sees those about it.
func (s *Service) Requests(ctx context.Context, householdID string) ([]store.ConsentRequest, error) {
	return s.st.ConsentRequests(ctx, householdID)
}

// closeRequests removes the requests a decision answered. The decision
// stands whatever happens here, so a failure is only logged.
func (s *Service) closeRequests(ctx context.Context, deviceID, stream, purpose, recipient string) {
	if err := s.st.CloseConsentRequests(ctx, deviceID, stream, purpose, recipient); err != nil {
		s.log.Error("consent requests not closed", "device", deviceID, "stream", stream, "err", err)
	}
}
