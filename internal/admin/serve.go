package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// shutdownGrace is how long Serve lets running requests (a long listing)
// finish after ctx is done before it cuts them.
const shutdownGrace = 5 * time.Second

// Serve answers requests on l with h until ctx is done, then shuts down
// gracefully and returns nil. It closes l.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		// No WriteTimeout: streaming a million listings takes a while.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin endpoint on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	// ctx is done already; Shutdown needs a deadline of its own.
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close() // cut what is left; the deadline error is the news
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin endpoint on %s: %w", l.Addr(), err)
		}
		return fmt.Errorf("admin endpoint on %s: requests still running at shutdown: %w", l.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin endpoint on %s: %w", l.Addr(), err)
	}
	return nil
}
