package article

import "strings"

// DefaultPathTail is the tail-entry put at the end of a new Path. RFC 5536
// §3.1.6 gives the tail-entry no meaning beyond ending the list;
// "not-for-mail" is what INN and most injecting agents write there.
const DefaultPathTail = "not-for-mail"

// PathContains reports whether site is named as a path-identity in the Path
// field body path (RFC 5536 §3.1.6). Relays use it to avoid sending an
// article back to a site that has already seen it (RFC 5537 §3.6).
//
// Entries are separated by '!' and compared without regard to letter case,
// as domain names are; folding white space around them is ignored. Three
// kinds of entry do not count as naming a site:
//
//   - path diagnostics, whose entries start with '.' (".POSTED",
//     ".SEEN.host", ...), and the empty entry of the "!!" diagnostic;
//   - everything to the right of a ".POSTED" diagnostic, which the injecting
//     agent did not verify (RFC 5537 §3.2.1), so a poster cannot keep an
//     article from a site by writing its name there;
//   - the tail-entry, which is not a path-identity (RFC 5536 §3.1.6).
func PathContains(path, site string) bool {
	site = strings.TrimSpace(site)
	if site == "" {
		return false
	}
	entries := strings.Split(path, "!")
	// The last entry is the tail-entry.
	for _, entry := range entries[:len(entries)-1] {
		entry = strings.Trim(entry, " \t\r\n")
		if len(entry) >= len(".POSTED") && strings.EqualFold(entry[:len(".POSTED")], ".POSTED") {
			return false
		}
		if entry == "" || entry[0] == '.' {
			continue
		}
		if strings.EqualFold(entry, site) {
			return true
		}
	}
	return false
}

// PathPrepend returns path with site added as its leftmost path-identity,
// as a relaying or injecting agent does (RFC 5537 §3.2.1). An empty path
// gets DefaultPathTail as its tail-entry, so the result always ends in a
// tail-entry as RFC 5536 §3.1.6 requires.
func PathPrepend(path, site string) string {
	path = strings.Trim(path, " \t\r\n")
	if path == "" {
		path = DefaultPathTail
	}
	return site + "!" + path
}
