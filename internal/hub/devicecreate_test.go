package hub

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
)

// Devices added at the same time are committed to the store together
// (group commit), and each is in the transparency log by the time the API
// answers for it.
func TestConcurrentDeviceCreationsAreLoggedWhenAnswered(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	const n = 24
	problems := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex,
				map[string]string{"name": fmt.Sprintf("Sensor %d", i), "type": "thermostat"})
			if code != http.StatusCreated {
				problems <- fmt.Sprintf("add device %d: %d %v", i, code, out)
				return
			}
			id := out["device"].(map[string]any)["id"].(string)
			for _, ev := range exportEvents(t, getText(t, http.DefaultClient, th.URL()+"/api/v1/log/export", alex)) {
				if ev.Action == auditlog.ActionCredentialCreate && ev.Subject.Device == id {
					return
				}
			}
			problems <- fmt.Sprintf("device %s was answered but is not in the log", id)
		})
	}
	wg.Wait()
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices", alex, nil)
	if code != http.StatusOK {
		t.Fatalf("list devices: %d", code)
	}
	if got := len(out["devices"].([]any)); got != n {
		t.Fatalf("%d devices listed, want %d", got, n)
	}
}
