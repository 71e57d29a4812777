// Package buildinfo says which DST a program is: the release, and the
// source revision it was built from, read from the Go build information
// (debug.ReadBuildInfo) so that dstd, dstc and dstctl print it alike and
// an administrator can tell exactly what runs.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Release is this tree's release. A module version stamped by the build (a
// `go install module@vX.Y.Z`) takes its place.
const Release = "0.1.0"

// Info is what a program was built from.
type Info struct {
	Version  string // release or module version
	Revision string // VCS revision, "" when the build did not record it
	Time     string // VCS commit time (RFC 3339), ""  when unknown
	Modified bool   // the work tree had uncommitted changes
	Go       string // Go toolchain version
}

// Read returns the running program's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: Release}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: Release, Go: bi.GoVersion}
	if v := bi.Main.Version; v != "" && v != "(devel)" && !strings.HasPrefix(v, "v0.0.0-") {
		i.Version = strings.TrimPrefix(v, "v")
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is the version as every program prints it, e.g.
// "0.1.0 (rev 857cd35a1b2c, 2026-12-03T13:40:00Z, modified; go1.26.8)".
func (i Info) String() string {
	var parts []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "rev "+rev)
	} else {
		parts = append(parts, "rev unknown")
	}
	if i.Time != "" {
		parts = append(parts, i.Time)
	}
	if i.Modified {
		parts = append(parts, "modified")
	}
	s := fmt.Sprintf("%s (%s", i.Version, strings.Join(parts, ", "))
	if i.Go != "" {
		s += "; " + i.Go
	}
	return s + ")"
}

// Line is what `PROG version` prints: the program's name and String.
func Line(prog string) string { return prog + " " + Read().String() }
