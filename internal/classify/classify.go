// Package classify says what kind of trap hit a message is, so that a
// site lists only the senders of spam and not the innocent MTAs that
// bounce or answer mail forged in a trap's name.
//
// dstc classifies each hit and the report carries the class in its signed
// DST-Class field (docs/PROTOCOL.md §2.10); dstd lists only the classes
// its policy.list_classes names. The rules, in the order they are tried:
//
//  1. authenticated: the Received field that the site's MX wrote for the
//     hop that entered the site records SMTP AUTH: its protocol is one of
//     RFC 3848's (ESMTPA, ESMTPSA, LMTPA, LMTPSA) or RFC 6531's UTF8
//     forms, or a comment after the client's address says so (Postfix
//     "(Authenticated sender: user)", Sendmail "(authenticated bits=0)").
//     The sender logged in: it is a customer, not a spammer's bot, and
//     dstc never reports it.
//  2. backscatter: the envelope sender is null (<>), as RFC 5321 §4.5.5
//     requires of every delivery status notification and RFC 3834 §3.3
//     asks of automatic responses: it is a bounce, most likely of spam
//     that forged the trap as its sender, and its sender is the innocent
//     MTA that bounced it. The envelope sender is known from the MTA
//     (dstc -f, or $SENDER as Postfix local(8) and Exim's pipe transport
//     set it) or from a Return-Path field above the MX's Received field
//     (added at final delivery, RFC 5321 §4.4). A Return-Path below it
//     came with the message and is ignored: the sender wrote it.
//  3. backscatter: the message is a delivery status notification
//     (RFC 3464) or a message disposition notification (RFC 8098): its
//     Content-Type is multipart/report with report-type delivery-status or
//     disposition-notification, or message/delivery-status. This rule
//     applies only when the envelope sender is unknown or is a
//     MAILER-DAEMON address: a real DSN or MDN has a null envelope sender,
//     so one with another sender is spam dressed as a bounce.
//  4. auto-reply: an Auto-Submitted field (RFC 3834 §5) other than "no",
//     or one of the older marks of vacation programs, "X-Autoreply: yes",
//     an X-Autorespond field or "Precedence: auto_reply". Precedence bulk,
//     list and junk are not: spam uses them as much as mailing lists do.
//  5. spam: everything else.
//
// The header rules of 3 and 4 read fields the sender writes, so a spammer
// can make spam look like a bounce or an auto-reply. The report is then
// stored, counted and relayed but not listed: the cost is a missed listing,
// never a wrong one, and a site whose traps see such spam can list the
// class (policy.list_classes).
package classify

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
)

// Class is the kind of a trap hit: the value of the DST-Class field.
type Class string

// The classes dstc assigns.
const (
	Spam          Class = "spam"
	Backscatter   Class = "backscatter"
	AutoReply     Class = "auto-reply"
	Authenticated Class = "authenticated"
)

// Known are the classes a report may carry, in the order the
// documentation lists them. Authenticated is not among them: such hits
// are never reported.
var Known = []Class{Spam, Backscatter, AutoReply}

// MaxNameLen bounds a class name on the wire.
const MaxNameLen = 32

// CheckName reports whether s is a well-formed class name: 1 to 32
// lower-case letters, digits and hyphens, starting with a letter. Names
// this version does not know are well formed too: a newer site may send
// them, and they are stored but not listed unless policy.list_classes
// names them.
func CheckName(s string) error {
	if s == "" {
		return fmt.Errorf("empty class name")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("class name %q is longer than %d characters", s, MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return fmt.Errorf("class name %q: only lower-case letters, digits and hyphens, starting with a letter", s)
		}
	}
	return nil
}

// IsKnown reports whether c is one of Known.
func IsKnown(c Class) bool {
	for _, k := range Known {
		if c == k {
			return true
		}
	}
	return false
}

