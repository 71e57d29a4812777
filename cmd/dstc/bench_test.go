package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bytes"
)

func TestMain(m *testing.M) {
	// BenchmarkPeakMemory50MB runs this test binary as dstc itself, so the
	// measured process is the real program, not the test harness.
	if os.Getenv("DSTC_BE_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// BenchmarkCorpus reports how many messages per second dstc processes, from
// reading stdin to printing the report (-n), over the Received corpus.
func BenchmarkCorpus(b *testing.B) {
	wants, _ := filepath.Glob("../../internal/received/testdata/*/*.want")
	type job struct {
		args []string
		msg  []byte
	}
	var jobs []job
	for _, wf := range wants {
		args, _ := wantArgs(b, wf)
		jobs = append(jobs, job{append(args, "-n", "-log", "stderr"), readFile(b, strings.TrimSuffix(wf, ".want")+".eml")})
	}
	if len(jobs) == 0 {
		b.Fatal("no corpus")
	}
	b.ResetTimer()
	start := time.Now()
	n := 0
	for i := 0; i < b.N; i++ {
		j := jobs[i%len(jobs)]
		if code := run(context.Background(), j.args, bytes.NewReader(j.msg), io.Discard, io.Discard); code != exitOK {
			b.Fatalf("exit %d", code)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkPeakMemory50MB pipes a 50 MB message through the dstc program and
// reports its peak resident memory (max RSS), which must not grow with the
// size of the message.
func BenchmarkPeakMemory50MB(b *testing.B) {
	const size = 50 << 20
	hdr := "Received: from spam.example (unknown [203.0.113.7])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; Sun, 29 Nov 2026 02:00:20 +0000\r\n" +
		"Subject: big\r\n\r\n"
	line := strings.Repeat("spam ", 15) + "\r\n"
	var maxRSS int64
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(os.Args[0], "-n", "-log", "stderr", "-m", "mx1.example.net")
		cmd.Env = append(os.Environ(), "DSTC_BE_MAIN=1")
		var out bytes.Buffer
		cmd.Stdout = &out
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() {
			defer stdin.Close()
			io.WriteString(stdin, hdr)
			for n := len(hdr); n < size; n += len(line) {
				if _, err := io.WriteString(stdin, line); err != nil {
					return
				}
			}
		}()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("dstc: %v", err)
		}
		if !strings.Contains(out.String(), "Source-IP: 203.0.113.7") {
			b.Fatalf("no report for the 50 MB message")
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		maxRSS = max(maxRSS, ru.Maxrss) // KiB on Linux
	}
	b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(size)/(1<<20), "message-MiB")
}
