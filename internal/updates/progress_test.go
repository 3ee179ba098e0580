package updates

import (
	"errors"
	"strings"
	"testing"
)

func TestParseProgress(t *testing.T) {
	for _, tc := range []struct {
		in, wantErr string
		want        Progress
	}{
		{in: `{"version":"1.2.0","stage":"downloading"}`, want: Progress{Version: "1.2.0", Stage: StageDownloading}},
		{in: `{"version":"1.2.0","stage":"failed","reason":"no-space"}`, want: Progress{Version: "1.2.0", Stage: StageFailed, Reason: "no-space"}},
		{in: `{"version":"1.2.0","stage":"failed"}`, wantErr: "needs a reason code"},
		{in: `{"version":"1.2.0","stage":"failed","reason":"Disk Full!"}`, wantErr: "needs a reason code"},
		{in: `{"version":"1.2.0","stage":"installed","reason":"ok"}`, wantErr: "reason is only for stage"},
		{in: `{"version":"latest","stage":"installed"}`, wantErr: `version "latest"`},
		{in: `{"version":"1.2.0","stage":"done"}`, wantErr: `stage "done"`},
		{in: `{"version":"1.2.0","stage":"installed","percent":5}`, wantErr: `unknown field "percent"`},
		{in: `{"version":"1.2.0","stage":"installed"}{}`, wantErr: "data after the JSON object"},
		{in: `not json`, wantErr: "not a progress object"},
		{in: `{"version":"1.2.0","stage":"installed","reason":"` + strings.Repeat("a", 600) + `"}`, wantErr: "at most 512"},
	} {
		got, err := ParseProgress([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !errors.Is(err, ErrBadProgress) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