// Input is what Classify looks at.
type Input struct {
	// Header is the message's header section, as read.
	Header []byte
	// MXField is the position among the Received fields (0 the top one)
	// of the field the site's MX wrote for the hop that entered the site:
	// received.Answer.Index.
	MXField int
	// Sender is the envelope sender as the MTA gave it (dstc -f or
	// $SENDER), when SenderKnown: "" or "<>" for the null sender.
	Sender      string
	SenderKnown bool
}

// Result is a class and the rule that chose it, for the log.
type Result struct {
	Class  Class
	Reason string
}

// Classify applies the rules of the package documentation to a trapped
// message.
func Classify(in Input) Result {
	fields := headerFields(in.Header)
	// The MX's Received field, and whether a field comes before it.
	mx, mxPos := "", -1
	n := 0
	for i, f := range fields {
		if f.is("Received") {
			if n == in.MXField {
				mx, mxPos = f.value, i
				break
			}
			n++
		}
	}
	if mxPos >= 0 {
		if why := authenticated(mx); why != "" {
			return Result{Authenticated, why}
		}
	}

	sender, senderKnown, senderFrom := in.Sender, in.SenderKnown, "the MTA"
	if !senderKnown && mxPos >= 0 {
		// Only a Return-Path that the site's own hosts added: one
		// above the MX's field.
		for _, f := range fields[:mxPos] {
			if f.is("Return-Path") {
				sender, senderKnown, senderFrom = f.value, true, "Return-Path"
				break
			}
		}
	}
	if senderKnown && isNullSender(sender) {
		return Result{Backscatter, "null envelope sender (from " + senderFrom + ")"}
	}

	if !senderKnown || isMailerDaemon(sender) {
		for _, f := range fields {
			if !f.is("Content-Type") {
				continue
			}
			if why := reportType(f.value); why != "" {
				return Result{Backscatter, why}
			}
			break
		}
	}

	for _, f := range fields {
		v := strings.ToLower(strings.TrimSpace(f.value))
		switch {
		case f.is("Auto-Submitted"):
			// RFC 3834 §5: "no" and its parameters, as in
			// "no; comment", mean a human sent it.
			kw, _, _ := strings.Cut(v, ";")
			if kw = strings.TrimSpace(kw); kw != "no" && kw != "" {
				return Result{AutoReply, "Auto-Submitted: " + kw}
			}
		case f.is("X-Autoreply") && v == "yes":
			return Result{AutoReply, "X-Autoreply: yes"}
		case f.is("X-Autorespond"):
			return Result{AutoReply, "X-Autorespond field"}
		case f.is("Precedence") && v == "auto_reply":
			return Result{AutoReply, "Precedence: auto_reply"}
		}
	}
	return Result{Spam, "no sign of a bounce, an auto-reply or a login"}
}

// isNullSender reports whether an envelope sender, as an MTA passes it or
// as a Return-Path field holds it, is the null reverse-path. Postfix
// pipe(8) writes the null sender of ${sender} as MAILER-DAEMON (its
// null_sender attribute), so a bare MAILER-DAEMON without a domain is the
// null sender too; a MAILER-DAEMON@domain is a real address.
func isNullSender(s string) bool {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '('); i >= 0 {
		s = strings.TrimSpace(s[:i]) // a comment after the address
	}
	switch {
	case s == "", s == "<>", strings.TrimSpace(strings.Trim(s, "<>")) == "":
		return true
	case strings.EqualFold(s, "MAILER-DAEMON"):
		return true
	}
	return false
}

// isMailerDaemon reports whether s is a MAILER-DAEMON@domain address, the
// sender some MTAs use for their bounces instead of the null one.
func isMailerDaemon(s string) bool {
	s = strings.Trim(strings.TrimSpace(s), "<>")
	local, _, ok := strings.Cut(s, "@")
	return ok && strings.EqualFold(local, "mailer-daemon")
}

