package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	bolt "go.etcd.io/bbolt"
)

// Origins are numbered (layout 4). An origin's name (a domain of 10 to 30
// bytes) was stored three times per report: in the listing's list of
// origins, in the report index key (report_ip) and in the report record
// of the arrivals log, two of them in B+trees filled in random order. A
// site hears from a few dozen origins at most, so each gets a number,
// given once and never reused, that takes a byte in those three places;
// two small buckets map names to numbers and back.
const (
	bucketOriginNum  = "origin_num"  // origin name -> its number (uvarint)
	bucketOriginName = "origin_name" // uvarint number -> origin name; the bucket's sequence is the last number given
)

// originNames turns origin names into numbers and back, for the codecs.
// The store's is originTable; the tests use others.
type originNames interface {
	// originNum returns the number of name, giving it one if it has none
	// (in a write transaction).
	originNum(name string) (uint64, error)
	// originName returns the name of number n.
	originName(n uint64) (string, error)
}

// originTable is the numbering of one transaction, with what it has
// looked up so far: a scan of a million listings names the same few
// origins over and over.
type originTable struct {
	nums, names *bolt.Bucket
	byName      map[string]uint64
	byNum       map[uint64]string
}

func newOriginTable(nums, names *bolt.Bucket) *originTable {
	return &originTable{nums: nums, names: names}
}

// remember caches a numbering; the maps are made on first use, as most
// transactions (a history lookup) never name an origin.
func (t *originTable) remember(name string, n uint64) {
	if t.byName == nil {
		t.byName, t.byNum = make(map[string]uint64), make(map[uint64]string)
	}
	t.byName[name], t.byNum[n] = n, name
}

// lookup returns the number of name, and false if it has none: then no
// record or index entry names it.
func (t *originTable) lookup(name string) (uint64, bool, error) {
	if n, ok := t.byName[name]; ok {
		return n, true, nil
	}
	v := t.nums.Get([]byte(name))
	if v == nil {
		return 0, false, nil
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) || n == 0 {
		return 0, false, fmt.Errorf("number of origin %s: the record is damaged", name)
	}
	t.remember(name, n)
	return n, true, nil
}

func (t *originTable) originNum(name string) (uint64, error) {
	if n, ok, err := t.lookup(name); ok || err != nil {
		return n, err
	}
	if name == "" || len(name) > maxOriginLen {
		return 0, fmt.Errorf("origin %q must be a domain name of 1 to %d bytes", name, maxOriginLen)
	}
	n, err := t.names.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("number origin %s: %w", name, err)
	}
	k := binary.AppendUvarint(nil, n)
	if err := t.nums.Put([]byte(name), k); err != nil {
		return 0, fmt.Errorf("number origin %s: %w", name, err)
	}
	if err := t.names.Put(k, []byte(name)); err != nil {
		return 0, fmt.Errorf("number origin %s: %w", name, err)
	}
	t.remember(name, n)
	return n, nil
}

func (t *originTable) originName(n uint64) (string, error) {
	if name, ok := t.byNum[n]; ok {
		return name, nil
	}
	v := t.names.Get(binary.AppendUvarint(nil, n))
	if len(v) == 0 {
		return "", fmt.Errorf("origin number %d has no name: the file is damaged", n)
	}
	name := string(v)
	t.remember(name, n)
	return name, nil
}

// The report index (report_ip, relayed_ip) is keyed by the address key,
// the origin's number as a uvarint, and the arrival key of the report.
// A uvarint is prefix-free (no number's encoding begins another's), so
// the keys of one origin's reports of an address are exactly those that
// start with the address key and its number.

// reportIPKey returns the report index key of the report at arrival key
// key, by origin number n, of ip.
func reportIPKey(ip netip.Addr, n uint64, key []byte) []byte {
	return append(binary.AppendUvarint(ipKey(ip), n), key...)
}

// reportIPPrefix returns the report index prefix of origin's reports of
// ip, and false if the origin has no number (so no report here).
func reportIPPrefix(b buckets, ip netip.Addr, origin string) ([]byte, bool, error) {
	n, ok, err := b.on.lookup(origin)
	if !ok || err != nil {
		return nil, false, err
	}
	return binary.AppendUvarint(ipKey(ip), n), true, nil
}

// afterPrefix returns the first key past every key that starts with p.
// The prefixes of the report index end in a uvarint's last byte, which
// is below 0x80, so adding one never carries.
func afterPrefix(p []byte) []byte {
	k := bytes.Clone(p)
	k[len(k)-1]++
	return k
}

// splitReportIPKey returns the origin number and arrival key of a
// report_ip or relayed_ip key, and the length of its prefix (address key
// and number).
func splitReportIPKey(k []byte) (origin uint64, key []byte, prefixLen int, ok bool) {
	n := ipKeyLenOf(k)
	if n == 0 || len(k) <= n {
		return 0, nil, 0, false
	}
	origin, m := binary.Uvarint(k[n:])
	if m <= 0 || len(k)-n-m != arrivalKeyLen {
		return 0, nil, 0, false
	}
	return origin, k[n+m:], n + m, true
}

// indexReport puts the report index entry of the report at s.key by
// origin of ip into index (report_ip or relayed_ip).
func indexReport(b buckets, index *bolt.Bucket, ip netip.Addr, origin string, key []byte) error {
	n, err := b.on.originNum(origin)
	if err != nil {
		return err
	}
	return index.Put(reportIPKey(ip, n, key), nil)
}

// unindexReport removes the entry indexReport put.
func unindexReport(b buckets, index *bolt.Bucket, ip netip.Addr, origin string, key []byte) error {
	p, ok, err := reportIPPrefix(b, ip, origin)
	if !ok || err != nil {
		return err
	}
	return index.Delete(append(p, key...))
}
