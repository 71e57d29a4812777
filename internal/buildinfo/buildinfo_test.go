package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"a checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "857cd35a1b2c3d4e5f60718293a4b5c6d7e8f901"},
				{Key: "vcs.time", Value: "2026-12-03T13:40:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			Release + " (rev 857cd35a1b2c, 2026-12-03T13:40:00Z, modified; go1.26.8)"},
		{"a tagged install", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			"1.2.3 (rev unknown; go1.26.8)"},
		{"a pseudo-version", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261203134000-857cd35a1b2c"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "857cd35a1b2c"}, {Key: "vcs.modified", Value: "false"}}},
			Release + " (rev 857cd35a1b2c; go1.26.8)"},
	} {
		if got := fromBuildInfo(&tc.bi).String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLine(t *testing.T) {
	l := Line("dstd")
	if !strings.HasPrefix(l, "dstd ") || !strings.Contains(l, "go1.") {
		t.Errorf("Line = %q", l)
	}
}
