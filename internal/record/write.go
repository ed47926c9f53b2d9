package record

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Writer commits records to the records branch and pushes them. Its zero
// value (with RepoPath set) writes to origin/cib-records as "cib".
type Writer struct {
	RepoPath    string                           // the repository (work tree or bare); its work tree, index and HEAD are never touched
	Remote      string                           // default "origin"
	Branch      string                           // default "cib-records"
	Auth        transport.AuthMethod             // nil for file remotes; for https use BasicAuth{Username:"x-access-token", Password: token}
	Author      object.Signature                 // Name/Email; When is set at commit time; default name "cib", email "cib@users.noreply.github.com"
	MaxAttempts int                              // default 8
	Backoff     func(attempt int) time.Duration  // default: jittered exponential starting at 200ms, capped at 5s
	Log         func(format string, args ...any) // progress lines; may be nil
	Now         func() time.Time                 // default time.Now

	// beforePush lets tests move the remote between fetch and push, to prove
	// the retry without relying on a lucky race.
	beforePush func(attempt int)
}

const (
	defaultAuthorName  = "cib"
	defaultAuthorEmail = "cib@users.noreply.github.com"
	defaultMaxAttempts = 8
)

// Write adds or replaces recs in one commit on top of the remote branch,
// pushes it, and returns the pushed commit.
//
// The commit is built from the remote branch's tree with only the records'
// paths replaced, directly in the object store, so that a job's checkout is
// never disturbed and records written by other jobs are kept. Parallel matrix
// jobs race to push; a push rejected because the branch moved is rebuilt on
// the new tip and pushed again, after a back-off, up to MaxAttempts times.
// Every record is checked first and nothing is written if one is invalid. A
// record with a zero Time gets the current time; times are stored in UTC.
func (w *Writer) Write(ctx context.Context, recs ...Record) (plumbing.Hash, error) {
	cfg := w.withDefaults()
	fail := func(err error) (plumbing.Hash, error) {
		return plumbing.ZeroHash, fmt.Errorf("write records to remote %s branch %s: %w", cfg.Remote, cfg.Branch, err)
	}
	if len(recs) == 0 {
		return fail(errors.New("no records given"))
	}
	recs = append([]Record(nil), recs...)
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		if err := recs[i].check(); err != nil {
			return fail(err)
		}
		p := recs[i].Path()
		if seen[p] {
			return fail(fmt.Errorf("two records for %s in one write", p))
		}
		seen[p] = true
		if recs[i].Time.IsZero() {
			recs[i].Time = cfg.Now()
		}
		recs[i].Time = recs[i].Time.UTC()
	}

	repo, err := openRepository(cfg.RepoPath)
	if err != nil {
		return fail(err)
	}
	// go-git's filesystem storage is not safe for concurrent writers (it
	// rewrites ref files in place), so writes to one repository from one
	// process take turns; jobs on separate runners have separate clones.
	unlock := lockRepository(repo, cfg.RepoPath)
	defer unlock()
	// Open again under the lock: go-git lists pack files once per Repository,
	// and the writer before us may have fetched new ones.
	if repo, err = openRepository(cfg.RepoPath); err != nil {
		return fail(err)
	}
	if _, err := repo.Remote(cfg.Remote); err != nil {
		return fail(fmt.Errorf("remote %s: %w", cfg.Remote, err))
	}

	files := make(map[string]plumbing.Hash, len(recs))
	for _, r := range recs {
		data, err := r.encode()
		if err != nil {
			return fail(err)
		}
		h, err := writeBlob(repo.Storer, data)
		if err != nil {
			return fail(fmt.Errorf("store %s: %w", r.Path(), err))
		}
		files[r.Path()] = h
	}
	msg := commitMessage(recs)

	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("stopped before attempt %d: %w", attempt, err))
		}
		parent, err := cfg.fetch(ctx, repo)
		if err != nil {
			if ctx.Err() != nil {
				return fail(fmt.Errorf("stopped during attempt %d: %w (%w)", attempt, ctx.Err(), err))
			}
			return fail(err)
		}
		commit, err := cfg.commit(repo.Storer, parent, files, msg)
		if err != nil {
			return fail(err)
		}
		if cfg.beforePush != nil {
			cfg.beforePush(attempt)
		}
		err = cfg.push(ctx, repo, commit)
		if err == nil {
			if err := cfg.updateLocalRefs(repo, commit); err != nil {
				return fail(fmt.Errorf("pushed %s, but updating local refs failed: %w", commit, err))
			}
			cfg.logf("pushed %s to remote %s branch %s (attempt %d)", commit, cfg.Remote, cfg.Branch, attempt)
			return commit, nil
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("stopped during attempt %d: %w (push: %w)", attempt, ctx.Err(), err))
		}
		if !rejected(err) {
			return fail(fmt.Errorf("push: %w", err))
		}
		if attempt >= cfg.MaxAttempts {
			return fail(fmt.Errorf("push still rejected after %d attempts, giving up (other jobs keep moving the branch; run the job again): %w", attempt, err))
		}
		wait := cfg.Backoff(attempt)
		cfg.logf("push to remote %s branch %s rejected (attempt %d of %d): %v; retrying in %s", cfg.Remote, cfg.Branch, attempt, cfg.MaxAttempts, err, wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(fmt.Errorf("stopped after attempt %d: %w (last push: %w)", attempt, ctx.Err(), err))
		case <-t.C:
		}
	}
}

