package received

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// MTA names the software that wrote a Received field, as far as the field's
// format tells. It matters because only some MTAs confirm a client's reverse
// DNS name before they record it.
type MTA string

// The MTAs whose formats this package recognises. Unknown is the safe default:
// a name recorded by an unknown MTA is never trusted.
const (
	Unknown   MTA = ""
	Postfix   MTA = "postfix"
	Sendmail  MTA = "sendmail"
	Exim      MTA = "exim"
	OpenSMTPD MTA = "opensmtpd"
	Qmail     MTA = "qmail"
	Microsoft MTA = "microsoft"
	// The MTAs below record no reverse name, or one they did not confirm:
	// their names are never trusted (see verifies).
	CommuniGate MTA = "communigate"
	Kerio       MTA = "kerio"
	MDaemon     MTA = "mdaemon"
	MailEnable  MTA = "mailenable"
	Momentum    MTA = "momentum" // Message Systems Momentum, formerly ecelerity
	XMail       MTA = "xmail"
	MXLogic     MTA = "mxlogic"     // McAfee SaaS Email Protection (MX Logic)
	WebShield   MTA = "webshield"   // McAfee WebShield SMTP
	NAVGW       MTA = "navgw"       // Symantec (Norton) AntiVirus Gateway
	MessageLabs MTA = "messagelabs" // Symantec.cloud / Broadcom Email Security.cloud
	InterScan   MTA = "interscan"   // Trend Micro InterScan VirusWall
	Iomart      MTA = "iomart"      // iomart hosting (iomartmail.com)
	IceWarp     MTA = "icewarp"     // IceWarp Mail Server, formerly Merak
	Barracuda   MTA = "barracuda"   // Barracuda Spam Firewall and Email Security Service
	TrendMicro  MTA = "trendmicro"  // Trend Micro Email Security, formerly Hosted Email Security (cloud)
	Proofpoint  MTA = "proofpoint"  // Proofpoint Protection Server ("(PPS)")
	Zimbra      MTA = "zimbra"      // Zimbra's MTA, a Postfix whose mark reads "(Zimbra)"
	McAfeeMEG   MTA = "mcafee-meg"  // McAfee (Trellix) Email Gateway, WebShield's successor
)

// Hop is what one Received field says about one transfer of the message.
type Hop struct {
	// Helo is the name the client gave in HELO/EHLO, as recorded. Spammers
	// choose it freely, so it never identifies a host.
	Helo string
	// ReverseName is the client's reverse DNS name as the MTA recorded it,
	// without a trailing dot; empty when the MTA recorded none.
	ReverseName string
	// NameVerified reports that the writing MTA confirmed ReverseName with a
	// forward lookup (FCrDNS) before recording it.
	NameVerified bool
	// IP is the client's address; not valid when the hop had no network
	// client (local submission, pickup, reinjection without a client).
	IP netip.Addr
	// By is the name the receiving host gives itself.
	By string
	// With is the protocol (SMTP, ESMTPS, LMTP, local, ...).
	With string
	// MTA is the software that wrote the field, when recognisable.
	MTA MTA
}

// HasClient reports whether the hop records a network client address.
func (h Hop) HasClient() bool { return h.IP.IsValid() }

// ErrUnparsable is wrapped by Parse's errors: the field says that a network
// client handed the message over, but not in a form that names its address
// beyond doubt. Nothing below such a field can be trusted.
var ErrUnparsable = errors.New("unparsable Received field")

// MaxFieldBytes bounds the length of one Received field that Parse reads;
// real fields are a few hundred bytes.
const MaxFieldBytes = 16 << 10

