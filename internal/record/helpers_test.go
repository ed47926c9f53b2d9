package record

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/require"
)

const readme = "# project\n"

var testTime = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// newRemote makes a bare repository with a main branch holding a README, as
// the project's GitHub repository would be before the first record.
func newRemote(t *testing.T) string {
	t.Helper()
	remote := filepath.Join(t.TempDir(), "remote.git")
	bare, err := git.PlainInit(remote, true)
	require.NoError(t, err)
	require.NoError(t, bare.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main")))

	seed := t.TempDir()
	repo, err := git.PlainInit(seed, false)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(seed, "README.md"), []byte(readme), 0o644))
	wt, err := repo.Worktree()
	require.NoError(t, err)
	_, err = wt.Add("README.md")
	require.NoError(t, err)
	_, err = wt.Commit("initial", &git.CommitOptions{Author: &object.Signature{Name: "dev", Email: "dev@example.com", When: testTime}})
	require.NoError(t, err)
	head, err := repo.Head()
	require.NoError(t, err)
	_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remote}})
	require.NoError(t, err)
	require.NoError(t, repo.Push(&git.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(head.Name().String() + ":refs/heads/main")},
	}))
	return remote
}

// newClone clones remote into a fresh work tree, as actions/checkout would.
func newClone(t *testing.T, remote string) string {
	t.Helper()
	dir := t.TempDir()
	_, err := git.PlainClone(dir, false, &git.CloneOptions{URL: remote})
	require.NoError(t, err)
	return dir
}

func fp(seed string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(seed)))
}

func disk(key, seed string) Record {
	return Record{
		Kind: Disk, Environment: "prod", Platform: "azure", Key: key,
		Fingerprint: fp(seed),
		Inputs:      json.RawMessage(`{"iso":"` + seed + `","key":"` + key + `"}`),
		Revision:    "0123456789abcdef0123456789abcdef01234567",
		Image:       Image{Name: key + "-" + seed, Location: "https://x.blob.core.windows.net/vhd/" + key + ".vhd"},
		Time:        testTime,
		RunURL:      "https://github.com/o/r/actions/runs/1?a=1&b=2",
	}
}

func machine(key, group, seed string) Record {
	r := disk(key, seed)
	r.Kind, r.Group = Machine, group
	r.Image = Image{Name: key, Location: "/subscriptions/s/resourceGroups/" + group + "/providers/Microsoft.Compute/images/" + key}
	return r
}

func pool(name, seed string) Record {
	r := disk("", seed)
	r.Kind, r.Pool = Pool, name
	r.Image = Image{}
	return r
}

func testWriter(repo string) *Writer {
	return &Writer{
		RepoPath: repo,
		Now:      func() time.Time { return testTime },
		Backoff:  func(int) time.Duration { return time.Millisecond },
	}
}

// remoteTip returns the commit the remote branch points at, or the zero hash.
func remoteTip(t *testing.T, remote, branch string) plumbing.Hash {
	t.Helper()
	repo, err := git.PlainOpen(remote)
	require.NoError(t, err)
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err == plumbing.ErrReferenceNotFound {
		return plumbing.ZeroHash
	}
	require.NoError(t, err)
	return ref.Hash()
}

// history returns the commits from tip to the root, failing on a merge so
// that callers can assert the branch is linear.
func history(t *testing.T, repoPath string, tip plumbing.Hash) []*object.Commit {
	t.Helper()
	repo, err := openRepository(repoPath)
	require.NoError(t, err)
	var out []*object.Commit
	for h := tip; !h.IsZero(); {
		c, err := repo.CommitObject(h)
		require.NoError(t, err)
		require.LessOrEqual(t, len(c.ParentHashes), 1, "commit %s has %d parents", c.Hash, len(c.ParentHashes))
		out = append(out, c)
		h = plumbing.ZeroHash
		if len(c.ParentHashes) == 1 {
			h = c.ParentHashes[0]
		}
	}
	return out
}

// commitFiles makes a commit holding files (path -> content) on top of
// parent in the repository at repoPath and points ref at it, bypassing
// Writer so that tests can put what Writer never would on the branch.
func commitFiles(t *testing.T, repoPath string, parent plumbing.Hash, ref plumbing.ReferenceName, files map[string]string) plumbing.Hash {
	t.Helper()
	repo, err := openRepository(repoPath)
	require.NoError(t, err)
	blobs := map[string]plumbing.Hash{}
	for p, content := range files {
		h, err := writeBlob(repo.Storer, []byte(content))
		require.NoError(t, err)
		blobs[p] = h
	}
	w := testWriter(repoPath).withDefaults()
	h, err := w.commit(repo.Storer, parent, blobs, "test commit\n")
	require.NoError(t, err)
	require.NoError(t, repo.Storer.SetReference(plumbing.NewHashReference(ref, h)))
	return h
}

// assertCleanClone checks that a Write left the clone's HEAD, index and work
// tree as they were.
func assertCleanClone(t *testing.T, clone string, head plumbing.Hash) {
	t.Helper()
	repo, err := git.PlainOpen(clone)
	require.NoError(t, err)
	ref, err := repo.Reference(plumbing.HEAD, false)
	require.NoError(t, err)
	require.Equal(t, plumbing.ReferenceName("refs/heads/main"), ref.Target())
	resolved, err := repo.Head()
	require.NoError(t, err)
	require.Equal(t, head, resolved.Hash())
	got, err := os.ReadFile(filepath.Join(clone, "README.md"))
	require.NoError(t, err)
	require.Equal(t, readme, string(got))
	_, err = os.Stat(filepath.Join(clone, "records"))
	require.True(t, os.IsNotExist(err), "records/ appeared in the work tree")
	wt, err := repo.Worktree()
	require.NoError(t, err)
	st, err := wt.Status()
	require.NoError(t, err)
	require.True(t, st.IsClean(), "work tree or index changed:\n%s", st)
}

func headHash(t *testing.T, repoPath string) plumbing.Hash {
	t.Helper()
	repo, err := git.PlainOpen(repoPath)
	require.NoError(t, err)
	h, err := repo.Head()
	require.NoError(t, err)
	return h.Hash()
}
