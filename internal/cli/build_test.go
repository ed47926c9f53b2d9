package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuritetest"
	"github.com/cib-project/cib/internal/cli"
	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

// The end-to-end tests of `cib build disk-image`: a whole build, run
// in-process, from a Windows-like install ISO (diskimagetest) to a stored
// VHD, its artifacts, outputs, step summary and record.

// buildRepo is a repository (newRepo) whose configuration builds key
// win10-64 offline and small: its shared packages and drivers are the
// local ones of diskimagetest.BuildPayload, its disk is 1 GiB, and it
// takes image 1 of the test ISO (named "Windows 10 Pro", which does not
// end with the key's edition "Professional"). The change is committed, so
// the commit built has it.
func buildRepo(t *testing.T) (*repo, diskimagetest.Payload) {
	t.Helper()
	rp := newRepo(t, "build win10-64")
	pl := diskimagetest.OfflineConfig(t, filepath.Join(rp.dir, "config"))
	git(t, rp.dir, "commit", "-q", "-am", "build win10-64 from local files, 1 GiB")
	return rp, pl
}

// requireBuild skips (fails under CI) unless the tools of a whole build
// are there, and returns the test ISO.
func requireBuild(t *testing.T) diskimagetest.PipelineFixture {
	t.Helper()
	diskimagetest.RequireBuildTools(t)
	return diskimagetest.BuildPipelineFixture(t)
}

