package cli_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/cli"
)

// The tests of `cib tag`: a machine image built (and recorded) by `cib
// build machine-image` against the in-memory Azure, its tags tampered
// with, then restored from the records.

// builtImage builds and records the win10-64 image of mGroup for staging,
// and returns its name and resource ID.
func builtImage(t *testing.T, r *machineRig) (name, id string) {
	t.Helper()
	r.recordDisk(t)
	env := actionsEnv(t, "push", map[string]any{}, r.rp.head(t))
	res := r.run(t, env, machineArgs(t.TempDir(), "--record")...)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	out := outputs(t, env["GITHUB_OUTPUT"])
	require.NotEmpty(t, out["image-id"])
	return out["image-name"], out["image-id"]
}

// imageTags reads the tags of managed image name in mGroup straight from
// the in-memory Azure.
func imageTags(t *testing.T, r *machineRig, name string) map[string]string {
	t.Helper()
	c, err := armcompute.NewImagesClient(azuretest.Subscription, &fake.TokenCredential{}, r.a.ClientOptions())
	require.NoError(t, err)
	img, err := c.Get(context.Background(), mGroup, name, nil)
	require.NoError(t, err)
	out := map[string]string{}
	for k, v := range img.Tags {
		out[k] = *v
	}
	return out
}

// setImageTags replaces the tags of managed image name in mGroup, as
// someone editing them in the portal would.
func setImageTags(t *testing.T, r *machineRig, name string, tags map[string]string) {
	t.Helper()
	c, err := armcompute.NewImagesClient(azuretest.Subscription, &fake.TokenCredential{}, r.a.ClientOptions())
	require.NoError(t, err)
	az := map[string]*string{}
	for k, v := range tags {
		az[k] = &v
	}
	p, err := c.BeginUpdate(context.Background(), mGroup, name, armcompute.ImageUpdate{Tags: az}, nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(context.Background(), nil)
	require.NoError(t, err)
}

func tagArgs(extra ...string) []string {
	return append([]string{"tag", "--environment", "staging", "--subscription", azuretest.Subscription}, extra...)
}

func TestTagRestoresTheTagsOfABuiltImage(t *testing.T) {
	r := newMachineRig(t)
	name, id := builtImage(t, r)
	built := imageTags(t, r, name)
	t.Logf("tags after the build: %v", built)
	for _, k := range []string{"machineImageCommitSha", "machineImageCommitTime", "machineImageTask", "diskImageCommitSha",
		"diskImageCommitTime", "imageKey", "fingerprint", "resourceId", "os", "cib:expires"} {
		require.NotEmpty(t, built[k], k)
	}

	// Right after the build, the tags are right: nothing to do.
	env := actionsEnv(t, "workflow_dispatch", map[string]any{}, r.rp.head(t))
	res := r.run(t, env, tagArgs()...)
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "win10-64 "+mGroup+": "+name+": unchanged")
	assert.Contains(t, res.stdout, "tagged 0 image(s); 1 unchanged; 0 failed")
	assert.Equal(t, built, imageTags(t, r, name))

	// Someone edits the tags: one dropped, two changed, one of their own.
	tampered := map[string]string{}
	for k, v := range built {
		tampered[k] = v
	}
	delete(tampered, "fingerprint")
	tampered["os"] = "Linux"
	tampered["cib:expires"] = "2026-01-01T00:00:00Z"
	tampered["owner"] = "someone"
	setImageTags(t, r, name, tampered)

	// A dry run reports it and writes nothing.
	writes := func() int {
		n := 0
		for _, c := range r.a.Calls() {
			if c.Method != "GET" {
				n++
			}
		}
		return n
	}
	before := writes()
	env = actionsEnv(t, "workflow_dispatch", map[string]any{}, r.rp.head(t))
	res = r.run(t, env, tagArgs("--dry-run")...)
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "would change 3 tag(s)")
	assert.Contains(t, res.stdout, `~ os: "Linux" → "`+built["os"]+`"`)
	assert.Equal(t, tampered, imageTags(t, r, name), "a dry run changed the tags")
	assert.Equal(t, before, writes(), "a dry run wrote")
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "dry run: nothing was written")

	// The real run restores them, keeping the tag of their own.
	env = actionsEnv(t, "workflow_dispatch", map[string]any{}, r.rp.head(t))
	res = r.run(t, env, tagArgs("--key", "win10-64", "--group", mGroup)...)
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "win10-64 "+mGroup+": "+name+": changed 3 tag(s), ")
	assert.Contains(t, res.stdout, `+ fingerprint: "`+built["fingerprint"]+`"`)
	assert.Contains(t, res.stdout, `~ os: "Linux" → "`+built["os"]+`"`)
	assert.Contains(t, res.stdout, `~ cib:expires: "2026-01-01T00:00:00Z" → "never"`)
	assert.NotContains(t, res.stdout, "resourceId", "the deployment ID is in no record: left alone")
	want := map[string]string{"owner": "someone"}
	for k, v := range built {
		want[k] = v
	}
	assert.Equal(t, want, imageTags(t, r, name))
	out := outputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, map[string]string{"changed": "1", "unchanged": "0", "failed": "0"}, out)
	summary, err = os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	t.Logf("step summary:\n%s", summary)
	assert.Contains(t, string(summary), "| key | group | image | result | changes |")
	assert.Contains(t, string(summary), "| win10-64 | "+mGroup+" | `"+name+"` | changed 3, unchanged ")
	assert.Contains(t, string(summary), "`os`: `Linux` → `"+built["os"]+"`")
	assert.Contains(t, string(summary), "+ `fingerprint`: `"+built["fingerprint"]+"`")

	// Again: nothing left to change, nothing written.
	before = writes()
	env = actionsEnv(t, "workflow_dispatch", map[string]any{}, r.rp.head(t))
	res = r.run(t, env, tagArgs()...)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, ": unchanged (")
	assert.Equal(t, before, writes(), "an idempotent run wrote")
	assert.Equal(t, "0", outputs(t, env["GITHUB_OUTPUT"])["changed"])

	// The image is deleted behind the record's back: a failure naming the
	// record.
	m, err := azure.StandIn(azuretest.Subscription, r.a.ClientOptions())
	require.NoError(t, err)
	m.PollFrequency = time.Millisecond
	require.NoError(t, m.Delete(context.Background(), id))
	env = actionsEnv(t, "workflow_dispatch", map[string]any{}, r.rp.head(t))
	res = r.run(t, env, tagArgs()...)
	t.Logf("stderr:\n%s", res.stderr)
	assert.Equal(t, cli.ExitFailure, res.code)
	assert.Contains(t, res.stderr, "records/staging/azure/machine/win10-64/"+mGroup+".json")
	assert.Contains(t, res.stderr, "the image is missing")
	assert.Equal(t, "1", outputs(t, env["GITHUB_OUTPUT"])["failed"])
	summary, err = os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "**failed**")
}

