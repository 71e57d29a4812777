package dkim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

const (
	testDomain   = "site-a.example"
	testSelector = "dst"
)

// testKey is deterministic so that fuzz corpus entries signed with it stay
// meaningful across runs.
func testKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("dst dkim test key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func otherKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("another site's key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testKeyring() *Keyring {
	k := &Keyring{}
	k.Add(testDomain, testSelector, testKey().Public().(ed25519.PublicKey))
	return k
}

// crlf turns the LF line ends of a Go literal into the CRLF of the wire.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// reportArticle is a realistic DST report: RFC 5536 header, RFC 5965 body.
func reportArticle() []byte {
	return []byte(crlf(`From: DST <dst@site-a.example>
Newsgroups: dst.reports
Subject: trap hit 203.0.113.7
Message-ID: <20261128101010.4711@site-a.example>
Date: Sat, 28 Nov 2026 10:10:10 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
	boundary="dst-boundary-1"
User-Agent: dstc/1.0

This is a multi-part message in MIME format.

--dst-boundary-1
Content-Type: text/plain; charset=us-ascii

A message from 203.0.113.7 reached a spam trap at site-a.example.

--dst-boundary-1
Content-Type: message/feedback-report

Feedback-Type: abuse
Version: 1
User-Agent: dstc/1.0
Source-IP: 203.0.113.7
Arrival-Date: Sat, 28 Nov 2026 10:10:09 +0000
Reporting-MTA: dns; mx1.site-a.example

--dst-boundary-1
Content-Type: text/rfc822-headers

Received: from bot.example (bot.example [203.0.113.7])
	by mx1.site-a.example with ESMTP id 4711
	for <trap@site-a.example>; Sat, 28 Nov 2026 10:10:09 +0000
From: "Cheap pills" <spam@bot.example>
Subject: buy now

--dst-boundary-1--
`))
}

func mustSign(t testing.TB, article []byte) []byte {
	t.Helper()
	s, err := NewSigner(testDomain, testSelector, testKey())
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Sign(article)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// splitArticle splits at the first empty line, reading lines the way
// net/textproto does (LF, optionally preceded by CR).
func splitArticle(a []byte) (header []string, body []byte, ok bool) {
	s := string(a)
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return nil, nil, false
		}
		line := strings.TrimSuffix(s[:i], "\r")
		s = s[i+1:]
		if line == "" {
			return header, []byte(s), true
		}
		if (line[0] == ' ' || line[0] == '\t') && len(header) > 0 {
			header[len(header)-1] += "\r\n" + line
			continue
		}
		header = append(header, line)
	}
}

// relaxedHeader canonicalizes one field as RFC 6376 §3.4.2 says, written
// independently of the library so that tests cross-check it.
func relaxedHeader(f string) (name, value string) {
	name, value, _ = strings.Cut(f, ":")
	value = strings.ReplaceAll(value, "\r\n", "")
	value = strings.Join(strings.FieldsFunc(value, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
	return strings.ToLower(strings.TrimSpace(name)), value
}

// relaxedBody canonicalizes a body as RFC 6376 §3.4.4 says, after turning
// bare LF into CRLF as the library does.
func relaxedBody(b []byte) string {
	s := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
	lines := strings.Split(s, "\r\n")
	for i, l := range lines {
		l = strings.Join(strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
		if strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t") {
			if l != "" {
				l = " " + l
			}
		}
		lines[i] = l
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// handSign signs article with tags of our choosing (for example l=), which
// the library's signer cannot produce. It implements RFC 6376 §3.7 with
// relaxed/relaxed canonicalization.
func handSign(t testing.TB, article []byte, key ed25519.PrivateKey, extra string, hkeys []string) []byte {
	t.Helper()
	return handSignAs(t, article, key, testDomain, extra, hkeys)
}

func handSignAs(t testing.TB, article []byte, key ed25519.PrivateKey, domain, extra string, hkeys []string) []byte {
	t.Helper()
	header, body, ok := splitArticle(article)
	if !ok {
		t.Fatal("handSign: no header end")
	}
	bh := sha256.Sum256([]byte(relaxedBody(body)))
	sigValue := " v=1; a=ed25519-sha256; c=relaxed/relaxed; d=" + domain + "; s=" + testSelector +
		"; h=" + strings.Join(hkeys, ":") + "; bh=" + base64.StdEncoding.EncodeToString(bh[:]) + ";" + extra + " b="
	var data strings.Builder
	used := make(map[string]int)
	for _, k := range hkeys {
		k = strings.ToLower(k)
		// RFC 6376 §5.4.2: instances are taken from the bottom up.
		seen := 0
		for i := len(header) - 1; i >= 0; i-- {
			n, v := relaxedHeader(header[i])
			if n != k {
				continue
			}
			if seen == used[k] {
				data.WriteString(n + ":" + v + "\r\n")
				used[k]++
				break
			}
			seen++
		}
	}
	n, v := relaxedHeader("DKIM-Signature:" + sigValue)
	data.WriteString(n + ":" + v)
	hash := sha256.Sum256([]byte(data.String()))
	sig := ed25519.Sign(key, hash[:])
	field := "DKIM-Signature:" + sigValue + base64.StdEncoding.EncodeToString(sig) + "\r\n"
	return append([]byte(field), article...)
}
