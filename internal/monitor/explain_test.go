package monitor

import (
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// Every alarm is explained with its numbers, in words that score at least
// 60 on the Flesch reading-ease scale.
func TestExplanationsReadable(t *testing.T) {
	kinds := []Kind{KindDeclaredRate, KindDeclaredSize, KindUndeclared, KindIgnoresOff, KindUnusualRate,
		KindUnusualSize, KindUnusualGap, KindWrongSecrets, KindClone, KindTakeover, KindProbe,
		KindReconnects, KindNewAddress, KindWave}
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			a := Alarm{Device: "d1", Kind: k, Severity: Critical, Stream: "power", Observed: 5400, Limit: 120, Window: time.Minute}
			ex := a.Explain()
			for _, s := range []string{ex.Why, ex.Risk, ex.Next} {
				if s == "" {
					t.Fatal("empty part")
				}
			}
			text := ex.Why + " " + ex.Risk + " " + ex.Next + " " + actionWords(DefaultPolicy().For(a))
			if e := readability.Ease(text); e < 60 {
				t.Errorf("Flesch %.0f < 60: %s", e, text)
			}
		})
	}
}

func TestExplanationCarriesNumbers(t *testing.T) {
	tests := []struct {
		a    Alarm
		want []string
	}{
		{Alarm{Kind: KindDeclaredRate, Stream: "power", Observed: 5400, Limit: 120, Window: time.Minute}, []string{"5400", "120", "power", "one minute"}},
		{Alarm{Kind: KindWrongSecrets, Observed: 30, Limit: 10, Window: 2 * time.Minute}, []string{"30", "2 minutes"}},
		{Alarm{Kind: KindIgnoresOff, Stream: "heart_rate", Observed: 12, Window: 10 * time.Second}, []string{"heart_rate", "12", "10 seconds"}},
		{Alarm{Kind: KindDeclaredSize, Stream: "status", Observed: 4000.5, Limit: 256}, []string{"4000.5", "256"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.a.Kind), func(t *testing.T) {
			why := tc.a.Explain().Why
			if !containsAll(why, tc.want...) {
				t.Errorf("%q lacks one of %q", why, tc.want)
			}
		})
	}
}
