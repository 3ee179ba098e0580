package catalog_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// OnChange hears of a version put in force (a hub node passes it on to
// the others with it), through Put or Confirm, and not of a draft, which
// nothing enforces, nor of a reload.
func TestOnChangeHearsOfVersionsInForce(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := catalog.Open(ctx, st, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var told []string
	c.OnChange(func(deviceType string) { told = append(told, deviceType) })

	tmpl, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(tmpl["thermostat"].Raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["candor:draft"] = true
	draft, _ := json.Marshal(doc)
	e, err := c.Put(ctx, draft)
	if err != nil {
		t.Fatal(err)
	}
	if len(told) != 0 {
		t.Fatalf("told of %v for a draft", told)
	}
	if _, err := c.Confirm(ctx, "thermostat", e.Version); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"thermostat"}; !slices.Equal(told, want) {
		t.Errorf("told of %v; want %v (the confirmed draft)", told, want)
	}
}
