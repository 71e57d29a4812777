package mailmsg

import (
	"io"
	"runtime"
	"testing"
)

// zeros yields n zero bytes, or more than n when the input is a message
// with a header section and a body, then EOF; every 4 MiB it records the
// live heap, so the test sees the peak while Read is reading.
type zeros struct {
	prefix   []byte
	left     int64
	sinceLog int64
	peakHeap uint64
}

func (z *zeros) Read(p []byte) (int, error) {
	if len(z.prefix) > 0 {
		n := copy(p, z.prefix)
		z.prefix = z.prefix[n:]
		return n, nil
	}
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left))
	clear(p[:n])
	z.left -= int64(n)
	if z.sinceLog += int64(n); z.sinceLog >= 4<<20 {
		z.sinceLog = 0
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		z.peakHeap = max(z.peakHeap, ms.HeapAlloc)
	}
	return n, nil
}

// TestReadEndlessBoundedMemory reads 256 MiB of zeros, as dstc would from
// /dev/zero until stopped, once as a header section that never ends (no
// line end at all) and once as an endless body: the heap stays far below
// the input, and what Read keeps stays within its limits.
func TestReadEndlessBoundedMemory(t *testing.T) {
	const size = 256 << 20
	const bound = 64 << 20 // the limits, the buffers, garbage awaiting the GC
	lim := DefaultLimits()
	for name, prefix := range map[string]string{
		"no line end": "",
		"endless body": "Received: from x (x [203.0.113.7]) by mx1.example.net\r\n" +
			"Subject: zeros\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			runtime.GC()
			z := &zeros{prefix: []byte(prefix), left: size}
			m, err := Read(z, lim)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("peak heap %.1f MiB", float64(z.peakHeap)/(1<<20))
			if z.peakHeap == 0 || z.peakHeap > bound {
				t.Errorf("peak heap %d MiB while reading %d MiB, want at most %d MiB", z.peakHeap>>20, size>>20, bound>>20)
			}
			if m.Size < size {
				t.Errorf("Size = %d, want at least %d: the input was not read to its end", m.Size, size)
			}
			if m.Whole != nil {
				t.Errorf("kept the whole %d MiB message, beyond MaxKeep", size>>20)
			}
			if len(m.Header) > lim.MaxHeader {
				t.Errorf("kept a %d-byte header section, beyond MaxHeader", len(m.Header))
			}
			if prefix == "" && !m.HeaderTruncated {
				t.Error("a header section without an end is not reported as truncated")
			}
		})
	}
}
