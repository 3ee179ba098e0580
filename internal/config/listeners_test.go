package config

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

// lookup is an os.LookupEnv over a fixed map, which can hold a variable
// set to "".
func lookup(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func resolveEnv(t *testing.T, args []string, lookupEnv func(string) (string, bool)) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("candor", flag.ContinueOnError)
	f := Register(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return f.ResolveEnv(lookupEnv)
}

func TestPlainMQTTCanBeTurnedOff(t *testing.T) {
	tlsOn := []string{"--mqtt-tls-addr=127.0.0.1:8883", "--tls-self-signed"}
	file := writeFile(t, `{"mqtt_addr": "", "ws_addr": "127.0.0.1:8083"}`)
	tests := []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", append([]string{"--mqtt-addr="}, tlsOn...), nil},
		{"flag with quotes as a shell passes them", append([]string{"--mqtt-addr", ""}, tlsOn...), nil},
		{"environment", tlsOn, []string{"CANDOR_MQTT_ADDR", ""}},
		{"file, WebSocket only", []string{"--config", file}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := resolveEnv(t, tt.args, lookup(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MQTTAddr != "" {
				t.Fatalf("MQTTAddr = %q, want off", cfg.MQTTAddr)
			}
		})
	}
}

func TestNoMQTTListenerIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"flag", []string{"--mqtt-addr="}, nil, "--mqtt-addr: no MQTT listener is left"},
		{"environment", nil, []string{"CANDOR_MQTT_ADDR", ""}, "CANDOR_MQTT_ADDR: no MQTT listener is left"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveEnv(t, tt.args, lookup(tt.env...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting != "mqtt-addr" {
				t.Fatalf("error %v is not a *SettingError for mqtt-addr", err)
			}
		})
	}
}

// With a getenv, as tests and older callers use, an empty variable is the
// same as an unset one, for every setting.
func TestEmptyVariableFromGetenvIsUnset(t *testing.T) {
	cfg, err := resolve(t, nil, env("CANDOR_MQTT_ADDR", "", "CANDOR_DATA", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTTAddr != Default().MQTTAddr || cfg.DataDir != Default().DataDir {
		t.Fatalf("got %+v", cfg)
	}
	// And with a lookup, only settings whose empty value means off take it.
	cfg, err = resolveEnv(t, nil, lookup("CANDOR_DATA", "", "CANDOR_LOG_LEVEL", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != Default().DataDir || cfg.LogLevel != Default().LogLevel {
		t.Fatalf("got %+v", cfg)
	}
}

func TestTLSNames(t *testing.T) {
	cfg, err := resolve(t, []string{"--tls-self-signed", "--tls-names", " hub.example.org, 203.0.113.5 ,fd00::7,"}, env())
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.TLSNameList()
	want := []string{"hub.example.org", "203.0.113.5", "fd00::7"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("TLSNameList() = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-self-signed", "--tls-names=*.example.org"}, `--tls-names: "*.example.org" is not a host name or IP address`},
		{[]string{"--tls-self-signed", "--tls-names=hub,bad_name"}, `--tls-names: "bad_name" is not a host name`},
		{[]string{"--tls-names=hub.example.org"}, "--tls-names: names are added only to the certificate --tls-self-signed makes"},
	} {
		_, err := resolve(t, tt.args, env())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// A demo hub may move only an address nobody chose, so Resolve records
// which ones were chosen, even when the choice equals the default.
func TestAddressProvenance(t *testing.T) {
	file := writeFile(t, `{"http_addr": "127.0.0.1:8080"}`)
	for _, tt := range []struct {
		name       string
		args       []string
		env        []string
		mqtt, http bool
	}{
		{"defaults", nil, nil, false, false},
		{"flag equal to the default", []string{"--mqtt-addr=127.0.0.1:1883"}, nil, true, false},
		{"environment", nil, []string{"CANDOR_HTTP_ADDR", "127.0.0.1:8080"}, false, true},
		{"file", []string{"--config", file}, nil, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := resolve(t, tt.args, env(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MQTTAddrSet != tt.mqtt || cfg.HTTPAddrSet != tt.http {
				t.Errorf("MQTTAddrSet %v HTTPAddrSet %v, want %v %v", cfg.MQTTAddrSet, cfg.HTTPAddrSet, tt.mqtt, tt.http)
			}
		})
	}
}
