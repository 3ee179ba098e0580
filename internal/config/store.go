package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// storeURL accepts an empty store (the embedded SQLite file) or a
// postgres:// or postgresql:// URL. Messages never repeat the URL, which
// may carry a password; they say which part is wrong.
func storeURL(v any) error {
	s, _ := v.(string)
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error's text quotes the whole URL
		}
		return fmt.Errorf("is not a URL (%v); give postgres://user@host:5432/database, or leave it empty for the embedded SQLite file", err)
	}
	switch u.Scheme {
	case "postgres", "postgresql":
	case "":
		return errors.New("has no scheme; give postgres://user@host:5432/database, or leave it empty for the embedded SQLite file")
	default:
		return fmt.Errorf("has the scheme %q; only postgres:// (PostgreSQL) is supported, or leave it empty for the embedded SQLite file", u.Scheme)
	}
	if u.Opaque != "" {
		return errors.New("is not a URL of the form postgres://user@host:5432/database")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("has the port %q, which is not a number from 1 to 65535", p)
		}
	}
	return nil
}

// natsURL accepts an empty value (a single hub) or nats:// or tls:// URLs
// with a host, comma-separated for a NATS cluster (the client tries them
// in turn). Like storeURL, messages never repeat a URL, which may carry a
// token or password.
func natsURL(v any) error {
	s, _ := v.(string)
	if s == "" {
		return nil
	}
	for i, one := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		which := ""
		if strings.Contains(s, ",") {
			which = fmt.Sprintf("URL %d ", i+1)
		}
		if err != nil {
			return fmt.Errorf("%sis not a URL; give nats://host:4222, or leave it empty for a single hub", which)
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			return fmt.Errorf("%shas the scheme %q; give nats://host:4222 (or tls://host:4222), or leave it empty for a single hub", which, u.Scheme)
		}
		if u.Host == "" {
			return fmt.Errorf("%shas no host; give nats://host:4222", which)
		}
	}
	return nil
}

// deploymentName accepts what package cluster puts into NATS subjects.
func deploymentName(v any) error {
	s, _ := v.(string)
	if s == "" {
		return errors.New("is empty; give a name such as \"default\"")
	}
	if len(s) > 64 {
		return errors.New("is longer than 64 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("has the character %q; use letters, digits, - and _", r)
		}
	}
	return nil
}

// nodeURL accepts an empty value or an http:// or https:// URL with a host.
func nodeURL(v any) error {
	s, _ := v.(string)
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("is not a URL such as https://10.0.0.11:8080")
	}
	return nil
}