// Parse reads the value of one Received field (everything after
// "Received:"), folded or not.
//
// The address is taken only from where each MTA writes the address of the
// TCP connection, never from the HELO name: the first word after "from" is
// the client's HELO for most MTAs and is copied verbatim, so its content
// (which may itself look like "([198.51.100.1])") is never read as an address.
func Parse(value string) (Hop, error) {
	if len(value) > MaxFieldBytes {
		return Hop{}, fmt.Errorf("%w: field is %d bytes long (limit %d)", ErrUnparsable, len(value), MaxFieldBytes)
	}
	v := unfold(value)
	// RFC 5321 §4.4: the date follows the last ";". Clause text never
	// contains a ";" that matters to us, except inside comments (TLS
	// cipher lists), so cut at the last one outside comments.
	v = stripDate(v)
	toks := tokenize(v, false)

	var h Hop
	clauses := splitClauses(toks)
	h.MTA = detectMTA(clauses)
	if len(toks) > 0 && toks[0].kind == comment && hasPrefixFold(toks[0].text, "from ") {
		// "(from HELO [ip]) by host (NAVGW ...)": the whole from part is
		// one comment.
		return parenFrom(h, toks[0].text, clauses)
	}
	if w := clauses["with"]; len(w) > 0 {
		h.With = w[0].text
	}
	if b := clauses["by"]; len(b) > 0 && b[0].kind == word {
		h.By = normName(b[0].text)
	}
	from, hasFrom := clauses["from"]
	if !hasFrom {
		// "by host (Postfix, from userid 0)", "(qmail 1 invoked by uid 0)",
		// Gmail's "by 2002:a05:...": no network client.
		return h, nil
	}
	if repeatedBy(toks) {
		// Only a client's text (a HELO with spaces) can put a second "by"
		// in a field; it could also bring its own "by host (mark)".
		return h, fmt.Errorf("%w: the word \"by\" appears twice outside comments", ErrUnparsable)
	}
	if len(from) > 0 && from[0].kind == word && strings.HasPrefix(from[0].text, "(") && writesNoHelo(h.MTA) {
		// "from ([ip]) by host with MailEnable ESMTP": this MTA writes no
		// HELO word when the client gave none, so the parenthesis opens
		// the MTA's own comment. Only MTAs identified by a mark that the
		// client cannot write get this reading.
		from = splitClauses(tokenize(v, true))["from"]
		h.Helo = ""
		return finishComments(h, "", from)
	}
	if len(from) == 0 || from[0].kind != word {
		return h, fmt.Errorf("%w: nothing after \"from\"", ErrUnparsable)
	}
	h.Helo = from[0].text
	return finishComments(h, from[0].text, from[1:])
}

// finishComments reads the client from the comments (and, for a few MTAs,
// the words) that follow the first word of the from clause.
func finishComments(h Hop, first string, comments []token) (Hop, error) {
	ip, name, ok, err := clientFromComments(comments)
	if err != nil {
		return h, err
	}
	if ok {
		h.IP = ip
		h.ReverseName = name
		if h.MTA == Exim {
			// Exim writes "from NAME ([ip] helo=HELO)": the first word is
			// the verified host name, the HELO is inside the comment.
			h.ReverseName, h.Helo = eximNames(first, comments)
		}
		if h.MTA == Qmail {
			h.ReverseName, h.Helo = qmailNames(first, comments)
		}
		if h.MTA == Momentum || h.MTA == CommuniGate || h.MTA == MXLogic {
			// "from [ip] ([ip:port] helo=HELO)", "from NAME ([ip]
			// verified)": the first word is not a confirmed name.
			h.ReverseName = ""
			if helo, named := heloFrom(comments); named {
				h.Helo = helo
			}
		}
	} else if lit, isLit := addrLiteral(first); isLit && (h.MTA == Exim || namesHelo(comments) || firstIsClient(h.MTA)) {
		// Exim writes "from [ip] (helo=HELO)" when it has no verified name,
		// CommuniGate Pro "from [ip] (account x HELO y)": when a comment
		// names the HELO, the first word is not the HELO but the address.
		// MessageLabs and iomart write "from [ip] by host" and nothing
		// else.
		h.IP = lit
		h.Helo, _ = heloFrom(comments)
	} else if ip, isIP := bareIP(first); isIP && h.MTA == InterScan {
		// "from 157.54.8.23 by host (InterScan E-Mail VirusWall NT)".
		h.IP = ip
		h.Helo = ""
	} else if lit, found := lastWordLiteral(comments); found && (h.MTA == MDaemon || h.MTA == MXLogic) {
		// MDaemon 5: "from HELO [ip] by host [ip] with SMTP (MDaemon...)";
		// MX Logic: "from RDNS [ip] (EHLO helo) by host (mxl_mta-...)".
		// The MTA's literal comes after anything the client chose.
		h.IP = lit
		if h.MTA == MXLogic {
			h.Helo, _ = heloFrom(comments)
		}
	} else if isLocalProtocol(h.With) || localSocket(comments) {
		// "from root by host with local (Exim 4.96)": a local program.
		return h, nil
	} else {
		return h, fmt.Errorf("%w: no client address after \"from %s\"", ErrUnparsable, first)
	}
	if h.ReverseName != "" {
		h.NameVerified = verifies(h.MTA, comments)
	}
	return h, nil
}

