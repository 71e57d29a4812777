package dstc_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestConfigFindsDstd: a dstd whose spool_dir is not the default, and a
// dstc given only -m and -c (dstd's configuration file), as an alias line
// can be: the report reaches that dstd through the socket in its spool,
// and dstctl -c finds the same dstd's admin socket.
func TestConfigFindsDstd(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "elsewhere", "spool")
	d := dsttest.NewDstd(t, "site-a.test", fmt.Sprintf("spool_dir = %q\n[policy]\nallow_documentation = true\n", spool))
	d.Start()
	if _, err := os.Stat(filepath.Join(spool, "nntp.sock")); err != nil {
		t.Fatalf("dstd has no submission socket in its spool_dir: %v", err)
	}

	msg, err := os.ReadFile("../../examples/trap-hit.eml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dsttest.Bin(t, "dstc"), "-log", "stderr", "-m", "mx[12].example.net", "-c", d.Conf)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "msg=reported") || !strings.Contains(string(out), filepath.Join(spool, "nntp.sock")) {
		t.Fatalf("dstc -c: %v: %s; want it reported through %s/nntp.sock", err, out, spool)
	}

	// The report is dstd's, and dstctl -c asks the same dstd.
	ctl := exec.Command(dsttest.Bin(t, "dstctl"), "-c", d.Conf, "lookup", "203.0.113.7")
	ctl.Env = append(os.Environ(), "DSTCTL_ADMIN=")
	if out, err := ctl.CombinedOutput(); err != nil || !strings.Contains(string(out), "203.0.113.7 is listed") {
		t.Errorf("dstctl -c lookup: %v: %s", err, out)
	}
}
