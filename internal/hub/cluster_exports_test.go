package hub

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// TestExportJobListWholeOnEveryNode starts a person's export jobs through
// two nodes of three and checks that the list of their exports on every
// node's "My data" page holds both, links that answer there (the node
// sends them on to the job's node), and never another person's job.
func TestExportJobListWholeOnEveryNode(t *testing.T) {
	nodes := startNodes(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	t.Cleanup(func() {
		if t.Failed() {
			for i, th := range nodes {
				t.Logf("node %d log:\n%s", i, th.logs.String())
			}
		}
	})
	alex := a.setup("alex")
	code, out, _ := call(t, a.local, "POST", "http://candor/api/v1/households", "",
		map[string]any{"name": "Next door", "owner": map[string]string{"username": "sam", "password": goodPassword}})
	if code != http.StatusCreated {
		t.Fatalf("create household: %d %v", code, out)
	}
	sam := b.token("sam", goodPassword)

	// start starts tok's export job through th and waits until it is done.
	start := func(th *testHub, tok string) string {
		t.Helper()
		code, job, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/exports", tok, nil)
		if code != http.StatusAccepted {
			t.Fatalf("start an export: %d %v", code, job)
		}
		for deadline := time.Now().Add(60 * time.Second); job["state"] == "running"; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("export never finished: %v", job)
			}
			if code, job, _ = call(t, http.DefaultClient, "GET", th.URL()+job["status_url"].(string), tok, nil); code != http.StatusOK {
				t.Fatalf("export status: %d %v", code, job)
			}
		}
		return job["id"].(string)
	}
	onB, onC := start(b, alex), start(c, alex)
	samsJob := start(c, sam)

	// page reads a page as username, logged in through node A; the
	// session is in the shared database, so the cookie holds on every
	// node (a cookie is not bound to a port).
	browsers := map[string]*http.Client{}
	for _, who := range []string{"alex", "sam"} {
		jar, _ := cookiejar.New(nil)
		br := &http.Client{Jar: jar, Timeout: 20 * time.Second}
		if code, out, _ := call(t, br, "POST", a.URL()+"/api/v1/login", "", map[string]string{"username": who, "password": goodPassword}); code != http.StatusOK {
			t.Fatalf("log in as %s: %d %v", who, code, out)
		}
		browsers[who] = br
	}
	page := func(who, url string) string {
		t.Helper()
		resp, err := browsers[who].Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s as %s: %d %s", url, who, resp.StatusCode, body)
		}
		return string(body)
	}

	tests := []struct {
		who        string
		want, dont []string
	}{
		{"alex", []string{onB, onC}, []string{samsJob}},
		{"sam", []string{samsJob}, []string{onB, onC}},
	}
	for _, tc := range tests {
		for i, th := range nodes {
			body := page(tc.who, th.URL()+"/my-data")
			for _, id := range tc.want {
				if !strings.Contains(body, "/my-data/exports/"+id) {
					t.Errorf("%s's list of exports on node %d lacks job %s", tc.who, i, id)
					continue
				}
				// The link answers on this node, which sends it on to
				// the job's node.
				if job := page(tc.who, th.URL()+"/my-data/exports/"+id); !strings.Contains(job, id) {
					t.Errorf("%s's job %s through node %d: page does not name it", tc.who, id, i)
				}
			}
			for _, id := range tc.dont {
				if strings.Contains(body, id) {
					t.Errorf("%s's list of exports on node %d shows another person's job %s", tc.who, i, id)
				}
			}
		}
	}
}
