// Package retry holds what dstd's durable queues share to schedule retries:
// the jittered exponential backoff, and a min-heap of due times.
package retry

import (
	"math/rand/v2"
	"time"
)

// Backoff returns the delay before the next try after attempts failures:
// minD·2^(attempts-1) capped at maxD, less a random part of up to half of it,
// so that items (or feeds) that failed together do not all retry at the
// same moment. Each step's range starts where the previous one ends, so
// delays never shrink as failures go on.
func Backoff(attempts int, minD, maxD time.Duration) time.Duration {
	d := minD
	for i := 1; i < attempts && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	half := d / 2
	return d - time.Duration(rand.Int64N(int64(half)+1))
}

// Times is a min-heap of times for container/heap: when scheduled retries
// fall due.
type Times []time.Time

func (h Times) Len() int           { return len(h) }
func (h Times) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h Times) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push implements heap.Interface.
func (h *Times) Push(x any) { *h = append(*h, x.(time.Time)) }

// Pop implements heap.Interface.
func (h *Times) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
