package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/candor-iot/candor/internal/sim"
)

func runSimulate(args []string) error {
	fs := newFlags("candor simulate", "candor simulate --broker HOST:PORT --kind KIND --id DEVICE-ID (--secret-file F | env CANDOR_DEVICE_SECRET)")
	broker := fs.String("broker", "127.0.0.1:1883", "hub MQTT address (tcp://, tls:// or host:port)")
	kind := fs.String("kind", "", "device kind: "+strings.Join(sim.KindNames(), ", "))
	id := fs.String("id", "", "device id (from 'candor device add')")
	secretFile := fs.String("secret-file", "", "file holding the device secret (or set CANDOR_DEVICE_SECRET)")
	speed := fs.Float64("speed", 1, "time acceleration: 10 sends ten times as often")
	qos0 := fs.Bool("qos0", false, "publish at QoS 0 instead of 1")
	attack := fs.String("attack", "", "misbehave instead, to try the abuse monitor: "+strings.Join(sim.Attacks, ", ")+
		" (wave takes several --id values, comma-separated, and one secret per line in --secret-file)")
	rate := fs.Float64("rate", 50, "with --attack, messages or attempts a second per device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" || *kind == "" {
		return errors.New("--id and --kind are required; see --help")
	}
	secret := os.Getenv("CANDOR_DEVICE_SECRET")
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" && *attack != "stuffing" {
		return errors.New("no device secret: give --secret-file or set CANDOR_DEVICE_SECRET (never on the command line)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *attack != "" {
		ids := strings.Split(*id, ",")
		secrets := strings.Split(secret, "\n")
		devs := make([]sim.Device, len(ids))
		for i, d := range ids {
			devs[i] = sim.Device{ID: strings.TrimSpace(d), Kind: *kind}
			if i < len(secrets) {
				devs[i].Secret = strings.TrimSpace(secrets[i])
			}
		}
		fmt.Fprintf(os.Stderr, "Attack %q as %s against %s; Ctrl-C stops.\n", *attack, *id, *broker)
		st, err := sim.Attack(ctx, sim.AttackConfig{Name: *attack, Broker: strings.TrimPrefix(*broker, "tcp://"),
			Devices: devs, Rate: *rate, Logger: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Sent %d, refused %d, failed %d.\n", st.Sent, st.Refused, st.Failed)
		return nil
	}
	s, err := sim.New(sim.Config{
		Broker:     *broker,
		Devices:    []sim.Device{{ID: *id, Secret: secret, Kind: *kind}},
		Speed:      *speed,
		AtMostOnce: *qos0,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Simulating a %s as %s against %s; Ctrl-C stops.\n", *kind, *id, *broker)
	return s.Run(ctx)
}
