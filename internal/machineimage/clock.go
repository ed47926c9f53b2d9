package machineimage

import (
	"context"
	"time"
)

// Clock is the pipeline's time: every wait and every deadline goes through
// it, so that tests of hour-long waits run in milliseconds.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or until ctx is done (returning its error).
	Sleep(ctx context.Context, d time.Duration) error
	// After is a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or ctx.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After is time.After.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// backoff is a poll interval that doubles from min up to max.
type backoff struct{ next, max time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{next: min, max: max} }

// step returns the next interval, never more than limit when limit > 0.
func (b *backoff) step(limit time.Duration) time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	if limit > 0 && d > limit {
		d = limit
	}
	return d
}
