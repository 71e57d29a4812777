package bench_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// logWatch follows a site's report log (its data directory's reports.log,
// one line per report, written after the commit that stored and listed
// it) and records when each address first appears in a report line with
// listed=yes. It is woken by inotify when the file grows, so watching
// costs nothing while nothing happens, and nothing per outstanding
// report: polling the admin API for each one every 2 ms, as the benchmark
// did before, took as much CPU as a few sites.
type logWatch struct {
	f      *os.File // the report log
	in     *os.File // the inotify instance, non-blocking: Close ends Read
	done   chan struct{}
	mu     sync.Mutex
	seen   map[netip.Addr]time.Time
	notify chan struct{} // a buffered channel of one: something new was seen
	err    error
}

// watchReportLog starts following the report log of the site whose data
// directory is dataDir, from its current end.
func watchReportLog(dataDir string) (*logWatch, error) {
	path := filepath.Join(dataDir, "reports.log")
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify on %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		unix.Close(fd)
		f.Close()
		return nil, err
	}
	w := &logWatch{f: f, in: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{}),
		seen: make(map[netip.Addr]time.Time), notify: make(chan struct{}, 1)}
	go w.run()
	return w, nil
}

func (w *logWatch) run() {
	defer close(w.done)
	r := bufio.NewReader(w.f)
	var partial []byte
	ev := make([]byte, 4096)
	for {
		// Read what the file has now, then wait for it to grow.
		for {
			line, err := r.ReadSlice('\n')
			if err == nil {
				if len(partial) > 0 {
					line = append(partial, line...)
					partial = nil
				}
				w.line(line, time.Now())
				continue
			}
			if len(line) > 0 {
				partial = append(partial, line...)
			}
			if err != io.EOF && err != bufio.ErrBufferFull {
				w.fail(err)
				return
			}
			if err == io.EOF {
				break
			}
		}
		if _, err := w.in.Read(ev); err != nil {
			if !strings.Contains(err.Error(), "closed") {
				w.fail(err)
			}
			return
		}
	}
}

// line records the address of a listed report's line.
func (w *logWatch) line(l []byte, at time.Time) {
	f := bytes.Fields(l)
	if len(f) < 3 || string(f[1]) != "report" || !bytes.Contains(l, []byte(" listed=yes ")) {
		return
	}
	ip, err := netip.ParseAddr(strings.TrimPrefix(string(f[2]), "ip="))
	if err != nil {
		return
	}
	w.mu.Lock()
	if _, ok := w.seen[ip]; !ok {
		w.seen[ip] = at
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *logWatch) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// when returns when ip was first seen listed, if it was.
func (w *logWatch) when(ip netip.Addr) (time.Time, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[ip]
	return t, ok, w.err
}

// wait returns when ip is seen listed, or fails after timeout.
func (w *logWatch) wait(ip netip.Addr, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t, ok, err := w.when(ip)
		switch {
		case err != nil:
			return time.Time{}, err
		case ok:
			return t, nil
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%v not listed in %s after %v", ip, w.f.Name(), timeout)
		}
	}
}

func (w *logWatch) Close() {
	w.in.Close()
	<-w.done
	w.f.Close()
}
