package retry

import (
	"container/heap"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	prevMax := time.Duration(0)
	for n := 1; n <= 12; n++ {
		want := min(time.Second<<(n-1), time.Minute)
		for range 200 {
			d := Backoff(n, time.Second, time.Minute)
			if d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
			if d < prevMax/2 {
				t.Fatalf("Backoff(%d) = %v shrank below the previous step", n, d)
			}
		}
		prevMax = want
	}
}

// TestBackoffLongRun: the cap holds however many failures, with no
// overflow of the doubling.
func TestBackoffLongRun(t *testing.T) {
	for attempts := 1; attempts < 70; attempts++ {
		nom := min(time.Second<<min(attempts-1, 20), time.Hour)
		for range 50 {
			if d := Backoff(attempts, time.Second, time.Hour); d < nom/2 || d > nom {
				t.Fatalf("Backoff(%d) = %v, want between %v and %v", attempts, d, nom/2, nom)
			}
		}
	}
}

func TestTimes(t *testing.T) {
	base := time.Now()
	h := &Times{}
	for _, s := range []int{5, 1, 3, 2, 4} {
		heap.Push(h, base.Add(time.Duration(s)*time.Second))
	}
	for want := 1; want <= 5; want++ {
		if got := heap.Pop(h).(time.Time); !got.Equal(base.Add(time.Duration(want) * time.Second)) {
			t.Fatalf("pop %d = %v", want, got.Sub(base))
		}
	}
}
