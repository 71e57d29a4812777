package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// stopAfter is a context that is done from its n+1-th look at Err on: it
// stands for a signal arriving at each point where PutContext may look.
type stopAfter struct {
	context.Context
	n     int32
	looks atomic.Int32
}

func (c *stopAfter) Err() error {
	if c.looks.Add(1) > c.n {
		return context.Canceled
	}
	return nil
}

// TestPutContextStopped stops PutContext at each point where it looks at
// its context, with a report several chunks long: whatever the point, the
// spool holds either one complete report in new/ and nothing in tmp/, or
// nothing at all and an error that says it stopped.
func TestPutContextStopped(t *testing.T) {
	article := bytes.Repeat([]byte("0123456789abcdef"), 3*putChunk/16+7) // 4 chunks
	completed := false
	for n := int32(0); !completed; n++ {
		if n > 100 {
			t.Fatal("PutContext never completes")
		}
		dir := t.TempDir()
		ctx := &stopAfter{Context: context.Background(), n: n}
		path, err := PutContext(ctx, dir, article)
		tmp := entries(t, filepath.Join(dir, "tmp"))
		news := entries(t, filepath.Join(dir, "new"))
		if len(tmp) != 0 {
			t.Errorf("stopped after %d looks: tmp/ holds %v, want nothing", n, tmp)
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("stopped after %d looks: error %v does not wrap context.Canceled", n, err)
			}
			if path != "" || len(news) != 0 {
				t.Errorf("stopped after %d looks: error %v but path %q and new/ holds %v", n, err, path, news)
			}
			continue
		}
		completed = true
		if len(news) != 1 || filepath.Join(dir, "new", news[0]) != path {
			t.Fatalf("completed after %d looks: new/ holds %v, path %q", n, news, path)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, article) {
			t.Errorf("completed after %d looks: the report is %d bytes, want %d", n, len(got), len(article))
		}
		if n < 5 {
			t.Errorf("completed after only %d looks at the context: it is not looked at between chunks", n)
		}
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
