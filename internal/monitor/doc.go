// Package monitor watches how devices behave and acts when one misbehaves.
//
// It reads metadata only: counts, sizes, timings, stream names, refusal
// reasons and source addresses. It never sees a reading's values, so it
// can run on every reading without weakening the person's privacy.
//
// Two kinds of evidence are kept apart. A breach of the device's own
// manifest (its declared rate, sizes and streams) or of the person's off
// switch is certain and needs no learning. A learned baseline per device
// and stream (rate, size, inter-arrival time) is statistical: it counts
// only after a warm-up, and both raising and clearing an alarm need
// several consecutive windows, because false alarms are what make people
// switch monitoring off.
//
// The broker and ingest report observations through a small interface
// (Connect, AuthFailure, Denied, Reading, Admit); everything else (the
// transparency log, quarantine persistence, notifications) happens on the
// monitor's own goroutine, off the reading path.
package monitor
