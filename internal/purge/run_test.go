package purge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a Deleter that records the IDs it is asked to delete, fails
// those in fail, and hangs (until its context ends) on those in hang.
type recorder struct {
	mu       sync.Mutex
	calls    []string
	fail     map[string]error
	hang     map[string]bool
	ignore   bool // a hung delete ignores its context too
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func (r *recorder) Delete(ctx context.Context, id string) error {
	r.mu.Lock()
	r.calls = append(r.calls, id)
	r.mu.Unlock()
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxIn.Load()
		if n <= m || r.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	if r.hang[id] {
		if r.ignore {
			time.Sleep(2 * time.Second)
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
	time.Sleep(5 * time.Millisecond)
	return r.fail[id]
}

func entries(rs ...Resource) []Entry {
	var out []Entry
	for _, r := range rs {
		out = append(out, Entry{Resource: r, Reason: "test"})
	}
	return out
}

func kinds(es []Entry) []Kind {
	var out []Kind
	for _, e := range es {
		out = append(out, e.Resource.Kind)
	}
	return out
}

func TestOrder(t *testing.T) {
	in := entries(
		image(rg, "img", now, nil), disk(rg, "d1", "", "", now, nil), version(rg, "def", "1.0.0", now, nil),
		ip(rg, "ip", "", "", now, nil), nic(rg, "nic", "", now, nil), vm(rg, "vm1", "", now, nil),
		disk(rg, "d2", "", "", now, nil), vm(rg, "vm2", "", now, nil),
	)
	got := Order(in)
	assert.Equal(t, []Kind{KindVM, KindVM, KindNIC, KindPublicIP, KindDisk, KindDisk, KindImageVersion, KindImage}, kinds(got))
	assert.Equal(t, "vm1", got[0].Resource.Name, "stable within a kind")
	assert.Equal(t, "d1", got[4].Resource.Name, "stable within a kind")
	assert.Equal(t, KindImage, in[0].Resource.Kind, "the input is not reordered")
}

// A purge of one run's leftovers: VM, NIC, public IP, OS disk, plus an
// unrelated disk and an old image.
func leftovers() (Decision, map[string]string) {
	vmA, nicA := vmID(rg, "vm-a"), nicID(rg, "nic-a")
	d := Decision{
		Delete: entries(
			image(rg, "img", now, nil),
			disk(rg, "os-a", "Attached", vmA, now, nil),
			disk(rg, "free", "Unattached", "", now, nil),
			ip(rg, "ip-a", "", nicA, now, nil),
			nic(rg, "nic-a", vmA, now, nil),
			vm(rg, "vm-a", "deallocated", now, nil),
		),
		Keep: []Entry{{Resource: vm(rg, "busy", "running", now, nil), Reason: "VM is not deallocated"}},
	}
	ids := map[string]string{}
	for _, e := range d.Delete {
		ids[e.Resource.Name] = e.Resource.ID
	}
	return d, ids
}

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Resource.Name)
	}
	return out
}

func TestRunDeletesInDependencyOrder(t *testing.T) {
	plan, ids := leftovers()
	rec := &recorder{}
	rep := Run(context.Background(), rec, plan, time.Second, 1)
	assert.Equal(t, []string{ids["vm-a"], ids["nic-a"], ids["ip-a"], ids["os-a"], ids["free"], ids["img"]}, rec.calls)
	assert.Equal(t, []string{"vm-a", "nic-a", "ip-a", "os-a", "free", "img"}, names(rep.Deleted))
	assert.Empty(t, rep.Failures)
	assert.Equal(t, []string{"busy"}, names(rep.Kept))
	assert.False(t, rep.Failed())
}

func TestRunFailedVMKeepsWhatDependsOnIt(t *testing.T) {
	plan, ids := leftovers()
	rec := &recorder{fail: map[string]error{ids["vm-a"]: errors.New("conflict: VM is locked")}}
	rep := Run(context.Background(), rec, plan, time.Second, 4)
	assert.Equal(t, []string{ids["vm-a"], ids["free"], ids["img"]}, rec.calls, "nothing that depends on the VM is tried")
	assert.Equal(t, []string{"free", "img"}, names(rep.Deleted))
	require.Len(t, rep.Failures, 1)
	assert.Equal(t, "vm-a", rep.Failures[0].Resource.Name)
	assert.EqualError(t, rep.Failures[0].Err, "conflict: VM is locked")
	kept := map[string]string{}
	for _, e := range rep.Kept {
		kept[e.Resource.Name] = e.Reason
	}
	assert.Equal(t, map[string]string{
		"busy":  "VM is not deallocated",
		"nic-a": "its VM could not be deleted",
		"os-a":  "its VM could not be deleted",
		"ip-a":  "its NIC could not be deleted",
	}, kept)
	assert.True(t, rep.Failed())
}

func TestRunFailureDoesNotStopItsLevel(t *testing.T) {
	d1, d2, d3 := disk(rg, "d1", "", "", now, nil), disk(rg, "d2", "", "", now, nil), disk(rg, "d3", "", "", now, nil)
	rec := &recorder{fail: map[string]error{d2.ID: errors.New("boom")}}
	rep := Run(context.Background(), rec, Decision{Delete: entries(d1, d2, d3, image(rg, "img", now, nil))}, time.Second, 1)
	assert.Equal(t, []string{"d1", "d3", "img"}, names(rep.Deleted))
	require.Len(t, rep.Failures, 1)
	assert.Equal(t, "d2", rep.Failures[0].Resource.Name)
}

