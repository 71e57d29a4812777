package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDstc feeds any input to the whole program, as an MTA's pipe would, in
// dry-run mode. Whatever the input: no panic, exit 0 (never a bounce), and
// either nothing on stdout or a report whose Source-IP is not loopback.
func FuzzDstc(f *testing.F) {
	emls, _ := filepath.Glob("../../internal/received/testdata/*/*.eml")
	for _, e := range emls {
		f.Add(readFile(f, e))
	}
	f.Add([]byte("From x\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var out bytes.Buffer
		code := run(context.Background(), []string{"-n", "-log", "stderr", "-m", "mx[12].example.net", "-t", "192.0.2.0/24"},
			bytes.NewReader(msg), &out, io.Discard)
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
		if out.Len() == 0 {
			return
		}
		ip := sourceIP(t, []byte(strings.ReplaceAll(out.String(), "\n", "\r\n")))
		if strings.HasPrefix(ip, "127.") || ip == "::1" || strings.HasPrefix(ip, "192.0.2.") {
			t.Fatalf("reported a site host %s", ip)
		}
	})
}
