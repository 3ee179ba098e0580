package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

func runDevice(args []string) error {
	if len(args) == 0 {
		return errors.New("which? candor device add|list|rotate|revoke (each has --help)")
	}
	switch args[0] {
	case "add":
		return deviceAdd(args[1:])
	case "list":
		return deviceList(args[1:])
	case "rotate":
		return deviceRotate(args[1:])
	case "revoke":
		return deviceRevoke(args[1:])
	}
	return fmt.Errorf("unknown device command %q: use add, list, rotate or revoke", args[0])
}

type deviceOut struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	HouseholdID string    `json:"household_id"`
	Revoked     bool      `json:"revoked"`
	Connected   bool      `json:"connected"`
	CreatedAt   time.Time `json:"created_at"`
	Counters    struct {
		ACLDenied    int64 `json:"acl_denied"`
		Refused      int64 `json:"refused"`
		AuthFailures int64 `json:"auth_failures"`
	} `json:"counters"`
}

type secretOut struct {
	Device       deviceOut `json:"device"`
	Secret       string    `json:"secret"`
	MosquittoPub string    `json:"mosquitto_pub"`
}

func printSecret(s secretOut) {
	fmt.Printf("Device %s (%s, %s)\n\n", s.Device.ID, s.Device.Name, s.Device.Type)
	fmt.Printf("  MQTT username and client id: %s\n", s.Device.ID)
	fmt.Printf("  Secret (shown once, stored only as a hash): %s\n", s.Secret)
	fmt.Printf("  Publish readings to: candor/%s/<stream>\n\n", s.Device.ID)
	fmt.Printf("Test it:\n  %s\n", s.MosquittoPub)
}

// readSecret reads a chosen secret from standard input (never from a flag,
// which would leave it in shell history and the process list).
func readSecret() (string, error) {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("--secret-stdin: no secret on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func deviceAdd(args []string) error {
	fs := newFlags("candor device add", "candor device add NAME --type TYPE [--household ID] [--secret-stdin]")
	dir := dataDirFlag(fs)
	typ := fs.String("type", "", "device type, e.g. thermostat (required)")
	hh := fs.String("household", "", "household id (needed only when the hub has several)")
	fromStdin := fs.Bool("secret-stdin", false, "read a chosen secret from standard input instead of generating one (it must pass the password rules)")
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	name, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if *typ == "" {
		return errors.New("--type is required, e.g. --type thermostat")
	}
	in := map[string]string{"name": name, "type": *typ, "household": *hh}
	if *fromStdin {
		if in["secret"], err = readSecret(); err != nil {
			return err
		}
	}
	var out secretOut
	if err := newLocal(*dir).do("POST", "/api/v1/devices", in, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	printSecret(out)
	return nil
}

// parseWithName parses flags around one positional argument, which may
// come before or after them.
func parseWithName(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "" {
		return "", errors.New("missing argument; see --help")
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("unexpected arguments %q", rest)
	}
	return name, nil
}

func deviceList(args []string) error {
	var out struct {
		Devices []deviceOut `json:"devices"`
	}
	if printed, err := listFromHub("device", "/api/v1/devices", args, &out); printed || err != nil {
		return err
	}
	if len(out.Devices) == 0 {
		fmt.Println("No devices yet. Add one with: candor device add NAME --type TYPE")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tSTATE\tREFUSED\tDENIED\tAUTH FAILURES")
	for _, d := range out.Devices {
		state := "offline"
		switch {
		case d.Revoked:
			state = "revoked"
		case d.Connected:
			state = "connected"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", d.ID, d.Name, d.Type, state, d.Counters.Refused, d.Counters.ACLDenied, d.Counters.AuthFailures)
	}
	return tw.Flush()
}

func deviceRotate(args []string) error {
	fs := newFlags("candor device rotate", "candor device rotate DEVICE-ID [--secret-stdin]")
	dir := dataDirFlag(fs)
	fromStdin := fs.Bool("secret-stdin", false, "read the new secret from standard input instead of generating one")
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	id, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	in := map[string]string{}
	if *fromStdin {
		if in["secret"], err = readSecret(); err != nil {
			return err
		}
	}
	var out secretOut
	if err := newLocal(*dir).do("POST", "/api/v1/devices/"+url.PathEscape(id)+"/rotate", in, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	fmt.Println("Credential rotated; connections using the old secret were closed.")
	printSecret(out)
	return nil
}

func deviceRevoke(args []string) error {
	fs := newFlags("candor device revoke", "candor device revoke DEVICE-ID")
	dir := dataDirFlag(fs)
	id, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if err := newLocal(*dir).do("POST", "/api/v1/devices/"+url.PathEscape(id)+"/revoke", nil, nil); err != nil {
		return err
	}
	fmt.Printf("Device %s revoked and disconnected. Its stored readings are kept.\n", id)
	return nil
}

func runReadings(args []string) error {
	fs := newFlags("candor readings", "candor readings DEVICE-ID [--stream S] [--limit N] [--since RFC3339]")
	dir := dataDirFlag(fs)
	stream := fs.String("stream", "", "only this stream")
	limit := fs.Int("limit", 20, "most recent N readings (1-10000)")
	since := fs.String("since", "", "only readings at or after this time (RFC 3339)")
	jsonOut := fs.Bool("json", false, "print as JSON")
	id, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	type reading struct {
		Seq     int64           `json:"seq"`
		Stream  string          `json:"stream"`
		Time    time.Time       `json:"time"`
		Payload json.RawMessage `json:"payload"`
	}
	// Page through to show the latest N without the API needing a
	// "newest first" mode; bounded by the device's history.
	var last []reading
	after := int64(0)
	for {
		q := url.Values{"limit": {"1000"}, "after": {fmt.Sprint(after)}}
		if *stream != "" {
			q.Set("stream", *stream)
		}
		if *since != "" {
			q.Set("since", *since)
		}
		var out struct {
			Readings  []reading `json:"readings"`
			NextAfter int64     `json:"next_after"`
		}
		if err := newLocal(*dir).do("GET", "/api/v1/devices/"+url.PathEscape(id)+"/readings?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		last = append(last, out.Readings...)
		if len(last) > *limit {
			last = last[len(last)-*limit:]
		}
		if len(out.Readings) < 1000 {
			break
		}
		after = out.NextAfter
	}
	if *jsonOut {
		return printJSON(last)
	}
	if len(last) == 0 {
		fmt.Println("No readings stored for this device (yet).")
		return nil
	}
	for _, r := range last {
		fmt.Printf("%s  %-12s %s\n", r.Time.Format(time.RFC3339), r.Stream, r.Payload)
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listFromHub parses a list command's flags (--data, --household,
// --json), gets path from the hub over the control socket into out, and
// prints it as JSON when asked (printed is then true).
func listFromHub(noun, path string, args []string, out any) (printed bool, err error) {
	fs := newFlags("candor "+noun+" list", "candor "+noun+" list [--household ID] [--json]")
	dir := dataDirFlag(fs)
	hh := fs.String("household", "", "only this household")
	jsonOut := fs.Bool("json", false, "print as JSON")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *hh != "" {
		path += "?household=" + url.QueryEscape(*hh)
	}
	if err := newLocal(*dir).do("GET", path, nil, out); err != nil {
		return false, err
	}
	if *jsonOut {
		return true, printJSON(out)
	}
	return false, nil
}
