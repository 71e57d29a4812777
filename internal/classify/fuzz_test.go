package classify

import (
	"testing"
)

// FuzzClassify: any header section gets one of the classes and a reason,
// and the scanner never reads out of bounds (an unbalanced parenthesis, a
// trailing backslash).
func FuzzClassify(f *testing.F) {
	f.Add([]byte(postfixMX+spamBody), 0, "", false)
	f.Add([]byte("Return-Path: <>\r\n"+postfixMX+spamBody), 0, "", false)
	f.Add([]byte("Received: from x( (unknown [198.51.100.7]) (Authenticated sender: a)\r\n\tby mx with ESMTPSA id 1; date\r\n"), 0, "", false)
	f.Add([]byte("Received: from \\\r\nContent-Type: multipart/report; report-type=delivery-status\r\n"), 0, "MAILER-DAEMON@x", true)
	f.Fuzz(func(t *testing.T, header []byte, mx int, sender string, known bool) {
		r := Classify(Input{Header: header, MXField: mx, Sender: sender, SenderKnown: known})
		if r.Reason == "" {
			t.Fatal("no reason")
		}
		switch r.Class {
		case Spam, Backscatter, AutoReply, Authenticated:
		default:
			t.Fatalf("class %q", r.Class)
		}
	})
}
