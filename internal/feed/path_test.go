package feed

import "testing"

func TestWithSiteInPath(t *testing.T) {
	const site = "site-b.test"
	for _, tc := range []struct {
		name, in, want, path string
	}{
		{"prepended",
			"Path: site-a.test!not-for-mail\r\nSubject: x\r\n\r\nbody\r\n",
			"Path: site-b.test!site-a.test!not-for-mail\r\nSubject: x\r\n\r\nbody\r\n",
			" site-a.test!not-for-mail\r\n"},
		{"already first",
			"Path: site-b.test!not-for-mail\r\n\r\nbody\r\n",
			"Path: site-b.test!not-for-mail\r\n\r\nbody\r\n",
			" site-b.test!not-for-mail\r\n"},
		{"already first, other case",
			"Path: Site-B.Test!site-a.test!not-for-mail\r\n\r\nbody\r\n",
			"Path: Site-B.Test!site-a.test!not-for-mail\r\n\r\nbody\r\n",
			" Site-B.Test!site-a.test!not-for-mail\r\n"},
		{"further down is not first",
			"Path: site-c.test!site-b.test!not-for-mail\r\n\r\n",
			"Path: site-b.test!site-c.test!site-b.test!not-for-mail\r\n\r\n",
			" site-c.test!site-b.test!not-for-mail\r\n"},
		{"a longer name that starts with ours",
			"Path: site-b.test.example!x\r\n\r\n",
			"Path: site-b.test!site-b.test.example!x\r\n\r\n",
			" site-b.test.example!x\r\n"},
		{"missing",
			"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nPath: in the body\r\n",
			"Path: site-b.test!not-for-mail\r\nSubject: x\r\nMessage-ID: <a@b>\r\n\r\nPath: in the body\r\n",
			""},
		{"not the first field, odd case and spacing",
			"From: a@b\r\nX-Path: decoy!x\r\npath:site-a.test!x\r\nDKIM-Signature: v=1;\r\n\th=from\r\n\r\n.body\r\n",
			"From: a@b\r\nX-Path: decoy!x\r\npath:site-b.test!site-a.test!x\r\nDKIM-Signature: v=1;\r\n\th=from\r\n\r\n.body\r\n",
			"site-a.test!x\r\n"},
		{"folded after the colon",
			"Subject: x\r\nPath:\r\n site-a.test!\r\n site-z.test!not-for-mail\r\nFrom: a@b\r\n\r\n",
			"Subject: x\r\nPath:\r\n site-b.test!site-a.test!\r\n site-z.test!not-for-mail\r\nFrom: a@b\r\n\r\n",
			"\r\n site-a.test!\r\n site-z.test!not-for-mail\r\n"},
		{"folded, already first",
			"Path: site-b.test\r\n !site-a.test!x\r\n\r\n",
			"Path: site-b.test\r\n !site-a.test!x\r\n\r\n",
			" site-b.test\r\n !site-a.test!x\r\n"},
		{"empty",
			"Path:\r\nSubject: x\r\n\r\n",
			"Path: site-b.test!not-for-mail\r\nSubject: x\r\n\r\n",
			"\r\n"},
		{"only in a continuation line of another field",
			"Subject: x\r\n Path: nope\r\n\r\n",
			"Path: site-b.test!not-for-mail\r\nSubject: x\r\n Path: nope\r\n\r\n",
			""},
		{"two Path fields: the first is edited",
			"Path: a!x\r\nPath: c!x\r\n\r\n",
			"Path: site-b.test!a!x\r\nPath: c!x\r\n\r\n",
			" a!x\r\n"},
		{"no body",
			"Path: a!x\r\nSubject: y\r\n",
			"Path: site-b.test!a!x\r\nSubject: y\r\n",
			" a!x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, path := withSiteInPath(in, site)
			if string(got) != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if path != tc.path {
				t.Errorf("path %q, want %q", path, tc.path)
			}
			if string(in) != tc.in {
				t.Errorf("the input was changed to %q", in)
			}
		})
	}
}
