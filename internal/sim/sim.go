package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Device is one simulated device as the hub knows it.
type Device struct {
	ID     string // device id, also MQTT username and client id; [a-z0-9_]+
	Secret string // the device's password; never logged
	Kind   string // a key of Kinds
}

// Config configures a Simulator.
type Config struct {
	// Broker is the hub's MQTT address: "host:port", "tcp://host:port" or,
	// for TLS, "tls://host:port" (also "ssl://", "mqtts://"). The port
	// defaults to 1883, or 8883 with TLS.
	Broker  string
	Devices []Device
	// Speed makes simulated time run faster: at 10 every interval is a
	// tenth as long and a simulated day passes in 2.4 hours. Default 1.
	Speed float64
	// QoS for readings: 1 (the default, used when 0) or 2. Set AtMostOnce
	// for QoS 0, which suits load tests that measure raw throughput.
	QoS        byte
	AtMostOnce bool
	// Seed fixes each device's random behaviour: a model given the same
	// seed and the same simulated times gives the same readings (under Run
	// the times follow the wall clock, so a run as a whole still varies).
	// 0 picks a seed at random.
	Seed int64
	// Logger receives connection events and counts. It is never given a
	// secret or a reading's contents. Default: discard.
	Logger *slog.Logger
	// TLSConfig, when set, makes devices connect with TLS whatever the
	// Broker scheme.
	TLSConfig *tls.Config
	// MinBackoff and MaxBackoff bound the delay before a device reconnects
	// after a failure; it doubles from min to max, with jitter, and starts
	// again from min after a connection that worked. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// HTTP downloads update images the hub offers; nil means a client
	// that trusts TLSConfig's roots.
	HTTP *http.Client
}

// Simulator runs a set of simulated devices against one broker.
type Simulator struct {
	addr      string
	url       *url.URL // addr as autopaho wants it
	tls       *tls.Config
	speed     float64
	qos       byte
	log       *slog.Logger
	minBack   time.Duration
	maxBack   time.Duration
	simStart  time.Time // simulated time at wallStart
	wallStart time.Time
	devices   []*device
	running   atomic.Bool
	http      *http.Client
}

var idPattern = regexp.MustCompile(`^[a-z0-9_]+$`)

// New checks cfg and prepares the devices. Nothing connects until Run.
func New(cfg Config) (*Simulator, error) {
	addr, useTLS, err := parseBroker(cfg.Broker)
	if err != nil {
		return nil, err
	}
	if len(cfg.Devices) == 0 {
		return nil, errors.New("sim: no devices")
	}
	speed := cfg.Speed
	if speed == 0 {
		speed = 1
	}
	if speed < 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		return nil, fmt.Errorf("sim: speed %v must be a positive number", cfg.Speed)
	}
	qos := cfg.QoS
	switch {
	case cfg.AtMostOnce && qos != 0:
		return nil, errors.New("sim: AtMostOnce and QoS both set")
	case cfg.AtMostOnce:
		qos = 0
	case qos == 0:
		qos = 1
	case qos > 2:
		return nil, fmt.Errorf("sim: QoS %d is not 1 or 2", qos)
	}
	scheme := "mqtt"
	if useTLS || cfg.TLSConfig != nil {
		scheme = "tls"
	}
	s := &Simulator{
		addr:    addr,
		url:     &url.URL{Scheme: scheme, Host: addr},
		tls:     cfg.TLSConfig,
		speed:   speed,
		qos:     qos,
		log:     cfg.Logger,
		minBack: cfg.MinBackoff,
		maxBack: cfg.MaxBackoff,
	}
	if s.tls == nil && useTLS {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s.http = cfg.HTTP
	if s.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // the hub is local; never route a device's secret through a proxy
		if s.tls != nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.tls.RootCAs}
		}
		s.http = &http.Client{Timeout: time.Minute, Transport: tr}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.minBack <= 0 {
		s.minBack = 500 * time.Millisecond
	}
	if s.maxBack <= 0 {
		s.maxBack = 30 * time.Second
	}
	if s.maxBack < s.minBack {
		return nil, fmt.Errorf("sim: MaxBackoff %v below MinBackoff %v", s.maxBack, s.minBack)
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.wallStart = time.Now()
	s.simStart = s.wallStart
	seen := make(map[string]bool, len(cfg.Devices))
	for _, d := range cfg.Devices {
		if !idPattern.MatchString(d.ID) {
			return nil, fmt.Errorf("sim: device id %q: want lowercase letters, digits and _", d.ID)
		}
		if seen[d.ID] {
			return nil, fmt.Errorf("sim: device %s listed twice", d.ID)
		}
		seen[d.ID] = true
		k, ok := Kinds[d.Kind]
		if !ok {
			return nil, fmt.Errorf("sim: device %s: unknown kind %q (known: %s)", d.ID, d.Kind, strings.Join(KindNames(), ", "))
		}
		if d.Secret == "" {
			return nil, fmt.Errorf("sim: device %s: empty secret", d.ID)
		}
		s.devices = append(s.devices, newDevice(s, d, k, deviceSeed(seed, d.ID)))
	}
	return s, nil
}

