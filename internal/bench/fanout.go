package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// FanoutOptions configure the fan-out bench: many devices publish at full
// speed and one subscriber receives every reading, on Candor (the
// subscriber is an app allowed every device's stream, so each reading
// passes the whole policy path and the app's consent check) and on a
// Mosquitto started here (plain pub/sub), one after the other.
type FanoutOptions struct {
	HubArgv   []string // how to run `candor serve`
	HubEnv    []string
	Mosquitto string // path of the mosquitto binary; "" skips Mosquitto
	Devices   int    // default 100
	Duration  time.Duration
	// QoS of the publishes and of the subscription (0 or 1).
	QoS          byte
	PayloadBytes int
	Window       int
	Progress     io.Writer
}

// FanoutSide is what one broker did.
type FanoutSide struct {
	Name string
	// Published is what the devices had acknowledged (QoS 1) or sent
	// (QoS 0); Received what the subscriber got.
	Published, Received int64
	PublishedPerSec     float64
	ReceivedPerSec      float64
	// Dropped is what the broker says it dropped for the subscriber
	// (Candor: the app's delivery figures; Mosquitto does not say).
	Dropped int64
	// Unaccounted is Published - Received - Dropped: readings lost
	// without a trace (0 means no silent loss).
	Unaccounted int64
	Error       string
}

// FanoutReport is the two sides of one run.
type FanoutReport struct {
	Devices  int
	Duration time.Duration
	QoS      byte
	Sides    []FanoutSide
}

