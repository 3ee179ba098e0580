package hub

import (
	"net/http"
	"strings"
	"testing"
)

// TestGuessablePasswordsAreRefused checks, through the API of a real
// hub, that passwords a guessing tool tries first are refused with the
// reason, where the length and pattern rules alone let them through.
func TestGuessablePasswordsAreRefused(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	tests := []struct {
		password string
		code     int
	}{
		{"password12345", http.StatusUnprocessableEntity},
		{"letmein12345", http.StatusUnprocessableEntity},
		{"football2024", http.StatusUnprocessableEntity},
		{"marble-otter-sunrise-19", http.StatusCreated},
	}
	for i, tt := range tests {
		t.Run(tt.password, func(t *testing.T) {
			code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", alex,
				map[string]string{"username": "kim" + string(rune('a'+i)), "password": tt.password, "role": "member"})
			if code != tt.code {
				t.Fatalf("account with %q: %d %v, want %d", tt.password, code, out, tt.code)
			}
			if code == http.StatusUnprocessableEntity {
				if d, _ := out["detail"].(string); !strings.Contains(d, "easy to guess") || strings.Contains(d, tt.password) {
					t.Errorf("detail %q should give the reason and not echo the password", d)
				}
			}
		})
	}
}