// deviceSeed gives each device its own reproducible random stream.
func deviceSeed(seed uint64, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return seed ^ h.Sum64()
}

// parseBroker turns the configured broker into a dial address and whether
// the scheme asks for TLS.
func parseBroker(b string) (addr string, useTLS bool, err error) {
	if b == "" {
		return "", false, errors.New("sim: no broker address")
	}
	host := b
	if strings.Contains(b, "://") {
		u, err := url.Parse(b)
		if err != nil {
			return "", false, fmt.Errorf("sim: broker %q: %w", b, err)
		}
		switch u.Scheme {
		case "tcp", "mqtt":
		case "tls", "ssl", "mqtts":
			useTLS = true
		default:
			return "", false, fmt.Errorf("sim: broker %q: scheme %q not supported (tcp, mqtt, tls, ssl, mqtts)", b, u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return "", false, fmt.Errorf("sim: broker %q: unexpected path", b)
		}
		host = u.Host
	}
	if host == "" {
		return "", false, fmt.Errorf("sim: broker %q: no host", b)
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "1883"
		if useTLS {
			port = "8883"
		}
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	return host, useTLS, nil
}

// Run connects every device and publishes readings until ctx is done, then
// disconnects them and returns nil. Devices that cannot connect, or lose
// their connection, retry with backoff; their failures show in Stats and
// the log, never as an error from Run. Run may be called again after it
// returns; the devices carry on from where they were.
func (s *Simulator) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sim: already running")
	}
	defer s.running.Store(false)

	s.log.Info("simulator starting", "devices", len(s.devices), "broker", s.addr, "speed", s.speed)
	// Spread the first connections so that a large fleet does not knock
	// on the broker all at once.
	spread := min(time.Duration(len(s.devices))*10*time.Millisecond, 2*time.Second)
	var wg sync.WaitGroup
	for _, d := range s.devices {
		wg.Add(1)
		delay := time.Duration(rand.Int64N(int64(spread) + 1))
		go func() {
			defer wg.Done()
			d.run(ctx, delay)
		}()
	}
	wg.Wait()
	st := s.Stats()
	s.log.Info("simulator stopped", "devices", len(s.devices), "published", st.Published(), "errors", st.Errors())
	return nil
}

// Run is New followed by Simulator.Run.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// simNow is the simulated time: it starts at the real time the Simulator
// was made and runs Speed times faster.
func (s *Simulator) simNow() time.Time {
	return s.simStart.Add(time.Duration(float64(time.Since(s.wallStart)) * s.speed))
}

// Stats is a snapshot of what the simulator has done.
type Stats struct {
	Devices []DeviceStats // in the order of Config.Devices
}

// DeviceStats is what one device has done.
type DeviceStats struct {
	ID        string
	Kind      string
	Connected bool
	Connects  uint64            // MQTT sessions established
	Published uint64            // readings the broker acknowledged (at QoS 0: sent)
	Streams   map[string]uint64 // the same, per stream
	Errors    uint64            // failed connections, subscriptions and publishes
	LastError string            // the latest of those errors, "" if none
	Paused    []string          // streams the hub has asked not to collect, sorted
	// NotLearning and NotDeciding are the streams the hub has told the
	// device not to learn from ("learn": false) and not to act on by
	// itself ("decide": false), sorted.
	NotLearning []string
	NotDeciding []string
	// Quarantined: the hub last said it holds the device
	// (control/quarantine-status).
	Quarantined bool
}

// Published is the number of readings accepted for all devices.
func (s Stats) Published() uint64 {
	var n uint64
	for _, d := range s.Devices {
		n += d.Published
	}
	return n
}

// Errors is the number of errors of all devices.
func (s Stats) Errors() uint64 {
	var n uint64
	for _, d := range s.Devices {
		n += d.Errors
	}
	return n
}

// Device returns the stats of one device.
func (s Stats) Device(id string) (DeviceStats, bool) {
	i := slices.IndexFunc(s.Devices, func(d DeviceStats) bool { return d.ID == id })
	if i < 0 {
		return DeviceStats{}, false
	}
	return s.Devices[i], true
}

// Stats returns a snapshot of the counters. It is safe to call at any time,
// from any goroutine, including while Run is running.
func (s *Simulator) Stats() Stats {
	st := Stats{Devices: make([]DeviceStats, len(s.devices))}
	for i, d := range s.devices {
		st.Devices[i] = d.stats()
	}
	return st
}
