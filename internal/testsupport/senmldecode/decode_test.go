package senmldecode

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/senml"
)

func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name, pack string
		want       error
	}{
		{"not JSON", `nope`, ErrSyntax},
		{"object", `{"n":"x","v":1}`, ErrSyntax},
		{"array of numbers", `[1]`, ErrSyntax},
		{"null record", `[null]`, ErrSyntax},
		{"name is a number", `[{"n":5,"v":1}]`, ErrSyntax},
		{"null name", `[{"n":null,"v":1}]`, ErrSyntax},
		{"value is text", `[{"n":"x","v":"1"}]`, ErrSyntax},
		{"vb is a number", `[{"n":"x","vb":1}]`, ErrSyntax},
		{"vd not base64url", `[{"n":"x","vd":"a+b/"}]`, ErrSyntax},
		{"two values", `[{"n":"x","v":1,"vs":"a"}]`, ErrSyntax},
		{"no value", `[{"n":"x","u":"Cel"}]`, ErrSyntax},
		{"no name", `[{"v":1}]`, ErrSyntax},
		{"bad name", `[{"bn":"a b","n":"x","v":1}]`, ErrSyntax},
		{"must-understand label", `[{"n":"x","v":1,"foo_":1}]`, ErrSyntax},
		{"out of range", `[{"n":"x","v":1e999}]`, ErrSyntax},
		{"overflow when resolved", `[{"bv":1e308,"n":"x","v":1e308}]`, ErrSyntax},
		{"bver not integer", `[{"bver":10.5,"n":"x","v":1}]`, ErrSyntax},
		{"unknown feature", `[{"bver":42,"n":"x","v":1}]`, senml.ErrVersion},
		{"trailing data", `[{"n":"x","v":1}] [`, ErrSyntax},
		{"unterminated", `[{"n":"x","v":1}`, ErrSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(strings.NewReader(tc.pack)); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeResolves(t *testing.T) {
	pack := `[
		{"bn":"d:","bt":1.7e9,"bu":"W","bv":100,"bs":10,"bver":26,"n":"p","v":5,"s":1,"x":"ignored","ut":60},
		{"n":"q","u":"kWh","t":-10,"v":-1},
		{"n":"sum-only"},
		{"bn":"e/","bu":"Cel","n":"r","vs":"hi"},
		{"n":"empty","vd":""}
	]`
	got, err := Decode(strings.NewReader(pack))
	if err != nil {
		t.Fatal(err)
	}
	want := []senml.Record{
		{Name: "d:p", Unit: "W", Time: 1.7e9, Value: senml.F(105), Sum: senml.F(11), UpdateTime: 60, BaseVersion: 26},
		{Name: "d:q", Unit: "kWh", Time: 1.7e9 - 10, Value: senml.F(99), Sum: senml.F(10), BaseVersion: 26},
		{Name: "d:sum-only", Unit: "W", Time: 1.7e9, Sum: senml.F(10), BaseVersion: 26},
		{Name: "e/r", Unit: "Cel", Time: 1.7e9, StringValue: senml.S("hi"), Sum: senml.F(10), BaseVersion: 26},
		{Name: "e/empty", Unit: "Cel", Time: 1.7e9, DataValue: []byte{}, Sum: senml.F(10), BaseVersion: 26},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", show(got), show(want))
	}
}

// show prints records with their pointed-to values, for failure messages.
func show(rs []senml.Record) string {
	b, _ := json.MarshalIndent(rs, "", "  ")
	return string(b)
}
