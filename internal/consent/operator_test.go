package consent

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestRecordsNameTheOperatorOfTheMoment: a name the admin sets after the
// service started reaches the next record; before any is set, the fallback
// name stands.
func TestRecordsNameTheOperatorOfTheMoment(t *testing.T) {
	f := newFixture(t)
	var current atomic.Value
	current.Store(Party{})
	svc, err := New(context.Background(), Options{Store: f.db, Manifests: f.mf, Key: testKey,
		Operator: func() Party { return current.Load().(Party) }})
	if err != nil {
		t.Fatal(err)
	}
	set := func(on bool) Record {
		t.Helper()
		rec, err := svc.Set(context.Background(), Change{AccountID: "a", DeviceID: meter, Stream: "power", Purpose: "dpv:ServiceOptimisation", Recipient: RecipientHub, On: on})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	if rec := set(true); rec.Controller.Name != "The operator of this Candor hub" {
		t.Errorf("unnamed operator: controller %+v", rec.Controller)
	}
	current.Store(Party{Name: "Ada's home", Contact: "mailto:ada@example.org"})
	if rec := set(false); rec.Controller.Name != "Ada's home" || rec.Controller.Contact != "mailto:ada@example.org" {
		t.Errorf("named operator: controller %+v", rec.Controller)
	}
}
