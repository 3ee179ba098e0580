package hub

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// /metrics answers the hub's administrators and the operator only,
// whatever Host header a request claims.
func TestMetricsNeedAnAdministrator(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	admin := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", admin,
		map[string]string{"username": "kim", "password": "marble-otter-sunrise-19", "role": "member"})
	if code != http.StatusCreated {
		t.Fatalf("add member: %d %v", code, out)
	}
	member := th.token("kim", "marble-otter-sunrise-19")

	get := func(c *http.Client, url, host, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name  string
		host  string
		token string
		want  int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"no credentials, localhost Host", "localhost", "", http.StatusUnauthorized},
		{"no credentials, loopback Host", "127.0.0.1", "", http.StatusUnauthorized},
		{"wrong token", "", "not-a-token", http.StatusUnauthorized},
		{"member", "", member, http.StatusForbidden},
		{"admin", "", admin, http.StatusOK},
	} {
		code, body := get(http.DefaultClient, th.URL()+"/metrics", tc.host, tc.token)
		if code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
		if has := strings.Contains(body, "candor_readings_accepted_total"); has != (tc.want == http.StatusOK) {
			t.Errorf("%s: metrics in the answer: %v", tc.name, has)
		}
	}
	if code, body := get(th.local, "http://candor/metrics", "", ""); code != http.StatusOK || !strings.Contains(body, "candor_") {
		t.Errorf("operator on the control socket: %d", code)
	}
}
