// Command candor is the Candor IoT hub: one binary that runs the hub
// (candor serve), manages it through its local control socket (candor
// device …, candor readings) and simulates devices (candor simulate).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// timeNow is the clock labels are written against (support end dates).
var timeNow = time.Now

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the hub (MQTT broker, HTTP API, embedded storage)", runServe},
		{"device", "add, list, rotate or revoke devices (add|list|rotate|revoke)", runDevice},
		{"account", "a person's login codes, as the hub's operator (second-factor status|reset USERNAME)", runAccount},
		{"app", "local apps that receive readings over MQTT (add|list|allow|deny|rotate|revoke)", runApp},
		{"bridge", "Zigbee2MQTT bridge: its credential and its Zigbee devices (add zigbee2mqtt|device)", runBridge},
		{"readings", "show a device's stored readings", runReadings},
		{"explain", "print a device's privacy and security label in plain language", runExplain},
		{"advisories", "import vulnerability advisories (OSV, CSAF 2.0), list the open ones, or manage HTTPS feeds (import|list|feeds)", runAdvisories},
		{"log", "the transparency log: checkpoint, key, export, verify (offline)", runLog},
		{"audit", "security audit of the running hub; exit status 1 when a finding is open", runAudit},
		{"pia", "privacy impact assessment of a household, signed by the hub (verify: check one)", runPIA},
		{"conformance", "conformance report against the IoT Good Practice paper and ETSI EN 303 645", runConformance},
		{"simulate", "run simulated devices against a hub over MQTT", runSimulate},
		{"updates", "makers' tool: keep a signed (TUF) firmware repository (repo init|add|publish|timestamp|rotate-root)", runUpdates},
		{"bench", "benchmark Candor against Mosquitto side by side", runBench},
		{"version", "print the version", func([]string) error { fmt.Println("candor", version); return nil }},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "Candor: an IoT hub that keeps the IoT Good Practice promises by construction.\n\n")
	fmt.Fprintf(os.Stderr, "Usage: candor <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'candor <command> --help' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	if name == "serve" {
		execWithSmallStacks() // returns only if it did not exec
	}
	for _, c := range commands() {
		if c.name == name {
			if err := c.run(os.Args[2:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return
				}
				fmt.Fprintf(os.Stderr, "candor %s: %s\n", name, oneLine(err))
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "candor: unknown command %q; run 'candor --help'\n", name)
	os.Exit(2)
}

// oneLine keeps error output to one line, as scripts expect.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// newFlags returns a flag set that reports errors instead of exiting, with
// a usage line.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// dataDirFlag adds the --data flag that locates a running hub's control
// socket, defaulting like the server does.
func dataDirFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("CANDOR_DATA")
	if def == "" {
		def = "./candor-data"
	}
	return fs.String("data", def, "data directory of the running hub (env CANDOR_DATA)")
}
