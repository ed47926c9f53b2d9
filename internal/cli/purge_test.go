package cli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
)

// The tests of `cib purge`: a mixed inventory in an in-memory Azure
// (azuretest), purged through the real clients of internal/azure.

const (
	pGroup  = "rg-east-us-gecko-t"                    // a target group of win7-32-gpu, pool gecko-t/win7-32-gpu-azure
	pOther  = "rg-central-us-relops"                  // a target group of another key: out of scope
	pExtra  = "rg-taskcluster-worker-manager-staging" // staging's purge.groups
	pRegion = "eastus"
	pPool   = "gecko-t/win7-32-gpu-azure"
)

type purgeRig struct {
	dir string
	a   *azuretest.Azure
	m   *azure.Machines
	now time.Time // what purge takes as now: two hours after the rig was made
	// ids by short name
	ids map[string]string
}

func purgeGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
}

func (r *purgeRig) run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return env[k] },
		Dir:    r.dir,
		Azure: func(subscription string) (*azure.Machines, error) {
			m, err := azure.StandIn(subscription, r.a.ClientOptions())
			if m != nil {
				m.PollFrequency = time.Millisecond
			}
			return m, err
		},
	}
	var code int
	if len(args) > 0 && args[0] == "purge" {
		code = runPurge(args[1:], e)
	} else {
		code = Main(args, e)
	}
	return code, out.String(), errb.String()
}

func managedRes(group, name string, tags map[string]string) machineimage.Resource {
	return machineimage.Resource{Group: group, Region: pRegion, Name: name, Tags: tags}
}

