//go:build !linux

package nntp

import "net"

// peerUID is not known off Linux: local connections then share the local
// class's limit without a per-user one.
func peerUID(net.Conn) (uint32, bool) { return 0, false }
