// Package onboarding says how a person connects a device they have just
// added: the broker address as the device should dial it, and the exact
// mosquitto_pub command that publishes a test reading as the device. The
// API and the pages show the same command.
package onboarding

import (
	"fmt"
	"net"
	"strings"
)

// BrokerHostPort is the broker address mqttAddr (the listener's, as
// "host:port") as a device should dial it. A wildcard or empty host
// becomes the loopback address, because a device cannot dial 0.0.0.0;
// an address that does not parse becomes MQTT's default on loopback.
func BrokerHostPort(mqttAddr string) (host, port string) {
	host, port, err := net.SplitHostPort(mqttAddr)
	if err != nil {
		return "127.0.0.1", "1883"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return host, port
}

// MosquittoPub is the exact command that publishes a test reading (one the
// device's manifest accepts) as the device, for people checking that a new
// device works. The secret and the payload are quoted for a POSIX shell.
//
// With useTLS, mqttAddr is a TLS listener and the command verifies the
// hub's certificate against caFile (the hub's own authority), or against
// the system's authorities when caFile is empty.
func MosquittoPub(mqttAddr string, useTLS bool, caFile, deviceID, secret, stream string, payload []byte) string {
	host, port := BrokerHostPort(mqttAddr)
	verify := ""
	switch {
	case useTLS && caFile != "":
		verify = " --cafile " + shellQuote(caFile)
	case useTLS:
		verify = " --tls-use-os-certs"
	}
	return fmt.Sprintf(`mosquitto_pub -h %s -p %s%s -V mqttv5 -q 1 -i %s -u %s -P %s -t candor/%s/%s -m %s`,
		host, port, verify, deviceID, deviceID, shellQuote(secret), deviceID, stream, shellQuote(string(payload)))
}

// shellQuote quotes s for a POSIX shell: a chosen secret may contain
// quotes or other characters the shell would interpret.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
