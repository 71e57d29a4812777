package mailmsg

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	msg := "From spam@example.com Sat Nov 28 10:10:10 2026\n" +
		"Received: from a (unknown [203.0.113.7])\n\tby mx1 (Postfix); date\n" +
		"Subject: x\n\nbody\n"
	m, err := Read(strings.NewReader(msg), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	wantHdr := "Received: from a (unknown [203.0.113.7])\n\tby mx1 (Postfix); date\nSubject: x\n"
	if string(m.Header) != wantHdr {
		t.Errorf("Header = %q, want %q", m.Header, wantHdr)
	}
	wantWhole := msg[strings.IndexByte(msg, '\n')+1:]
	if string(m.Whole) != wantWhole || m.Size != int64(len(wantWhole)) {
		t.Errorf("Whole = %q (size %d), want %q", m.Whole, m.Size, wantWhole)
	}
}

func TestReadLargeKeepsHeaderOnly(t *testing.T) {
	hdr := "Received: from a (unknown [203.0.113.7]) by mx1 (Postfix); date\r\nSubject: x\r\n"
	body := bytes.Repeat([]byte("spam spam spam\r\n"), 1<<16) // 1 MiB
	m, err := Read(io.MultiReader(strings.NewReader(hdr+"\r\n"), bytes.NewReader(body)), Limits{MaxHeader: 1024, MaxKeep: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if m.Whole != nil {
		t.Error("Whole kept a message larger than MaxKeep")
	}
	if string(m.Header) != hdr[:len(hdr)-2]+"\n" {
		t.Errorf("Header = %q", m.Header)
	}
	if m.Size != int64(len(hdr)+2+len(body)) {
		t.Errorf("Size = %d, the input was not read to its end", m.Size)
	}
}

func TestReadHugeHeader(t *testing.T) {
	in := "Received: from a (unknown [203.0.113.7]) by mx1 (Postfix); date\n" + strings.Repeat("X-Junk: "+strings.Repeat("j", 100)+"\n", 10000) + "\nbody"
	m, err := Read(strings.NewReader(in), Limits{MaxHeader: 4096, MaxKeep: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if !m.HeaderTruncated || len(m.Header) > 4096 || !bytes.HasPrefix(m.Header, []byte("Received:")) {
		t.Errorf("truncated=%v len=%d", m.HeaderTruncated, len(m.Header))
	}
	if m.Size != int64(len(in)) {
		t.Errorf("Size = %d, want %d", m.Size, len(in))
	}
}

func TestReadNoBodyNoNewline(t *testing.T) {
	m, err := Read(strings.NewReader("Subject: x"), DefaultLimits())
	if err != nil || string(m.Header) != "Subject: x" {
		t.Errorf("Read = %q, %v", m.Header, err)
	}
	// One endless line: cut, and still read to the end.
	m, err = Read(strings.NewReader(strings.Repeat("a", 1<<20)), Limits{MaxHeader: 100, MaxKeep: 100})
	if err != nil || !m.HeaderTruncated || m.Size != 1<<20 {
		t.Errorf("Read = truncated %v size %d, %v", m.HeaderTruncated, m.Size, err)
	}
}

type failReader struct{ n int }

func (f *failReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return copy(p, "Subject: x\n"), nil
	}
	return 0, errors.New("EIO")
}

func TestReadError(t *testing.T) {
	if _, err := Read(&failReader{n: 2}, DefaultLimits()); err == nil {
		t.Error("Read hid a read error")
	}
}