// reportType returns why a Content-Type value makes the message a
// delivery status or disposition notification, or "".
func reportType(v string) string {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	switch mt {
	case "multipart/report":
		switch rt := strings.ToLower(params["report-type"]); rt {
		case "delivery-status", "disposition-notification":
			return "a " + rt + " report (multipart/report)"
		}
	case "message/delivery-status", "message/global-delivery-status":
		return "a delivery status notification (" + mt + ")"
	}
	return ""
}

// authProtocols are the protocol names (RFC 3848, RFC 6531 §3.7.3) a
// receiver writes in the "with" clause of a session with SMTP AUTH.
var authProtocols = map[string]bool{
	"esmtpa": true, "esmtpsa": true, "lmtpa": true, "lmtpsa": true,
	"utf8smtpa": true, "utf8smtpsa": true, "utf8lmtpa": true, "utf8lmtpsa": true,
}

// authComments are the comments MTAs write after the client's address
// when it authenticated: Postfix (smtpd_sasl_authenticated_header),
// Sendmail ("(authenticated bits=N)", "(authenticated as user)", and MIT's
// "(User authenticated as user)", in internal/received's public corpus),
// Kerio ("(authenticated user x)").
var authComments = []string{"authenticated sender:", "authenticated bits=", "authenticated as ", "user authenticated as ", "authenticated user "}

// authenticated returns why the MX's Received field records SMTP AUTH,
// or "". It reads only what the MX writes itself: the protocol in the
// first "with" after "by" (everything between "by" and "with" is the MX's
// name and comments), and the comments between the client's address and
// "by" (the client's HELO comes before its address in every format).
func authenticated(field string) string {
	toks := scan(field)
	by := -1
	for i, t := range toks {
		if !t.comment && strings.EqualFold(t.text, "by") {
			if by >= 0 {
				// A second "by" can only come from the client's text:
				// nothing in this field can be told apart.
				return ""
			}
			by = i
		}
	}
	if by < 0 {
		return ""
	}
	for i := by + 1; i+1 < len(toks); i++ {
		if !toks[i].comment && strings.EqualFold(toks[i].text, "with") {
			if p := toks[i+1]; !p.comment && authProtocols[strings.ToLower(p.text)] {
				return "the MX recorded SMTP AUTH (with " + p.text + ")"
			}
			break
		}
	}
	// The comments after the last one that holds an address literal
	// (the client's), before "by".
	start := 0
	for i := 0; i < by; i++ {
		if toks[i].comment && strings.Contains(toks[i].text, "[") {
			start = i + 1
		}
	}
	if start == 0 {
		return ""
	}
	for _, t := range toks[start:by] {
		if !t.comment {
			continue
		}
		c := strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(t.text, "("), ")")))
		if c == "authenticated" {
			return "the MX recorded SMTP AUTH (" + t.text + ")"
		}
		for _, p := range authComments {
			if strings.HasPrefix(c, p) {
				return "the MX recorded SMTP AUTH (" + t.text + ")"
			}
		}
	}
	return ""
}

type token struct {
	text    string
	comment bool
}

// scan splits a Received field into words and top-level comments (with
// their parentheses). An unbalanced "(" runs to the end, so that a client
// that opens a comment in its HELO hides "by" and nothing counts; an
// unbalanced ")" is a word character.
func scan(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			depth, j := 0, i
			for ; j < len(s); j++ {
				if s[j] == '\\' {
					j++
					continue
				}
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			end := min(j+1, len(s))
			toks = append(toks, token{text: s[i:end], comment: true})
			i = end
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n(", rune(s[j])) {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks
}

type field struct{ name, value string }

func (f field) is(name string) bool { return strings.EqualFold(f.name, name) }

// headerFields returns the fields of a header section in order, unfolded.
// Lines that are not fields are skipped, as received.Fields does.
func headerFields(header []byte) []field {
	var out []field
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) > 0 {
				out[len(out)-1].value += " " + strings.TrimSpace(string(line))
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		out = append(out, field{name: string(bytes.TrimRight(name, " \t")), value: strings.TrimSpace(string(value))})
	}
	return out
}
