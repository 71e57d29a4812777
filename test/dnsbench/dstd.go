package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/dnsbl"
)

// The dstd side runs in its own process, this program re-executed with
// -serve, for the same reasons rbldnsd does: /proc/PID/stat then counts the
// server's CPU and nothing else, its memory is the index and the Go runtime
// without the generator's copies of the listings, and pinning applies to it
// as to rbldnsd. It uses internal/dnsbl the way internal/site/dns.go does
// (dnsbl.New, then ListenAndServe), so it measures whatever UDP serving loop
// that package has.

// startDstd starts the -serve process for n listings and waits until it
// answers.
func startDstd(o options, n int, base time.Time) (*server, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return nil, nil, err
	}
	argv := withCPUs(o.serverCPUs, self, "-serve", "-n", strconv.Itoa(n), "-seed", strconv.FormatUint(o.seed, 10),
		"-zone", o.zone, "-expires", strconv.FormatInt(base.Unix(), 10), "-port", strconv.Itoa(port))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	if o.procs > 0 {
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(o.procs))
	}
	// The child stops when its stdin closes, so it does not outlive this
	// program even if this one is killed.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", strings.Join(argv, " "), err)
	}
	exited := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") {
				ready <- sc.Text()
			}
		}
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	s := &server{name: "dstd", pid: cmd.Process.Pid, exited: exited}
	select {
	case line := <-ready:
		// ready ADDR HEAP
		f := strings.Fields(line)
		if len(f) != 3 {
			stop()
			return nil, nil, fmt.Errorf("dstd server process: unexpected %q", line)
		}
		s.addr = f[1]
		s.heap, _ = strconv.ParseInt(f[2], 10, 64)
	case <-exited:
		return nil, nil, errors.New("dstd server process exited before answering (its error is above)")
	case <-time.After(5 * time.Minute):
		stop()
		return nil, nil, errors.New("dstd server process did not answer within 5 minutes")
	}
	return s, stop, nil
}

// serveDstd is the -serve process: it builds a dnsbl index of the n
// listings genListed draws from seed, serves it on 127.0.0.1:port, prints
// "ready ADDR HEAP" once it answers, and serves until stdin closes.
func serveDstd(zone string, seed uint64, n int, base time.Time, port int) error {
	if port == 0 {
		return errors.New("-serve needs -port")
	}
	dnsbl.SpareP() // as dstd does when it serves DNS, unless -procs set GOMAXPROCS
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()

	listed, _ := genListed(newRNG(seed), n)
	before := liveHeap()
	idx := dnsbl.NewIndex()
	first := time.Now().Truncate(time.Second)
	for i, ip := range listed {
		l := listing(ip, base, i)
		idx.Set(ip, dnsbl.Entry{Expires: l.Expires, FirstSeen: first, Hits: l.Hits, Origins: l.Origins})
	}
	// listed is live on both sides, so the difference is the index alone.
	heap := int64(liveHeap()) - int64(before)
	runtime.KeepAlive(listed) // no longer needed from here on
	// Return the generator's memory to the kernel, so that RssAnon is the
	// index and the runtime, as in a dstd that loaded its listings from
	// the store.
	debug.FreeOSMemory()

	srv, err := dnsbl.New(dnsbl.Config{Zone: zone}, idx)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, []string{addr}) }()
	stopped := make(chan struct{})
	go func() {
		select {
		case err := <-done:
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "dnsbench -serve: the dnsbl server stopped:", err)
				os.Exit(1)
			}
		case <-ctx.Done():
		}
		close(stopped)
	}()
	if err := waitAnswer(addr, zone, stopped, 30*time.Second); err != nil {
		return fmt.Errorf("dnsbl server on %s: %w", addr, err)
	}
	fmt.Printf("ready %s %d\n", addr, heap)
	<-ctx.Done()
	return nil
}

func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalizers released
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