// newPurgeRig lays out the inventory:
//
//	in pGroup (in scope):
//	  vm-off   managed, deallocated          → deleted, with nic-vm-off and disk-vm-off
//	  vm-run   managed, running              → kept, with its NIC and disk
//	  vm-bare  untagged, deallocated         → kept (not cib's), with its NIC and disk
//	  pip-gone managed, expired              → deleted
//	  nic-idle managed, no VM, age unknown   → kept
//	  disk-old managed, unattached, 3 h      → deleted
//	  disk-new managed, unattached, 10 min   → kept (too young)
//	  img-1..4 managed, key win7-32-gpu      → img-4, img-3 kept (newest two), img-2 deleted,
//	                                            img-1 kept (referenced by the deployed pool)
//	  img-bare untagged, old                 → kept
//	in pOther (out of scope): vm-away managed, deallocated; disk-away managed, old → kept
//	in pExtra (only with --extra): disk-wm untagged, unattached, old → deleted with --extra
func newPurgeRig(t *testing.T) *purgeRig {
	t.Helper()
	dir, origin := t.TempDir(), t.TempDir()
	purgeGit(t, origin, "init", "-q", "--bare")
	purgeGit(t, dir, "init", "-q", "-b", "main")
	require.NoError(t, os.CopyFS(filepath.Join(dir, "config"), os.DirFS("../../config")))
	purgeGit(t, dir, "add", "config")
	purgeGit(t, dir, "commit", "-q", "-m", "config")
	purgeGit(t, dir, "remote", "add", "origin", origin)

	a := azuretest.New()
	t.Cleanup(a.Close)
	a.OfferSizes(pRegion, azuretest.StandardSizes[:5]...)
	m, err := azure.StandIn(azuretest.Subscription, a.ClientOptions())
	require.NoError(t, err)
	m.PollFrequency = time.Millisecond
	r := &purgeRig{dir: dir, a: a, m: m, now: time.Now().Add(2 * time.Hour), ids: map[string]string{}}
	ctx := context.Background()
	managed := map[string]string{machineimage.TagManaged: "true", machineimage.TagExpires: machineimage.NoExpiry}

	subnets := map[string]string{}
	for i, g := range []string{pGroup, pOther, pExtra} {
		prefix := []string{"10.1", "10.2", "10.3"}[i]
		sn, err := m.EnsureNetwork(ctx, machineimage.Network{Group: g, Region: pRegion, NSG: "nsg", VNet: "vn",
			Prefix: prefix + ".0.0/16", Subnet: "sn", SubnetPrefix: prefix + ".0.0/24"})
		require.NoError(t, err)
		subnets[g] = sn
	}
	vm := func(group, name string, tags map[string]string, deallocate bool) {
		nic, err := m.CreateNIC(ctx, managedRes(group, "nic-"+name, tags), subnets[group], "")
		require.NoError(t, err)
		disk, err := m.CreateDisk(ctx, machineimage.Disk{
			Resource: managedRes(group, "disk-"+name, tags), SKU: "StandardSSD_LRS", SizeGiB: 64, HyperVGeneration: "V2",
			SourceBlob:       "https://cibimages.blob.core.windows.net/vhd/win.vhd",
			StorageAccountID: "/subscriptions/" + azuretest.Subscription + "/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/cibimages",
		})
		require.NoError(t, err)
		id, err := m.CreateVM(ctx, machineimage.VM{Resource: managedRes(group, name, tags), Size: "Standard_DS3_v2", OSDiskID: disk, NICID: nic})
		require.NoError(t, err)
		if deallocate {
			require.NoError(t, m.Deallocate(ctx, id))
		}
		r.ids[name], r.ids["nic-"+name], r.ids["disk-"+name] = id, nic, disk
	}
	vm(pGroup, "vm-off", managed, true)
	vm(pGroup, "vm-run", managed, false)
	vm(pGroup, "vm-bare", nil, true)
	vm(pOther, "vm-away", managed, true)

	expired := map[string]string{machineimage.TagManaged: "true", machineimage.TagRun: "https://example.invalid/run/1",
		machineimage.TagExpires: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}
	r.ids["pip-gone"], err = m.CreatePublicIP(ctx, managedRes(pGroup, "pip-gone", expired))
	require.NoError(t, err)
	r.ids["nic-idle"], err = m.CreateNIC(ctx, managedRes(pGroup, "nic-idle", managed), subnets[pGroup], "")
	require.NoError(t, err)

	ptr := func(tags map[string]string) map[string]*string {
		out := map[string]*string{}
		for k, v := range tags {
			out[k] = to.Ptr(v)
		}
		return out
	}
	disk := func(group, name string, tags map[string]string, age time.Duration) {
		id, err := a.Put(armcompute.Disk{
			ID: to.Ptr(azuretest.ResourceID(group, "Microsoft.Compute", "disks", name)), Name: to.Ptr(name),
			Type: to.Ptr("Microsoft.Compute/disks"), Location: to.Ptr(pRegion), Tags: ptr(tags),
			Properties: &armcompute.DiskProperties{DiskState: to.Ptr(armcompute.DiskStateUnattached), TimeCreated: to.Ptr(r.now.Add(-age))},
		})
		require.NoError(t, err)
		r.ids[name] = id
	}
	disk(pGroup, "disk-old", managed, 3*time.Hour)
	disk(pGroup, "disk-new", managed, 10*time.Minute)
	disk(pOther, "disk-away", managed, 3*time.Hour)
	disk(pExtra, "disk-wm", nil, 3*time.Hour)

	image := func(name string, tags map[string]string, age time.Duration) {
		id, err := a.Put(armcompute.Image{
			ID: to.Ptr(azuretest.ResourceID(pGroup, "Microsoft.Compute", "images", name)), Name: to.Ptr(name),
			Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(pRegion), Tags: ptr(tags),
			SystemData: &armcompute.SystemData{CreatedAt: to.Ptr(r.now.Add(-age))},
		})
		require.NoError(t, err)
		r.ids[name] = id
	}
	keyed := map[string]string{machineimage.TagManaged: "true", machineimage.TagExpires: machineimage.NoExpiry, machineimage.TagKey: "win7-32-gpu"}
	for i, age := range []time.Duration{240, 216, 192, 168} {
		image("img-"+string(rune('1'+i)), keyed, age*time.Hour)
	}
	image("img-bare", nil, 240*time.Hour)
	return r
}

// deploy records img-1 as the machine image of pGroup and the pool as
// deployed with it.
func (r *purgeRig) deploy(t *testing.T) {
	t.Helper()
	code, _, stderr := r.run(t, nil, "record", "machine-image", "--environment", "staging", "--key", "win7-32-gpu", "--group", pGroup,
		"--image-name", "img-1", "--image-location", r.ids["img-1"])
	require.Equal(t, 0, code, stderr)
	code, _, stderr = r.run(t, nil, "record", "pool-config", "--environment", "staging", "--pool", pPool)
	require.Equal(t, 0, code, stderr)
	purgeGit(t, r.dir, "fetch", "-q", "origin", "+refs/heads/cib-records:refs/remotes/origin/cib-records")
}

