package machineimage

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

func policy(c Clock) undoPolicy {
	return undoPolicy{clock: c, grace: 7 * time.Second, timeout: time.Hour, retry: time.Second, attempts: 3, log: func(string, ...any) {}}
}

func TestUndoRunsInReverseOrder(t *testing.T) {
	var (
		mu    sync.Mutex
		order []string
		u     undoStack
	)
	for _, id := range []string{"disk", "nic", "data", "vm", "image"} {
		u.push(id, func(context.Context) error { mu.Lock(); order = append(order, id); mu.Unlock(); return nil })
	}
	u.keep("image")
	if left := u.run(context.Background(), policy(newFakeClock())); left != nil {
		t.Errorf("left = %v", left)
	}
	if want := []string{"vm", "data", "nic", "disk"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	if ids := u.ids(); len(ids) != 0 {
		t.Errorf("stack after run = %v", ids)
	}
}

func TestUndoRetriesBoundedAndReportsLeft(t *testing.T) {
	var u undoStack
	tries := 0
	u.push("a", func(context.Context) error { return nil })
	u.push("b", func(context.Context) error { tries++; return errors.New("in use") })
	left := u.run(context.Background(), policy(newFakeClock()))
	if !reflect.DeepEqual(left, []string{"b"}) || tries != 3 {
		t.Errorf("left = %v after %d tries", left, tries)
	}
}

// A cancelled run starts every delete at once; a delete that waits on
// another (a NIC on its VM) succeeds on a retry; one that hangs is given
// up at the grace deadline and reported.
func TestUndoCancelledStartsAllAndKeepsTheDeadline(t *testing.T) {
	clk := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var u undoStack
	vmGone := make(chan struct{})
	hung := make(chan struct{})
	started := make(chan string, 3)
	u.push("disk", func(ctx context.Context) error { // hangs: a long delete
		started <- "disk"
		close(hung)
		<-ctx.Done()
		return ctx.Err()
	})
	u.push("nic", func(context.Context) error {
		select {
		case <-vmGone:
			return nil
		default:
			return errors.New("nic is attached")
		}
	})
	u.push("vm", func(context.Context) error { started <- "vm"; close(vmGone); return nil })
	done := make(chan []string)
	go func() { done <- u.run(ctx, policy(clk)) }()
	<-hung
	select {
	case left := <-done:
		t.Fatalf("returned before the deadline: %v", left)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(7 * time.Second)
	select {
	case left := <-done:
		if !reflect.DeepEqual(left, []string{"disk"}) {
			t.Errorf("left = %v, want [disk]", left)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not return at the deadline")
	}
}

// Cancellation during a sequential undo starts the rest at once.
func TestUndoCancelledMidway(t *testing.T) {
	clk := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	var u undoStack
	var mu sync.Mutex
	var deleted []string
	del := func(id string) func(context.Context) error {
		return func(context.Context) error { mu.Lock(); deleted = append(deleted, id); mu.Unlock(); return nil }
	}
	release := make(chan struct{})
	u.push("a", del("a"))
	u.push("b", del("b"))
	u.push("vm", func(ctx context.Context) error {
		cancel()
		<-release
		return nil
	})
	done := make(chan []string)
	go func() { done <- u.run(ctx, policy(clk)) }()
	// a and b are deleted while vm's delete still runs.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(deleted)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if left := <-done; left != nil {
		t.Errorf("left = %v", left)
	}
}