// parenFrom reads a field whose from part is one comment: Symantec's
// NAVGW writes "(from HELO [ip]) by host (NAVGW 2.5.2.12) with SMTP".
// Sendmail's local "(from user@localhost) by host" has no client. Any
// other such comment that holds an address is a network client in a form
// this package does not know: refused.
func parenFrom(h Hop, text string, cl map[string][]token) (Hop, error) {
	if b := cl["by"]; len(b) > 0 && b[0].kind == word {
		h.By = normName(b[0].text)
	}
	if w := cl["with"]; len(w) > 0 {
		h.With = w[0].text
	}
	words := strings.Fields(dropNested(text))
	lit, isLit := addrLiteral(words[len(words)-1])
	if h.MTA == NAVGW && isLit && len(words) <= 3 {
		h.IP = lit
		if len(words) == 3 {
			h.Helo = words[1]
		}
		return h, nil
	}
	for _, w := range words {
		if at := strings.LastIndexByte(w, '@'); at >= 0 {
			w = w[at+1:] // "(from user@[ip])"
		}
		if _, ok := addrLiteral(w); ok {
			return h, fmt.Errorf("%w: a client address in \"(%s)\", a form this MTA is not known to write", ErrUnparsable, text)
		}
		if _, ok := bareIP(w); ok {
			return h, fmt.Errorf("%w: a client address in \"(%s)\", a form this MTA is not known to write", ErrUnparsable, text)
		}
	}
	return h, nil
}

// repeatedBy reports a second "by" word outside comments. The word right
// after "from" is the HELO and may be "by".
func repeatedBy(toks []token) bool {
	n := 0
	for i, t := range toks {
		if t.kind == word && strings.EqualFold(t.text, "by") && !(i == 1 && strings.EqualFold(toks[0].text, "from")) {
			n++
		}
	}
	return n > 1
}

// writesNoHelo lists the MTAs whose "from (" opens their own comment: they
// write no HELO word when the client sent an empty one, or never write one.
func writesNoHelo(m MTA) bool {
	switch m {
	case MailEnable, Microsoft, Momentum, WebShield:
		return true
	}
	return false
}

// firstIsClient lists the MTAs that write the client's address literal as
// the first word after "from", where others write the HELO.
func firstIsClient(m MTA) bool {
	return m == MessageLabs || m == Iomart
}

// lastWordLiteral returns the last address literal written as a word (not
// in a comment) among toks.
func lastWordLiteral(toks []token) (netip.Addr, bool) {
	var ip netip.Addr
	found := false
	for _, t := range toks {
		if t.kind != word {
			continue
		}
		if lit, ok := addrLiteral(t.text); ok {
			ip, found = lit, true
		}
	}
	return ip, found
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// verifies reports whether the MTA that wrote the field confirmed the
// client's reverse name with a forward lookup before recording it. Only MTAs
// whose code does this are listed; see README "Which names are trusted".
func verifies(m MTA, comments []token) bool {
	switch m {
	case Postfix, Exim:
		// Postfix records "unknown" unless the name is forward-confirmed
		// (smtpd_peer.c); Exim's sender_host_name is only set after
		// forward verification (host.c host_name_lookup).
		return true
	case Sendmail:
		// Sendmail records an unconfirmed name followed by "(may be forged)".
		for _, c := range comments {
			if strings.Contains(strings.ToLower(c.text), "may be forged") {
				return false
			}
		}
		return true
	}
	return false
}

// localSocket recognises OpenSMTPD's "(name [local])": a submission over its
// local socket, which has no network client.
func localSocket(comments []token) bool {
	for _, c := range comments {
		if c.kind == comment && slices.Contains(strings.Fields(c.text), "[local]") {
			return true
		}
	}
	return false
}

func isLocalProtocol(with string) bool {
	w := strings.ToLower(with)
	// LMTP is the last hop inside a site (Dovecot writes "from NAME by
	// store with LMTP" with no address); HTTP is webmail.
	return w == "local" || strings.HasPrefix(w, "local-") || strings.HasPrefix(w, "lmtp") || w == "http" || w == "https"
}

type tokenKind int

const (
	word tokenKind = iota
	comment
)

type token struct {
	kind tokenKind
	text string // a word, or a comment's content without the outer parentheses
}

func unfold(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

func stripDate(s string) string {
	depth, cut := 0, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ';':
			if depth == 0 {
				cut = i
			}
		}
	}
	if cut >= 0 {
		return s[:cut]
	}
	return s
}