func (w *Writer) withDefaults() Writer {
	c := *w
	if c.Remote == "" {
		c.Remote = defaultRemote
	}
	if c.Branch == "" {
		c.Branch = defaultBranch
	}
	if c.Author.Name == "" {
		c.Author.Name = defaultAuthorName
	}
	if c.Author.Email == "" {
		c.Author.Email = defaultAuthorEmail
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = defaultMaxAttempts
	}
	if c.Backoff == nil {
		c.Backoff = defaultBackoff
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (w *Writer) logf(format string, args ...any) {
	if w.Log != nil {
		w.Log(format, args...)
	}
}

// defaultBackoff doubles from 200ms up to 5s and draws from the upper half
// of that, so that jobs rejected together do not retry together.
func defaultBackoff(attempt int) time.Duration {
	const first, ceiling = 200 * time.Millisecond, 5 * time.Second
	d := ceiling
	if attempt >= 1 && attempt <= 5 {
		d = min(first<<(attempt-1), ceiling)
	}
	return d/2 + rand.N(d/2+1)
}

func (w *Writer) trackingRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(w.Remote, w.Branch)
}

func (w *Writer) branchRef() plumbing.ReferenceName {
	return plumbing.NewBranchReferenceName(w.Branch)
}

// fetch brings the remote branch into the remote-tracking ref and returns its
// tip, or the zero hash when the remote has no such branch (the first write
// makes an orphan commit).
func (w *Writer) fetch(ctx context.Context, repo *git.Repository) (plumbing.Hash, error) {
	spec := config.RefSpec("+" + w.branchRef().String() + ":" + w.trackingRef().String())
	err := repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: w.Remote,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       w.Auth,
		Tags:       git.NoTags,
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, git.NoMatchingRefSpecError{}), errors.Is(err, transport.ErrEmptyRemoteRepository):
		w.logf("remote %s has no branch %s yet; starting it", w.Remote, w.Branch)
		return plumbing.ZeroHash, nil
	default:
		return plumbing.ZeroHash, fmt.Errorf("fetch: %w", err)
	}
	ref, err := repo.Reference(w.trackingRef(), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch: resolve %s: %w", w.trackingRef(), err)
	}
	return ref.Hash(), nil
}

// commit writes the trees and the commit for files on top of parent.
func (w *Writer) commit(s storer.EncodedObjectStorer, parent plumbing.Hash, files map[string]plumbing.Hash, msg string) (plumbing.Hash, error) {
	var base plumbing.Hash
	var parents []plumbing.Hash
	if !parent.IsZero() {
		c, err := object.GetCommit(s, parent)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("load branch tip %s: %w", parent, err)
		}
		base = c.TreeHash
		parents = []plumbing.Hash{parent}
	}
	tree, err := writeTree(s, base, files)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("build tree: %w", err)
	}
	sig := w.Author
	sig.When = w.Now()
	c := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      msg,
		TreeHash:     tree,
		ParentHashes: parents,
	}
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

