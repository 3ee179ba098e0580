package consent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/catalog"
)

// TestLearningSwitch checks the machine-learning register's switch: a
// use of its own, on since the device was added, that turns off alone
// (collection and storage stay), is a consent record with a receipt, is in
// force for the next reading, and is never a reason to collect.
func TestLearningSwitch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// The thermostat's temperature is marked learning and automated
	// decisions; setpoint only automated decisions.
	d := f.svc.Allowed(thermo, "temperature")
	if !d.Learn || !d.Decide || !d.Collect {
		t.Fatalf("default: %+v, want learning and decisions on (the label said so when it was added)", d)
	}
	if d := f.svc.Allowed(thermo, "setpoint"); d.Learn || !d.Decide {
		t.Errorf("setpoint is not marked learning: %+v", d)
	}
	if got := string(d.Control()); got != `{"collect":true,"learn":true,"decide":true}` {
		t.Errorf("control = %s", got)
	}
	if got := string(f.svc.Allowed(meter, "energy").Control()); got != `{"collect":true}` {
		t.Errorf("an unmarked stream's control = %s, want collect only", got)
	}

	rec := f.set(t, thermo, "temperature", PurposeMachineLearning, RecipientHub, false)
	d = f.svc.Allowed(thermo, "temperature")
	if d.Learn || !d.Decide || !d.Collect || !d.StoreOnHub {
		t.Fatalf("after learning off: %+v, want only learning off", d)
	}
	if rec.Event != StatusWithdrawn || rec.Kind != KindConsent || !slices.Equal(rec.Processing, []string{ProcessUse}) ||
		rec.Purposes[0].Term != PurposeMachineLearning {
		t.Errorf("record: event %s kind %s processing %v purposes %+v", rec.Event, rec.Kind, rec.Processing, rec.Purposes)
	}
	if got := f.notices(); !slices.Equal(got, []notice{{thermo, "temperature", true}}) {
		t.Errorf("listener calls: %+v, want the stream told (its control message changes)", got)
	}
	receipt, err := f.svc.Receipt(ctx, rec.RecordID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(receipt, f.svc.PublicKey()); err != nil {
		t.Errorf("receipt: %v", err)
	}

	uses, err := f.svc.Learning(ctx, thermo)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, u := range uses {
		kinds = append(kinds, u.Stream+" "+u.Kind)
		if u.Changes == "" || len(u.From) == 0 || u.Why == "" {
			t.Errorf("%s %s: says nothing of what it changes or learns from: %+v", u.Stream, u.Kind, u)
		}
		if u.Stream == "temperature" && u.Purpose == PurposeMachineLearning && (u.On || u.InForce || u.Source != SourceExplicit || u.RecordID != rec.RecordID) {
			t.Errorf("temperature learning after off: %+v", u)
		}
	}
	want := []string{"heating decides automatically", "setpoint decides automatically", "temperature learns", "temperature decides automatically"}
	if !slices.Equal(kinds, want) {
		t.Errorf("register lists %v, want %v", kinds, want)
	}

	// Learning is never a reason to collect: every purpose off stops it.
	for _, p := range []string{"candor:HomeAutomation", "dpv:ServiceProvision", "dpv:ServiceOptimisation"} {
		f.set(t, thermo, "temperature", p, RecipientHub, false)
	}
	if d := f.svc.Allowed(thermo, "temperature"); d.Collect || d.Decide || d.Learn {
		t.Errorf("every purpose off: %+v, want nothing collected, learned or decided", d)
	}

	// A stream that is not marked has no such use.
	_, err = f.svc.Set(ctx, Change{AccountID: "acc_sam", DeviceID: meter, Stream: "energy", Purpose: PurposeMachineLearning, Recipient: RecipientHub, On: true})
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnknownPurpose) || !strings.Contains(ce.Msg, "not marked") {
		t.Errorf("learning on an unmarked stream: %v", err)
	}
}

// TestLearningAddedLaterStartsOff checks that a manifest version that
// newly marks a stream for learning does not start the learning: the
// device's defaults were agreed under the older version (its base).
func TestLearningAddedLaterStartsOff(t *testing.T) {
	m := templates(t)["smart-meter"]
	next := *m
	next.Streams = nil
	for _, st := range m.Streams {
		c := *st
		if c.Name == "power" {
			c.MachineLearning = true
		}
		next.Streams = append(next.Streams, &c)
	}
	v1 := &catalog.Entry{Version: 1, Manifest: m}
	v2 := &catalog.Entry{Version: 2, Manifest: &next}
	tests := []struct {
		name string
		base *catalog.Entry
		want bool
	}{
		{"added under the version that marks it", nil, true},
		{"added before the mark", v1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dt := buildTable(meter, v2, tt.base, nil, nil)
			if d := dt.lookup("power"); d.Learn != tt.want || !d.Collect {
				t.Errorf("power: %+v, want learn %v", d, tt.want)
			}
			// Pending lists it as a change that waits for a yes.
			f := newFixture(t)
			f.mf.set(meter, v2)
			// As if the device had been added under v1 (the base).
			f.svc.mu.Lock()
			f.svc.publishLocked([]*deviceTable{dt}, nil)
			f.svc.mu.Unlock()
			pcs, err := f.svc.Pending(context.Background(), meter)
			if err != nil {
				t.Fatal(err)
			}
			var sentence string
			for _, pc := range pcs {
				if pc.Stream == "power" {
					sentence = pc.Sentence
				}
			}
			if want := !tt.want; want != (sentence != "") {
				t.Errorf("pending change of power: %q, want one: %v", sentence, want)
			} else if want && !strings.Contains(sentence, "to learn from it") {
				t.Errorf("pending sentence %q does not say it learns", sentence)
			}
		})
	}
}
