package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/candor-iot/candor/internal/hub"
)

// local talks to a running hub over its control socket.
type local struct {
	dir string
	hc  *http.Client
}

func newLocal(dir string) *local {
	sock := filepath.Join(dir, hub.SocketName)
	return &local{dir: dir, hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}}
}

// raw sends a GET-like request and returns the body as text.
func (l *local) raw(method, path string) (string, error) {
	var text rawText
	if err := l.do(method, path, nil, &text); err != nil {
		return "", err
	}
	return string(text), nil
}

// rawText receives a non-JSON answer body as is.
type rawText []byte

// do sends a request and decodes a JSON answer into out; problem+json
// answers become errors carrying their detail.
func (l *local) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://candor"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || os.IsNotExist(err) {
			return fmt.Errorf("no hub is running with data directory %s; start one with 'candor serve --data %s'", l.dir, l.dir)
		}
		return fmt.Errorf("reach hub at %s: %w", l.dir, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Detail string `json:"detail"`
			Title  string `json:"title"`
		}
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return errors.New(p.Detail)
		}
		return fmt.Errorf("hub answered %s", resp.Status)
	}
	if rt, ok := out.(*rawText); ok {
		*rt = append((*rt)[:0], b...)
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}