// tokenize splits a field into words and (possibly nested) comments. The
// first word after the keyword "from" is special: see splitClauses. With
// noHelo, that word gets no special treatment: for MTAs that write no HELO.
func tokenize(s string, noHelo bool) []token {
	var toks []token
	afterFrom := false
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case c == '(' && !afterFrom:
			depth, j := 0, i
			for ; j < len(s); j++ {
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			end := min(j, len(s))
			toks = append(toks, token{comment, s[i+1 : end]})
			i = end + 1
		default:
			// Words end at a space. Right after "from", the word is the
			// client's HELO argument: take it whole, parentheses and all,
			// so a HELO cannot open a comment.
			j := i
			for j < len(s) && s[j] != ' ' && (afterFrom || s[j] != '(') {
				j++
			}
			w := s[i:j]
			toks = append(toks, token{word, w})
			afterFrom = !noHelo && !afterFrom && strings.EqualFold(w, "from") && len(toks) == 1
			i = j
		}
	}
	return toks
}

var clauseKeywords = map[string]bool{"from": true, "by": true, "via": true, "with": true, "id": true, "for": true}

// splitClauses groups tokens under the RFC 5321 §4.4 clause keyword that
// precedes them. Only the first occurrence of each keyword opens a clause,
// so a word "for" inside a later clause is not confused with the clause.
func splitClauses(toks []token) map[string][]token {
	cl := map[string][]token{}
	cur := ""
	for i, t := range toks {
		if t.kind == word {
			k := strings.ToLower(t.text)
			// The word right after "from" is the HELO argument, whatever
			// it says (a client may say "EHLO by").
			if clauseKeywords[k] && !(cur == "from" && len(cl["from"]) == 0) {
				if _, seen := cl[k]; !seen && (k != "from" || i == 0) {
					cur = k
					cl[k] = nil
					continue
				}
			}
		}
		if cur != "" {
			cl[cur] = append(cl[cur], t)
		}
	}
	return cl
}

// clientFromComments finds the client address in the comments of the from
// clause: "(name [ip])", "(user@name [ip] (may be forged))", "(user@[ip])",
// "([ip]:port helo=x)", "(1.2.3.4)", "(ip:port)", "(HELO x) (user@1.2.3.4)".
// HELO values ("helo=x", "HELO x") are skipped, and so are the comments in
// which MTAs copy what the client sent after its address (envelope sender,
// authenticated user, TLS details). When several different addresses
// remain, the last wins: every format puts the client-controlled parts
// (HELO, ident) before the address of the connection.
func clientFromComments(comments []token) (netip.Addr, string, bool, error) {
	var (
		ip    netip.Addr
		name  string
		found bool
	)
	for _, c := range comments {
		if c.kind != comment || clientText(c.text) {
			continue
		}
		for _, cand := range commentAddrs(c.text) {
			ip, name, found = cand.ip, cand.name, true
		}
	}
	return ip, name, found, nil
}

// clientText recognises the comments that MTAs write after the address and
// that hold what the client sent: qmail-ldap's "(envelope-sender <x>)",
// Kerio's "(authenticated user x)", Qsmtpd's "(auth=x)", Courier's "(AUTH:
// LOGIN x)", MessageLabs' and Mimecast's "(using TLS...)".
func clientText(text string) bool {
	for _, p := range []string{"envelope-", "authenticated", "auth=", "auth:", "using ", "return-path"} {
		if hasPrefixFold(strings.TrimSpace(text), p) {
			return true
		}
	}
	return false
}

