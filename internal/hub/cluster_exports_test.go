package hub

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster"
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

// TestExportJobListSaysWhichNodesAreMissing: when another node's jobs
// cannot be listed, the list says so and names the node, on the "My
// data" page and in the API. A node of an older version (live, but its
// heartbeats do not say it answers for lists) is reported as not asked;
// a node that says it answers but does not within the second, as
// unanswered. The jobs of the nodes that answered are listed all the same.
func TestExportJobListSaysWhichNodesAreMissing(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	t.Cleanup(func() {
		if t.Failed() {
			for i, th := range nodes {
				t.Logf("node %d log:\n%s", i, th.logs.String())
			}
		}
	})
	alex := a.setup("alex")
	code, job, _ := call(t, http.DefaultClient, "POST", b.URL()+"/api/v1/exports", alex, nil)
	if code != http.StatusAccepted {
		t.Fatalf("start an export through B: %d %v", code, job)
	}
	onB := job["id"].(string)
	jar, _ := cookiejar.New(nil)
	br := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	if code, out, _ := call(t, br, "POST", a.URL()+"/api/v1/login", "", map[string]string{"username": "alex", "password": goodPassword}); code != http.StatusOK {
		t.Fatalf("log in: %d %v", code, out)
	}

	// join adds a bare node to the deployment: heartbeats and change
	// rounds, as every version has, and nothing else.
	join := func(name string) *cluster.Node {
		t.Helper()
		n, err := cluster.Join(context.Background(), cluster.Options{URL: a.cfg.NATS, Deployment: a.cfg.Deployment, Name: name,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, func(context.Context, []cluster.Change) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		for !slices.Contains(a.node.Live(), name) {
			time.Sleep(20 * time.Millisecond) // a heartbeat or two
		}
		return n
	}
	// check reads the list through A, in the API and on the page.
	check := func(unanswered, notAsked []string, notes ...string) {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "GET", a.URL()+"/api/v1/exports", alex, nil)
		b, _ := json.Marshal(out)
		var l struct {
			Exports         []struct{ ID string }
			Complete        bool
			UnansweredNodes []string `json:"unanswered_nodes"`
			NotAskedNodes   []string `json:"not_asked_nodes"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &l) != nil {
			t.Fatalf("list through A: %d %s", code, b)
		}
		if len(l.Exports) != 1 || l.Exports[0].ID != onB || l.Complete != (unanswered == nil && notAsked == nil) ||
			!slices.Equal(l.UnansweredNodes, append([]string{}, unanswered...)) || !slices.Equal(l.NotAskedNodes, append([]string{}, notAsked...)) {
			t.Errorf("list through A: %s; want B's job %s, unanswered %v, not asked %v", b, onB, unanswered, notAsked)
		}
		resp, err := br.Get(a.URL() + "/my-data")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "/my-data/exports/"+onB) {
			t.Fatalf("My data through A: %d, B's job %s listed %v", resp.StatusCode, onB, strings.Contains(page, onB))
		}
		for _, want := range notes {
			if !strings.Contains(page, want) {
				t.Errorf("My data through A lacks %q:\n%s", want, page)
			}
		}
		if len(notes) == 0 && strings.Contains(page, `class="attention"`) {
			t.Errorf("My data through A warns with every node listed:\n%s", page)
		}
	}

	check(nil, nil)
	join("old")
	check(nil, []string{"old"},
		`<p class="attention" id="exports-not-asked"><span class="warning-tag">Warning:</span> 1 hub node runs an older version that cannot list exports. Exports started there are not listed here until it is updated (hub node old).</p>`)

	// A node that says it answers, but is too busy to within the second.
	stuck := join("stuck")
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	if err := stuck.ServeList("export", func(string) any { <-hang; return nil }); err != nil {
		t.Fatal(err)
	}
	for !slices.Contains(a.node.Answering("export"), "stuck") {
		time.Sleep(20 * time.Millisecond)
	}
	check([]string{"stuck"}, []string{"old"},
		`<p class="attention" id="exports-unanswered"><span class="warning-tag">Warning:</span> 1 hub node did not answer in time. Exports started there are not listed here.`,
		`tell the person who runs your hub: hub node stuck.`, `id="exports-not-asked"`)
}
