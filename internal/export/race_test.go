//go:build race

package export

// raceEnabled: the race detector slows the exporter about tenfold.
const raceEnabled = true
