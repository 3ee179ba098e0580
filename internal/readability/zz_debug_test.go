package readability

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestZZDebug(t *testing.T) {
	path := os.Getenv("DEBUGFILE")
	if path == "" {
		t.Skip()
	}
	b, _ := os.ReadFile(path)
	for _, part := range strings.Split(string(b), "    explain_test.go:14: \n") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r := Score(part)
		fmt.Printf("%+v grade=%.1f\n", r, r.Grade())
		if os.Getenv("BLOCKS") != "" {
			forEachBlock(part, func(s string) {
				var c counter
				scanBlock(&c, s)
				c.end()
				fmt.Printf("  [%d w %d s %d syl] %q\n", c.words, c.sentences, c.syllables, s)
			})
		}
	}
}
