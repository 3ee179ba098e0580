package config

import (
	"errors"
	"strings"
	"testing"
)

func TestStoreSetting(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"default", nil, nil, ""},
		{"flag", []string{"--store=postgres://candor@db:5432/candor"}, nil, "postgres://candor@db:5432/candor"},
		{"env", nil, []string{"CANDOR_STORE", "postgresql:///candor?host=/run/postgresql"}, "postgresql:///candor?host=/run/postgresql"},
		{"flag beats env", []string{"--store=postgres://a/b"}, []string{"CANDOR_STORE", "postgres://c/d"}, "postgres://a/b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := resolve(t, tt.args, env(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store != tt.want {
				t.Errorf("Store = %q, want %q", cfg.Store, tt.want)
			}
		})
	}
}

func TestStoreFromFile(t *testing.T) {
	path := writeFile(t, `{"store": "postgres://candor@127.0.0.1/candor"}`)
	cfg, err := resolve(t, []string{"--config", path}, env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != "postgres://candor@127.0.0.1/candor" {
		t.Errorf("Store = %q", cfg.Store)
	}
}

// A bad store URL is named by the setting it came from, and the message
// never repeats the URL, which may hold a password.
func TestBadStoreURL(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"scheme", []string{"--store=mysql://u:hunter2@db/candor"}, nil, `--store: has the scheme "mysql"`},
		{"no scheme", nil, []string{"CANDOR_STORE", "db.example.org/candor"}, "CANDOR_STORE: has no scheme"},
		{"unparsable", []string{"--store=postgres://u:hunter2@[::1/candor"}, nil, "--store: is not a URL"},
		{"port", nil, []string{"CANDOR_STORE", "postgres://u:hunter2@db:99999/candor"}, `CANDOR_STORE: has the port "99999"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolve(t, tt.args, env(tt.env...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error repeats the password: %v", err)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting != "store" {
				t.Errorf("error %v is not a *SettingError for store", err)
			}
		})
	}
}

func TestNATSSettings(t *testing.T) {
	const pg = "postgres://candor@db.example.org/candor"
	tests := []struct {
		name string
		args []string
		want string // "" for accepted, else a fragment of the error
	}{
		{"single hub", nil, ""},
		{"node", []string{"--store", pg, "--nats", "nats://127.0.0.1:4222", "--deployment", "homes-1"}, ""},
		{"tls scheme", []string{"--store", pg, "--nats", "tls://nats.example.org:4222"}, ""},
		{"cluster list", []string{"--store", pg, "--nats", "nats://n1:4222,nats://n2:4222, nats://n3:4222"}, ""},
		{"bad list member", []string{"--store", pg, "--nats", "nats://n1:4222,http://n2:4222"}, `URL 2 has the scheme "http"`},
		{"without postgres", []string{"--nats", "nats://127.0.0.1:4222"}, "must share one database"},
		{"wrong scheme", []string{"--store", pg, "--nats", "http://127.0.0.1:4222"}, `scheme "http"`},
		{"no host", []string{"--store", pg, "--nats", "nats://"}, "no host"},
		{"secret not repeated", []string{"--store", pg, "--nats", "ftp://user:s3cret@h:4222"}, `scheme "ftp"`},
		{"subject characters", []string{"--store", pg, "--nats", "nats://h:4222", "--deployment", "a.b"}, `character '.'`},
		{"node url", []string{"--store", pg, "--nats", "nats://h:4222", "--node-url", "https://10.0.0.11:8080"}, ""},
		{"node url without scheme", []string{"--store", pg, "--nats", "nats://h:4222", "--node-url", "10.0.0.11:8080"}, "is not a URL"},
		{"empty deployment", []string{"--store", pg, "--nats", "nats://h:4222", "--deployment", ""}, "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolve(t, tt.args, env())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error repeats the secret: %v", err)
			}
		})
	}
}
