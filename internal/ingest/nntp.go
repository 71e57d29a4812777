package ingest

import (
	"context"
	"fmt"

	"github.com/dst-traps/dst/internal/nntp"
)

// NNTPHandler returns the nntp.Handler through which the NNTP server hands
// articles to in: POST is an injection, IHAVE/CHECK/TAKETHIS are relays.
func NNTPHandler(in *Ingester) nntp.Handler { return handler{in} }

type handler struct{ in *Ingester }

func (h handler) Post(ctx context.Context, s *nntp.Session, article []byte) nntp.Verdict {
	// Anyone allowed to post is named, not only dstc: the log must say
	// who tried when a POST is refused (a control article, say). The
	// connection id ties it to the NNTP server's own lines.
	from := fmt.Sprintf("local poster on the Unix socket (connection %d)", s.ID)
	if !s.Unix && s.Remote != nil {
		from = fmt.Sprintf("local poster at %s (connection %d)", s.Remote, s.ID)
	}
	_, v := h.in.Inject(ctx, article, from)
	return toNNTP(v)
}

func (h handler) Check(_ context.Context, _ *nntp.Session, msgID string) nntp.Verdict {
	return toNNTP(h.in.Offer(msgID))
}

func (h handler) Receive(ctx context.Context, s *nntp.Session, msgID string, article []byte) nntp.Verdict {
	return toNNTP(h.in.Receive(ctx, msgID, article, s.Peer))
}

func toNNTP(v Verdict) nntp.Verdict {
	switch v.Kind {
	case Accepted:
		return nntp.Accepted()
	case Duplicate:
		return nntp.Refused("duplicate: " + v.Reason)
	case Refused:
		return nntp.Refused(v.Reason)
	}
	return nntp.Deferred(v.Reason)
}
