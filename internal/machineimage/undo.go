package machineimage

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// undoStack holds the deletes of what a run created, in creation order.
// Every create pushes its undo right after it succeeds, so that whatever
// happens next, the run can take back exactly what it made.
type undoStack struct {
	mu      sync.Mutex
	entries []undoEntry
}

type undoEntry struct {
	id  string // the resource, as Cloud.Delete takes it
	del func(ctx context.Context) error
}

func (u *undoStack) push(id string, del func(ctx context.Context) error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.entries = append(u.entries, undoEntry{id: id, del: del})
}

// keep drops a resource from the stack: the run's product, once it is
// complete, is no longer something to undo.
func (u *undoStack) keep(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.entries[:0]
	for _, e := range u.entries {
		if e.id != id {
			out = append(out, e)
		}
	}
	u.entries = out
}

// ids are the resources on the stack, in creation order.
func (u *undoStack) ids() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, len(u.entries))
	for i, e := range u.entries {
		out[i] = e.id
	}
	return out
}

// undoPolicy bounds an undo.
type undoPolicy struct {
	clock Clock
	// grace is how long a cancelled run may spend deleting: GitHub kills a
	// cancelled job about 10 s after asking it to stop.
	grace time.Duration
	// timeout bounds an undo that was not cancelled.
	timeout time.Duration
	// retry is the pause before deleting again a resource whose delete
	// failed (typically: still attached to one being deleted).
	retry time.Duration
	// attempts is how many times a delete is tried when not cancelled.
	attempts int
	log      func(format string, a ...any)
}

// run deletes everything on the stack and returns the IDs it could not
// delete (or did not see deleted in time). Deletes run one at a time in
// reverse creation order, because a VM holds its NIC and disks; when
// parent is cancelled, before or during the undo, the rest are all started
// at once and retried until the grace period ends, so that what depends
// on a deleted VM goes as soon as the VM does, and the run returns in
// time. The deletes themselves never see parent's cancellation.
func (u *undoStack) run(parent context.Context, p undoPolicy) (left []string) {
	u.mu.Lock()
	entries := append([]undoEntry(nil), u.entries...)
	u.entries = nil
	u.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(parent))
	defer stop()

	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(entries))
	done := make([]bool, len(entries))
	pending := 0
	var rushed atomic.Bool
	start := func(i int) {
		pending++
		e := entries[i]
		go func() {
			var err error
			for attempt := 1; ; attempt++ {
				if err = e.del(ctx); err == nil || ctx.Err() != nil {
					break
				}
				if !rushed.Load() && attempt >= p.attempts {
					break
				}
				p.log("undo: delete %s: %v (trying again)", e.id, err)
				if p.clock.Sleep(ctx, p.retry) != nil {
					break
				}
			}
			results <- result{i, err}
		}()
	}
	next := len(entries) - 1 // the next to start when sequential
	var deadline <-chan time.Time
	rush := func() {
		rushed.Store(true)
		deadline = p.clock.After(p.grace)
		for i := next; i >= 0; i-- {
			start(i)
		}
		next = -1
	}
	if parent.Err() != nil {
		rush()
	} else {
		deadline = p.clock.After(p.timeout)
		start(next)
		next--
	}
	cancelled := parent.Done()
	if rushed.Load() {
		cancelled = nil
	}
loop:
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err != nil {
				p.log("undo: delete %s: %v", entries[r.i].id, r.err)
			} else {
				done[r.i] = true
			}
			if next >= 0 && !rushed.Load() {
				start(next)
				next--
			}
		case <-cancelled:
			cancelled = nil
			p.log("undo: cancelled; starting the %d remaining deletes at once, waiting at most %s", next+1, p.grace)
			rush()
		case <-deadline:
			break loop
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if !done[i] {
			left = append(left, entries[i].id)
		}
	}
	return left
}
