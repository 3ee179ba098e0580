package readability

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Temporary evaluation against CMU; deleted before hand-off.
func TestZZEval(t *testing.T) {
	f, err := os.Open(os.Getenv("EVAL"))
	if err != nil {
		t.Skip()
	}
	defer f.Close()
	top := 3000
	if s := os.Getenv("TOP"); s != "" {
		top, _ = strconv.Atoi(s)
	}
	sc := bufio.NewScanner(f)
	var tok, tokOK, typ, typOK, typFirst int
	type miss struct {
		w    string
		freq int
		got  int
		want string
	}
	var misses []miss
	for sc.Scan() && typ < top {
		p := strings.Split(sc.Text(), "\t")
		freq, _ := strconv.Atoi(p[1])
		if len(p[0]) == 1 {
			continue
		}
		got := Syllables(p[0])
		ok := false
		for i, c := range strings.Split(p[2], ",") {
			n, _ := strconv.Atoi(c)
			if n == got {
				ok = true
				if i == 0 {
					typFirst++
				}
			}
		}
		typ++
		tok += freq
		if ok {
			typOK++
			tokOK += freq
		} else {
			misses = append(misses, miss{p[0], freq, got, p[2]})
		}
	}
	fmt.Printf("types %d/%d = %.1f%% (first %.1f%%), tokens %.1f%%\n", typOK, typ, 100*float64(typOK)/float64(typ), 100*float64(typFirst)/float64(typ), 100*float64(tokOK)/float64(tok))
	sort.Slice(misses, func(i, j int) bool { return misses[i].freq > misses[j].freq })
	for i, m := range misses {
		if i >= 150 {
			break
		}
		fmt.Printf("%s %d got=%d cmu=%s\n", m.w, m.freq, m.got, m.want)
	}
}
