package dnsbl

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestOriginInterning(t *testing.T) {
	x := NewIndex()
	for i := range 100 {
		// A fresh slice each time, as the store decodes one per listing.
		x.Set(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Entry{Origins: []string{"site-a.example", "site-b.example"}})
	}
	if len(x.sets) != 2 || len(x.setIDs) != 1 || x.sets[1].refs != 100 {
		t.Fatalf("sets %d, ids %d, refs %d; want one shared set with 100 references", len(x.sets), len(x.setIDs), x.sets[1].refs)
	}
	e1, _ := x.Get(netip.MustParseAddr("10.0.0.1"))
	e2, _ := x.Get(netip.MustParseAddr("10.0.0.2"))
	if &e1.Origins[0] != &e2.Origins[0] {
		t.Error("two listings with the same origins do not share the slice")
	}

	// The index owns its copy: changing the caller's slice changes nothing.
	in := []string{"x.example"}
	ip := netip.MustParseAddr("10.0.1.1")
	x.Set(ip, Entry{Origins: in})
	in[0] = "changed"
	if e, _ := x.Get(ip); !slices.Equal(e.Origins, []string{"x.example"}) {
		t.Errorf("origins %q after the caller changed its slice", e.Origins)
	}

	// The key is unambiguous: {"ab","c"} and {"a","bc"} are two sets.
	x.Set(netip.MustParseAddr("10.0.2.1"), Entry{Origins: []string{"ab", "c"}})
	x.Set(netip.MustParseAddr("10.0.2.2"), Entry{Origins: []string{"a", "bc"}})
	if e, _ := x.Get(netip.MustParseAddr("10.0.2.2")); !slices.Equal(e.Origins, []string{"a", "bc"}) {
		t.Errorf("origins %q, want [a bc]", e.Origins)
	}

	// Updating the only listing of a set to another set, or removing it,
	// frees the set; the slot is reused and nothing grows.
	x.Set(ip, Entry{Origins: []string{"y.example"}})
	x.Remove(netip.MustParseAddr("10.0.2.1"))
	x.Remove(netip.MustParseAddr("10.0.2.2"))
	n := len(x.sets)
	for i := range 1000 {
		o := []string{"hostile-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		x.Set(ip, Entry{Origins: o})
		if e, _ := x.Get(ip); !slices.Equal(e.Origins, o) {
			t.Fatalf("origins %q, want %q", e.Origins, o)
		}
	}
	if len(x.sets) > n+1 || len(x.setIDs) != 2 {
		t.Errorf("after 1000 distinct sets on one listing: %d slots (was %d), %d live sets", len(x.sets), n, len(x.setIDs))
	}
	for i := range 100 {
		x.Remove(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	x.Remove(ip)
	if len(x.setIDs) != 0 || len(x.sets)-1 != len(x.freeSets) {
		t.Errorf("empty index: %d live sets, %d slots, %d free", len(x.setIDs), len(x.sets), len(x.freeSets))
	}

	// No origins: no set at all.
	x.Set(ip, Entry{})
	if e, _ := x.Get(ip); e.Origins != nil || len(x.setIDs) != 0 {
		t.Errorf("origins %q, %d sets for an entry without origins", e.Origins, len(x.setIDs))
	}
}

func TestEntryRoundTrip(t *testing.T) {
	s, x := newTestServer(t)
	loc := time.FixedZone("X", 5*3600+1800)
	in := Entry{
		Expires:   time.Date(2026, 11, 30, 12, 34, 56, 987654321, loc),
		FirstSeen: time.Date(2026, 11, 29, 1, 2, 3, 999999999, time.UTC),
		Hits:      123456,
		Origins:   []string{"o1", "o2"},
	}
	ip := netip.MustParseAddr("192.0.2.7")
	x.Set(ip, in)
	got, ok := x.Get(ip)
	if !ok {
		t.Fatal("not found")
	}
	if !got.Expires.Equal(in.Expires.Truncate(time.Second)) || !got.FirstSeen.Equal(in.FirstSeen.Truncate(time.Second)) || got.Hits != in.Hits || !slices.Equal(got.Origins, in.Origins) {
		t.Errorf("got %+v, want %+v at second precision", got, in)
	}
	// The TXT answer is the same as from the full-precision entry.
	name := s.reverseName(ip)
	if a, b := s.txtRR(name, ip, &in).String(), s.txtRR(name, ip, &got).String(); a != b {
		t.Errorf("TXT %s, want %s", b, a)
	}

	// Zero times stay zero; out-of-range values are clamped.
	x.Set(ip, Entry{Hits: -5})
	if got, _ := x.Get(ip); !got.Expires.IsZero() || !got.FirstSeen.IsZero() || got.Hits != 0 {
		t.Errorf("zero entry came back as %+v", got)
	}
	x.Set(ip, Entry{Expires: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), FirstSeen: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), Hits: 1 << 40})
	got, _ = x.Get(ip)
	if got.Expires.Unix() != 1 || got.FirstSeen.Unix() != 1<<32-1 || got.Hits != 1<<32-1 {
		t.Errorf("clamped entry came back as %+v", got)
	}
}

func TestAddressFamilies(t *testing.T) {
	x := NewIndex()
	v4 := netip.MustParseAddr("1.2.3.4")
	mapped := netip.MustParseAddr("::ffff:1.2.3.4")
	v6 := netip.MustParseAddr("2001:db8::1")
	x.Set(v4, Entry{Hits: 4})
	x.Set(mapped, Entry{Hits: 46})
	x.Set(netip.MustParseAddr("2001:db8::1%eth0"), Entry{Hits: 6}) // zone dropped
	x.Set(netip.Addr{}, Entry{Hits: 99})                           // ignored
	if x.Len() != 3 {
		t.Errorf("Len %d, want 3", x.Len())
	}
	for ip, hits := range map[netip.Addr]int{v4: 4, mapped: 46, v6: 6} {
		if e, ok := x.Get(ip); !ok || e.Hits != hits {
			t.Errorf("Get(%v) = %d, %v; want %d", ip, e.Hits, ok, hits)
		}
	}
	if _, ok := x.Get(netip.MustParseAddr("1.2.3.5")); ok {
		t.Error("unlisted address found")
	}
	_, ls, _ := x.snapshot()
	var got []string
	for _, l := range ls {
		got = append(got, l.ip.String())
	}
	slices.Sort(got)
	if want := []string{"1.2.3.4", "2001:db8::1", "::ffff:1.2.3.4"}; !slices.Equal(got, want) {
		t.Errorf("snapshot %q, want %q", got, want)
	}
	x.Remove(mapped)
	if _, ok := x.Get(v4); !ok || x.Len() != 2 {
		t.Error("removing the IPv4-mapped address touched the IPv4 one")
	}
}

// TestENTModel checks the empty-non-terminal answers against a direct
// computation from the listed set, through random adds and removes with
// many neighbours sharing prefixes.
func TestENTModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := NewIndex()
	listed := map[netip.Addr]bool{}
	randIP := func() netip.Addr {
		if r.IntN(2) == 0 {
			// Few /8s and /16s, so prefixes collide often.
			return netip.AddrFrom4([4]byte{byte(r.IntN(3)), byte(r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(4))})
		}
		var a [16]byte
		a[0], a[7], a[8], a[15] = byte(r.IntN(2)), byte(r.IntN(3)), byte(r.IntN(2)), byte(r.IntN(3))
		return netip.AddrFrom16(a)
	}
	check := func() {
		t.Helper()
		for range 200 {
			ip := randIP()
			if ip.Is4() {
				u := addr4(ip)
				for n := 1; n <= 3; n++ {
					want := false
					for l := range listed {
						if l.Is4() && addr4(l)>>(32-8*n) == u>>(32-8*n) {
							want = true
						}
					}
					if got := x.hasBelow4(u>>(32-8*n), n); got != want {
						t.Fatalf("hasBelow4(%v/%d) = %v, want %v", ip, 8*n, got, want)
					}
				}
				continue
			}
			for n := 1; n <= 31; n++ {
				p, _ := ip.Prefix(4 * n)
				want := false
				for l := range listed {
					if l.Is6() && p.Contains(l) {
						want = true
					}
				}
				if got := x.hasBelow6(p); got != want {
					t.Fatalf("hasBelow6(%v) = %v, want %v", p, got, want)
				}
			}
		}
	}
	for i := range 3000 {
		ip := randIP()
		if r.IntN(3) == 0 {
			x.Remove(ip)
			delete(listed, ip)
		} else {
			x.Set(ip, entry)
			listed[ip] = true
		}
		if i%100 == 0 {
			check()
		}
	}
	for ip := range listed {
		x.Remove(ip)
	}
	clear(listed)
	check()
	if len(x.ent6a) != 0 || len(x.ent6b) != 0 || x.ent4.sub != [256]*ent4sub{} {
		t.Error("counters left after removing everything")
	}
}
