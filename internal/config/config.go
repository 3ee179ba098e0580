// Package config holds the hub's settings and resolves them from, in order
// of precedence, command-line flags, CANDOR_* environment variables, a
// JSON config file, and built-in defaults.
//
// Every setting is described once, in the settings table, and that one
// entry gives its flag (--mqtt-addr), environment variable
// (CANDOR_MQTT_ADDR), file key (mqtt_addr), default and help text, so the
// four sources cannot drift apart. As in Caddy, configuration is data that
// is validated completely before anything starts, and each error names the
// setting as the user wrote it: the flag, the variable or the file and key.
package config

import (
	"fmt"
	"strings"
	"time"
)

// Config is the hub's resolved settings. The zero value is not useful;
// start from Default or Load.
type Config struct {
	// DataDir holds the database and generated TLS files.
	DataDir string
	// Store selects the storage engine: empty for the embedded SQLite
	// file in DataDir, or a postgres:// URL for a PostgreSQL database.
	Store string
	// NATS, when set, makes this hub one node of several sharing the
	// PostgreSQL database in Store: changes and MQTT sessions are
	// coordinated through this NATS server (package cluster).
	NATS string
	// Deployment names the hub several nodes form; it prefixes their NATS
	// subjects, so two deployments can share one NATS server.
	Deployment string
	// NodeURL is the base URL other nodes reach this node's HTTP API at
	// (empty: derived from HTTPAddr when it names a host).
	NodeURL string
	// MQTTAddr is the plain MQTT listener (host:port); empty means off,
	// which needs another MQTT listener (TLS or WebSocket).
	MQTTAddr string
	// MQTTTLSAddr is the MQTT over TLS listener; empty means off.
	MQTTTLSAddr string
	// WSAddr is the MQTT over WebSocket listener; empty means off.
	WSAddr string
	// HTTPAddr is the web interface and API listener.
	HTTPAddr string
	// TLSCert and TLSKey are PEM files, given together or not at all.
	TLSCert string
	TLSKey  string
	// TLSSelfSigned makes the hub keep a small certificate authority of
	// its own in DataDir and serve a certificate from it that covers the
	// host's names and addresses, when no TLSCert is given.
	TLSSelfSigned bool
	// TLSNames are more names and addresses, comma-separated, for the
	// certificate TLSSelfSigned makes (see TLSNameList).
	TLSNames string
	// Demo starts the hub with a demo household and simulated devices.
	Demo bool
	// DemoSpeed makes the demo devices send that many times as often.
	DemoSpeed int
	// RetentionInterval is how often expired readings are deleted.
	RetentionInterval time.Duration
	// UndeclaredFields is what happens to a reading with fields its
	// manifest does not declare: "reject" it (default) or "strip" them.
	UndeclaredFields string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
	// MaxPayloadBytes is the largest MQTT message payload accepted.
	MaxPayloadBytes int
	// BridgeMaxPacketBytes is the largest MQTT packet a Zigbee2MQTT bridge
	// may send on its zigbee2mqtt/bridge/… topics (its retained device
	// list and definitions); its readings keep MaxPayloadBytes.
	BridgeMaxPacketBytes int
	// MQTTConnectTimeout closes MQTT connections that have not sent their
	// CONNECT packet this long after connecting.
	MQTTConnectTimeout time.Duration
	// MQTTPendingPerAddress bounds the MQTT connections from one address
	// that have not logged in yet.
	MQTTPendingPerAddress int
	// MemoryLimitMiB is the Go runtime's soft memory limit in MiB
	// (runtime/debug.SetMemoryLimit), 0 for none beyond GOMEMLIMIT. A hub
	// holding many idle connections otherwise lets its heap grow to twice
	// what is live before collecting (GOGC=100); under the limit the
	// collector works harder instead. It is not a hard cap.
	MemoryLimitMiB int
	// BatchMaxRows is the batch size at which a batch is written without
	// waiting out BatchMaxWait. While the disk is busy a batch (one
	// database transaction) grows to at most 4×BatchMaxRows; then
	// publishers wait. BatchMaxWait is how long the first reading of a
	// batch waits for more.
	BatchMaxRows int
	BatchMaxWait time.Duration
	// BatchBusyWait is how long a batch gathers while the writer stays
	// busy (ingest.Options.BatchBusyWait): the first reading after a
	// quiet spell does not wait for it.
	BatchBusyWait time.Duration
	// Ack is when a QoS 1 reading is acknowledged: "commit" (the default:
	// after its batch is durably committed) or "durable-within=<duration>"
	// (once it passed the policy path and is queued, while the queue is
	// no older than the duration; see AckWindow).
	Ack string
	// MonitorWindow is the abuse monitor's counting window.
	MonitorWindow time.Duration
	// MonitorKeep is how long the monitor's per-window counts are kept.
	MonitorKeep time.Duration
	// MonitorActions maps alarm severity to action, such as
	// "info=notify,warning=rate_limit,critical=quarantine".
	MonitorActions string
	// AlertWebhook is a URL that receives every alarm, signed; empty is off.
	AlertWebhook string
	// AlertSMTPAddr (host:port) and AlertMailFrom send alarms by e-mail to
	// the people who asked for them; empty is off.
	AlertSMTPAddr string
	AlertMailFrom string
	// CredentialRotation is how old a device credential may grow before
	// the security audit flags it; 0 turns that check off.
	CredentialRotation time.Duration
	// AuditInterval is how often the security audit runs; 0 runs it only
	// on demand.
	AuditInterval time.Duration
	// RequireSecondFactorForAdmin makes an admin without login codes
	// enrol them before doing anything else.
	RequireSecondFactorForAdmin bool
	// ConfigFile is the JSON file the other settings were read from, if any.
	ConfigFile string
	// MQTTAddrSet and HTTPAddrSet say that MQTTAddr and HTTPAddr were
	// chosen (by a flag, an environment variable or the config file)
	// rather than left at their defaults. A demo hub moves a default
	// address whose port is taken to a free one, never a chosen one.
	// Resolve sets them; they have no setting of their own.
	MQTTAddrSet bool `config:"derived"`
	HTTPAddrSet bool `config:"derived"`
}

