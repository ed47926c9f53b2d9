package cli

import (
	"fmt"
	"path"
	"testing/fstest"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/plan"
	"github.com/cib-project/cib/internal/record"
)

// commitAt reads the commit a revision names in the repository at dir,
// without network.
func commitAt(dir, rev string) (hash, message string, err error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return "", "", fmt.Errorf("open the git repository at %s: %w", dir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", "", fmt.Errorf("find revision %q in %s: %w", rev, dir, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return "", "", fmt.Errorf("read commit %s: %w (a shallow checkout may lack it: check out with fetch-depth: 2 or more)", h, err)
	}
	return c.Hash.String(), c.Message, nil
}

// planRecords adapts a record.Set to what the plan looks up.
type planRecords struct{ set *record.Set }

func toPlan(r record.Record, ok bool) (plan.Record, bool) {
	if !ok {
		return plan.Record{}, false
	}
	return plan.Record{Fingerprint: r.Fingerprint, Inputs: r.Inputs, Revision: r.Revision, Time: r.Time}, true
}

func (p planRecords) Disk(env, platform, key string) (plan.Record, bool) {
	return toPlan(p.set.Disk(env, platform, key))
}

func (p planRecords) Machine(env, platform, key, group string) (plan.Record, bool) {
	return toPlan(p.set.Machine(env, platform, key, group))
}

func (p planRecords) Pool(env, platform, pool string) (plan.Record, bool) {
	return toPlan(p.set.Pool(env, platform, pool))
}

// configAt reads the configuration folder dir as it is in commit hash, so
// that planning an older revision uses that revision's configuration.
func configAt(repoDir, hash, dir string) (fstest.MapFS, error) {
	repo, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("open the git repository at %s: %w", repoDir, err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(hash))
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", hash, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read the tree of %s: %w", hash, err)
	}
	sub, err := tree.Tree(path.Clean(dir))
	if err != nil {
		return nil, fmt.Errorf("commit %s has no %s folder: %w", hash[:7], dir, err)
	}
	fsys := fstest.MapFS{}
	for _, e := range sub.Entries {
		if !e.Mode.IsFile() {
			continue
		}
		f, err := sub.TreeEntryFile(&e)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s at %s: %w", dir, e.Name, hash[:7], err)
		}
		text, err := f.Contents()
		if err != nil {
			return nil, fmt.Errorf("read %s/%s at %s: %w", dir, e.Name, hash[:7], err)
		}
		fsys[e.Name] = &fstest.MapFile{Data: []byte(text)}
	}
	return fsys, nil
}

// configAtRev loads the configuration folder dir of repo as it is at the
// commit rev names, and returns it with the commit's hash; on failure it
// has said why and cfg is nil, with the exit code.
func configAtRev(env Env, cmd, repo, rev, dir string) (cfg *config.Config, hash string, code int) {
	hash, _, err := commitAt(env.path(repo), rev)
	if err != nil {
		return nil, "", fail(env, cmd, err)
	}
	fsys, err := configAt(env.path(repo), hash, dir)
	if err != nil {
		return nil, "", fail(env, cmd, err)
	}
	cfg, code = loadConfigFS(env, cmd, fsys, fmt.Sprintf("%s (at %s)", dir, hash[:7]))
	return cfg, hash, code
}