type addrCandidate struct {
	ip   netip.Addr
	name string // the word before the address in the same comment
}

// bareAddr matches qmail's "(1.2.3.4)", "(user@1.2.3.4)" (tcpserver's
// ident), "(user@domain@1.2.3.4)" (qmail-smtpd with AUTH), Microsoft's
// "(10.0.0.1)", XMail's "(1.2.3.4:23198)".
var bareAddr = regexp.MustCompile(`^(?:\S*@)?([0-9A-Fa-f:.]+)$`)

func commentAddrs(text string) []addrCandidate {
	inner := text
	if hasPrefixFold(inner, "HELO ") || hasPrefixFold(inner, "EHLO ") || strings.EqualFold(inner, "HELO") || strings.EqualFold(inner, "EHLO") {
		return nil // qmail and CommuniGate: "(HELO name)"
	}
	// Nested comments ("(may be forged)") carry no address.
	inner = dropNested(inner)
	var out []addrCandidate
	words := strings.Fields(inner)
	for i, w := range words {
		lw := strings.ToLower(w)
		if strings.HasPrefix(lw, "helo=") || strings.HasPrefix(lw, "ident=") {
			continue
		}
		if i > 0 && (strings.EqualFold(words[i-1], "HELO") || strings.EqualFold(words[i-1], "EHLO")) {
			continue // CommuniGate Pro: "(account x HELO [1.2.3.4])"
		}
		if at := strings.LastIndexByte(w, '@'); at >= 0 {
			// Sendmail with an RFC 1413 ident and no reverse name:
			// "(user@[ip])". The user part is the client's; there is no
			// name.
			if ip, ok := addrLiteral(w[at+1:]); ok {
				out = append(out, addrCandidate{ip: ip})
			}
			continue
		}
		if ip, ok := addrLiteral(w); ok {
			name := ""
			if i > 0 {
				name = words[i-1]
				if at := strings.LastIndexByte(name, '@'); at >= 0 {
					name = name[at+1:] // sendmail's "user@name" (RFC 1413 ident)
				}
			}
			out = append(out, addrCandidate{ip, normRevName(name)})
		}
	}
	if len(out) == 0 && len(words) == 1 {
		if m := bareAddr.FindStringSubmatch(words[0]); m != nil {
			if ip, ok := bareIP(m[1]); ok {
				out = append(out, addrCandidate{ip: ip})
			}
		}
	}
	return out
}

