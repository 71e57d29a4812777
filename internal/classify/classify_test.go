package classify

import (
	"strings"
	"testing"
)

// The MX's field and one written by the sender below it, as Postfix
// writes them (RFC 5321 §4.4: the MX prepends its own).
const (
	postfixMX = "Received: from bulk.example.com (unknown [198.51.100.7])\r\n" +
		"\tby mx.site-a.test (Postfix) with ESMTP id 4ABCD1234\r\n" +
		"\tfor <trap@site-a.test>; Tue, 1 Oct 2024 10:00:00 +0000 (UTC)\r\n"
	forged = "Received: from forged.example (forged.example [203.0.113.1])\r\n" +
		"\tby relay.example (Postfix) with ESMTPSA id 1; Tue, 1 Oct 2024 09:59:00 +0000\r\n"
	spamBody = "From: <offers@example.com>\r\nTo: <trap@site-a.test>\r\nSubject: Cheap watches\r\n" +
		"Message-ID: <1@bulk.example.com>\r\nDate: Tue, 1 Oct 2024 10:00:00 +0000\r\n"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name        string
		header      string
		mxField     int
		sender      string
		senderKnown bool
		want        Class
	}{
		{name: "plain spam", header: postfixMX + spamBody, want: Spam},
		{name: "spam whose sender forged an authenticated hop below the MX", header: postfixMX + forged + spamBody, want: Spam},
		{name: "Auto-Submitted: no is a human's", header: postfixMX + spamBody + "Auto-Submitted: no\r\n", want: Spam},
		{name: "Auto-Submitted: no with a comment", header: postfixMX + spamBody + "Auto-Submitted: No; (sent by hand)\r\n", want: Spam},
		{name: "Precedence: bulk is not an auto-reply", header: postfixMX + spamBody + "Precedence: bulk\r\n", want: Spam},
		{name: "known non-null sender", header: postfixMX + spamBody, sender: "offers@example.com", senderKnown: true, want: Spam},

		// authenticated
		{name: "Postfix ESMTPSA", header: strings.Replace(postfixMX, "with ESMTP ", "with ESMTPSA ", 1) + spamBody, want: Authenticated},
		{name: "Exim esmtpa", header: "Received: from [198.51.100.7] (helo=pc)\r\n\tby mx.site-a.test with esmtpa (Exim 4.96)\r\n" +
			"\t(envelope-from <u@site-a.test>)\r\n\tid 1abc-000; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Authenticated},
		{name: "LMTPA", header: "Received: from pc (pc [198.51.100.7])\r\n\tby mx.site-a.test with LMTPA id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Authenticated},
		{name: "UTF8SMTPSA", header: "Received: from pc (pc [198.51.100.7])\r\n\tby mx.site-a.test with UTF8SMTPSA id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Authenticated},
		{name: "Postfix Authenticated sender comment", header: "Received: from pc (pc [198.51.100.7])\r\n\t(Authenticated sender: alice)\r\n" +
			"\tby mx.site-a.test (Postfix) with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Authenticated},
		{name: "Sendmail authenticated bits", header: "Received: from pc (pc.example [198.51.100.7])\r\n\t(authenticated bits=0)\r\n" +
			"\tby mx.site-a.test (8.17.1/8.17.1) with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Authenticated},
		{name: "the MX's field is the second", mxField: 1, header: "Received: from mx.site-a.test (mx.site-a.test [192.0.2.10])\r\n\tby store.site-a.test with LMTP id 2; Tue, 1 Oct 2024 10:00:01 +0000\r\n" +
			strings.Replace(postfixMX, "with ESMTP ", "with ESMTPSA ", 1) + spamBody, want: Authenticated},
		// What the client writes cannot make it authenticated.
		{name: "HELO with 'with ESMTPA'", header: "Received: from x with ESMTPA (unknown [198.51.100.7])\r\n\tby mx.site-a.test (Postfix) with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Spam},
		{name: "HELO with an auth comment before the address", header: "Received: from x (Authenticated sender: y) (unknown [198.51.100.7])\r\n\tby mx.site-a.test (Postfix) with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Spam},
		{name: "HELO with a forged address and auth comment", header: "Received: from x (a [192.0.2.99]) (authenticated bits=0) (unknown [198.51.100.7])\r\n\tby mx.site-a.test (Postfix) with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Spam},
		{name: "envelope-from with 'with esmtpa'", header: "Received: from [198.51.100.7] (helo=x)\r\n\tby mx.site-a.test with esmtp (Exim 4.96)\r\n\t(envelope-from <\"a) with esmtpa (\"@example.com>)\r\n\tid 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Spam},
		{name: "a second by", header: "Received: from x by y with ESMTPA (unknown [198.51.100.7])\r\n\tby mx.site-a.test (Postfix) with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Spam},
		{name: "unbalanced parenthesis in HELO", header: "Received: from x( (unknown [198.51.100.7])\r\n\tby mx.site-a.test (Postfix) with ESMTPA id 1; Tue, 1 Oct 2024 10:00:00 +0000\r\n" + spamBody, want: Spam},

		// backscatter
		{name: "null sender from the MTA", header: postfixMX + spamBody, sender: "", senderKnown: true, want: Backscatter},
		{name: "null sender <> from the MTA", header: postfixMX + spamBody, sender: "<>", senderKnown: true, want: Backscatter},
		{name: "Postfix pipe(8) MAILER-DAEMON", header: postfixMX + spamBody, sender: "MAILER-DAEMON", senderKnown: true, want: Backscatter},
		{name: "Return-Path <> above the MX", header: "Return-Path: <>\r\nDelivered-To: trap@site-a.test\r\n" + postfixMX + spamBody, want: Backscatter},
		{name: "Return-Path <> below the MX is the sender's", header: postfixMX + "Return-Path: <>\r\n" + spamBody, want: Spam},
		{name: "the MTA's sender wins over Return-Path", header: "Return-Path: <>\r\n" + postfixMX + spamBody, sender: "x@example.com", senderKnown: true, want: Spam},
		{name: "DSN, sender unknown", header: postfixMX + "From: MAILER-DAEMON@bounce.example\r\nSubject: Undelivered Mail\r\n" +
			"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"b1\"\r\n", want: Backscatter},
		{name: "MDN, sender unknown", header: postfixMX + "Content-Type: multipart/report; report-type=\"disposition-notification\"; boundary=x\r\n", want: Backscatter},
		{name: "DSN from MAILER-DAEMON@", header: postfixMX + "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n",
			sender: "MAILER-DAEMON@bounce.example", senderKnown: true, want: Backscatter},
		{name: "DSN with a real sender is spam dressed as a bounce", header: postfixMX + "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n",
			sender: "offers@example.com", senderKnown: true, want: Spam},
		{name: "feedback report is not a bounce", header: postfixMX + "Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n", want: Spam},
		{name: "bounce with Auto-Submitted is backscatter", header: "Return-Path: <>\r\n" + postfixMX + "Auto-Submitted: auto-replied\r\n" + spamBody, want: Backscatter},

		// auto-reply
		{name: "Auto-Submitted auto-replied", header: postfixMX + spamBody + "Auto-Submitted: auto-replied\r\n", want: AutoReply},
		{name: "Auto-Submitted auto-generated", header: postfixMX + spamBody + "auto-submitted: Auto-Generated\r\n", want: AutoReply},
		{name: "X-Autoreply", header: postfixMX + spamBody + "X-Autoreply: yes\r\n", want: AutoReply},
		{name: "X-Autorespond", header: postfixMX + spamBody + "X-Autorespond: Out of office\r\n", want: AutoReply},
		{name: "Precedence auto_reply", header: postfixMX + spamBody + "Precedence: auto_reply\r\n", want: AutoReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(Input{Header: []byte(tc.header), MXField: tc.mxField, Sender: tc.sender, SenderKnown: tc.senderKnown})
			if got.Class != tc.want {
				t.Errorf("Classify = %s (%s), want %s", got.Class, got.Reason, tc.want)
			}
			if got.Reason == "" {
				t.Errorf("Classify gave no reason")
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"spam", "backscatter", "auto-reply", "x1", strings.Repeat("a", MaxNameLen)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Spam", "1x", "-x", "a b", "a\r\nX: y", "a_b", strings.Repeat("a", MaxNameLen+1)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) = nil, want an error", bad)
		}
	}
}