func TestRunHungDeleteTimesOut(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		hung := disk(rg, "hung", "", "", now, nil)
		rec := &recorder{hang: map[string]bool{hung.ID: true}, ignore: ignore}
		start := time.Now()
		rep := Run(context.Background(), rec, Decision{Delete: entries(hung, disk(rg, "ok", "", "", now, nil))}, 50*time.Millisecond, 2)
		assert.Less(t, time.Since(start), time.Second, "ignores its context: %v", ignore)
		require.Len(t, rep.Failures, 1)
		assert.Equal(t, "hung", rep.Failures[0].Resource.Name)
		assert.Contains(t, rep.Failures[0].Err.Error(), "delete timed out after 50ms")
		assert.Equal(t, []string{"ok"}, names(rep.Deleted))
		assert.True(t, rep.Failed())
	}
}

func TestRunConcurrency(t *testing.T) {
	var ds []Resource
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		ds = append(ds, disk(rg, n, "", "", now, nil))
	}
	rec := &recorder{}
	rep := Run(context.Background(), rec, Decision{Delete: entries(ds...)}, time.Second, 3)
	assert.Len(t, rep.Deleted, 8)
	assert.Equal(t, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, names(rep.Deleted), "the report keeps the plan's order")
	assert.LessOrEqual(t, rec.maxIn.Load(), int32(3))
	assert.Greater(t, rec.maxIn.Load(), int32(1))

	rec = &recorder{}
	Run(context.Background(), rec, Decision{Delete: entries(ds...)}, time.Second, 0)
	assert.Equal(t, int32(1), rec.maxIn.Load(), "concurrency below 1 is one at a time")
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := &recorder{}
	rep := Run(ctx, rec, Decision{Delete: entries(disk(rg, "d", "", "", now, nil))}, time.Second, 1)
	assert.Empty(t, rec.calls)
	require.Len(t, rep.Failures, 1)
	assert.Contains(t, rep.Failures[0].Err.Error(), "not attempted: context canceled")
}

func TestReport(t *testing.T) {
	plan, ids := leftovers()
	rec := &recorder{fail: map[string]error{ids["img"]: errors.New("image in use | by something\nelse")}}
	rep := Run(context.Background(), rec, plan, time.Second, 2)
	md := rep.Markdown()
	assert.True(t, strings.HasPrefix(md, "## Purge\n\n5 deleted, 1 failed, 1 kept.\n"), md)
	assert.Contains(t, md, "### Failed\n\n| kind | group | name | reason | error |\n|---|---|---|---|---|\n| image | rg-us-east-win | img | test | image in use \\| by something else |\n")
	assert.Contains(t, md, "### Deleted\n\n| kind | group | name | reason |\n|---|---|---|---|\n| vm | rg-us-east-win | vm-a | test |\n")
	assert.Contains(t, md, "### Kept\n\n| kind | group | name | reason |\n|---|---|---|---|\n| vm | rg-us-east-win | busy | VM is not deallocated |\n")
	assert.NotContains(t, md, "To delete")
	lines := rep.Lines()
	assert.Contains(t, lines, "deleted vm rg-us-east-win/vm-a: test")
	assert.Contains(t, lines, "failed to delete image rg-us-east-win/img: test: image in use | by something\nelse")
	assert.Contains(t, lines, "kept vm rg-us-east-win/busy: VM is not deallocated")
	assert.Len(t, lines, 7)
}

func TestPreview(t *testing.T) {
	plan, _ := leftovers()
	rep := Preview(plan)
	assert.True(t, rep.DryRun)
	assert.False(t, rep.Failed())
	assert.Equal(t, []string{"vm-a", "nic-a", "ip-a", "os-a", "free", "img"}, names(rep.Planned))
	assert.Empty(t, rep.Deleted)
	md := rep.Markdown()
	assert.True(t, strings.HasPrefix(md, "## Purge (dry run: nothing deleted)\n\n6 to delete, 1 kept.\n"), md)
	assert.Contains(t, md, "### To delete\n")
	assert.Contains(t, rep.Lines(), "would delete vm rg-us-east-win/vm-a: test")
}

// The pure part and the driver together: what Candidates plans, Run
// deletes, and every resource ends up in the report once.
func TestCandidatesThenRun(t *testing.T) {
	vmA := vmID(rg, "vm-a")
	inv := Inventory{Resources: []Resource{
		vm(rg, "vm-a", "deallocated", ago(2*time.Hour), run("")),
		nic(rg, "nic-a", vmA, ago(2*time.Hour), run("")),
		disk(rg, "os-a", "Attached", vmA, ago(2*time.Hour), run("")),
		vm(rg, "busy", "running", ago(2*time.Hour), run("")),
		vm(other, "theirs", "deallocated", ago(2*time.Hour), nil),
	}}
	rep := Run(context.Background(), &recorder{fail: map[string]error{vmA: errors.New("nope")}}, Candidates(inv, policy(), now), time.Second, 2)
	assert.Len(t, rep.Deleted, 0)
	assert.Len(t, rep.Failures, 1)
	assert.Len(t, rep.Kept, 4)
}