// bareIP parses an address written without brackets, "1.2.3.4",
// "2001:db8::1", or an IPv4 address with a port, "1.2.3.4:25".
func bareIP(s string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
		return ip.Unmap(), true
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 && isPort(s[i:]) {
		if ip, err := netip.ParseAddr(s[:i]); err == nil && ip.Is4() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func dropNested(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
			b.WriteRune(' ')
		case r == ')':
			if depth > 0 {
				depth--
			}
			b.WriteRune(' ')
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// addrLiteral parses "[1.2.3.4]", "[IPv6:2001:db8::1]", "[::ffff:1.2.3.4]",
// optionally followed by ":port" (Exim, Postfix port logging) or a stray
// trailing comma.
func addrLiteral(w string) (netip.Addr, bool) {
	if !strings.HasPrefix(w, "[") {
		return netip.Addr{}, false
	}
	end := strings.IndexByte(w, ']')
	if end < 0 {
		return netip.Addr{}, false
	}
	rest := strings.TrimRight(w[end+1:], ",")
	if rest != "" && !isPort(rest) {
		return netip.Addr{}, false
	}
	s := w[1:end]
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		// Momentum and MessageLabs: "[1.2.3.4:25]"; Exim 3:
		// "[1.2.3.4.25]". IPv4 only: in IPv6 the port would be ambiguous.
		if m := v4Port.FindStringSubmatch(s); m != nil {
			if ip4, err4 := netip.ParseAddr(m[1]); err4 == nil {
				return ip4, true
			}
		}
		return netip.Addr{}, false
	}
	if ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

var v4Port = regexp.MustCompile(`^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})[:.]\d{1,5}$`)

func isPort(s string) bool {
	if len(s) < 2 || s[0] != ':' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func normName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

func normRevName(s string) string {
	n := normName(s)
	switch n {
	case "", "unknown", "<unknown>", "unverified":
		return ""
	}
	if _, isLit := addrLiteral(s); isLit {
		return ""
	}
	if _, isIP := bareIP(s); isIP {
		return "" // "(64.52.135.194 [64.52.135.194])": no name
	}
	return n
}

// namesHelo reports whether a comment of the from clause records the HELO
// argument (Exim "helo=x", CommuniGate "HELO x"), or other Exim TCP-info.
func namesHelo(comments []token) bool {
	_, named := heloFrom(comments)
	return named
}

// heloFrom returns the HELO argument recorded in a comment, and whether a
// comment holds TCP-info that is not an address (helo=, port=, ident=, HELO).
func heloFrom(comments []token) (string, bool) {
	named := false
	for _, c := range comments {
		words := strings.Fields(dropNested(c.text))
		for i, w := range words {
			lw := strings.ToLower(w)
			switch {
			case strings.HasPrefix(lw, "helo="):
				return w[5:], true
			case strings.HasPrefix(lw, "port=") || strings.HasPrefix(lw, "ident="):
				named = true
			case (lw == "helo" || lw == "ehlo") && i+1 < len(words):
				return words[i+1], true
			}
		}
	}
	return "", named
}

func eximNames(first string, comments []token) (rev, helo string) {
	helo, _ = heloFrom(comments)
	if _, isLit := addrLiteral(first); isLit {
		return "", helo
	}
	rev = normRevName(first)
	if helo == "" {
		helo = first // Exim omits helo= when it equals the host name.
	}
	return rev, helo
}

func qmailNames(first string, comments []token) (rev, helo string) {
	helo = first
	for _, c := range comments {
		if strings.HasPrefix(strings.ToUpper(c.text), "HELO ") {
			helo = strings.TrimSpace(c.text[5:])
		}
	}
	return normRevName(first), helo
}

var (
	// Sendmail writes "by host ($v/$Z)", "(8.17.1.9/8.17.1.9/Debian-2)":
	// the slash is required, so that an address in the by comment
	// (MDaemon's "by host (192.0.2.1)") is not read as a version.
	sendmailVersion = regexp.MustCompile(`^\d+\.\d+\.\d+[0-9A-Za-z.]*/\S*$`)
	eximVersion     = regexp.MustCompile(`\(Exim \d`)
)

// detectMTA recognises the writer from the marks each MTA leaves right
// after its own name ("by mx (Postfix)") or protocol ("with esmtp (Exim
// 4.96)"). Comments that carry client-chosen text, such as Exim's
// "(envelope-from <...>)", are not looked at.
func detectMTA(cl map[string][]token) MTA {
	byMark := firstComment(cl["by"])
	// Exim: "with esmtps (TLS1.3) tls CIPHER (Exim 4.96) (envelope-from
	// <...>)": its mark may follow TLS details; stop before the envelope
	// sender, which the client chose.
	var with strings.Builder
	for _, t := range cl["with"] {
		if t.kind == comment {
			if strings.HasPrefix(t.text, "envelope-from") {
				break
			}
			with.WriteString(" (" + t.text + ")")
			continue
		}
		with.WriteString(" " + t.text)
	}
	withMark := with.String()
	by := ""
	if b := cl["by"]; len(b) > 0 && b[0].kind == word {
		by = normName(b[0].text)
	}
	switch {
	case strings.HasPrefix(byMark, "Postfix"):
		return Postfix
	case eximVersion.MatchString(withMark):
		return Exim
	case byMark == "OpenSMTPD":
		return OpenSMTPD
	case strings.Contains(withMark, "Microsoft SMTP Server") || strings.HasPrefix(withMark, " Microsoft SMTPSVC"):
		return Microsoft
	case sendmailVersion.MatchString(byMark) || strings.HasPrefix(byMark, "Sendmail"):
		return Sendmail
	case qmailMark(cl):
		return Qmail
	}
	// The marks below are the MTA's own comments in its by clause (after
	// its name, and after its address for MDaemon), or its with clause.
	for _, m := range mtaComments(cl) {
		switch {
		case strings.HasPrefix(m, "CommuniGate Pro "):
			return CommuniGate
		case strings.HasPrefix(m, "Kerio Connect "):
			return Kerio
		case strings.HasPrefix(m, "MDaemon"):
			return MDaemon
		case strings.HasPrefix(m, "ecelerity "):
			return Momentum
		case strings.HasPrefix(m, "mxl_mta-"):
			return MXLogic
		case strings.HasPrefix(m, "NAVGW "):
			return NAVGW
		case strings.HasPrefix(m, "InterScan "):
			return InterScan
		case strings.HasPrefix(m, "IceWarp "):
			return IceWarp
		case m == "Spam Firewall":
			return Barracuda
		case m == "Trend Micro Email Security" || m == "TrendMicro Hosted Email Security":
			return TrendMicro
		case m == "PPS":
			return Proofpoint
		case m == "Zimbra":
			return Zimbra
		}
	}
	switch {
	case strings.HasPrefix(withMark, " [XMail "):
		return XMail
	case strings.HasPrefix(withMark, " MailEnable "):
		return MailEnable
	case strings.HasSuffix(by, ".messagelabs.com") && len(cl["with"]) == 0:
		// "from [ip] by server-3.bemta-4.messagelabs.com id ...".
		return MessageLabs
	case strings.HasSuffix(by, ".iomartmail.com") && len(cl["with"]) == 0 && len(cl["by"]) == 1:
		// "from [ip] by mta2.iomartmail.com; date".
		return Iomart
	case webShieldMark(cl):
		return WebShield
	case megMark(cl):
		return McAfeeMEG
	case strings.HasSuffix(by, ".cudaops.com"):
		// Barracuda Email Security Service: "from HELO (NAME [ip]) by
		// mx1403.ess.rzc.cudaops.com (version=TLSv1.2 ...)", no mark.
		return Barracuda
	}
	return Unknown
}

// mtaComments returns the comments of the by and with clauses, up to the
// first one that holds client-chosen text: "by host (envelope-from <x>)
// (ecelerity 3.6)" puts the sender before the mark, so that comment is
// skipped rather than ending the search.
func mtaComments(cl map[string][]token) []string {
	var out []string
	for _, k := range []string{"by", "with"} {
		for _, t := range cl[k] {
			if t.kind != comment {
				continue
			}
			if clientText(t.text) || strings.ContainsAny(t.text, "<@") {
				continue
			}
			out = append(out, strings.TrimSpace(t.text))
		}
	}
	return out
}

// webShieldIDs matches the queue ids of McAfee WebShield SMTP:
// "via smtp id 021b_7e19a55a_ea7e_11da_83a9_00304811e63a".
var webShieldIDs = regexp.MustCompile(`^[0-9a-f]{4}_[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}$`)

func webShieldMark(cl map[string][]token) bool {
	via, id := cl["via"], cl["id"]
	return len(via) == 1 && strings.EqualFold(via[0].text, "smtp") && len(id) == 1 && webShieldIDs.MatchString(id[0].text)
}

// megMark recognises McAfee Email Gateway: "from HELO (NAME [ip]) by host
// with smtp (TLS: ...) id 217f_635e_83e29499_ad20_4b04_a081_ac4515c041ef",
// a queue id like WebShield's, with one more group, after "with smtp".
func megMark(cl map[string][]token) bool {
	with, id := cl["with"], cl["id"]
	return len(with) > 0 && strings.EqualFold(with[0].text, "smtp") && len(id) == 1 && megIDs.MatchString(id[0].text)
}

var megIDs = regexp.MustCompile(`^[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}$`)

func firstComment(toks []token) string {
	for _, t := range toks {
		if t.kind == comment {
			return strings.TrimSpace(t.text)
		}
	}
	return ""
}

// qmailMark recognises qmail-smtpd's "from NAME (HELO x) (ip) by host with
// SMTP": a HELO comment in the from clause and nothing after the by host.
func qmailMark(cl map[string][]token) bool {
	for _, t := range cl["from"] {
		if t.kind == comment && strings.HasPrefix(t.text, "HELO ") {
			return len(cl["by"]) == 1
		}
	}
	return false
}
