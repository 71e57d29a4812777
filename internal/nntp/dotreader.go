package nntp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// articleError is a reason to refuse an article that was nevertheless read
// to its end, so the session can go on. Any other error from readArticle is
// an I/O error that leaves the session unusable.
type articleError struct{ reason string }

func (e *articleError) Error() string { return e.reason }

// readArticle reads a multi-line data block (RFC 3977 §3.1.1) up to and
// including the line ".", and returns it dot-unstuffed, without that line.
//
// It is strict, in the manner of chasquid's readUntilDot, because framing
// that two programs read differently is how smuggling happens (SMTP
// smuggling, 2023): only CRLF "." CRLF ends the block, and a bare LF or bare
// CR anywhere makes the article refused (as an *articleError) once the block
// has been read to its real end. We refuse rather than normalise because
// every sender we serve writes CRLF (INN does; so does our Client, which
// turns bare LF into CRLF before sending), and an article whose line ends we
// repaired would not be the article its origin signed.
//
// At most max bytes of article (after unstuffing, CRLFs included) are kept;
// past that the rest is read and dropped, never buffered, and the result is
// an *articleError. Memory use is thus max plus r's buffer, whatever the
// sender sends.
func readArticle(r *bufio.Reader, max int64) ([]byte, error) {
	var (
		art     []byte
		size    int64
		problem error
		bol     = true  // at the beginning of a line
		pending = false // the previous fragment of this line ended in CR
	)
	for {
		// ReadSlice returns at most r's buffer size, so a very long line
		// comes in several fragments; only the last ends in LF.
		frag, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading article: %w", err)
		}
		eol := err == nil
		if bol && eol && len(frag) == 3 && frag[0] == '.' && frag[1] == '\r' {
			// ".\r\n": the end (RFC 3977 §3.1.1).
			if problem != nil {
				return nil, problem
			}
			return art, nil
		}
		if bol && frag[0] == '.' {
			// A line that starts with "." was sent with an extra one
			// (dot-stuffing, RFC 3977 §3.1.1). A lone ".\n" also lands
			// here and is then refused for its bare LF below: it is not
			// a terminator.
			frag = frag[1:]
		}
		if problem == nil {
			problem = checkLineEnds(frag, pending, eol)
		}
		pending = !eol && len(frag) > 0 && frag[len(frag)-1] == '\r'
		bol = eol

		size += int64(len(frag))
		if problem == nil && size > max {
			problem = &articleError{fmt.Sprintf("article larger than %d bytes", max)}
		}
		if problem != nil {
			art = nil // let the collector have it; the rest is dropped
			continue
		}
		art = append(art, frag...)
	}
}

// checkLineEnds reports a bare CR or bare LF in frag, a fragment of a line
// as ReadSlice returns it: LF only at the end, and only if eol. prevCR says
// that the previous fragment of the same line ended in CR.
func checkLineEnds(frag []byte, prevCR, eol bool) error {
	body := frag
	if prevCR {
		if len(body) == 0 || body[0] != '\n' {
			return &articleError{"bare CR in article"}
		}
		// The CR of the previous fragment ends the line here.
		return nil
	}
	switch {
	case eol && len(body) >= 2 && body[len(body)-2] == '\r':
		body = body[:len(body)-2]
	case eol:
		return &articleError{"bare LF in article (lines must end in CRLF)"}
	case len(body) > 0 && body[len(body)-1] == '\r':
		body = body[:len(body)-1] // its LF may start the next fragment
	}
	if bytes.IndexByte(body, '\r') >= 0 {
		return &articleError{"bare CR in article"}
	}
	return nil
}
