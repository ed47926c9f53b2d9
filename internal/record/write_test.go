package record

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/require"
)

func TestWriteFirstAndSecond(t *testing.T) {
	remote := newRemote(t)
	clone := newClone(t, remote)
	head := headHash(t, clone)
	w := testWriter(clone)
	w.Author = object.Signature{Name: "records bot", Email: "bot@example.com"}

	first, err := w.Write(context.Background(), disk("win10", "v1"))
	require.NoError(t, err)
	require.Equal(t, first, remoteTip(t, remote, "cib-records"))
	c := history(t, clone, first)
	require.Len(t, c, 1, "the first write is an orphan commit")
	require.Empty(t, c[0].ParentHashes)
	require.Equal(t, "record disk prod/azure/win10 ("+fp("v1")[:19]+")\n", c[0].Message)
	require.Equal(t, "records bot", c[0].Author.Name)
	require.Equal(t, "bot@example.com", c[0].Author.Email)
	require.True(t, testTime.Equal(c[0].Author.When), "%s", c[0].Author.When)
	require.Equal(t, c[0].Author, c[0].Committer)
	files := treeFiles(t, c[0])
	require.Equal(t, []string{"records/prod/azure/disk/win10.json"}, files)
	assertCleanClone(t, clone, head)

	second, err := w.Write(context.Background(), disk("win11", "v1"), machine("win10", "rg", "v1"))
	require.NoError(t, err)
	c = history(t, clone, second)
	require.Len(t, c, 2)
	require.Equal(t, []plumbing.Hash{first}, c[0].ParentHashes)
	require.Equal(t, "record 2 builds\n\n"+
		"disk prod/azure/win11 ("+fp("v1")[:19]+")\n"+
		"machine prod/azure/win10/rg ("+fp("v1")[:19]+")\n", c[0].Message)
	require.Equal(t, []string{
		"records/prod/azure/disk/win10.json",
		"records/prod/azure/disk/win11.json",
		"records/prod/azure/machine/win10/rg.json",
	}, treeFiles(t, c[0]))

	// Local refs follow the push, so a Read right after sees the write.
	repo, err := git.PlainOpen(clone)
	require.NoError(t, err)
	for _, name := range []plumbing.ReferenceName{trackingRef, localRef} {
		ref, err := repo.Reference(name, true)
		require.NoError(t, err)
		require.Equal(t, second, ref.Hash(), name)
	}
	assertCleanClone(t, clone, head)
	gitFsck(t, remote)
}

func TestWriteReplaceKeepsOthers(t *testing.T) {
	remote := newRemote(t)
	clone := newClone(t, remote)
	head := headHash(t, clone)
	w := testWriter(clone)
	ctx := context.Background()
	_, err := w.Write(ctx, disk("a", "v1"), disk("b", "v1"), pool("releng/w", "v1"))
	require.NoError(t, err)
	tip, err := w.Write(ctx, disk("a", "v2"))
	require.NoError(t, err)

	// Read from the remote so that nothing local can stand in for the push.
	set, src, err := Read(remote, "", "")
	require.NoError(t, err)
	require.Equal(t, tip.String(), src.Commit)
	require.Equal(t, []Record{disk("a", "v2"), disk("b", "v1"), pool("releng/w", "v1")}, set.All())

	c := history(t, remote, tip)
	require.Len(t, c, 2)
	changes, err := diffParent(c[0])
	require.NoError(t, err)
	require.Equal(t, []string{"records/prod/azure/disk/a.json"}, changes, "only the replaced record changes")
	assertCleanClone(t, clone, head)
	gitFsck(t, remote)
}

func TestWriteGitTreeOrder(t *testing.T) {
	// "prod-x" sorts before "prod" in git's tree order ('-' < '/'), but after
	// it in plain string order: a tree written in the wrong order fails fsck.
	remote := newRemote(t)
	clone := newClone(t, remote)
	a, b, c := disk("a", "v1"), disk("a", "v1"), disk("a.b", "v1")
	b.Environment = "prod-x"
	_, err := testWriter(clone).Write(context.Background(), a, b, c)
	require.NoError(t, err)
	_, err = testWriter(clone).Write(context.Background(), machine("a", "rg", "v1"), machine("a-b", "rg", "v1"))
	require.NoError(t, err)
	gitFsck(t, remote)
	set, _, err := Read(remote, "", "")
	require.NoError(t, err)
	require.Equal(t, 5, set.Len())
}

