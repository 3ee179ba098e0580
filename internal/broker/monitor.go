package broker

import (
	"context"
	"net/netip"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Monitor is the abuse monitor as the broker uses it: told about each
// connection, wrong secret and attempt outside a device's namespace, with
// the source address and never a secret or payload.
type Monitor interface {
	Connect(deviceID, clientID string, addr netip.Addr)
	Disconnect(deviceID, clientID string)
	// AuthFailure is called with the user name a wrong secret was given
	// for; the monitor counts it only if that device exists.
	AuthFailure(ctx context.Context, deviceID string)
	// AuthThrottled is called for a login refused unchecked because of
	// earlier wrong secrets; it must stay cheap, as throttling does.
	AuthThrottled(deviceID string)
	Denied(deviceID string)
}

type noMonitor struct{}

func (noMonitor) Connect(string, string, netip.Addr)  {}
func (noMonitor) Disconnect(string, string)           {}
func (noMonitor) AuthFailure(context.Context, string) {}
func (noMonitor) AuthThrottled(string)                {}
func (noMonitor) Denied(string)                       {}

// remoteAddr is the client's source address (zero when unknown, as for a
// WebSocket behind a proxy that mochi does not report).
func remoteAddr(cl *mqtt.Client) netip.Addr {
	ap, err := netip.ParseAddrPort(cl.Net.Remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