// push sends commit by hash, so that no local ref has to move before the
// remote accepted it.
func (w *Writer) push(ctx context.Context, repo *git.Repository, commit plumbing.Hash) error {
	spec := config.RefSpec(commit.String() + ":" + w.branchRef().String())
	err := repo.PushContext(ctx, &git.PushOptions{
		RemoteName: w.Remote,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       w.Auth,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// rejectionReports are the ways a push that lost the race is reported:
// go-git's own check against the advertised tip says "non-fast-forward
// update" (as a plain string, not wrapping git.ErrNonFastForwardUpdate);
// git-receive-pack, when the ref moved after it advertised it, says "failed
// to update ref"; the others are what git and hosting servers report for the
// same condition.
var rejectionReports = []string{
	"non-fast-forward",
	"fetch first",
	"failed to update ref",
	"stale info",
	"cannot lock ref",
	"failed to lock",
}

func rejected(err error) bool {
	if errors.Is(err, git.ErrNonFastForwardUpdate) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range rejectionReports {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// updateLocalRefs makes the local repository agree with what was pushed, so
// that a Read right after a Write sees it. The local branch is left alone
// when it is checked out, because moving it would make the work tree look
// changed.
func (w *Writer) updateLocalRefs(repo *git.Repository, commit plumbing.Hash) error {
	if err := repo.Storer.SetReference(plumbing.NewHashReference(w.trackingRef(), commit)); err != nil {
		return fmt.Errorf("set %s: %w", w.trackingRef(), err)
	}
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err == nil && head.Type() == plumbing.SymbolicReference && head.Target() == w.branchRef() {
		if _, err := repo.Worktree(); err == nil {
			w.logf("%s is checked out; not moving it", w.branchRef())
			return nil
		}
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(w.branchRef(), commit)); err != nil {
		return fmt.Errorf("set %s: %w", w.branchRef(), err)
	}
	return nil
}

func commitMessage(recs []Record) string {
	line := func(r Record) string {
		fp := r.Fingerprint
		if len(fp) > 19 {
			fp = fp[:19]
		}
		return fmt.Sprintf("%s %s (%s)", r.Kind, r.identity(), fp)
	}
	if len(recs) == 1 {
		return "record " + line(recs[0]) + "\n"
	}
	sorted := append([]Record(nil), recs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path() < sorted[j].Path() })
	var b strings.Builder
	fmt.Fprintf(&b, "record %d builds\n\n", len(recs))
	for _, r := range sorted {
		b.WriteString(line(r) + "\n")
	}
	return b.String()
}

func writeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	wr, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := wr.Write(data); err != nil {
		wr.Close()
		return plumbing.ZeroHash, err
	}
	if err := wr.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// writeTree stores the tree that is base (zero: empty) with files (paths
// relative to it) added or replaced, reusing every untouched subtree of base
// as is, and returns its hash.
func writeTree(s storer.EncodedObjectStorer, base plumbing.Hash, files map[string]plumbing.Hash) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if !base.IsZero() {
		t, err := object.GetTree(s, base)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	subdirs := map[string]map[string]plumbing.Hash{}
	for p, h := range files {
		dir, rest, ok := strings.Cut(p, "/")
		if !ok {
			entries[p] = object.TreeEntry{Name: p, Mode: filemode.Regular, Hash: h}
			continue
		}
		if subdirs[dir] == nil {
			subdirs[dir] = map[string]plumbing.Hash{}
		}
		subdirs[dir][rest] = h
	}
	for dir, sub := range subdirs {
		var subBase plumbing.Hash
		if e, ok := entries[dir]; ok && e.Mode == filemode.Dir {
			subBase = e.Hash
		}
		h, err := writeTree(s, subBase, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[dir] = object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h}
	}
	list := make([]object.TreeEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	// Git orders entries as if directory names ended in "/"; any other order
	// makes a tree that git fsck rejects and other tools misread.
	sortKey := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(list, func(i, j int) bool { return sortKey(list[i]) < sortKey(list[j]) })
	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: list}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

var repoLocks sync.Map // repository directory -> *sync.Mutex

func lockRepository(repo *git.Repository, fallback string) (unlock func()) {
	key := fallback
	if fs, ok := repo.Storer.(*filesystem.Storage); ok {
		key = fs.Filesystem().Root()
	}
	if abs, err := filepath.Abs(key); err == nil {
		key = abs
	}
	m, _ := repoLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
