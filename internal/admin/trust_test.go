package admin

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
)

func (b *fakeBackend) Origins(context.Context) ([]OriginStatus, error) {
	if b.fail != nil {
		return nil, b.fail
	}
	return []OriginStatus{{Origin: "site-b.test", Operator: "acme", State: "probation", Reports: 4, Corroborated: 1, CorroboratedShare: 0.25, Needed: 3, Earned: 1}}, nil
}

func (b *fakeBackend) Why(_ context.Context, ip netip.Addr) (WhyResult, error) {
	if b.fail != nil {
		return WhyResult{}, b.fail
	}
	return WhyResult{IP: ip, Reports: []WhyReport{{MessageID: "<1@site-b.test>", Origin: "site-b.test", Operator: "acme",
		Class: "spam", Signature: "valid", Probation: true, Received: "from x ([" + ip.String() + "]) by mx"}}}, nil
}

func TestHandlerOrigins(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	code, _, body := get(t, srv.URL+"/v1/origins")
	var os []OriginStatus
	if err := json.Unmarshal([]byte(body), &os); code != 200 || err != nil {
		t.Fatalf("origins = %d %s", code, body)
	}
	if len(os) != 1 || os[0].Operator != "acme" || os[0].State != "probation" || os[0].CorroboratedShare != 0.25 {
		t.Errorf("origins = %+v", os)
	}
	c := NewClient(srv.URL)
	defer c.Close()
	if got, err := c.Origins(context.Background()); err != nil || len(got) != 1 || got[0].Earned != 1 {
		t.Errorf("Client.Origins = %+v, %v", got, err)
	}
}

func TestHandlerWhy(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	if code, _, _ := get(t, srv.URL+"/v1/why?ip=nonsense"); code != 400 {
		t.Errorf("why with a bad address = %d, want 400", code)
	}
	c := NewClient(srv.URL)
	defer c.Close()
	res, err := c.Why(context.Background(), netip.MustParseAddr("203.0.113.9"))
	if err != nil || res.IP.String() != "203.0.113.9" || len(res.Reports) != 1 || !res.Reports[0].Probation || res.Reports[0].Received != "from x ([203.0.113.9]) by mx" {
		t.Errorf("Client.Why = %+v, %v", res, err)
	}
}
