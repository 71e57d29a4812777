package store

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
)

// relayedRecord is what the store keeps of a report stored only to relay:
// enough for dstctl why to show it, nothing that counts. Layout 1 kept it
// in its own bucket (encodeRelayed); layout 2 in the arrival.
type relayedRecord struct {
	IP     netip.Addr
	Origin string
	Hit    time.Time // when it arrived
	Class  string    // "" is spam
	Reason string    // why it lists nothing here
}

func encodeRelayed(r relayedRecord) []byte {
	e := encoder{b: make([]byte, 0, 32+len(r.Origin)+len(r.Class)+len(r.Reason))}
	e.byte(formatV1)
	e.addr(r.IP)
	e.string(r.Origin)
	e.time(r.Hit)
	e.string(r.Class)
	e.string(r.Reason)
	return e.b
}

func decodeRelayed(v []byte) (relayedRecord, error) {
	d := decoder{b: v}
	d.version()
	r := relayedRecord{IP: d.addr(), Origin: d.string(), Hit: d.time(), Class: d.string(), Reason: d.string()}
	if d.err != nil {
		return relayedRecord{}, fmt.Errorf("relayed report record: %w", d.err)
	}
	return r, nil
}

// putRelayed sets the relayed record of an arrival and indexes it by
// address.
func putRelayed(b buckets, r Report, s *stored, rec relayedRecord) error {
	s.Relayed = &rec
	if err := s.save(b); err != nil {
		return err
	}
	if err := indexReport(b, b.relayedIP, r.IP, r.Origin, s.key); err != nil {
		return fmt.Errorf("index relayed report by address: %w", err)
	}
	return nil
}

// relayedOf returns the reports of ip stored only to relay.
func relayedOf(b buckets, ip netip.Addr) ([]ReportDetail, error) {
	var out []ReportDetail
	prefix := ipKey(ip)
	c := b.relayedIP.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		_, key, _, ok := splitReportIPKey(k)
		if !ok {
			continue
		}
		s, err := loadArrival(b, key)
		if err != nil {
			return nil, err
		}
		if s == nil || s.Relayed == nil {
			continue
		}
		r := s.Relayed
		out = append(out, ReportDetail{MessageID: s.MessageID, ReportInfo: ReportInfo{IP: r.IP, Origin: r.Origin, Hit: r.Hit},
			RelayOnly: true, RelayReason: r.Reason, Class: r.Class})
	}
	return out, nil
}