func (r *purgeRig) gone(before []string) []string {
	var out []string
	for _, id := range before {
		if !slices.ContainsFunc(r.a.IDs(), func(x string) bool { return strings.EqualFold(x, id) }) {
			out = append(out, id)
		}
	}
	return out
}

func (r *purgeRig) idsOf(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, r.ids[n])
	}
	return out
}

func movePurgeNow(t *testing.T, now time.Time) {
	old := purgeNow
	purgeNow = func() time.Time { return now }
	t.Cleanup(func() { purgeNow = old })
}

func TestPurgeDeletesExactlyWhatTheRulesSay(t *testing.T) {
	r := newPurgeRig(t)
	r.deploy(t)
	movePurgeNow(t, r.now)
	base := []string{"purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--groups", pGroup}
	wantGone := r.idsOf("vm-off", "nic-vm-off", "disk-vm-off", "pip-gone", "disk-old", "img-2")

	// A dry run lists and touches nothing.
	before := r.a.IDs()
	summary := filepath.Join(t.TempDir(), "summary.md")
	code, stdout, stderr := r.run(t, map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary}, append(base, "--dry-run")...)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, before, r.a.IDs(), "a dry run deletes nothing")
	for _, c := range r.a.Calls() {
		assert.NotContains(t, c.API, "Delete", "a dry run sends no delete")
	}
	for _, n := range []string{"vm " + pGroup + "/vm-off", "nic " + pGroup + "/nic-vm-off", "disk " + pGroup + "/disk-old", "publicip " + pGroup + "/pip-gone", "image " + pGroup + "/img-2"} {
		assert.Contains(t, stdout, "would delete "+n+":")
	}
	assert.Equal(t, 6, strings.Count(stdout, "would delete "), stdout)
	md, err := os.ReadFile(summary)
	require.NoError(t, err)
	assert.Contains(t, string(md), "## Purge (dry run: nothing deleted)")
	assert.Contains(t, string(md), "6 to delete")

	// The purge deletes exactly those.
	code, stdout, stderr = r.run(t, nil, base...)
	require.Equal(t, 0, code, stderr+stdout)
	assert.ElementsMatch(t, wantGone, r.gone(before), stdout)
	assert.Equal(t, 6, strings.Count(stdout, "\ndeleted ")+boolInt(strings.HasPrefix(stdout, "deleted ")), stdout)
	// Each kept resource, with its reason.
	for n, why := range map[string]string{
		"vm " + pGroup + "/vm-run":      "not deallocated",
		"vm " + pGroup + "/vm-bare":     "not managed by cib",
		"nic " + pGroup + "/nic-idle":   "creation time unknown",
		"disk " + pGroup + "/disk-new":  "younger than the minimum age",
		"image " + pGroup + "/img-1":    "referenced by a deployed worker-pool configuration",
		"image " + pGroup + "/img-4":    "one of the newest 2",
		"image " + pGroup + "/img-3":    "one of the newest 2",
		"image " + pGroup + "/img-bare": "not managed by cib",
	} {
		line := lineOf(stdout, "kept "+n+":")
		assert.Contains(t, line, why, "kept %s", n)
	}
	assert.NotContains(t, stdout, pOther, "another group is not even listed")
	assert.NotContains(t, stdout, pExtra)

	// Again: nothing left to delete.
	after := r.a.IDs()
	code, stdout, stderr = r.run(t, nil, base...)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, after, r.a.IDs())
	assert.NotContains(t, stdout, "deleted ")
}

func TestPurgeExtraGroupsAndDefaultScope(t *testing.T) {
	r := newPurgeRig(t)
	movePurgeNow(t, r.now)
	before := r.a.IDs()

	// The default scope: the target groups of the key (pGroup among them, not pOther).
	code, stdout, stderr := r.run(t, nil, "purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--key", "win7-32-gpu", "--dry-run")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, pGroup)
	assert.NotContains(t, stderr, pOther)
	assert.Contains(t, stderr, "no pool records for environment staging", "no pool records: nothing protected, and said so")
	assert.Contains(t, stdout, "would delete image "+pGroup+"/img-1:", "without a pool record img-1 is beyond retention")
	assert.NotContains(t, stdout, "disk-wm")

	// --extra adds the environment's purge.groups, where cib's tag is not needed.
	code, stdout, stderr = r.run(t, nil, "purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--groups", pOther, "--extra")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "deleted disk "+pExtra+"/disk-wm: disk attached to no VM")
	gone := r.gone(before)
	assert.Contains(t, gone, r.ids["disk-wm"])
	assert.Contains(t, gone, r.ids["vm-away"], "pOther was the scope this time")
	assert.NotContains(t, gone, r.ids["vm-off"], "pGroup was not")
}