func TestTagRefusals(t *testing.T) {
	r := newMachineRig(t)
	r.recordDisk(t)
	// A record of an image that was never made.
	missing := azuretest.ResourceID(mGroup, "Microsoft.Compute", "images", "central-us-gecko-t-win10-64-gone")
	res := run(t, r.rp.dir, map[string]string{}, "record", "machine-image", "--key", "win10-64", "--group", mGroup,
		"--environment", "staging", "--image-name", "central-us-gecko-t-win10-64-gone", "--image-location", missing)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	env := map[string]string{}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no environment", []string{"tag"}, cli.ExitUsage, "--environment is required"},
		{"unknown environment", []string{"tag", "--environment", "nowhere"}, cli.ExitUsage, `--environment "nowhere" is not an environment`},
		{"other platform", tagArgs("--platform", "amazon"), cli.ExitUsage, "azure only"},
		{"a key without records", tagArgs("--key", "win99"), cli.ExitFailure, "key win99 has no machine-image record of staging"},
		{"a missing image", tagArgs(), cli.ExitFailure, "records/staging/azure/machine/win10-64/" + mGroup + ".json (image " + missing + "): the image is missing"},
		{"another subscription", tagArgs("--subscription", "00000000-0000-0000-0000-000000000000"), cli.ExitFailure, "not in --subscription 00000000-0000-0000-0000-000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.run(t, env, tc.args...)
			assert.Equal(t, tc.code, res.code, res.stderr)
			assert.Contains(t, res.stderr, tc.want)
		})
	}

	t.Run("no records of the group", func(t *testing.T) {
		res := r.run(t, env, tagArgs("--group", "rg-nowhere")...)
		assert.Equal(t, cli.ExitOK, res.code, res.stderr)
		assert.Contains(t, res.stdout, "no machine-image records of staging")
	})
}

func TestTagHelp(t *testing.T) {
	res := run(t, ".", map[string]string{}, "tag", "--help")
	assert.Equal(t, 0, res.code)
	for _, s := range []string{"--environment", "--key", "--group", "--dry-run", "--subscription", "§4", "fetch-depth: 0"} {
		assert.Contains(t, res.stdout, s)
	}
	assert.True(t, strings.Contains(res.stdout, "idempotent") || strings.Contains(res.stdout, "changes nothing the second time"))
}
