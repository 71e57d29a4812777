package dstd_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/dsttest"
)

// The three programs say which DST they are the same way, with the source
// revision they were built from, and dstd exports it as dst_build_info.
func TestVersion(t *testing.T) {
	var lines []string
	for _, argv := range [][]string{{"dstd", "version"}, {"dstctl", "version"}, {"dstc", "-version"}} {
		out, err := exec.Command(dsttest.Bin(t, argv[0]), argv[1:]...).Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		line := strings.TrimSpace(string(out))
		rest, ok := strings.CutPrefix(line, argv[0]+" ")
		if !ok || !strings.HasPrefix(rest, buildinfo.Release+" (rev ") || !strings.Contains(rest, "; go1.") {
			t.Errorf("%s printed %q", strings.Join(argv, " "), line)
		}
		lines = append(lines, rest)
	}
	if lines[0] != lines[1] || lines[1] != lines[2] {
		t.Errorf("the programs disagree on the version:\n%s", strings.Join(lines, "\n"))
	}

	d := dsttest.NewDstd(t, "site-a.test", "")
	d.Start()
	if m := d.Metrics(); !strings.Contains(m, `dst_build_info{goversion="go1.`) || !strings.Contains(m, `version="`+buildinfo.Release+`"} 1`) {
		t.Errorf("no dst_build_info with version %s in /metrics:\n%s", buildinfo.Release, grepLines(m, "dst_build_info"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