func TestBuildDiskImageLocal(t *testing.T) {
	diskimagetest.RequireTool(t, "qemu-utils", "qemu-img")
	f := requireBuild(t)
	rp, _ := buildRepo(t)
	store, work, arts := filepath.Join(t.TempDir(), "images"), t.TempDir(), t.TempDir()
	args := []string{"build", "disk-image", "win10-64", "--store", "local", "--store-dir", store,
		"--work-dir", work, "--artifacts", arts, "--iso", f.ISO, "--record", "--environment", "staging"}

	env := actionsEnv(t, "push", map[string]any{}, rp.head(t))
	r := run(t, rp.dir, env, args...)
	require.Equal(t, 0, r.code, r.stderr)
	t.Logf("stdout:\n%s", r.stdout)
	out := outputs(t, env["GITHUB_OUTPUT"])
	name := out["image-name"]
	require.True(t, strings.HasPrefix(name, "vhd/"), name)
	assert.True(t, strings.HasSuffix(name, "/"+rp.head(t)[:7]+"-azure-windows10-professional-en-us-x86-64-fixed.vhd"), name)
	assert.Equal(t, store+"/"+name, out["image-location"])
	assert.Equal(t, "false", out["skipped"])
	assert.True(t, strings.HasPrefix(out["fingerprint"], "sha256:"), out["fingerprint"])
	assert.Equal(t, filepath.Join(arts, "win10-64"), out["artifacts"])
	assert.Contains(t, r.stdout, "built disk image "+store+"/"+name+" (1.00 GiB)")
	assert.Contains(t, r.stdout, "recorded records/staging/azure/disk/win10-64.json")

	// The VHD and its metadata, under the image's name.
	vhdPath := filepath.Join(store, filepath.FromSlash(name))
	md, err := os.ReadFile(vhdPath + ".json")
	require.NoError(t, err)
	var meta map[string]string
	require.NoError(t, json.Unmarshal(md, &meta))
	assert.Equal(t, map[string]string{"fingerprint": out["fingerprint"], "revision": rp.head(t), "key": "win10-64"}, meta)
	info, err := exec.Command("qemu-img", "info", "-f", "vpc", "--output", "json", vhdPath).Output()
	require.NoError(t, err)
	var qi struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	require.NoError(t, json.Unmarshal(info, &qi))
	assert.Equal(t, "vpc", qi.Format)
	assert.Equal(t, int64(1<<30), qi.VirtualSize)

	// The artifacts: the manifest and the redacted unattend.xml.
	js, err := os.ReadFile(filepath.Join(arts, "win10-64", "image-bucket-resource.json"))
	require.NoError(t, err)
	var m struct {
		Build struct{ Revision string }
		Image struct {
			Platform, Container, Key, Fingerprint string
			Size                                  int64
		}
		Source struct{ Platform, Key string }
	}
	require.NoError(t, json.Unmarshal(js, &m))
	assert.Equal(t, rp.head(t), m.Build.Revision)
	assert.Equal(t, name, m.Image.Key)
	assert.Equal(t, store, m.Image.Container)
	assert.Equal(t, out["fingerprint"], m.Image.Fingerprint)
	assert.Equal(t, f.ISO, m.Source.Key)
	xml, err := os.ReadFile(filepath.Join(arts, "win10-64", "unattend.xml"))
	require.NoError(t, err)
	assert.Contains(t, string(xml), "REDACTED")
	assert.Contains(t, string(xml), "<ComputerName>cib-"+rp.head(t)[:7]+"</ComputerName>")
	// The password the build drew is masked in the Actions log (the
	// runner prints ::add-mask:: with it) and is not in the artifact.
	var password string
	for _, l := range strings.Split(r.stdout, "\n") {
		if p, ok := strings.CutPrefix(l, "::add-mask::"); ok {
			password = p
		}
	}
	require.NotEmpty(t, password, "the Administrator password was not masked")
	assert.NotContains(t, string(xml), password)

	// The step summary: every step, and the disk.
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	t.Logf("step summary:\n%s", summary)
	for _, step := range []string{"check-store", "fetch-iso", "extract-wim", "choose-image", "payload", "unattend", "add-files",
		"layout", "format-ntfs", "apply-image", "registry", "boot", "splice", "vhd", "store"} {
		assert.Contains(t, string(summary), "| "+step+" | ")
	}
	assert.Contains(t, string(summary), "| size | 1.00 GiB |")
	// Built for azure (the default --platform) though stored locally: the
	// payload that applies to azure is placed.
	for _, p := range []string{"package tool.msi", "package modules.zip", "driver netdrv"} {
		assert.Contains(t, string(summary), "| "+p+" |")
	}

	// The record, on the origin's records branch.
	show := git(t, rp.origin, "show", "cib-records:records/staging/azure/disk/win10-64.json")
	assert.Contains(t, show, `"fingerprint": "`+out["fingerprint"]+`"`)
	assert.Contains(t, show, store+"/"+name)
	assertEmptyDir(t, work)

	// Again, with the same flags: already stored, nothing built or touched.
	before, err := os.Stat(vhdPath)
	require.NoError(t, err)
	env2 := actionsEnv(t, "push", map[string]any{}, rp.head(t))
	r = run(t, rp.dir, env2, args...)
	require.Equal(t, 0, r.code, r.stderr)
	t.Logf("second run stdout:\n%s", r.stdout)
	assert.Contains(t, r.stdout, "disk image "+store+"/"+name+" is already built")
	assert.Contains(t, r.stderr, "is already stored with fingerprint "+out["fingerprint"]+"; nothing to build")
	out2 := outputs(t, env2["GITHUB_OUTPUT"])
	assert.Equal(t, "true", out2["skipped"])
	assert.Equal(t, name, out2["image-name"])
	assert.Equal(t, out["fingerprint"], out2["fingerprint"])
	after, err := os.Stat(vhdPath)
	require.NoError(t, err)
	assert.True(t, os.SameFile(before, after), "the stored VHD was replaced")
	assert.Equal(t, before.ModTime(), after.ModTime(), "the stored VHD was written")
	summary2, err := os.ReadFile(env2["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary2), "already stored with this fingerprint")
	assertEmptyDir(t, work)
}

// startAzurite starts Azurite for one test; it skips the test when Azurite
// cannot be started, except under CI, where that fails it.
func startAzurite(t *testing.T) string {
	t.Helper()
	url, stop, err := azuritetest.Start()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("azurite unavailable under CI: %v", err)
		}
		t.Skipf("azurite unavailable: %v", err)
	}
	t.Cleanup(stop)
	return url
}

