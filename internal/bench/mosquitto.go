package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultMosquitto is where Debian's mosquitto package installs the broker.
const DefaultMosquitto = "/usr/sbin/mosquitto"

// mosquittoProc is a Mosquitto broker started by the bench on a free
// loopback port, with a generated minimal configuration. It never touches
// a system Mosquitto (which listens on 1883 here).
type mosquittoProc struct {
	cmd     *exec.Cmd
	addr    string
	stderr  *tailBuffer
	exited  chan struct{}
	waitErr error
}

// mosquittoVersion returns the first line of `mosquitto -h`, such as
// "mosquitto version 2.0.11".
func mosquittoVersion(path string) string {
	out, _ := exec.Command(path, "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1 (never
// 1883, where a system broker may listen).
func freeLoopbackPort() (int, error) {
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free loopback port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port != 1883 {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free loopback port: kept getting 1883")
}

// mosquittoConfig is the generated configuration: one loopback listener,
// anonymous clients, no persistence. Two settings make the comparison
// like for like with Candor, which is a Go program:
//   - set_tcp_nodelay true: Go turns Nagle's algorithm off on every TCP
//     connection; Mosquitto leaves it on by default, which holds a PUBACK
//     back until the client's next packet (measured here: p50 10 ms
//     instead of 0.4 ms at 10,000 msg/s paced).
//   - connection and subscription notices are not logged, as Candor logs
//     them only at debug level (the bench runs it at warn).
func mosquittoConfig(port int) string {
	return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
}

// startMosquitto runs the broker at path with a generated config in dir
// and waits until it accepts connections.
func startMosquitto(path, dir string) (*mosquittoProc, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(mosquittoConfig(port)), 0o600); err != nil {
		return nil, fmt.Errorf("write mosquitto config: %w", err)
	}
	m := &mosquittoProc{
		cmd:    exec.Command(path, "-c", conf),
		addr:   fmt.Sprintf("127.0.0.1:%d", port),
		stderr: &tailBuffer{max: 8 << 10},
		exited: make(chan struct{}),
	}
	m.cmd.Stdout = m.stderr
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return m, nil
		}
		select {
		case <-m.exited:
			return nil, fmt.Errorf("mosquitto exited before it listened on %s (%v): %s", m.addr, m.waitErr, m.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			m.kill()
			return nil, fmt.Errorf("mosquitto did not listen on %s within 10s: %s", m.addr, m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mosquittoProc) pid() int { return m.cmd.Process.Pid }

func (m *mosquittoProc) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// stop ends the broker the bench started (SIGTERM, then SIGKILL).
func (m *mosquittoProc) stop(timeout time.Duration) error {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
		return nil
	case <-time.After(timeout):
		m.kill()
		return fmt.Errorf("mosquitto did not stop within %s and was killed", timeout)
	}
}

// isLoopback reports whether addr (host:port) names a loopback address,
// resolving host names.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// trimVersion shortens "mosquitto version 2.0.11" to "Mosquitto 2.0.11".
func trimVersion(v string) string {
	if rest, ok := strings.CutPrefix(v, "mosquitto version "); ok {
		return "Mosquitto " + strings.TrimSpace(rest)
	}
	if v == "" {
		return "Mosquitto"
	}
	return v
}