func TestWriteTimeDefaultsToNowInUTC(t *testing.T) {
	remote := newRemote(t)
	clone := newClone(t, remote)
	r := disk("a", "v1")
	r.Time = time.Time{}
	w := testWriter(clone)
	now := time.Date(2025, 6, 7, 10, 11, 12, 0, time.FixedZone("CEST", 2*3600))
	w.Now = func() time.Time { return now }
	_, err := w.Write(context.Background(), r)
	require.NoError(t, err)
	set, _, err := Read(remote, "", "")
	require.NoError(t, err)
	got, _ := set.Disk("prod", "azure", "a")
	require.Equal(t, now.UTC(), got.Time)
	require.Equal(t, time.UTC, got.Time.Location())
}

func TestWriteToEmptyRemote(t *testing.T) {
	// A repository whose remote has no refs at all, not even main.
	remote := filepath.Join(t.TempDir(), "empty.git")
	_, err := git.PlainInit(remote, true)
	require.NoError(t, err)
	local := t.TempDir()
	repo, err := git.PlainInit(local, false)
	require.NoError(t, err)
	_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remote}})
	require.NoError(t, err)

	var log []string
	w := testWriter(local)
	w.Log = func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	h, err := w.Write(context.Background(), disk("a", "v1"))
	require.NoError(t, err)
	require.Equal(t, h, remoteTip(t, remote, "cib-records"))
	require.Contains(t, strings.Join(log, "\n"), "has no branch cib-records yet")
}

func TestWriteFromBareRepository(t *testing.T) {
	remote := newRemote(t)
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	_, err := git.PlainClone(mirror, true, &git.CloneOptions{URL: remote})
	require.NoError(t, err)
	h, err := testWriter(mirror).Write(context.Background(), disk("a", "v1"))
	require.NoError(t, err)
	require.Equal(t, h, remoteTip(t, remote, "cib-records"))
	_, src, err := Read(mirror, "", "")
	require.NoError(t, err)
	require.Equal(t, h.String(), src.Commit)
}

func TestWriteFromShallowClone(t *testing.T) {
	// actions/checkout fetches one commit by default.
	remote := newRemote(t)
	_, err := testWriter(newClone(t, remote)).Write(context.Background(), disk("a", "v1"))
	require.NoError(t, err)
	clone := t.TempDir()
	_, err = git.PlainClone(clone, false, &git.CloneOptions{URL: "file://" + remote, Depth: 1, SingleBranch: true, ReferenceName: "refs/heads/main"})
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(clone, ".git", "shallow"))
	require.NoError(t, err, "the clone is shallow")
	head := headHash(t, clone)

	h, err := testWriter(clone).Write(context.Background(), disk("b", "v1"))
	require.NoError(t, err)
	c := history(t, remote, h)
	require.Len(t, c, 2)
	set, _, err := Read(clone, "", "")
	require.NoError(t, err)
	require.Equal(t, []Record{disk("a", "v1"), disk("b", "v1")}, set.All())
	assertCleanClone(t, clone, head)
	gitFsck(t, remote)
}

func TestWriteLeavesCheckedOutBranchAlone(t *testing.T) {
	remote := newRemote(t)
	first, err := testWriter(newClone(t, remote)).Write(context.Background(), disk("a", "v1"))
	require.NoError(t, err)

	// Someone has the records branch itself checked out.
	clone := newClone(t, remote)
	repo, err := git.PlainOpen(clone)
	require.NoError(t, err)
	wt, err := repo.Worktree()
	require.NoError(t, err)
	require.NoError(t, wt.Checkout(&git.CheckoutOptions{Branch: localRef, Hash: first, Create: true}))

	second, err := testWriter(clone).Write(context.Background(), disk("b", "v1"))
	require.NoError(t, err)
	ref, err := repo.Reference(localRef, true)
	require.NoError(t, err)
	require.Equal(t, first, ref.Hash(), "the checked-out branch did not move")
	ref, err = repo.Reference(trackingRef, true)
	require.NoError(t, err)
	require.Equal(t, second, ref.Hash())
	st, err := wt.Status()
	require.NoError(t, err)
	require.True(t, st.IsClean(), "%s", st)
}

func TestWriteInvalidWritesNothing(t *testing.T) {
	remote := newRemote(t)
	clone := newClone(t, remote)
	bad := disk("../../x", "v1")
	noInputs := disk("c", "v1")
	noInputs.Inputs = nil
	for name, recs := range map[string][]Record{
		"traversal":  {disk("a", "v1"), bad},
		"no inputs":  {disk("a", "v1"), noInputs},
		"duplicate":  {disk("a", "v1"), disk("a", "v2")},
		"no records": nil,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := testWriter(clone).Write(context.Background(), recs...)
			require.Error(t, err)
			require.Contains(t, err.Error(), "write records to remote origin branch cib-records: ")
			require.True(t, remoteTip(t, remote, "cib-records").IsZero(), "nothing was pushed")
		})
	}
	_, err := testWriter(clone).Write(context.Background(), disk("a", "v1"), bad)
	require.ErrorContains(t, err, "key:")
}

