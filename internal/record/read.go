package record

import (
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Defaults shared by Read and Writer.
const (
	defaultRemote = "origin"
	defaultBranch = "cib-records"
)

// Read loads every record from branch in the repository at repoPath (a work
// tree, a directory inside one, or a bare repository).
//
// It reads only objects already in the repository, so the plan needs no
// network and no credentials; the workflow fetches the branch beforehand. The
// remote-tracking ref refs/remotes/<remote>/<branch> is preferred because it
// is what a fetch updates, while a local branch of the same name may be
// stale; refs/heads/<branch> is the fallback for a repository that only has
// that. A missing branch is the first run, not an error: the result is an
// empty Set and Source{}. Empty remote and branch mean "origin" and
// "cib-records".
//
// Every file under records/ must be a record whose Path is where it lies; a
// file that is not is an error naming the file and the branch commit, since
// planning on a half-read branch would rebuild (or skip) images by accident.
func Read(repoPath, remote, branch string) (*Set, Source, error) {
	if remote == "" {
		remote = defaultRemote
	}
	if branch == "" {
		branch = defaultBranch
	}
	repo, err := openRepository(repoPath)
	if err != nil {
		return nil, Source{}, fmt.Errorf("read records branch %s: %w", branch, err)
	}
	var ref *plumbing.Reference
	for _, name := range []plumbing.ReferenceName{
		plumbing.NewRemoteReferenceName(remote, branch),
		plumbing.NewBranchReferenceName(branch),
	} {
		ref, err = repo.Reference(name, true)
		if err == nil {
			break
		}
		if !errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil, Source{}, fmt.Errorf("read records branch %s: resolve %s: %w", branch, name, err)
		}
	}
	if ref == nil {
		return NewSet(), Source{}, nil
	}
	src := Source{Ref: ref.Name().String(), Commit: ref.Hash().String()}
	set, err := readCommit(repo, ref.Hash())
	if err != nil {
		return nil, Source{}, fmt.Errorf("read records branch %s (%s at %s): %w", branch, src.Ref, src.Commit, err)
	}
	return set, src, nil
}

func readCommit(repo *git.Repository, hash plumbing.Hash) (*Set, error) {
	commit, err := repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("load commit: %w (fetch the branch again)", err)
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("load tree: %w (fetch the branch again)", err)
	}
	tree, err := root.Tree(recordsDir)
	if errors.Is(err, object.ErrDirectoryNotFound) {
		return NewSet(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s/: %w", recordsDir, err)
	}
	var recs []Record
	err = tree.Files().ForEach(func(f *object.File) error {
		path := recordsDir + "/" + f.Name
		r, err := readFile(f, path)
		if err != nil {
			return fmt.Errorf("%s: %w; fix or delete the file with a commit on the branch", path, err)
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return NewSet(recs...), nil
}

func readFile(f *object.File, path string) (Record, error) {
	rd, err := f.Reader()
	if err != nil {
		return Record{}, err
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return Record{}, err
	}
	r, err := decode(data)
	if err != nil {
		return Record{}, fmt.Errorf("not a build record: %w", err)
	}
	if err := r.check(); err != nil {
		return Record{}, err
	}
	if r.Path() != path {
		return Record{}, fmt.Errorf("content says %s %s, which belongs at %s", r.Kind, r.identity(), r.Path())
	}
	return r, nil
}

// openRepository opens a work tree or a bare repository. Opening without
// detection first matters: go-git's DetectDotGit walks up looking for a
// ".git" and so never recognises a bare repository; detection is the
// fallback for a directory inside a work tree.
func openRepository(path string) (*git.Repository, error) {
	repo, err := git.PlainOpenWithOptions(path, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainOpenWithOptions(path, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	}
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", path, err)
	}
	return repo, nil
}