func TestPurgeFailedDeleteExitsOne(t *testing.T) {
	r := newPurgeRig(t)
	r.deploy(t)
	movePurgeNow(t, r.now)
	before := r.a.IDs()
	r.a.Inject(azuretest.Fault{API: "DisksClient.BeginDelete", Status: http.StatusConflict, Code: "OperationNotAllowed", Message: "disk is busy"})
	summary := filepath.Join(t.TempDir(), "summary.md")
	code, stdout, stderr := r.run(t, map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary},
		"purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--groups", pGroup, "--timeout", "30s")
	assert.Equal(t, ExitFailure, code, stdout)
	assert.Contains(t, stdout, "failed to delete disk "+pGroup+"/disk-old: disk attached to no VM: azure: delete")
	assert.Contains(t, stdout, "disk is busy")
	assert.Contains(t, stdout, "failed to delete disk "+pGroup+"/disk-vm-off:")
	assert.Contains(t, stderr, "deletes failed")
	md, err := os.ReadFile(summary)
	require.NoError(t, err)
	assert.Contains(t, string(md), "### Failed")
	assert.Contains(t, string(md), "disk-old")
	// What did not fail went.
	assert.ElementsMatch(t, r.idsOf("vm-off", "nic-vm-off", "pip-gone", "img-2"), r.gone(before))
	assert.Contains(t, r.a.IDs(), r.ids["disk-new"], "the fault changes nothing of what the rules keep")
}

func TestPurgeRefusals(t *testing.T) {
	r := newPurgeRig(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"purge"}, "--environment is required"},
		{[]string{"purge", "--environment", "nowhere", "--subscription", "s"}, "not an environment"},
		{[]string{"purge", "--environment", "staging", "--subscription", "s", "--key", "nokey"}, `--key "nokey"`},
		{[]string{"purge", "--environment", "staging", "--subscription", "s", "--gallery", "g"}, "GALLERY/DEFINITION"},
		{[]string{"purge", "--environment", "staging", "--groups", pGroup}, "no subscription"},
	} {
		code, _, stderr := r.run(t, nil, c.args...)
		assert.Equal(t, ExitUsage, code, c.args)
		assert.Contains(t, stderr, c.want, c.args)
	}
}

func TestGalleryOf(t *testing.T) {
	d, ok := galleryOf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/gal/images/def/versions/1.0.0")
	assert.True(t, ok)
	assert.Equal(t, azure.GalleryImage{Group: "rg", Gallery: "gal", Definition: "def"}, d)
	_, ok = galleryOf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/img")
	assert.False(t, ok)
}

func lineOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPurgeThisRunTakesWhatTheEndedRunLeft(t *testing.T) {
	r := newPurgeRig(t)
	movePurgeNow(t, r.now)
	ctx := context.Background()
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "77"}
	left := func(run string) map[string]string {
		return map[string]string{machineimage.TagManaged: "true", machineimage.TagRun: run,
			machineimage.TagExpires: r.now.Add(3 * time.Hour).UTC().Format(time.RFC3339)}
	}
	mine, err := r.m.CreatePublicIP(ctx, managedRes(pGroup, "pip-mine", left("https://github.com/o/r/actions/runs/77")))
	require.NoError(t, err)
	theirs, err := r.m.CreatePublicIP(ctx, managedRes(pGroup, "pip-theirs", left("https://github.com/o/r/actions/runs/78")))
	require.NoError(t, err)

	// Without --this-run both are young and unexpired: kept.
	code, stdout, stderr := r.run(t, env, "purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--groups", pGroup, "--dry-run")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "publicip "+pGroup+"/pip-mine: expires at", "kept: "+stdout)

	before := r.a.IDs()
	code, stdout, stderr = r.run(t, env, "purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--groups", pGroup, "--this-run")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "deleted publicip "+pGroup+"/pip-mine: left by run https://github.com/o/r/actions/runs/77, which has ended")
	gone := r.gone(before)
	assert.Contains(t, gone, mine)
	assert.NotContains(t, gone, theirs, "another run's resources wait for their expiry")

	code, _, stderr = r.run(t, nil, "purge", "--environment", "staging", "--subscription", azuretest.Subscription, "--groups", pGroup, "--this-run")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "--this-run needs GitHub Actions")
}
