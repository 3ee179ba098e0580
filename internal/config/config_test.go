package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a fixed map, so tests never see the real
// environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "candor.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// resolve parses args on a fresh, silent FlagSet and resolves.
func resolve(t *testing.T, args []string, getenv func(string) string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("candor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return f.Resolve(getenv)
}

func TestDefaults(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default() is invalid: %v", err)
	}
	cfg, err := resolve(t, nil, env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg != Default() {
		t.Fatalf("no sources gave %+v, want Default() %+v", cfg, Default())
	}
	want := Config{
		DataDir: "./candor-data", MQTTAddr: "127.0.0.1:1883", HTTPAddr: "127.0.0.1:8080",
		LogLevel: "info", LogFormat: "text", MaxPayloadBytes: 65536, BridgeMaxPacketBytes: 4 << 20, BatchMaxRows: 1000,
		BatchMaxWait: 0, BatchBusyWait: time.Millisecond, Ack: "commit", DemoSpeed: 1, UndeclaredFields: "reject", RetentionInterval: time.Minute,
		MQTTConnectTimeout: 5 * time.Second, MQTTPendingPerAddress: 16,
		MonitorWindow: time.Minute, MonitorKeep: 30 * 24 * time.Hour, MonitorActions: "info=notify,warning=rate_limit,critical=quarantine",
		AlertMailFrom:      "candor@localhost",
		CredentialRotation: 365 * 24 * time.Hour, AuditInterval: time.Hour, Deployment: "default",
	}
	if Default() != want {
		t.Fatalf("Default() = %+v, want %+v", Default(), want)
	}
}

func TestPrecedence(t *testing.T) {
	type source struct{ flag, env, file string } // "" means not given
	tests := []struct {
		setting string
		src     source
		fileVal string // JSON value when src.file is set
		want    any
	}{
		{"mqtt-addr", source{"", "", ""}, "", "127.0.0.1:1883"},
		{"mqtt-addr", source{"", "", "f"}, `":1001"`, ":1001"},
		{"mqtt-addr", source{"", ":1002", "f"}, `":1001"`, ":1002"},
		{"mqtt-addr", source{":1003", ":1002", "f"}, `":1001"`, ":1003"},
		{"mqtt-addr", source{":1003", "", ""}, "", ":1003"},
		{"batch-max-rows", source{"", "", "f"}, `7`, 7},
		{"batch-max-rows", source{"", "8", "f"}, `7`, 8},
		{"batch-max-rows", source{"9", "8", "f"}, `7`, 9},
		{"batch-max-rows", source{"", "8", ""}, ``, 8},
		{"demo", source{"", "", "f"}, `true`, true},
		{"demo", source{"", "false", "f"}, `true`, false},
		{"demo", source{"true", "false", "f"}, `false`, true},
		{"demo", source{"false", "true", ""}, ``, false},
		{"batch-max-wait", source{"", "", "f"}, `"20ms"`, 20 * time.Millisecond},
		{"batch-max-wait", source{"", "1s", "f"}, `"20ms"`, time.Second},
		{"batch-max-wait", source{"0s", "1s", "f"}, `"20ms"`, time.Duration(0)},
		{"batch-busy-wait", source{"", "", "f"}, `"500us"`, 500 * time.Microsecond},
		{"batch-busy-wait", source{"2ms", "", "f"}, `"500us"`, 2 * time.Millisecond},
		{"log-level", source{"", "", "f"}, `"debug"`, "debug"},
		{"log-level", source{"", "warn", "f"}, `"debug"`, "warn"},
		{"log-level", source{"error", "warn", "f"}, `"debug"`, "error"},
		{"memory-limit-mib", source{"", "", ""}, ``, 0},
		{"memory-limit-mib", source{"", "3072", "f"}, `2048`, 3072},
		{"memory-limit-mib", source{"1024", "3072", ""}, ``, 1024},
		{"data", source{"", "", ""}, ``, "./candor-data"},
		{"data", source{"", "/var/lib/candor", "f"}, `"/srv/candor"`, "/var/lib/candor"},
	}
	for _, tt := range tests {
		s := lookupName(tt.setting)
		if s == nil {
			t.Fatalf("no setting %q", tt.setting)
		}
		var args []string
		kv := []string{}
		if tt.src.flag != "" {
			args = append(args, "--"+tt.setting+"="+tt.src.flag)
		}
		if tt.src.env != "" {
			kv = append(kv, s.env(), tt.src.env)
		}
		if tt.src.file != "" {
			path := writeFile(t, "{\n  \""+s.key()+"\": "+tt.fileVal+"\n}\n")
			kv = append(kv, "CANDOR_CONFIG", path)
		}
		cfg, err := resolve(t, args, env(kv...))
		if err != nil {
			t.Errorf("%s %+v: %v", tt.setting, tt.src, err)
			continue
		}
		if got := value(s.field(&cfg)); got != tt.want {
			t.Errorf("%s %+v = %#v, want %#v", tt.setting, tt.src, got, tt.want)
		}
	}
}

func lookupName(name string) *setting {
	for i := range settings {
		if settings[i].name == name {
			return &settings[i]
		}
	}
	return nil
}

// An environment variable set to the empty string counts as unset, so
// `CANDOR_X= candor` does not wipe out the file's value.
func TestEmptyEnvFallsThrough(t *testing.T) {
	path := writeFile(t, `{"http_addr": ":9000"}`)
	cfg, err := resolve(t, nil, env("CANDOR_CONFIG", path, "CANDOR_HTTP_ADDR", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":9000" || cfg.ConfigFile != path {
		t.Fatalf("got HTTPAddr %q from %q, want :9000 from the file", cfg.HTTPAddr, cfg.ConfigFile)
	}
}

func TestConfigFlagBeatsEnv(t *testing.T) {
	good := writeFile(t, `{"ws_addr": ":9001"}`)
	cfg, err := resolve(t, []string{"--config", good}, env("CANDOR_CONFIG", "/nonexistent/candor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WSAddr != ":9001" {
		t.Fatalf("WSAddr = %q, want the --config file's :9001", cfg.WSAddr)
	}
	_, err = resolve(t, nil, env("CANDOR_CONFIG", "/nonexistent/candor.json"))
	if err == nil || !strings.HasPrefix(err.Error(), "CANDOR_CONFIG: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file error = %v, want it to start with CANDOR_CONFIG and wrap ErrNotExist", err)
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "{\n  \"mqtt_addr\": \":1883\",\n  \"mqtt_adr\": \":1884\"\n}", []string{"candor.json:3", `unknown key "mqtt_adr"`}},
		{"flag spelling", `{"mqtt-addr": ":1883"}`, []string{`unknown key "mqtt-addr"`, `did you mean "mqtt_addr"`}},
		{"config key", `{"config": "other.json"}`, []string{`key "config" cannot be set`, "--config", "CANDOR_CONFIG"}},
		{"duplicate", `{"demo": true, "demo": false}`, []string{`key "demo" is given twice`}},
		{"syntax line", "{\n  \"demo\": true,\n  \"log_level\": \"info\",,\n}", []string{"candor.json:3", "invalid JSON"}},
		{"truncated", "{\n  \"demo\": true,\n", []string{"candor.json:3", "unexpected end of file"}},
		{"not object", `["demo"]`, []string{"want a JSON object"}},
		{"empty", ``, []string{"file is empty"}},
		{"trailing", `{} {}`, []string{"after the settings object"}},
		{"string for int", `{"batch_max_rows": "10"}`, []string{"candor.json:1: batch_max_rows: want a whole number, not a string"}},
		{"fraction", `{"batch_max_rows": 1.5}`, []string{"batch_max_rows: 1.5 is not a whole number"}},
		{"number for addr", `{"mqtt_addr": 1883}`, []string{"mqtt_addr: want a string, not a number"}},
		{"string for bool", `{"demo": "yes"}`, []string{"demo: want true or false, not a string"}},
		{"number for duration", `{"batch_max_wait": 5}`, []string{"batch_max_wait: want a duration string"}},
		{"bad duration", `{"batch_max_wait": "5 ms"}`, []string{`batch_max_wait: "5 ms" is not a duration`}},
		{"null", `{"log_level": null}`, []string{"log_level: want a string, not null"}},
		{"range", "{\n\"batch_max_rows\": 0}", []string{"candor.json:2: batch_max_rows: must be between 1 and 100000 (got 0)"}},
		{"unknown action", `{"monitor_actions": "critical=explode"}`, []string{`monitor_actions: action "explode" is not one of`}},
		{"plain webhook elsewhere", `{"alert_webhook": "http://alerts.example.org/in"}`, []string{"alert_webhook:", "must use https"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			_, err := resolve(t, []string{"--config=" + path}, env())
			if err == nil {
				t.Fatalf("file %q accepted", tt.content)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestFileWithBOMAndAllKeys(t *testing.T) {
	path := writeFile(t, "\ufeff"+`{
		"data": "/srv/candor", "mqtt_addr": ":1883", "mqtt_tls_addr": ":8883",
		"ws_addr": ":8083", "http_addr": ":8080", "tls_cert": "c.pem", "tls_key": "k.pem",
		"tls_self_signed": false, "tls_names": "", "demo": true, "demo_speed": 10, "log_level": "debug", "log_format": "json",
		"max_payload_bytes": 1024, "bridge_max_packet_bytes": 2048, "batch_max_rows": 10, "batch_max_wait": "1ms", "batch_busy_wait": "3ms", "ack": "durable-within=10ms",
		"mqtt_connect_timeout": "2s", "mqtt_pending_per_address": 8, "memory_limit_mib": 3072,
		"monitor_window": "10s", "monitor_keep": "240h", "monitor_actions": "critical=revoke", "alert_webhook": "https://alerts.example.org/in",
		"alert_smtp_addr": "mail.example.org:25", "alert_mail_from": "hub@example.org",
		"credential_rotation": "720h", "audit_interval": "0s", "require_second_factor_for_admin": true,
		"store": "postgres://candor@db.example.org/candor", "nats": "nats://nats.example.org:4222", "deployment": "homes-1"
	}`)
	cfg, err := resolve(t, []string{"--config", path}, env())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir: "/srv/candor", MQTTAddr: ":1883", MQTTTLSAddr: ":8883", WSAddr: ":8083",
		HTTPAddr: ":8080", TLSCert: "c.pem", TLSKey: "k.pem", Demo: true, DemoSpeed: 10, UndeclaredFields: "reject", RetentionInterval: time.Minute, LogLevel: "debug",
		LogFormat: "json", MaxPayloadBytes: 1024, BridgeMaxPacketBytes: 2048, BatchMaxRows: 10, BatchMaxWait: time.Millisecond, BatchBusyWait: 3 * time.Millisecond, Ack: "durable-within=10ms",
		ConfigFile: path, MQTTAddrSet: true, HTTPAddrSet: true,
		MQTTConnectTimeout: 2 * time.Second, MQTTPendingPerAddress: 8, MemoryLimitMiB: 3072,
		MonitorWindow: 10 * time.Second, MonitorKeep: 240 * time.Hour, MonitorActions: "critical=revoke", AlertWebhook: "https://alerts.example.org/in",
		AlertSMTPAddr: "mail.example.org:25", AlertMailFrom: "hub@example.org",
		CredentialRotation: 720 * time.Hour, RequireSecondFactorForAdmin: true,
		Store: "postgres://candor@db.example.org/candor", NATS: "nats://nats.example.org:4222", Deployment: "homes-1",
	}
	if cfg != want {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestBadValuesNameTheirSource(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"env addr", nil, []string{"CANDOR_MQTT_ADDR", "1883x"}, `CANDOR_MQTT_ADDR: "1883x" is not host:port`},
		{"env bare port", nil, []string{"CANDOR_MQTT_ADDR", "1883"}, `CANDOR_MQTT_ADDR: "1883" is not host:port; for all interfaces write ":1883"`},
		{"flag addr port", []string{"--http-addr=localhost:99999"}, nil, `--http-addr: "localhost:99999" is not host:port: port "99999"`},
		{"flag addr empty", []string{"--http-addr="}, nil, "--http-addr: must not be empty"},
		{"flag rows", []string{"--batch-max-rows=0"}, nil, "--batch-max-rows: must be between 1 and 100000"},
		{"env rows", nil, []string{"CANDOR_BATCH_MAX_ROWS", "lots"}, `CANDOR_BATCH_MAX_ROWS: "lots" is not a whole number`},
		{"env bool", nil, []string{"CANDOR_DEMO", "yes"}, `CANDOR_DEMO: "yes" is not a boolean`},
		{"flag bool", []string{"--tls-self-signed=maybe"}, nil, `--tls-self-signed: "maybe" is not a boolean`},
		{"env duration", nil, []string{"CANDOR_BATCH_MAX_WAIT", "5"}, `CANDOR_BATCH_MAX_WAIT: "5" is not a duration`},
		{"negative duration", []string{"--batch-max-wait=-1ms"}, nil, "--batch-max-wait: must be between 0s and 1m0s (got -1ms)"},
		{"log level", nil, []string{"CANDOR_LOG_LEVEL", "verbose"}, `CANDOR_LOG_LEVEL: "verbose" is not one of debug, info, warn, error`},
		{"log format", []string{"--log-format=xml"}, nil, `--log-format: "xml" is not one of text, json`},
		{"payload", nil, []string{"CANDOR_MAX_PAYLOAD_BYTES", "0"}, "CANDOR_MAX_PAYLOAD_BYTES: must be between 1 and 268435455"},
		{"negative memory limit", []string{"--memory-limit-mib=-1"}, nil, "--memory-limit-mib: must be between 0 and 1073741824"},
		{"data dir", []string{"--data="}, nil, "--data: must not be empty"},
		{"cert without key", nil, []string{"CANDOR_TLS_CERT", "c.pem"}, "CANDOR_TLS_CERT: a certificate needs its key"},
		{"key without cert", []string{"--tls-key=k.pem"}, nil, "--tls-key: a key needs its certificate"},
		{"self-signed and cert", []string{"--tls-self-signed", "--tls-cert=c.pem", "--tls-key=k.pem"}, nil,
			"--tls-self-signed: cannot be combined with a certificate file (set by --tls-cert)"},
		{"tls listener without cert", nil, []string{"CANDOR_MQTT_TLS_ADDR", ":8883"}, "CANDOR_MQTT_TLS_ADDR: the TLS listener needs a certificate"},
		{"same address", []string{"--ws-addr=127.0.0.1:1883"}, nil, `--ws-addr: "127.0.0.1:1883" is already the address of --mqtt-addr (default)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolve(t, tt.args, env(tt.env...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting == "" || lookupName(se.Setting) == nil {
				t.Fatalf("error %v is not a *SettingError naming a setting", err)
			}
		})
	}
}

func TestGoodValues(t *testing.T) {
	cfg, err := resolve(t, []string{
		"--mqtt-addr=:0", "--http-addr=[::1]:0", "--ws-addr=localhost:0",
		"--mqtt-tls-addr=0.0.0.0:8883", "--tls-self-signed", "--demo",
	}, env("CANDOR_LOG_FORMAT", "json", "CANDOR_BATCH_MAX_WAIT", "0"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.TLSSelfSigned || !cfg.Demo || cfg.LogFormat != "json" || cfg.BatchMaxWait != 0 || cfg.HTTPAddr != "[::1]:0" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestAllProblemsReported(t *testing.T) {
	_, err := resolve(t, []string{"--batch-max-rows=x"}, env("CANDOR_DEMO", "sure", "CANDOR_LOG_LEVEL", "loud"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"--batch-max-rows", "CANDOR_DEMO"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
	_, err = resolve(t, []string{"--batch-max-rows=0", "--log-level=loud"}, env())
	for _, w := range []string{"--batch-max-rows", "--log-level"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %s", err, w)
		}
	}
}

// Every Config field has exactly one setting, so adding a field without a
// flag, variable and file key fails here. Fields tagged config:"derived"
// record how the others were resolved and are not settings.
func TestEveryFieldHasASetting(t *testing.T) {
	var c Config
	owners := map[uintptr]string{}
	for i := range settings {
		p := reflect.ValueOf(settings[i].field(&c)).Pointer()
		if prev, dup := owners[p]; dup {
			t.Errorf("settings %q and %q share a field", prev, settings[i].name)
		}
		owners[p] = settings[i].name
	}
	v := reflect.ValueOf(&c).Elem()
	fields := 0
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("config") == "derived" {
			continue
		}
		fields++
		if _, ok := owners[v.Field(i).Addr().Pointer()]; !ok {
			t.Errorf("Config.%s has no setting", v.Type().Field(i).Name)
		}
	}
	if len(owners) != fields {
		t.Errorf("%d settings for %d fields", len(owners), fields)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	fs := flag.NewFlagSet("candor", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	Register(fs)
	fs.Bool("extra", false, "a flag of the caller's own")
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help gave %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for i := range settings {
		s := &settings[i]
		for _, w := range []string{"\n  --" + s.name, s.env()} {
			if !strings.Contains(help, w) {
				t.Errorf("help lacks %q for setting %s", strings.TrimSpace(w), s.name)
			}
		}
		if !s.noFile && !strings.Contains(help, "file key "+s.key()) {
			t.Errorf("help lacks the file key of %s", s.name)
		}
		if fs.Lookup(s.name) == nil {
			t.Errorf("no flag --%s", s.name)
		}
	}
	for _, w := range []string{`(default "127.0.0.1:1883")`, `(default 65536)`, `(default 1000)`, "--extra"} {
		if !strings.Contains(help, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	if strings.Contains(help, `(default "false")`) {
		t.Errorf("help shows false booleans as defaults:\n%s", help)
	}
}

func TestLoad(t *testing.T) {
	cfg, fs, err := Load([]string{"--demo", "--mqtt-addr", ":0", "serve"}, env("CANDOR_LOG_LEVEL", "debug"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Demo || cfg.MQTTAddr != ":0" || cfg.LogLevel != "debug" {
		t.Fatalf("got %+v", cfg)
	}
	if args := fs.Args(); len(args) != 1 || args[0] != "serve" {
		t.Fatalf("positional args = %q", args)
	}
}

func TestValidateCodeBuiltConfig(t *testing.T) {
	c := Default()
	c.BatchMaxRows = 0
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--batch-max-rows: must be between 1 and 100000") {
		t.Fatalf("Validate() = %v", err)
	}
}
