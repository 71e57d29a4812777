// Package mailmsg reads a mail message from a pipe in bounded memory: it
// keeps the header section (up to a limit) and, when the message is small
// enough, the whole message, and always reads the input to its end so the
// MTA that feeds the pipe never sees a write error.
package mailmsg

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Limits bound the memory Read uses, whatever the size of the message.
type Limits struct {
	// MaxHeader is the largest header section kept. A longer one is cut
	// at a line boundary; the Received fields that matter are at its top.
	MaxHeader int
	// MaxKeep is the largest message kept whole; a larger one is reported
	// with its header section only.
	MaxKeep int
}

// DefaultLimits suit a spam trap: spam headers are a few KiB, and a report
// carrying more than 1 MiB of spam helps nobody.
func DefaultLimits() Limits { return Limits{MaxHeader: 256 << 10, MaxKeep: 1 << 20} }

// Message is what Read kept of a message.
type Message struct {
	// Header is the header section, without the blank line that ends it,
	// with its original line ends.
	Header []byte
	// HeaderTruncated reports that the header section was longer than
	// MaxHeader (or had no end) and Header holds its beginning.
	HeaderTruncated bool
	// Whole is the entire message when it fits in MaxKeep, else nil.
	Whole []byte
	// Size is the number of bytes read, an mbox "From " line excepted.
	Size int64
}

// Read reads r to its end. An mbox "From " line at the top, which pipe
// transports (Exim's, procmail) may add, is dropped: it is not part of the
// message. The error is only for a failure to read r; what was read until
// then is returned with it.
func Read(r io.Reader, lim Limits) (*Message, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	m := &Message{}
	var keep bytes.Buffer // the whole message, while it fits
	keeping := true
	add := func(b []byte) {
		m.Size += int64(len(b))
		if keeping {
			if keep.Len()+len(b) > lim.MaxKeep {
				keeping = false
				keep = bytes.Buffer{}
			} else {
				keep.Write(b)
			}
		}
	}

	first := true
	inHeader := true
	var hdr bytes.Buffer
	var line []byte // reused: a header section without an end (/dev/zero) comes as endless long lines
	for inHeader {
		var err error
		line, err = readLine(br, line[:0], lim.MaxHeader+1)
		if first && bytes.HasPrefix(line, []byte("From ")) {
			first = false
			if err == nil {
				continue
			}
		}
		first = false
		if len(line) > 0 {
			add(line)
			if isBlank(line) {
				inHeader = false
			} else if hdr.Len()+len(line) <= lim.MaxHeader && !m.HeaderTruncated {
				hdr.Write(line)
			} else {
				m.HeaderTruncated = true
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			m.Header = hdr.Bytes()
			return m, fmt.Errorf("reading the message: %w", err)
		}
	}
	// When the input ended inside the header section (a message without a
	// body), what was read is the header.
	m.Header = bytes.TrimRight(hdr.Bytes(), "\r\n")
	if !inHeader {
		m.Header = append(m.Header, '\n')
	}

	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		add(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, fmt.Errorf("reading the message: %w", err)
		}
	}
	if keeping {
		m.Whole = keep.Bytes()
	}
	return m, nil
}

// readLine appends the next line, with its line end, to line and returns
// it. A line longer than max is returned in pieces of max bytes, which is
// fine for a header section that is being cut anyway.
func readLine(br *bufio.Reader, line []byte, max int) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			if len(line) >= max {
				return line, nil
			}
			continue
		}
		return line, err
	}
}

func isBlank(line []byte) bool {
	return len(bytes.TrimRight(line, "\r\n")) == 0
}