func TestWriteBadRemote(t *testing.T) {
	clone := newClone(t, newRemote(t))
	w := testWriter(clone)
	w.Remote = "nope"
	_, err := w.Write(context.Background(), disk("a", "v1"))
	require.ErrorContains(t, err, "write records to remote nope branch cib-records: remote nope:")

	// A remote that is gone is not a race: no retry.
	repo, err := git.PlainOpen(clone)
	require.NoError(t, err)
	_, err = repo.CreateRemote(&config.RemoteConfig{Name: "gone", URLs: []string{filepath.Join(t.TempDir(), "gone.git")}})
	require.NoError(t, err)
	var retries atomic.Int32
	w = testWriter(clone)
	w.Remote = "gone"
	w.Log = countRetries(&retries)
	_, err = w.Write(context.Background(), disk("a", "v1"))
	require.ErrorContains(t, err, "write records to remote gone branch cib-records: fetch:")
	require.Zero(t, retries.Load())
}

// TestWriteRetriesWhenBranchMoves forces the race: between this writer's
// fetch and push another clone pushes a record, so the first push is
// rejected by go-git's own fast-forward check and must be rebuilt.
func TestWriteRetriesWhenBranchMoves(t *testing.T) {
	remote := newRemote(t)
	a, b := newClone(t, remote), newClone(t, remote)
	head := headHash(t, a)
	ctx := context.Background()
	var retries atomic.Int32
	var lines []string
	wa := testWriter(a)
	wa.Log = func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf(format, args...))
		countRetries(&retries)(format, args...)
	}
	wa.beforePush = func(attempt int) {
		if attempt == 1 {
			_, err := testWriter(b).Write(ctx, disk("from-b", "v1"))
			require.NoError(t, err)
		}
	}
	tip, err := wa.Write(ctx, disk("from-a", "v1"))
	require.NoError(t, err)
	require.EqualValues(t, 1, retries.Load())
	t.Logf("log:\n%s", strings.Join(lines, "\n"))
	require.Contains(t, strings.Join(lines, "\n"), "non-fast-forward")

	c := history(t, remote, tip)
	require.Len(t, c, 2)
	require.Contains(t, c[0].Message, "from-a")
	require.Contains(t, c[1].Message, "from-b")
	set, _, err := Read(remote, "", "")
	require.NoError(t, err)
	require.Equal(t, 2, set.Len())
	assertCleanClone(t, a, head)
}

// TestWriteRetriesWhenServerRefMoves loses the race on the server instead:
// the remote's pre-receive hook holds this writer's push after git-receive-pack
// advertised the old tip, another clone pushes meanwhile, and receive-pack's
// compare-and-swap then refuses the update.
func TestWriteRetriesWhenServerRefMoves(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh for the remote's hook")
	}
	remote := newRemote(t)
	a, b := newClone(t, remote), newClone(t, remote)
	ctx := context.Background()
	_, err := testWriter(b).Write(ctx, disk("first", "v1"))
	require.NoError(t, err)

	signals := t.TempDir()
	entered, release := filepath.Join(signals, "entered"), filepath.Join(signals, "release")
	hook := fmt.Sprintf(`#!/bin/sh
# Only the first push after the test arms the hook is held.
if mkdir %[1]q 2>/dev/null; then
	: > %[2]q
	while [ ! -e %[3]q ]; do sleep 0.02; done
fi
`, filepath.Join(signals, "held"), entered, release)
	require.NoError(t, os.MkdirAll(filepath.Join(remote, "hooks"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(remote, "hooks", "pre-receive"), []byte(hook), 0o755))

	var retries atomic.Int32
	var mu sync.Mutex
	var lines []string
	wa := testWriter(a)
	wa.Log = func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
		countRetries(&retries)(format, args...)
	}
	done := make(chan error, 1)
	var tip plumbing.Hash
	go func() {
		var err error
		tip, err = wa.Write(ctx, disk("from-a", "v1"))
		done <- err
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(entered); return err == nil }, 30*time.Second, 10*time.Millisecond)
	_, err = testWriter(b).Write(ctx, disk("from-b", "v1"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(release, nil, 0o644))
	require.NoError(t, <-done)

	require.EqualValues(t, 1, retries.Load())
	mu.Lock()
	t.Logf("log:\n%s", strings.Join(lines, "\n"))
	require.Contains(t, strings.Join(lines, "\n"), "failed to update ref")
	mu.Unlock()
	c := history(t, remote, tip)
	require.Len(t, c, 3)
	set, _, err := Read(remote, "", "")
	require.NoError(t, err)
	require.Equal(t, 3, set.Len())
}