// TLSNameList splits TLSNames into its names and addresses.
func (c Config) TLSNameList() []string {
	var out []string
	for n := range strings.SplitSeq(c.TLSNames, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Default returns the settings used when nothing else is given: local-only
// listeners, so a fresh hub is not reachable from the network until its
// operator says so.
func Default() Config {
	return Config{
		DataDir:         "./candor-data",
		MQTTAddr:        "127.0.0.1:1883",
		Deployment:      "default",
		HTTPAddr:        "127.0.0.1:8080",
		LogLevel:        "info",
		LogFormat:       "text",
		MaxPayloadBytes: 64 << 10,
		// Zigbee2MQTT's bridge/definitions runs to about a megabyte in
		// a network of a hundred device models.
		BridgeMaxPacketBytes: 4 << 20,
		BatchMaxRows:         1000,
		BatchMaxWait:         0,
		BatchBusyWait:        time.Millisecond,
		Ack:                  "commit",
		DemoSpeed:            1,
		UndeclaredFields:     "reject",
		RetentionInterval:    time.Minute,

		MQTTConnectTimeout:    5 * time.Second,
		MQTTPendingPerAddress: 16,

		MonitorWindow:      time.Minute,
		MonitorKeep:        30 * 24 * time.Hour,
		MonitorActions:     "info=notify,warning=rate_limit,critical=quarantine",
		AlertMailFrom:      "candor@localhost",
		CredentialRotation: 365 * 24 * time.Hour,
		AuditInterval:      time.Hour,
	}
}

// maxMQTTPacket is the MQTT "Remaining Length" limit (268,435,455 bytes);
// no payload can be larger.
const maxMQTTPacket = 268435455

// settings is the one description of every Config field. Help texts are
// completed with the environment variable and file key by usage.
var settings = []setting{
	{name: "config", arg: "path", noFile: true,
		help:  "JSON file of settings; flags and environment variables override it",
		field: func(c *Config) any { return &c.ConfigFile }},
	{name: "data", arg: "path", help: "directory for the database and generated TLS files",
		field: func(c *Config) any { return &c.DataDir }, check: nonEmpty},
	{name: "store", arg: "url", help: "storage engine: empty for the embedded SQLite file in the data directory, or a PostgreSQL URL such as postgres://candor@db.example.org/candor (give the password in ~/.pgpass or PGPASSWORD rather than here)",
		field: func(c *Config) any { return &c.Store }, check: storeURL},
	{name: "nats", arg: "url", help: "run as one of several hub nodes sharing the PostgreSQL --store: the NATS server (nats://host:4222) through which the nodes pass on changes and MQTT sessions; empty for a single hub",
		field: func(c *Config) any { return &c.NATS }, check: natsURL},
	{name: "deployment", arg: "name", help: "with --nats, the name the nodes of one hub share (letters, digits, - and _); it separates their NATS subjects from another deployment's",
		field: func(c *Config) any { return &c.Deployment }, check: deploymentName},
	{name: "node-url", arg: "url", help: "with --nats, the base URL the other nodes reach this node's web interface and API at, such as https://10.0.0.11:8080 (they send requests about export jobs running here to it); empty: the --http-addr, when it names a host",
		field: func(c *Config) any { return &c.NodeURL }, check: nodeURL},
	{name: "mqtt-addr", arg: "host:port", help: "plain MQTT listener address; empty turns it off (then give --mqtt-tls-addr or --ws-addr)",
		field: func(c *Config) any { return &c.MQTTAddr }, check: address(false), emptyMeansOff: true},
	{name: "mqtt-tls-addr", arg: "host:port", help: "MQTT over TLS listener address; empty turns it off",
		field: func(c *Config) any { return &c.MQTTTLSAddr }, check: address(false)},
	{name: "ws-addr", arg: "host:port", help: "MQTT over WebSocket listener address; empty turns it off",
		field: func(c *Config) any { return &c.WSAddr }, check: address(false)},
	{name: "http-addr", arg: "host:port", help: "web interface and API listener address",
		field: func(c *Config) any { return &c.HTTPAddr }, check: address(true)},
	{name: "tls-cert", arg: "path", help: "PEM certificate file for the TLS listeners, with --tls-key",
		field: func(c *Config) any { return &c.TLSCert }},
	{name: "tls-key", arg: "path", help: "PEM private key file for --tls-cert",
		field: func(c *Config) any { return &c.TLSKey }},
	{name: "tls-self-signed", help: "keep a local certificate authority in the data directory (its certificate is ca.pem, for devices to verify with) and serve a certificate from it for this machine's names and addresses",
		field: func(c *Config) any { return &c.TLSSelfSigned }},
	{name: "tls-names", arg: "names", help: "with --tls-self-signed, more host names and IP addresses for the certificate, comma-separated, such as hub.example.org,203.0.113.5",
		field: func(c *Config) any { return &c.TLSNames }, check: hostList},
	{name: "demo", help: "start with a demo household and simulated devices",
		field: func(c *Config) any { return &c.Demo }},
	{name: "demo-speed", arg: "factor", help: "with --demo, how many times faster than real devices the simulated ones send",
		field: func(c *Config) any { return &c.DemoSpeed }, check: intRange(1, 1000)},
	{name: "undeclared-fields", arg: "reject|strip", help: "readings with fields their manifest does not declare: reject them, or strip those fields and keep the rest",
		field: func(c *Config) any { return &c.UndeclaredFields }, check: oneOf("reject", "strip")},
	{name: "retention-interval", arg: "duration", help: "how often readings past their retention are deleted, such as 1m",
		field: func(c *Config) any { return &c.RetentionInterval }, check: durationRange(time.Second, 24*time.Hour)},
	{name: "log-level", arg: "level", help: "least severe log level written: debug, info, warn or error",
		field: func(c *Config) any { return &c.LogLevel }, check: oneOf("debug", "info", "warn", "error")},
	{name: "log-format", arg: "format", help: "log format: text or json",
		field: func(c *Config) any { return &c.LogFormat }, check: oneOf("text", "json")},
	{name: "max-payload-bytes", arg: "bytes", help: "largest MQTT message payload accepted, in bytes",
		field: func(c *Config) any { return &c.MaxPayloadBytes }, check: intRange(1, maxMQTTPacket)},
	{name: "bridge-max-packet-bytes", arg: "bytes", help: "largest MQTT packet a Zigbee2MQTT bridge may send about itself (zigbee2mqtt/bridge/…, such as its device list), in bytes; its readings keep --max-payload-bytes",
		field: func(c *Config) any { return &c.BridgeMaxPacketBytes }, check: intRange(1, maxMQTTPacket)},
	{name: "mqtt-connect-timeout", arg: "duration", help: "close an MQTT connection that has not sent its CONNECT packet (TLS handshake included) this long after connecting, such as 5s",
		field: func(c *Config) any { return &c.MQTTConnectTimeout }, check: durationRange(100*time.Millisecond, 5*time.Minute)},
	{name: "mqtt-pending-per-address", arg: "count", help: "most MQTT connections from one address (an IPv6 /64) that may wait to log in at once; more are closed at once; devices that logged in do not count",
		field: func(c *Config) any { return &c.MQTTPendingPerAddress }, check: intRange(1, 100000)},
	{name: "memory-limit-mib", arg: "MiB", help: "soft limit on the hub's memory, in MiB: near it the Go runtime collects garbage more often instead of growing (it is not a hard cap; the collector gives up rather than use most of the CPU); 0 sets none, leaving the GOMEMLIMIT environment variable in force",
		field: func(c *Config) any { return &c.MemoryLimitMiB }, check: intRange(0, 1<<30)},
	{name: "batch-max-rows", arg: "rows", help: "readings that fill a batch, which is then written without waiting for --batch-max-wait; while the disk is busy a batch (one database transaction) grows to 4 times this before publishers wait",
		field: func(c *Config) any { return &c.BatchMaxRows }, check: intRange(1, 100000)},
	{name: "batch-max-wait", arg: "duration", help: "longest a reading waits for its batch to fill, such as 5ms; 0 writes as soon as the disk is free (batches then form while the previous one is written)",
		field: func(c *Config) any { return &c.BatchMaxWait }, check: durationRange(0, time.Minute)},
	{name: "batch-busy-wait", arg: "duration", help: "while readings keep arriving during commits, how long a batch gathers before it is written, such as 1ms (fewer commits under steady load); the first reading after a quiet spell never waits; 0 writes as soon as the disk is free",
		field: func(c *Config) any { return &c.BatchBusyWait }, check: durationRange(0, time.Second)},
	{name: "ack", arg: "mode", help: "when a QoS 1 reading is acknowledged: commit (after its batch is durably committed), or durable-within=10ms (at once while every acknowledged reading not yet on disk is younger than the window; a crash can lose what was acknowledged in about the last window)",
		field: func(c *Config) any { return &c.Ack }, check: ackMode},
	{name: "monitor-window", arg: "duration", help: "the abuse monitor's counting window, such as 1m; alarms need several windows in a row to raise and to clear",
		field: func(c *Config) any { return &c.MonitorWindow }, check: durationRange(time.Second, time.Hour)},
	{name: "monitor-keep", arg: "duration", help: "how long the abuse monitor keeps its counts per device and window (counts and sizes only, never values), such as 720h",
		field: func(c *Config) any { return &c.MonitorKeep }, check: durationRange(time.Hour, 366*24*time.Hour)},
	{name: "monitor-actions", arg: "list", help: "what the hub does about an alarm of each severity: info, warning and critical, each =notify, =rate_limit, =quarantine or =revoke, comma-separated",
		field: func(c *Config) any { return &c.MonitorActions }, check: severityActions},
	{name: "alert-webhook", arg: "url", help: "URL that receives every alarm as JSON signed with Ed25519 (public key in alerts/alert-signing-key.pub.pem in the data directory); empty turns it off",
		field: func(c *Config) any { return &c.AlertWebhook }, check: webhookURL},
	{name: "alert-smtp-addr", arg: "host:port", help: "SMTP server that sends alarms by e-mail to the people who asked for them; empty turns it off",
		field: func(c *Config) any { return &c.AlertSMTPAddr }, check: address(false)},
	{name: "alert-mail-from", arg: "address", help: "sender address of alarm e-mails",
		field: func(c *Config) any { return &c.AlertMailFrom }, check: nonEmpty},
	{name: "credential-rotation", arg: "duration", help: "how old a device secret may grow before the security audit asks for a new one, such as 8760h; 0 turns that check off",
		field: func(c *Config) any { return &c.CredentialRotation }, check: durationRange(0, 10*365*24*time.Hour)},
	{name: "audit-interval", arg: "duration", help: "how often the security audit runs, such as 1h; 0 runs it only when asked (candor audit)",
		field: func(c *Config) any { return &c.AuditInterval }, check: durationRange(0, 30*24*time.Hour)},
	{name: "require-second-factor-for-admin", help: "an admin without login codes (a second factor) must add them before doing anything else on the pages or the API",
		field: func(c *Config) any { return &c.RequireSecondFactorForAdmin }},
}

// setting describes one Config field in every source.
type setting struct {
	name   string // flag name, kebab-case; env and key derive from it
	arg    string // placeholder for the value in usage, such as host:port
	help   string
	noFile bool // cannot be set from the config file
	// emptyMeansOff makes an environment variable set to "" count as
	// given, for settings whose empty value turns something off; for the
	// others an empty variable is the same as an unset one.
	emptyMeansOff bool
	field         func(*Config) any // pointer to the field: *string, *bool, *int or *time.Duration
	check         func(v any) error // validates the field's value; nil accepts anything
}

func (s *setting) flag() string { return "--" + s.name }

func (s *setting) env() string {
	return "CANDOR_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s *setting) key() string { return strings.ReplaceAll(s.name, "-", "_") }

func (s *setting) isBool() bool {
	var c Config
	_, ok := s.field(&c).(*bool)
	return ok
}

func (s *setting) isString() bool {
	var c Config
	_, ok := s.field(&c).(*string)
	return ok
}

// usage is the help line registered with the flag.
func (s *setting) usage() string {
	u := s.help + " (env " + s.env()
	if !s.noFile {
		u += ", file key " + s.key()
	}
	return u + ")"
}

// format renders the setting's value in c the way a flag or environment
// variable would spell it.
func (s *setting) format(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *bool:
		return fmt.Sprint(*p)
	case *int:
		return fmt.Sprint(*p)
	case *time.Duration:
		return p.String()
	}
	return ""
}

// Validate checks c as Resolve would, naming settings by their flags. It is
// for Configs built in code, such as tests starting a hub on port 0.
func (c Config) Validate() error {
	src := make(map[string]string, len(settings))
	for i := range settings {
		src[settings[i].name] = settings[i].flag()
	}
	return c.validate(src)
}
