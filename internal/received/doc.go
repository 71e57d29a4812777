// Package received reads the Received header fields (RFC 5321 §4.4) that mail
// transfer agents prepend to a message, and finds the address of the host that
// handed the message to the site's MX.
package received
