// Package action carries out what dstd does with each stored event: write
// the report log, run an external program, and whatever else implements
// Action. Each action has its own durable queue in the store and its own
// Run loop, so a slow or failing action delays only itself, and an event
// leaves a queue only when its action acknowledges it. An action's Wants
// is its subscription in the store (store.DB.Subscribe): the store
// enqueues the events it wants in the transaction that makes them. Adding
// an action is a package that implements Action and one line in
// internal/site that appends it to the site's actions.
//
// # Batches
//
// An action that implements BatchAction (DNS UPDATE) gets its events in
// batches of up to BatchSize, in queue order, one batch at a time. A
// failed batch is retried whole, with the same backoff, and nothing queued
// after it is handed over until it is done, so a later event never
// overtakes an earlier one. An error wrapping ErrNeedsAdmin (a refused
// key) is logged as an error with its text as the message; the events are
// kept.
//
// # Delivery
//
// Events are delivered at least once. An action that succeeded may see an
// event again if dstd stops, or the store fails, between the action's
// success and the acknowledgement. A failed attempt is retried with
// exponential backoff and jitter, up to a configured number of attempts;
// an error wrapping ErrPermanent drops the event at once. Both drops are
// logged at level ERROR.
//
// # Report log
//
// The "log" action appends one line per event to a text file (mode 0640),
// written with a single write(2) as soon as the event is handled, and
// synced before the event is acknowledged: one fsync for the lines written
// within SyncDelay (50ms) of each other (SyncAction). Lines look like this:
//
//	2026-11-29T10:10:10Z report ip=203.0.113.7 origin=site-a.example id=<x@site-a.example> listed=yes expires=2026-11-30T10:10:10Z class=spam
//	2026-11-29T10:12:00Z report ip=198.51.100.9 origin=site-b.example id=<y@site-b.example> listed=no expires=- class=spam
//	2026-11-29T10:13:00Z report ip=192.0.2.25 origin=site-a.example id=<z@site-a.example> listed=no expires=- class=backscatter
//	2026-11-30T10:10:10Z expired ip=203.0.113.7
//	2026-11-30T11:00:00Z delisted ip=203.0.113.7 by=dstctl
//
// The first field is the time of the event in UTC (RFC 3339), the second
// the kind of event; then come key=value pairs in the fixed order shown.
// class is the report's class (DST-Class: spam, backscatter, auto-reply;
// spam when the report has none); a report of a class that
// policy.list_classes leaves out gets a line with listed=no.
// A value that is empty is written as "-" (expires=- means "not listed");
// a value that contains a space, a double quote, a control character or
// non-ASCII text, or that is "-" itself, is written as a Go/C style quoted
// string ("..."), as in logfmt, so one line is always one event and a value
// never runs into the next field. In simulation (policy.simulate) a report
// that would list says listed=simulated instead of listed=yes, with the
// expiry the listing would have. On SIGHUP dstd reopens
// the file, for logrotate: rotate with "create" or by moving the file, not
// with copytruncate.
//
// # External program
//
// The "program" action runs a command for every report this site stores
// (its own and those from peers), whether or not the address ends up
// listed. It is how a site feeds reports to something else: a firewall, a
// ticket system, a local archive.
//
// The command is an argument vector (no shell: to use shell syntax, give
// ["/bin/sh", "-c", "..."]). It runs with:
//
//   - stdin: the trapped message as enclosed in the report (RFC 5965
//     message/rfc822 part, or only its header section when the origin sent
//     text/rfc822-headers), with CRLF line ends. When the report article is
//     no longer stored (pruned from the history) or cannot be parsed, stdin
//     is empty and dstd logs a warning. (A store that cannot be read at all
//     makes dstd retry later instead.)
//   - environment: only PATH (dstd's own), the extra variables of
//     ProgramConfig.Env (dstd's configuration has no key for them yet, so
//     dstd sets none), and these, which always win:
//     DST_EVENT=report,
//     DST_IP (the reported address, e.g. 203.0.113.7 or 2001:db8::1),
//     DST_ORIGIN (the site that made the report, e.g. site-a.example),
//     DST_MESSAGE_ID (the report's Message-ID, with its angle brackets),
//     DST_LISTED (yes or no: listed after this report, or still below the
//     number of origins the policy requires; simulated when it would be
//     listed but policy.simulate publishes nothing),
//     DST_EXPIRES (RFC 3339 UTC time the listing ends, empty when
//     DST_LISTED=no).
//   - working directory: dstd's; stdout is discarded.
//   - its own process group, so that a timeout kills the program and
//     everything it started.
//
// Exit status 0 means done. Any other status, 75 (EX_TEMPFAIL) included,
// and running longer than the timeout (default one minute; the whole
// process group is then killed with SIGKILL) mean "try again later": the
// event is retried with backoff until the configured maximum number of
// attempts, then dropped with an error in dstd's log. The first KiB of the
// program's stderr appears in dstd's log for each failure, and in "dstctl
// queues" for the last one. Several reports may be handled at once, up to the configured
// concurrency, so the program must not assume it runs alone; and, since
// delivery is at least once, it should tolerate seeing the same
// DST_MESSAGE_ID twice.
package action
