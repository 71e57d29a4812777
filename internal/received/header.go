package received

import (
	"bytes"
	"strings"
)

// Fields returns the values of the Received fields of a message's header
// section, top first, unfolded only as far as their line breaks go (Parse
// unfolds). It is lenient: lines that are not fields (an mbox "From " line
// that a pipe transport added, garbage) are skipped, because the walk only
// ever trusts fields above the answer, which the site's own MTAs wrote.
func Fields(header []byte) []string {
	var out []string
	var cur *strings.Builder
	inReceived := false
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			if inReceived {
				cur.WriteByte('\n')
				cur.Write(line)
			}
			continue
		}
		if inReceived {
			out = append(out, cur.String())
			inReceived = false
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if bytes.EqualFold(name, []byte("Received")) {
			cur = &strings.Builder{}
			cur.Write(line[colon+1:])
			inReceived = true
		}
	}
	if inReceived {
		out = append(out, cur.String())
	}
	return out
}
