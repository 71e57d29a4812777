package store

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
)

// relayedRecord is what the store keeps of a report stored only to relay:
// enough for dstctl why to show it, nothing that counts.
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

func putRelayed(b buckets, r Report, rec relayedRecord) error {
	if err := b.relayed.Put([]byte(r.MessageID), encodeRelayed(rec)); err != nil {
		return fmt.Errorf("store relayed report: %w", err)
	}
	if err := b.relayedIP.Put(joinKey(reportIPPrefix(r.IP, r.Origin), []byte(r.MessageID)), nil); err != nil {
		return fmt.Errorf("index relayed report by address: %w", err)
	}
	return nil
}

// deleteRelayed forgets a relayed report (history pruning); none is fine.
func deleteRelayed(b buckets, id []byte) error {
	v := b.relayed.Get(id)
	if v == nil {
		return nil
	}
	r, err := decodeRelayed(v)
	if err != nil {
		return err
	}
	if err := b.relayedIP.Delete(joinKey(reportIPPrefix(r.IP, r.Origin), id)); err != nil {
		return fmt.Errorf("remove relayed report index entry: %w", err)
	}
	return b.relayed.Delete(id)
}

// relayedOf returns the reports of ip stored only to relay.
func relayedOf(b buckets, ip netip.Addr) ([]ReportDetail, error) {
	var out []ReportDetail
	prefix := ipKey(ip)
	c := b.relayedIP.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		_, id, ok := splitReportIPKey(k)
		if !ok {
			continue
		}
		v := b.relayed.Get(id)
		if v == nil {
			continue
		}
		r, err := decodeRelayed(v)
		if err != nil {
			return nil, err
		}
		out = append(out, ReportDetail{MessageID: string(id), ReportInfo: ReportInfo{IP: r.IP, Origin: r.Origin, Hit: r.Hit},
			RelayOnly: true, RelayReason: r.Reason, Class: r.Class})
	}
	return out, nil
}