func TestWriteConcurrentClones(t *testing.T) {
	const clones, perClone = 2, 5
	remote := newRemote(t)
	var retries atomic.Int32
	var want []Record
	start := make(chan struct{})
	errs := make(chan error, clones*perClone)
	var wg sync.WaitGroup
	for i := range clones {
		clone := newClone(t, remote)
		for j := range perClone {
			r := disk(fmt.Sprintf("c%d-r%d", i, j), "v1")
			want = append(want, r)
			// One Writer per goroutine, as one `cib record` per job would be.
			w := testWriter(clone)
			w.MaxAttempts = 20
			w.Backoff = func(int) time.Duration { return time.Duration(rand.N(20)) * time.Millisecond }
			w.Log = countRetries(&retries)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := w.Write(context.Background(), r)
				errs <- err
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d pushes were rejected and retried", retries.Load())

	set, src, err := Read(remote, "", "")
	require.NoError(t, err)
	require.ElementsMatch(t, want, set.All())
	require.Len(t, history(t, remote, plumbing.NewHash(src.Commit)), clones*perClone, "one commit per write, linear")
	gitFsck(t, remote)
}

func TestWriteGivesUp(t *testing.T) {
	remote := newRemote(t)
	a, b := newClone(t, remote), newClone(t, remote)
	ctx := context.Background()
	var retries atomic.Int32
	w := testWriter(a)
	w.MaxAttempts = 3
	w.Log = countRetries(&retries)
	w.beforePush = func(attempt int) {
		_, err := testWriter(b).Write(ctx, disk(fmt.Sprintf("b%d", attempt), "v1"))
		require.NoError(t, err)
	}
	_, err := w.Write(ctx, disk("a", "v1"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "write records to remote origin branch cib-records: ")
	require.Contains(t, err.Error(), "after 3 attempts")
	require.Contains(t, err.Error(), "non-fast-forward")
	require.EqualValues(t, 2, retries.Load())
	set, _, err := Read(remote, "", "")
	require.NoError(t, err)
	_, ok := set.Disk("prod", "azure", "a")
	require.False(t, ok)
}

func TestWriteCancelled(t *testing.T) {
	remote := newRemote(t)
	a, b := newClone(t, remote), newClone(t, remote)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := testWriter(a).Write(ctx, disk("a", "v1"))
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, remoteTip(t, remote, "cib-records").IsZero())

	// Cancelled while backing off after a rejection: stops without waiting.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	w := testWriter(a)
	w.Backoff = func(int) time.Duration { return time.Hour }
	w.beforePush = func(attempt int) {
		_, err := testWriter(b).Write(context.Background(), disk(fmt.Sprintf("b%d", attempt), "v1"))
		require.NoError(t, err)
	}
	w.Log = func(format string, args ...any) {
		if strings.Contains(format, "retrying") {
			cancel()
		}
	}
	started := time.Now()
	_, err = w.Write(ctx, disk("a", "v1"))
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "stopped after attempt 1")
	require.Less(t, time.Since(started), time.Minute)
}

func countRetries(n *atomic.Int32) func(string, ...any) {
	return func(format string, _ ...any) {
		if strings.Contains(format, "retrying") {
			n.Add(1)
		}
	}
}

func treeFiles(t *testing.T, c *object.Commit) []string {
	t.Helper()
	tree, err := c.Tree()
	require.NoError(t, err)
	var out []string
	require.NoError(t, tree.Files().ForEach(func(f *object.File) error {
		out = append(out, f.Name)
		return nil
	}))
	return out
}

func diffParent(c *object.Commit) ([]string, error) {
	parent, err := c.Parent(0)
	if err != nil {
		return nil, err
	}
	changes, err := parent.Patch(c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fp := range changes.FilePatches() {
		from, to := fp.Files()
		if from == nil || to == nil {
			return nil, errors.New("a file was added or removed")
		}
		out = append(out, to.Path())
	}
	return out, nil
}

// gitFsck has the real git check what go-git wrote, tree order included.
func gitFsck(t *testing.T, repo string) {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "fsck", "--strict", "--no-dangling").CombinedOutput()
	require.NoError(t, err, "git fsck:\n%s", out)
}
