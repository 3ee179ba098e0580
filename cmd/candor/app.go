package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
)

func runApp(args []string) error {
	if len(args) == 0 {
		return errors.New("which? candor app add|list|allow|deny|rotate|revoke (each has --help)")
	}
	switch args[0] {
	case "add":
		return appAdd(args[1:])
	case "list":
		return appList(args[1:])
	case "allow":
		return appSwitch(args[1:], true)
	case "deny":
		return appSwitch(args[1:], false)
	case "rotate":
		return appRotate(args[1:])
	case "revoke":
		return appRevoke(args[1:])
	}
	return fmt.Errorf("unknown app command %q: use add, list, allow, deny, rotate or revoke", args[0])
}

type appOut struct {
	ID          string   `json:"id"`
	HouseholdID string   `json:"household_id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Purposes    []string `json:"purposes"`
	Revoked     bool     `json:"revoked"`
	Receives    []struct {
		DeviceID string `json:"device_id"`
		Stream   string `json:"stream"`
		Topic    string `json:"topic"`
	} `json:"receives"`
	Delivery struct {
		Delivered uint64 `json:"delivered"`
		Dropped   uint64 `json:"dropped"`
	} `json:"delivery"`
}

// listFlag collects a flag given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func appAdd(args []string) error {
	fs := newFlags("candor app add", "candor app add NAME --purpose TERM [--purpose TERM …] [--description TEXT] [--household ID]")
	dir := dataDirFlag(fs)
	var purposes listFlag
	fs.Var(&purposes, "purpose", "what the app uses readings for, as a DPV term such as dpv:ServiceProvision or candor:HomeAutomation (required; repeat for several)")
	desc := fs.String("description", "", "what the app is for, in your words")
	hh := fs.String("household", "", "household id (needed only when the hub has several)")
	ha := fs.Bool("home-assistant", false, "announce what the app may get with Home Assistant's MQTT discovery (homeassistant/…/config)")
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	name, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if len(purposes) == 0 {
		return errors.New("--purpose is required, e.g. --purpose candor:HomeAutomation")
	}
	var out struct {
		App    appOut `json:"app"`
		Secret string `json:"secret"`
	}
	in := map[string]any{"name": name, "purposes": []string(purposes), "description": *desc, "household": *hh}
	if *ha {
		in["kind"] = "home-assistant"
	}
	if err := newLocal(*dir).do("POST", "/api/v1/apps", in, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	fmt.Printf("App %s (%s)\n\n", out.App.ID, out.App.Name)
	fmt.Printf("  MQTT username and client id: %s\n", out.App.ID)
	fmt.Printf("  Secret (shown once, stored only as a hash): %s\n", out.Secret)
	fmt.Printf("  Subscribe to: candor/<device-id>/<stream>, e.g. candor/+/temperature or candor/#\n\n")
	fmt.Printf("It receives nothing until you allow it a stream:\n  candor app allow %s DEVICE-ID STREAM\n", out.App.ID)
	return nil
}

func appList(args []string) error {
	var out struct {
		Apps []appOut `json:"apps"`
	}
	if printed, err := listFromHub("app", "/api/v1/apps", args, &out); printed || err != nil {
		return err
	}
	if len(out.Apps) == 0 {
		fmt.Println("No apps yet. Add one with: candor app add NAME --purpose TERM")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPURPOSES\tSTATE\tRECEIVES\tDELIVERED\tDROPPED")
	for _, a := range out.Apps {
		state := "active"
		if a.Revoked {
			state = "revoked"
		}
		var rs []string
		for _, g := range a.Receives {
			rs = append(rs, g.DeviceID+"/"+g.Stream)
		}
		receives := strings.Join(rs, " ")
		if receives == "" {
			receives = "nothing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", a.ID, a.Name, strings.Join(a.Purposes, " "), state, receives, a.Delivery.Delivered, a.Delivery.Dropped)
	}
	return tw.Flush()
}

func appSwitch(args []string, on bool) error {
	verb := "deny"
	if on {
		verb = "allow"
	}
	fs := newFlags("candor app "+verb, "candor app "+verb+" APP-ID DEVICE-ID STREAM  (or  … DEVICE-ID COMMAND --command)")
	dir := dataDirFlag(fs)
	command := fs.Bool("command", false, "the third name is a command the device's manifest declares, which the app may (allow) or may not (deny) send")
	last := fs.Bool("last-value", false, "switch whether the app gets the stream's last reading as soon as it subscribes (kept in memory only), not the stream itself")
	// The three names may come before or after the flags.
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	if len(pos) != 3 {
		return fmt.Errorf("candor app %s needs three arguments: APP-ID DEVICE-ID STREAM", verb)
	}
	app, dev, stream := pos[0], pos[1], pos[2]
	if *command && *last {
		return errors.New("--command and --last-value do not go together: a command has no last value")
	}
	kind := "/receives/"
	switch {
	case *command:
		kind = "/commands/"
	case *last:
		kind = "/retain/"
	}
	path := "/api/v1/apps/" + url.PathEscape(app) + kind + url.PathEscape(dev) + "/" + url.PathEscape(stream)
	if err := newLocal(*dir).do("PUT", path, map[string]bool{"on": on}, nil); err != nil {
		return err
	}
	if *command {
		if on {
			fmt.Printf("App %s may now send the command %s to device %s.\n", app, stream, dev)
		} else {
			fmt.Printf("App %s may no longer send the command %s to device %s.\n", app, stream, dev)
		}
		return nil
	}
	if *last {
		if on {
			fmt.Printf("App %s now gets the last %s of device %s as soon as it subscribes (kept in memory only).\n", app, stream, dev)
		} else {
			fmt.Printf("App %s no longer gets the last %s of device %s when it subscribes; the hub forgot it.\n", app, stream, dev)
		}
		return nil
	}
	if on {
		fmt.Printf("App %s now receives %s of device %s, from the next reading on.\n", app, stream, dev)
	} else {
		fmt.Printf("App %s no longer receives %s of device %s, from the next reading on.\n", app, stream, dev)
	}
	return nil
}

func appRotate(args []string) error {
	fs := newFlags("candor app rotate", "candor app rotate APP-ID")
	dir := dataDirFlag(fs)
	id, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	var out struct {
		Secret string `json:"secret"`
	}
	if err := newLocal(*dir).do("POST", "/api/v1/apps/"+url.PathEscape(id)+"/rotate", map[string]string{}, &out); err != nil {
		return err
	}
	fmt.Printf("Credential rotated; connections using the old secret were closed.\n  New secret (shown once): %s\n", out.Secret)
	return nil
}

func appRevoke(args []string) error {
	fs := newFlags("candor app revoke", "candor app revoke APP-ID")
	dir := dataDirFlag(fs)
	id, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if err := newLocal(*dir).do("POST", "/api/v1/apps/"+url.PathEscape(id)+"/revoke", map[string]string{}, nil); err != nil {
		return err
	}
	fmt.Printf("App %s revoked: it is disconnected and receives nothing more.\n", id)
	return nil
}
