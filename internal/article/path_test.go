package article

import "testing"

func TestPathContains(t *testing.T) {
	for _, tc := range []struct {
		path, site string
		want       bool
	}{
		{"site-b.example!site-a.example!not-for-mail", "site-a.example", true},
		{"site-b.example!site-a.example!not-for-mail", "SITE-B.Example", true},
		{"site-b.example!site-a.example!not-for-mail", "site-c.example", false},
		{"site-b.example!site-a.example!not-for-mail", "site", false},
		{"site-b.example!site-a.example!not-for-mail", "example", false},
		{"site-b.example!site-a.example.old!not-for-mail", "site-a.example", false},
		// The tail-entry is not a path-identity (RFC 5536 §3.1.6).
		{"site-b.example!site-a.example!not-for-mail", "not-for-mail", false},
		{"site-b.example!site-a.example", "site-a.example", false},
		{"site-a.example", "site-a.example", false},
		// Diagnostics are skipped; "!!" is an empty entry.
		{"site-b.example!!site-a.example!x", "site-a.example", true},
		{"site-b.example!.SEEN.site-c.example!site-a.example!x", "site-c.example", false},
		{"site-b.example!.SEEN.site-c.example!site-a.example!x", "site-a.example", true},
		{"site-b.example!.SEEN.site-c.example!site-a.example!x", ".SEEN.site-c.example", false},
		// Nothing right of .POSTED counts (RFC 5537 §3.2.1).
		{"site-b.example!.POSTED!site-a.example!x", "site-a.example", false},
		{"site-b.example!.POSTED.192.0.2.1!site-a.example!x", "site-a.example", false},
		{"site-b.example!.posted!site-a.example!x", "site-a.example", false},
		{"site-b.example!.POSTED!site-a.example!x", "site-b.example", true},
		// Folding white space around entries (RFC 5536 §3.1.6 allows FWS).
		{"site-b.example\r\n !site-a.example !x", "site-b.example", true},
		{"site-b.example\r\n !site-a.example !x", "site-a.example", true},
		{"", "site-a.example", false},
		{"a!b", "", false},
		{"!!", "", false},
	} {
		if got := PathContains(tc.path, tc.site); got != tc.want {
			t.Errorf("PathContains(%q, %q) = %v, want %v", tc.path, tc.site, got, tc.want)
		}
	}
}

func TestPathPrepend(t *testing.T) {
	for _, tc := range []struct{ path, site, want string }{
		{"site-a.example!not-for-mail", "site-b.example", "site-b.example!site-a.example!not-for-mail"},
		{" site-a.example!not-for-mail ", "site-b.example", "site-b.example!site-a.example!not-for-mail"},
		{"", "site-a.example", "site-a.example!not-for-mail"},
		{"  ", "site-a.example", "site-a.example!not-for-mail"},
	} {
		got := PathPrepend(tc.path, tc.site)
		if got != tc.want {
			t.Errorf("PathPrepend(%q, %q) = %q, want %q", tc.path, tc.site, got, tc.want)
		}
		if !PathContains(got, tc.site) {
			t.Errorf("PathContains(PathPrepend(%q, %q)) = false", tc.path, tc.site)
		}
	}
}