func (o *FanoutOptions) normalize() {
	if o.Devices <= 0 {
		o.Devices = 100
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.PayloadBytes <= 0 {
		o.PayloadBytes = 128
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// RunFanout runs the fan-out bench on Candor, then on Mosquitto.
func RunFanout(ctx context.Context, o FanoutOptions) (*FanoutReport, error) {
	o.normalize()
	rep := &FanoutReport{Devices: o.Devices, Duration: o.Duration, QoS: o.QoS}
	var errs []error
	c, err := fanoutCandor(ctx, o)
	if err != nil {
		c.Error = oneLine(err)
		errs = append(errs, fmt.Errorf("candor: %w", err))
	}
	rep.Sides = append(rep.Sides, c)
	if o.Mosquitto != "" {
		m, err := fanoutMosquitto(ctx, o)
		if err != nil {
			m.Error = oneLine(err)
			errs = append(errs, fmt.Errorf("mosquitto: %w", err))
		}
		rep.Sides = append(rep.Sides, m)
	}
	return rep, errors.Join(errs...)
}

const fanoutStream = "fanout"

// counter is the one subscriber of a fan-out run.
type counter struct {
	conn  *Conn
	count atomic.Int64
	last  atomic.Int64 // Unix ns of the last delivery
}

func startCounter(ctx context.Context, addr string, co ConnectOptions, filter string, qos byte) (*counter, error) {
	k := &counter{}
	co.KeepAlive = keepAlive
	co.OnMessage = func(_, _ []byte) {
		k.count.Add(1)
		k.last.Store(time.Now().UnixNano())
	}
	c, err := Dial(ctx, addr, co)
	if err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	k.conn = c
	if err := c.Subscribe(ctx, filter, qos); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	return k, nil
}

// fanoutLoad runs the devices' load against addr and waits for the
// subscriber to stop receiving.
func fanoutLoad(ctx context.Context, o FanoutOptions, addr string, clients []ConnectOptions, topics []string, k *counter) (FanoutSide, error) {
	var s FanoutSide
	lr, err := runLoad(ctx, loadSpec{Addr: addr, Clients: clients, Topics: topics, QoS: o.QoS,
		Duration: o.Duration, PayloadBytes: o.PayloadBytes, DrainTimeout: drainTimeout})
	if lr == nil {
		return s, err
	}
	s.Published = sum(lr.Sent)
	if o.QoS == 1 {
		s.Published = sum(lr.Acked)
	}
	if d := lr.End.Sub(lr.Start).Seconds(); d > 0 {
		s.PublishedPerSec = float64(s.Published) / d
	}
	if err != nil {
		return s, err
	}
	got, _, _ := waitFor(ctx, s.Published, 3*time.Second, time.Minute, func() (int64, error) { return k.count.Load(), nil })
	s.Received = got
	if d := time.Unix(0, k.last.Load()).Sub(lr.Start).Seconds(); got > 0 && d > 0 {
		s.ReceivedPerSec = float64(got) / d
	}
	return s, nil
}

func fanoutCandor(ctx context.Context, o FanoutOptions) (FanoutSide, error) {
	fmt.Fprintf(o.Progress, "Candor: %d devices → 1 app for %s\n", o.Devices, o.Duration)
	s := FanoutSide{Name: "Candor (policy path, app consent)"}
	dir, err := os.MkdirTemp("", "candor-fanout-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)
	h, err := startHub(ctx, o.HubArgv, o.HubEnv, dir, nil)
	if err != nil {
		return s, err
	}
	defer func() { _ = h.stop(60 * time.Second) }()
	doc, err := benchManifest(o.PayloadBytes, []string{fanoutStream}, "P1D")
	if err != nil {
		return s, err
	}
	if _, err := h.putManifest(ctx, doc); err != nil {
		return s, err
	}
	devs, err := h.addDevices(ctx, o.Devices)
	if err != nil {
		return s, err
	}
	var app struct {
		App struct {
			ID string `json:"id"`
		} `json:"app"`
		Secret string `json:"secret"`
	}
	if err := h.do(ctx, http.MethodPost, "/api/v1/apps", map[string]any{"name": "bench app", "purposes": []string{"dpv:ServiceProvision"}}, &app); err != nil {
		return s, fmt.Errorf("add the app: %w", err)
	}
	err = parallel(ctx, len(devs), 4, func(i int) error {
		return h.do(ctx, http.MethodPut, "/api/v1/apps/"+app.App.ID+"/receives/"+devs[i].ID+"/"+fanoutStream, map[string]bool{"on": true}, nil)
	})
	if err != nil {
		return s, fmt.Errorf("allow the app: %w", err)
	}
	k, err := startCounter(ctx, h.mqttAddr, ConnectOptions{ClientID: app.App.ID, Username: app.App.ID, Password: app.Secret,
		Timeout: 60 * time.Second}, "candor/+/"+fanoutStream, o.QoS)
	if err != nil {
		return s, err
	}
	defer k.conn.Close()
	clients := make([]ConnectOptions, len(devs))
	topics := make([]string, len(devs))
	for i, d := range devs {
		clients[i] = ConnectOptions{ClientID: d.ID, Username: d.ID, Password: d.Secret, KeepAlive: keepAlive, Window: o.Window, Timeout: 60 * time.Second}
		topics[i] = "candor/" + d.ID + "/" + fanoutStream
	}
	name := s.Name
	s, err = fanoutLoad(ctx, o, h.mqttAddr, clients, topics, k)
	s.Name = name
	if err != nil {
		return s, err
	}
	var got struct {
		Delivery struct {
			Dropped int64 `json:"dropped"`
		} `json:"delivery"`
	}
	if err := h.do(ctx, http.MethodGet, "/api/v1/apps/"+app.App.ID, nil, &got); err != nil {
		return s, fmt.Errorf("read the app's delivery figures: %w", err)
	}
	s.Dropped = got.Delivery.Dropped
	s.Unaccounted = s.Published - s.Received - s.Dropped
	return s, nil
}

func fanoutMosquitto(ctx context.Context, o FanoutOptions) (FanoutSide, error) {
	fmt.Fprintf(o.Progress, "Mosquitto: %d publishers → 1 subscriber for %s\n", o.Devices, o.Duration)
	s := FanoutSide{Name: trimVersion(mosquittoVersion(o.Mosquitto)) + " (plain pub/sub)"}
	dir, err := os.MkdirTemp("", "candor-fanout-mosquitto-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)
	m, err := startMosquitto(o.Mosquitto, dir)
	if err != nil {
		return s, err
	}
	defer func() { _ = m.stop(10 * time.Second) }()
	k, err := startCounter(ctx, m.addr, ConnectOptions{ClientID: "fanout-sink"}, "candor/+/"+fanoutStream, o.QoS)
	if err != nil {
		return s, err
	}
	defer k.conn.Close()
	clients := make([]ConnectOptions, o.Devices)
	topics := make([]string, o.Devices)
	for i := range clients {
		id := fmt.Sprintf("fanout-dev-%05d", i)
		clients[i] = ConnectOptions{ClientID: id, KeepAlive: keepAlive, Window: o.Window, Timeout: 30 * time.Second}
		topics[i] = "candor/" + id + "/" + fanoutStream
	}
	name := s.Name
	s, err = fanoutLoad(ctx, o, m.addr, clients, topics, k)
	s.Name = name
	// Mosquitto does not report drops per subscriber: all it lost is
	// unaccounted for.
	s.Unaccounted = s.Published - s.Received
	return s, err
}

// WriteFanout prints the report as a table.
func WriteFanout(w io.Writer, r *FanoutReport) error {
	fmt.Fprintf(w, "Fan-out: %d devices publishing QoS %d at full speed for %s, one subscriber.\n\n", r.Devices, r.QoS, r.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "broker\tpublished\tpublished msg/s\treceived\tdelivered msg/s\tdropped (counted)\tlost silently")
	for _, s := range r.Sides {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\tfailed: %s\t\t\t\t\t\n", s.Name, s.Error)
			continue
		}
		dropped := fmt.Sprint(s.Dropped)
		if s.Name != "" && s.Name[0] != 'C' {
			dropped = "not reported"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%.0f\t%s\t%d\n", s.Name, s.Published, s.PublishedPerSec, s.Received, s.ReceivedPerSec, dropped, s.Unaccounted)
	}
	return tw.Flush()
}
