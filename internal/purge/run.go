package purge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Deleter deletes one resource by its ID and returns when the deletion is
// done (or failed); internal/azure implements it.
type Deleter interface {
	Delete(ctx context.Context, id string) error
}

// level is a kind's place in the deletion order.
//
// Azure refuses to delete a resource another still uses, so users go
// before what they use: a VM holds its NICs and disks; a NIC holds its
// public IP through its IP configuration; a gallery image version is
// made from an image, and a pool references the version, so versions go
// before images. Kinds without a rule come last (Candidates never plans
// them).
func level(k Kind) int {
	switch k {
	case KindVM:
		return 0
	case KindNIC:
		return 1
	case KindPublicIP:
		return 2
	case KindDisk:
		return 3
	case KindImageVersion:
		return 4
	case KindImage:
		return 5
	}
	return 6
}

// Order sorts deletes into dependency order: VMs, NICs, public IPs,
// disks, gallery image versions, images; the order within a kind is kept.
func Order(deletes []Entry) []Entry {
	out := append([]Entry(nil), deletes...)
	sort.SliceStable(out, func(i, j int) bool {
		return level(out[i].Resource.Kind) < level(out[j].Resource.Kind)
	})
	return out
}

// Failure is a delete that failed.
type Failure struct {
	Entry
	Err error
}

// Report is what a purge did: every resource of the plan is in exactly one
// of Deleted, Failures and Kept (a dry run's deletes are in Planned).
type Report struct {
	// DryRun says that nothing was deleted: Planned lists what would be.
	DryRun   bool
	Planned  []Entry
	Deleted  []Entry
	Failures []Failure
	Kept     []Entry
}

// Failed tells whether a delete failed (the purge exits non-zero).
func (r Report) Failed() bool { return len(r.Failures) > 0 }

// Preview is the report of a dry run of the plan: nothing is deleted.
func Preview(plan Decision) Report {
	return Report{DryRun: true, Planned: Order(plan.Delete), Kept: append([]Entry(nil), plan.Keep...)}
}

// Run deletes the plan's deletes in dependency order (Order), one level
// at a time and up to concurrency deletes at once within a level, each
// awaited for at most timeout. A failure does not stop the rest of its
// level, but what depends on a resource that could not be deleted (the
// NICs and disks of a VM, the public IP of a NIC) is kept: its delete
// would fail anyway.
func Run(ctx context.Context, d Deleter, plan Decision, timeout time.Duration, concurrency int) Report {
	if concurrency < 1 {
		concurrency = 1
	}
	rep := Report{Kept: append([]Entry(nil), plan.Keep...)}
	ordered := Order(plan.Delete)
	notDeleted := map[string]bool{} // IDs of the resources this run failed to (or did not) delete
	for start := 0; start < len(ordered); {
		end := start
		for end < len(ordered) && level(ordered[end].Resource.Kind) == level(ordered[start].Resource.Kind) {
			end++
		}
		results := make([]error, end-start)
		todo := make([]bool, end-start)
		for i, e := range ordered[start:end] {
			if why := blockedBy(e.Resource, notDeleted); why != "" {
				rep.Kept = append(rep.Kept, Entry{e.Resource, why})
				notDeleted[idKey(e.Resource.ID)] = true
				continue
			}
			todo[i] = true
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, concurrency)
		for i, e := range ordered[start:end] {
			if !todo[i] {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				results[i] = deleteOne(ctx, d, e.Resource.ID, timeout)
			}()
		}
		wg.Wait()
		for i, e := range ordered[start:end] {
			switch {
			case !todo[i]:
			case results[i] != nil:
				rep.Failures = append(rep.Failures, Failure{e, results[i]})
				notDeleted[idKey(e.Resource.ID)] = true
			default:
				rep.Deleted = append(rep.Deleted, e)
			}
		}
		start = end
	}
	return rep
}

// blockedBy names the resource r is attached to that could not be
// deleted, or "".
func blockedBy(r Resource, notDeleted map[string]bool) string {
	if r.AttachedVM != "" && (r.Kind == KindNIC || r.Kind == KindDisk) {
		if notDeleted[idKey(r.AttachedVM)] {
			return "its VM could not be deleted"
		}
	}
	if r.AttachedNIC != "" && r.Kind == KindPublicIP {
		if notDeleted[idKey(r.AttachedNIC)] {
			return "its NIC could not be deleted"
		}
	}
	return ""
}

// deleteOne awaits one delete for at most timeout. A Deleter that ignores
// its context is not waited for beyond timeout either: its goroutine is
// left to finish on its own, and the delete counts as failed.
func deleteOne(ctx context.Context, d Deleter, id string, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not attempted: %w", err)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- d.Delete(ctx, id) }()
	select {
	case err := <-done:
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("delete timed out after %s (Azure may still complete it): %w", timeout, err)
		}
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("delete timed out after %s (Azure may still complete it)", timeout)
		}
		return fmt.Errorf("delete interrupted: %w", ctx.Err())
	}
}
