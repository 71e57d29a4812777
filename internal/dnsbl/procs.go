package dnsbl

import (
	"os"
	"runtime"
)

// SpareP raises GOMAXPROCS by one, for a program that serves UDP with this
// package on Linux, and returns the new value; it changes nothing, and
// returns 0, when the GOMAXPROCS environment variable is set (the
// operator's choice is kept) or where the batched readers are not used.
//
// Each address is read by GOMAXPROCS-1 sockets (udpReaders), and a reader
// waiting for queries holds its P in a blocking recvmmsg: one P must stay
// free for the rest of the daemon and for the runtime to see as idle, or
// sysmon takes the waiting readers' Ps back every 20 µs. Without SpareP a
// 2-CPU machine gets one reader; with it, as many readers as CPUs and the
// spare P. Under dnsperf on 2 CPUs that was 1.12-1.30 times rbldnsd's
// queries per second with one reader, 1.42-1.51 with two
// (test/dnsbench/README.md). The readers use no CPU while no query comes,
// so the extra P costs an idle daemon nothing.
//
// GOMAXPROCS is the whole process's, so only a main calls this, before
// it starts serving. Setting it stops the runtime from following later
// changes of the CPU limit (cgroup): a restart takes a new limit.
func SpareP() int {
	if !batchedUDP || os.Getenv("GOMAXPROCS") != "" {
		return 0
	}
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}
