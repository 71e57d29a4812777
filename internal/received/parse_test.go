package received

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		ip       string // "" = no client
		rev      string
		verified bool
		by       string
		mta      MTA
		err      bool
	}{
		{name: "postfix unknown",
			in: ` from spam.example (unknown [203.0.113.7])
	by mx1.example.net (Postfix) with ESMTP id 4C1D2E3F
	for <trap@example.net>; Sat, 28 Nov 2026 10:10:10 +0000 (UTC)`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Postfix},
		{name: "postfix verified name",
			in: ` from mx1.example.net (mx1.example.net [192.0.2.10])
	by store.example.net (Postfix) with ESMTPS id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "192.0.2.10", rev: "mx1.example.net", verified: true, by: "store.example.net", mta: Postfix},
		{name: "postfix ipv6 and TLS comment",
			in: ` from helo.example (unknown [IPv6:2001:db8:5::7])
	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
	 key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
	(No client certificate requested)
	by mx1.example.net (Postfix) with ESMTPS id 4Abc; Sat, 28 Nov 2026 10:10:10 +0000 (UTC)`,
			ip: "2001:db8:5::7", by: "mx1.example.net", mta: Postfix},
		{name: "postfix port logging",
			in: ` from x (unknown [203.0.113.7]:54321) by mx1.example.net (Postfix) with SMTP id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Postfix},
		{name: "postfix local pickup",
			in: ` by mx1.example.net (Postfix, from userid 0) id 9F; Sat, 28 Nov 2026 10:10:10 +0000 (UTC)`,
			by: "mx1.example.net", mta: Postfix},
		{name: "HELO made to look like TCP info",
			in: ` from x([198.51.100.1]) (unknown [203.0.113.7]) by mx1.example.net (Postfix) with SMTP id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Postfix},
		{name: "HELO is the word by",
			in: ` from by (unknown [203.0.113.7]) by mx1.example.net (Postfix) with SMTP id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Postfix},
		{name: "sendmail may be forged",
			in: ` from mx1.example.net (spam.example.com [203.0.113.8] (may be forged))
	by mx1.example.net (8.17.1.9/8.17.1.9/Debian-2) with ESMTP id 5ASAAAbc000123
	for <trap@example.net>; Sat, 28 Nov 2026 10:10:10 GMT`,
			ip: "203.0.113.8", rev: "spam.example.com", verified: false, by: "mx1.example.net", mta: Sendmail},
		{name: "sendmail verified with ident",
			in: ` from mx2.example.net (root@mx2.example.net [192.0.2.12]) by mx1.example.net (8.17.1.9/8.17.1.9/Debian-2) with ESMTP id 1; Sat, 28 Nov 2026 10:10:10 GMT`,
			ip: "192.0.2.12", rev: "mx2.example.net", verified: true, by: "mx1.example.net", mta: Sendmail},
		{name: "exim no name",
			in: ` from [203.0.113.7] (helo=mx1.example.net)
	by mx1.example.net with esmtp (Exim 4.96)
	(envelope-from <spam@example.com>)
	id 1tXyZa-000ABC-1x
	for trap@example.net; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Exim},
		{name: "exim verified name and port",
			in: ` from mx2.example.net ([192.0.2.12]:41234 helo=foo)
	by mx1.example.net with esmtp (Exim 4.96) id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "192.0.2.12", rev: "mx2.example.net", verified: true, by: "mx1.example.net", mta: Exim},
		{name: "exim TLS, verified name equal to HELO",
			in: ` from mx2.example.net ([192.0.2.12])
	by mx1.example.net with esmtps  (TLS1.3) tls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
	(Exim 4.96)
	(envelope-from <spammer@spam.example.com>)
	id 1xXUDv-0001n2-2E
	for trap@example.net;
	Sun, 29 Nov 2026 02:01:03 +0000`,
			ip: "192.0.2.12", rev: "mx2.example.net", verified: true, by: "mx1.example.net", mta: Exim},
		{name: "envelope sender cannot make a field look like Exim's",
			in: ` from mx2.example.net ([192.0.2.12]) by mx1.example.net with esmtp (envelope-from <"(Exim 4.96)"@x>) id 1; Sun, 29 Nov 2026 02:01:03 +0000`,
			ip: "192.0.2.12", by: "mx1.example.net"},
		{name: "exim HELO literal is not the client",
			in: ` from [203.0.113.7] (helo=[198.51.100.1]) by mx1.example.net with esmtp (Exim 4.96) id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Exim},
		{name: "exim local",
			in: ` from root by mx1.example.net with local (Exim 4.96) (envelope-from <root@mx1.example.net>) id 1; Sat, 28 Nov 2026 10:10:10 +0000`,
			by: "mx1.example.net", mta: Exim},
		{name: "qmail network",
			in: ` from unknown (HELO mx1.example.net) (203.0.113.7)
  by mx1.example.net with SMTP; 28 Nov 2026 10:10:10 -0000`,
			ip: "203.0.113.7", by: "mx1.example.net", mta: Qmail},
		{name: "qmail names are not verified",
			in: ` from mx2.example.net (HELO mx2) (user@192.0.2.12) by mx1.example.net with SMTP; 28 Nov 2026 10:10:10 -0000`,
			ip: "192.0.2.12", rev: "mx2.example.net", verified: false, by: "mx1.example.net", mta: Qmail},
		{name: "qmail local",
			in: ` (qmail 12345 invoked from network); 28 Nov 2026 10:10:10 -0000`},
		{name: "exchange",
			in: ` from EX01.contoso.com (10.0.0.1) by EX02.contoso.com (10.0.0.2) with Microsoft SMTP Server
 (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.1.2507.6; Mon, 2 Nov 2026 10:10:10 +0000`,
			ip: "10.0.0.1", by: "ex02.contoso.com", mta: Microsoft},
		{name: "courier mapped v4",
			in: ` from spam.example.com (spam.example.com [::ffff:203.0.113.8])
  (TLS: TLSv1.2,256bits,ECDHE-RSA-AES256-GCM-SHA384)
  by mx1.example.net with ESMTPS; Sat, 28 Nov 2026 10:10:10 +0000
  id 0000000000012345.0000000012345678.00001234`,
			ip: "203.0.113.8", rev: "spam.example.com", by: "mx1.example.net"},
		{name: "opensmtpd",
			in: ` from spam.example (spam.example.com [203.0.113.8])
	by mx1.example.net (OpenSMTPD) with ESMTPS id 3a1b2c3d (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO)
	for <trap@example.net>; Sat, 28 Nov 2026 10:10:10 +0000 (UTC)`,
			ip: "203.0.113.8", rev: "spam.example.com", by: "mx1.example.net", mta: OpenSMTPD},
		{name: "opensmtpd local socket",
			in: ` from localhost (mx1.example.net [local]) by mx1.example.net (OpenSMTPD) with ESMTPA id 1f2e3d4c for <trap@example.net>; Sun, 29 Nov 2026 02:01:03 +0000 (UTC)`,
			by: "mx1.example.net", mta: OpenSMTPD},
		{name: "gmail",
			in: ` from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])
        by mx.google.com with SMTPS id a1sor123.2026.11.28.10.10.10
        for <user@gmail.com>
        (Google Transport Security);
        Sat, 28 Nov 2026 10:10:10 -0800 (PST)`,
			ip: "209.85.220.41", rev: "mail-sor-f41.google.com", by: "mx.google.com"},
		{name: "gmail internal",
			in: ` by 2002:a05:6a10:a10c:b0:5ab:cdef:1234 with SMTP id x12csp123;
        Sat, 28 Nov 2026 10:10:10 -0800 (PST)`,
			by: "2002:a05:6a10:a10c:b0:5ab:cdef:1234"},
		{name: "no address", in: ` from mail.example.com by mx1.example.net with ESMTP; Sat, 28 Nov 2026 10:10:10 +0000`, err: true},
		{name: "garbage", in: ` from`, err: true},
		{name: "empty", in: ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := Parse(c.in)
			if c.err {
				if !errors.Is(err, ErrUnparsable) {
					t.Fatalf("Parse = %+v, %v; want ErrUnparsable", h, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			ip := ""
			if h.IP.IsValid() {
				ip = h.IP.String()
			}
			if ip != c.ip || h.ReverseName != c.rev || h.NameVerified != c.verified || h.By != c.by || h.MTA != c.mta {
				t.Errorf("Parse = ip %q rev %q verified %v by %q mta %q; want ip %q rev %q verified %v by %q mta %q",
					ip, h.ReverseName, h.NameVerified, h.By, h.MTA, c.ip, c.rev, c.verified, c.by, c.mta)
			}
		})
	}
}
