package main

import (
	"errors"
	"fmt"
)

func runBridge(args []string) error {
	if len(args) == 0 {
		return errors.New("which? candor bridge add zigbee2mqtt | candor bridge device FRIENDLY-NAME --type TYPE (each has --help)")
	}
	switch args[0] {
	case "add":
		return bridgeAdd(args[1:])
	case "device":
		return bridgeDevice(args[1:])
	}
	return fmt.Errorf("unknown bridge command %q: use add or device", args[0])
}

// bridgeAdd creates a Zigbee2MQTT bridge credential: an app of kind
// zigbee2mqtt that publishes rather than receives.
func bridgeAdd(args []string) error {
	fs := newFlags("candor bridge add", "candor bridge add zigbee2mqtt [--household ID] [--name NAME]")
	dir := dataDirFlag(fs)
	hh := fs.String("household", "", "household id (needed only when the hub has several)")
	name := fs.String("name", "Zigbee2MQTT", "what to call the bridge")
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	kind, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if kind != "zigbee2mqtt" {
		return fmt.Errorf("unknown bridge %q: the hub bridges zigbee2mqtt", kind)
	}
	var out struct {
		App    appOut `json:"app"`
		Secret string `json:"secret"`
	}
	in := map[string]any{"name": *name, "kind": "zigbee2mqtt", "household": *hh,
		"purposes":    []string{"dpv:ServiceProvision"},
		"description": "Zigbee2MQTT passes the household's Zigbee devices to the hub"}
	if err := newLocal(*dir).do("POST", "/api/v1/apps", in, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	fmt.Printf("Zigbee2MQTT bridge %s\n\n", out.App.ID)
	fmt.Printf("In Zigbee2MQTT's configuration.yaml, under mqtt:\n")
	fmt.Printf("  base_topic: zigbee2mqtt\n  user: %s\n  client_id: %s\n  password: %s   (shown once, stored only as a hash)\n\n", out.App.ID, out.App.ID, out.Secret)
	fmt.Printf("Then add each Zigbee device, once its type's manifest is confirmed:\n  candor bridge device FRIENDLY-NAME --type TYPE\n")
	return nil
}

func bridgeDevice(args []string) error {
	fs := newFlags("candor bridge device", "candor bridge device FRIENDLY-NAME --type TYPE [--household ID]")
	dir := dataDirFlag(fs)
	hh := fs.String("household", "", "household id (needed only when the hub has several)")
	typ := fs.String("type", "", "device type with a confirmed manifest (imported from Zigbee2MQTT) (required)")
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	friendly, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if *typ == "" {
		return errors.New("--type is required")
	}
	var out struct {
		Device struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"device"`
	}
	in := map[string]any{"friendly_name": friendly, "type": *typ, "household": *hh}
	if err := newLocal(*dir).do("POST", "/api/v1/bridges/zigbee2mqtt/devices", in, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	fmt.Printf("Zigbee device %s (%s): each of its properties is a stream of its own; nothing is kept until someone allows it.\n", out.Device.ID, out.Device.Name)
	return nil
}
