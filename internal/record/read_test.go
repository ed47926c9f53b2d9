package record

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/require"
)

var (
	trackingRef = plumbing.NewRemoteReferenceName("origin", "cib-records")
	localRef    = plumbing.NewBranchReferenceName("cib-records")
)

func TestReadMissingBranch(t *testing.T) {
	clone := newClone(t, newRemote(t))
	set, src, err := Read(clone, "", "")
	require.NoError(t, err)
	require.Equal(t, 0, set.Len())
	require.Equal(t, Source{}, src)
}

func TestReadNotARepository(t *testing.T) {
	_, _, err := Read(t.TempDir(), "", "")
	require.ErrorContains(t, err, "open repository")
}

func TestReadRoundTrip(t *testing.T) {
	remote := newRemote(t)
	clone := newClone(t, remote)
	d := disk("win10-64", "v1")
	// Canonical inputs are compact with keys in the caller's order; they must
	// come back byte for byte, whatever the indentation on the branch.
	d.Inputs = json.RawMessage(`{"z":1,"a":{"nested":[true,null,"x y"]},"m":"\u00e9<>"}`)
	m := machine("win10-64", "rg-images", "v1")
	m.Time = testTime.Add(1500) // sub-second precision survives
	p := pool("releng/win2022", "v1")
	p.RunURL = ""

	commit, err := testWriter(clone).Write(context.Background(), d, m, p)
	require.NoError(t, err)

	set, src, err := Read(clone, "origin", "cib-records")
	require.NoError(t, err)
	require.Equal(t, Source{Ref: "refs/remotes/origin/cib-records", Commit: commit.String()}, src)
	require.Equal(t, []Record{d, m, p}, set.All())
	got, ok := set.Disk("prod", "azure", "win10-64")
	require.True(t, ok)
	require.Equal(t, string(d.Inputs), string(got.Inputs))

	// The remote itself is bare and has only the branch: read from there too,
	// and from a directory inside the clone's work tree.
	set, src, err = Read(remote, "", "")
	require.NoError(t, err)
	require.Equal(t, Source{Ref: "refs/heads/cib-records", Commit: commit.String()}, src)
	require.Equal(t, []Record{d, m, p}, set.All())

	sub := filepath.Join(clone, "sub", "dir")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	set, _, err = Read(sub, "", "")
	require.NoError(t, err)
	require.Equal(t, 3, set.Len())
}

func TestReadPrefersRemoteTrackingRef(t *testing.T) {
	clone := newClone(t, newRemote(t))
	w := testWriter(clone)
	first, err := w.Write(context.Background(), disk("a", "v1"))
	require.NoError(t, err)
	second, err := w.Write(context.Background(), disk("a", "v2"))
	require.NoError(t, err)

	// A local branch left behind at the first commit, as after a plain fetch.
	commitFiles(t, clone, first, localRef, map[string]string{})
	set, src, err := Read(clone, "", "")
	require.NoError(t, err)
	require.Equal(t, Source{Ref: trackingRef.String(), Commit: second.String()}, src)
	got, ok := set.Disk("prod", "azure", "a")
	require.True(t, ok)
	require.Equal(t, fp("v2"), got.Fingerprint)

	// Without the remote-tracking ref, the local branch is what there is.
	repo, err := openRepository(clone)
	require.NoError(t, err)
	require.NoError(t, repo.Storer.RemoveReference(trackingRef))
	set, src, err = Read(clone, "", "")
	require.NoError(t, err)
	require.Equal(t, localRef.String(), src.Ref)
	got, ok = set.Disk("prod", "azure", "a")
	require.True(t, ok)
	require.Equal(t, fp("v1"), got.Fingerprint)

	// Another remote name finds nothing of its own but still the local branch.
	_, src, err = Read(clone, "upstream", "")
	require.NoError(t, err)
	require.Equal(t, localRef.String(), src.Ref)
	// Another branch name finds nothing at all.
	set, src, err = Read(clone, "", "other-records")
	require.NoError(t, err)
	require.Equal(t, Source{}, src)
	require.Equal(t, 0, set.Len())
}

func TestReadIgnoresFilesOutsideRecords(t *testing.T) {
	clone := newClone(t, newRemote(t))
	data, err := disk("a", "v1").encode()
	require.NoError(t, err)
	commitFiles(t, clone, plumbing.ZeroHash, trackingRef, map[string]string{
		"README.md":                      "what this branch is\n",
		"notes/x.json":                   "not a record",
		"records/prod/azure/disk/a.json": string(data),
	})
	set, _, err := Read(clone, "", "")
	require.NoError(t, err)
	require.Equal(t, []Record{disk("a", "v1")}, set.All())
}

func TestReadBranchWithoutRecords(t *testing.T) {
	clone := newClone(t, newRemote(t))
	h := commitFiles(t, clone, plumbing.ZeroHash, trackingRef, map[string]string{"README.md": "x\n"})
	set, src, err := Read(clone, "", "")
	require.NoError(t, err)
	require.Equal(t, 0, set.Len())
	require.Equal(t, h.String(), src.Commit)
}

func TestReadBadFiles(t *testing.T) {
	good, err := disk("a", "v1").encode()
	require.NoError(t, err)
	bad := func(edit func(*Record)) string {
		r := disk("a", "v1")
		edit(&r)
		data, err := r.encode()
		require.NoError(t, err)
		return string(data)
	}
	tests := []struct {
		name    string
		path    string
		content string
		want    string
	}{
		{"corrupt json", "records/prod/azure/disk/a.json", `{"kind": "disk", `, "not a build record"},
		{"not json at all", "records/prod/azure/disk/a.json", "hello", "not a build record"},
		{"wrong type", "records/prod/azure/disk/a.json", `{"kind": 3}`, "not a build record"},
		{"key disagrees with path", "records/prod/azure/disk/b.json", string(good), "belongs at records/prod/azure/disk/a.json"},
		{"environment disagrees with path", "records/staging/azure/disk/a.json", string(good), "belongs at records/prod/azure/disk/a.json"},
		{"kind disagrees with path", "records/prod/azure/machine/a.json", string(good), "belongs at records/prod/azure/disk/a.json"},
		{"invalid identity", "records/prod/azure/disk/a.json", bad(func(r *Record) { r.Fingerprint = "md5:x" }), "fingerprint:"},
		{"traversal in content", "records/prod/azure/disk/a.json", bad(func(r *Record) { r.Key = "../a" }), "key:"},
		{"no inputs", "records/prod/azure/disk/a.json", bad(func(r *Record) { r.Inputs = nil }), "inputs:"},
		{"not a record file", "records/README.md", "# records\n", "not a build record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clone := newClone(t, newRemote(t))
			h := commitFiles(t, clone, plumbing.ZeroHash, trackingRef, map[string]string{
				"records/prod/azure/disk/ok.json": bad(func(r *Record) { r.Key = "ok" }),
				tt.path:                           tt.content,
			})
			_, _, err := Read(clone, "", "")
			require.Error(t, err)
			msg := err.Error()
			require.Contains(t, msg, tt.want)
			require.Contains(t, msg, tt.path, "names the file")
			require.Contains(t, msg, h.String(), "names the branch commit")
			require.Contains(t, msg, "cib-records")
			require.Contains(t, msg, "fix or delete the file with a commit on the branch", "says what to do")
		})
	}
}
