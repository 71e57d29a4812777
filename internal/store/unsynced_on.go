//go:build dstexp_unsynced

package store

// Unsynced is true in a build with the dstexp_unsynced tag: every DB then
// commits without fsync, whatever Options.NoSync says. It exists to
// measure what durability costs a network of sites
// (test/bench/README.md, "Fifth pass"); a crash of such a build can lose
// acknowledged reports and, on power loss, the whole file. Never ship it.
const Unsynced = true