// blobNames lists the blobs of container c.
func blobNames(t *testing.T, c *azure.ContainerClient) []string {
	t.Helper()
	var names []string
	pager := c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		require.NoError(t, err)
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

func TestBuildDiskImageAzure(t *testing.T) {
	f := requireBuild(t)
	url := startAzurite(t)
	rp, _ := buildRepo(t)
	env := actionsEnv(t, "push", map[string]any{}, rp.head(t))
	env[azure.ConnectionStringVar] = azuritetest.ConnectionString(url)
	ctx := context.Background()
	c, err := azure.NewContainerClient(azure.ContainerOptions{Container: "images", Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)
	_, err = c.Create(ctx, nil)
	require.NoError(t, err)

	t.Run("built", func(t *testing.T) {
		work, arts := t.TempDir(), t.TempDir()
		r := run(t, rp.dir, env, "build", "disk-image", "win10-64", "--platform", "azure", "--container", "images",
			"--work-dir", work, "--artifacts", arts, "--iso", f.ISO)
		require.Equal(t, 0, r.code, r.stderr)
		t.Logf("stdout:\n%s", r.stdout)
		out := outputs(t, env["GITHUB_OUTPUT"])
		name := out["image-name"]
		assert.True(t, strings.HasSuffix(name, "/"+rp.head(t)[:7]+"-azure-windows10-professional-en-us-x86-64-fixed.vhd"), name)
		// The blob URL, which the machine-image stage imports from.
		assert.Equal(t, c.URL()+"/"+name, out["image-location"])
		assert.Equal(t, "false", out["skipped"])

		ok, md, err := azure.Exists(ctx, c, name)
		require.NoError(t, err)
		require.True(t, ok, "no blob %s", name)
		assert.Equal(t, out["fingerprint"], md["fingerprint"])
		assert.Equal(t, rp.head(t), md["revision"])
		assert.Equal(t, []string{name}, blobNames(t, c), "only the image is in the container")
		size, err := azure.BlobSize(ctx, c, name)
		require.NoError(t, err)
		assert.Equal(t, int64(1<<30+512), size)

		summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
		require.NoError(t, err)
		t.Logf("step summary:\n%s", summary)
		assert.Contains(t, string(summary), "| uploaded | ")
		assert.Contains(t, string(summary), "| skipped (zeros) | ")
		assert.Contains(t, string(summary), "| store | ")
		// The payload is selected for azure: every package and driver is
		// placed.
		for _, p := range []string{"| package tool.msi | ", "| package modules.zip | ", "| driver netdrv | "} {
			assert.Contains(t, string(summary), p)
		}
		assert.Contains(t, r.stderr, "upload: ")
		js, err := os.ReadFile(filepath.Join(arts, "win10-64", "image-bucket-resource.json"))
		require.NoError(t, err)
		assert.Contains(t, string(js), `"key": "`+name+`"`)
		assertEmptyDir(t, work)
	})

	t.Run("no such container", func(t *testing.T) {
		work, arts := t.TempDir(), t.TempDir()
		before := blobNames(t, c)
		r := run(t, rp.dir, env, "build", "disk-image", "win10-64", "--platform", "azure", "--container", "missing",
			"--work-dir", work, "--artifacts", arts, "--iso", f.ISO)
		assert.Equal(t, cli.ExitFailure, r.code)
		t.Logf("stderr:\n%s", r.stderr)
		assert.Contains(t, r.stderr, "step check-store: azure: container "+azuritetest.Account+"/missing does not exist")
		assert.NotContains(t, r.stderr, "fetch-iso done", "the build went on without a container")
		assert.Equal(t, before, blobNames(t, c))
		missing, err := azure.NewContainerClient(azure.ContainerOptions{Container: "missing", Getenv: func(k string) string { return env[k] }})
		require.NoError(t, err)
		_, err = missing.GetProperties(ctx, nil)
		assert.Error(t, err, "the container was created")
		assertEmptyDir(t, work)
		assertEmptyDir(t, arts)
	})
}
