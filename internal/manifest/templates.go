package manifest

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed templates/*.json
var templateFS embed.FS

// Templates returns the manifests shipped with the hub for common device
// kinds, keyed by device type. They are parsed (and so validated) on every
// call: a broken template is a build-time bug, reported as an error.
func Templates() (map[string]*Manifest, error) {
	entries, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		return nil, fmt.Errorf("read templates: %w", err)
	}
	out := make(map[string]*Manifest, len(entries))
	for _, e := range entries {
		name := path.Join("templates", e.Name())
		b, err := templateFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		m, err := Parse(name, b)
		if err != nil {
			return nil, err
		}
		if want := strings.TrimSuffix(e.Name(), ".json"); m.DeviceType != want {
			return nil, fmt.Errorf("%s declares device type %q; the file must be named %s.json", name, m.DeviceType, m.DeviceType)
		}
		out[m.DeviceType] = m
	}
	return out, nil
}

// TemplateTypes lists the device types that have a shipped template.
func TemplateTypes() []string {
	ts, err := Templates()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ts))
	for t := range ts {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
