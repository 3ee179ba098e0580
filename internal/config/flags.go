package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Flags ties the settings to a flag.FlagSet. Flag values are kept as the
// text the user typed and parsed only in Resolve, so a bad flag, a bad
// environment variable and a bad file value are all reported the same way
// and together, rather than the flag package stopping at the first one.
type Flags struct {
	fs   *flag.FlagSet
	text map[string]string // flag name -> last value given
}

// rawFlag is the flag.Value of one setting.
type rawFlag struct {
	f      *Flags
	name   string
	def    string
	isBool bool
}

func (r *rawFlag) String() string {
	if r == nil {
		return ""
	}
	return r.def
}

func (r *rawFlag) Set(s string) error {
	r.f.text[r.name] = s
	return nil
}

// IsBoolFlag lets "--demo" stand for "--demo=true".
func (r *rawFlag) IsBoolFlag() bool { return r.isBool }

// Register defines a flag on fs for every setting and replaces fs.Usage
// with one that lists each flag with its environment variable, file key
// and default. Call fs.Parse, then Resolve.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, text: map[string]string{}}
	def := Default()
	for i := range settings {
		s := &settings[i]
		fs.Var(&rawFlag{f: f, name: s.name, def: s.format(&def), isBool: s.isBool()}, s.name, s.usage())
	}
	fs.Usage = f.printUsage
	return f
}

// Load parses args (without the program name) into a new FlagSet named
// "candor" that reports to standard error, and resolves the settings
// against getenv (os.Getenv when nil). The FlagSet is returned for its
// positional arguments. When args ask for help the error wraps
// flag.ErrHelp, after the usage has been printed.
func Load(args []string, getenv func(string) string) (Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("candor", flag.ContinueOnError)
	f := Register(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, fs, fmt.Errorf("parsing command line: %w", err)
	}
	cfg, err := f.Resolve(getenv)
	return cfg, fs, err
}

// Resolve returns the settings after the FlagSet has been parsed. Each
// setting comes from its flag if the flag was given, else from its
// CANDOR_* environment variable if that is non-empty, else from the config
// file named by --config or CANDOR_CONFIG, else from Default. getenv is
// usually os.Getenv, which nil stands for; tests pass a map lookup.
//
// Every problem found is reported, joined, each as a *SettingError naming
// the flag, variable or file key the bad value came from.
func (f *Flags) Resolve(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	return f.ResolveEnv(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// ResolveEnv is Resolve with an environment lookup such as os.LookupEnv,
// which can tell a variable set to "" from an unset one: for a setting
// whose empty value turns something off (CANDOR_MQTT_ADDR=""), the empty
// value is then taken as given.
func (f *Flags) ResolveEnv(lookupEnv func(string) (string, bool)) (Config, error) {
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })

	cfg := Default()
	src := make(map[string]string, len(settings))
	var errs []error

	// The config file's path is itself a setting, resolved first from
	// the sources that can name it.
	var file map[string]fileValue
	for i := range settings {
		s := &settings[i]
		if !s.noFile {
			continue
		}
		label, err := f.fromFlagOrEnv(s, &cfg, given, lookupEnv)
		if err != nil {
			return Config{}, err
		}
		src[s.name] = label
	}
	if cfg.ConfigFile != "" {
		var err error
		file, err = readFile(cfg.ConfigFile)
		if err != nil {
			return Config{}, &SettingError{Setting: "config", Source: src["config"], Err: err}
		}
	}

	for i := range settings {
		s := &settings[i]
		if s.noFile {
			continue
		}
		label, err := f.fromFlagOrEnv(s, &cfg, given, lookupEnv)
		chosen := label != ""
		if label == "" {
			if v, ok := file[s.key()]; ok {
				chosen = true
				label = cfg.ConfigFile + ":" + fmt.Sprint(v.line) + ": " + s.key()
				err = s.setJSON(&cfg, v.raw)
				if err != nil {
					err = &SettingError{Setting: s.name, Source: label, Err: err}
				}
			} else {
				label = s.flag() + " (default)"
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
		src[s.name] = label
		switch s.name {
		case "mqtt-addr":
			cfg.MQTTAddrSet = chosen
		case "http-addr":
			cfg.HTTPAddrSet = chosen
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := cfg.validate(src); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// fromFlagOrEnv sets s from its flag or environment variable and returns
// the label of the source used, or "" if neither was given.
func (f *Flags) fromFlagOrEnv(s *setting, cfg *Config, given map[string]bool, lookupEnv func(string) (string, bool)) (string, error) {
	var label, text string
	if given[s.name] {
		label, text = s.flag(), f.text[s.name]
	} else if v, ok := lookupEnv(s.env()); ok && (v != "" || s.emptyMeansOff) {
		label, text = s.env(), v
	} else {
		return "", nil
	}
	if err := s.setText(cfg, text); err != nil {
		return label, &SettingError{Setting: s.name, Source: label, Err: err}
	}
	return label, nil
}

// printUsage lists the settings in the table's order, which groups related
// ones, with "--" as people type them; any other flags on the set follow.
func (f *Flags) printUsage() {
	w := f.fs.Output()
	fmt.Fprintf(w, "Usage of %s:\n", f.fs.Name())
	fmt.Fprintf(w, "Settings come from flags, then CANDOR_* environment variables, then the --config file, then defaults.\n")
	ours := map[string]bool{}
	for i := range settings {
		s := &settings[i]
		ours[s.name] = true
		fl := f.fs.Lookup(s.name)
		if fl == nil {
			continue
		}
		line := "  --" + s.name
		if s.arg != "" {
			line += " " + s.arg
		}
		line += "\n    \t" + fl.Usage
		switch def := fl.DefValue; {
		case def == "" || def == "false":
			// Off by default; "(default false)" would only add noise.
		case s.isString():
			line += fmt.Sprintf(" (default %q)", def)
		default:
			line += " (default " + def + ")"
		}
		fmt.Fprintln(w, line)
	}
	f.fs.VisitAll(func(fl *flag.Flag) {
		if ours[fl.Name] {
			return
		}
		name, usage := flag.UnquoteUsage(fl)
		line := "  --" + fl.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintln(w, line+"\n    \t"+strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}
