package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/cli"
	"github.com/cib-project/cib/internal/machineimage"
)

// The end-to-end tests of `cib build machine-image`: whole builds, run
// in-process against an in-memory Azure (azuretest) through the real
// clients of internal/azure, from the disk-image record to the captured
// image, its outputs, step summary, artifacts and record.

const (
	mGroup    = "rg-central-us-gecko-t"
	mRegion   = "centralus"
	mSecret   = "s3cr3t-t0ken-value"
	mVHD      = "https://cibimages.blob.core.windows.net/images/vhd/2025-01-01/abc1234-azure-windows10-professional-en-us-x86-64-fixed.vhd"
	mStorage  = "/subscriptions/" + azuretest.Subscription + "/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/cibimages"
	mDiskName = "vhd/2025-01-01/abc1234-azure-windows10-professional-en-us-x86-64-fixed.vhd"
)

// machineRig is a repository whose win10-64 targets run one bootstrap
// execution with a secret token, and an Azure with the target's group
// and sizes, whose guests reseal, run the execution and generalize.
type machineRig struct {
	rp *repo
	a  *azuretest.Azure

	mu      sync.Mutex
	scripts []string // what Run Command ran in the guests
}

func newMachineRig(t *testing.T) *machineRig {
	t.Helper()
	rp := newRepo(t, "build win10-64")
	path := filepath.Join(rp.dir, "config", "win10-64.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	old := "      bootstrap: &bootstrap\n          executions: []\n"
	require.Contains(t, string(data), old)
	data = bytes.Replace(data, []byte(old), []byte(`      bootstrap: &bootstrap
          executions:
              - name: set-secret
                shell: azure-powershell
                commands:
                    - format: "Set-Secret -Value '{0}'"
                      tokens: [ SECRET_TOKEN ]
                test:
                    std:
                        out:
                            match: secret set
                on:
                    failure: fail
`), 1)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	git(t, rp.dir, "commit", "-q", "-am", "win10-64: a bootstrap execution with a token")

	r := &machineRig{rp: rp, a: azuretest.New()}
	t.Cleanup(r.a.Close)
	r.a.OfferSizes(mRegion, azuretest.StandardSizes...)
	r.a.DefaultGuest = azuretest.Guest{
		// Boot 1 reseals to audit mode and stops; boot 2 runs the
		// bootstrap, then sysprep generalizes and stops the VM.
		Boots: []time.Duration{150 * time.Millisecond, 1500 * time.Millisecond},
		Commands: func(script string) (string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.scripts = append(r.scripts, script)
			return "secret set\n", nil
		},
	}
	// The target's resource group is shared infrastructure that exists
	// before any build.
	m, err := azure.StandIn(azuretest.Subscription, r.a.ClientOptions())
	require.NoError(t, err)
	m.PollFrequency = time.Millisecond
	_, err = m.EnsureNetwork(context.Background(), machineimage.Network{
		Group: mGroup, Region: mRegion, NSG: "nsg-central-us-gecko-t", VNet: "vn-central-us-gecko-t",
		Prefix: "10.0.0.0/24", Subnet: "sn-central-us-gecko-t", SubnetPrefix: "10.0.0.0/24",
	})
	require.NoError(t, err)
	return r
}

// recordDisk records the disk image of win10-64 for staging, as `cib
// build disk-image --store azure --record` would.
func (r *machineRig) recordDisk(t *testing.T) {
	t.Helper()
	res := run(t, r.rp.dir, map[string]string{}, "record", "disk-image", "--key", "win10-64", "--environment", "staging",
		"--image-name", mDiskName, "--image-location", mVHD)
	require.Equal(t, 0, res.code, res.stderr)
}

// run runs cib with the rig's Azure, polls and waits shortened.
func (r *machineRig) run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, cli.Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return env[k] },
		Dir:    r.rp.dir,
		Azure: func(subscription string) (*azure.Machines, error) {
			m, err := azure.StandIn(subscription, r.a.ClientOptions())
			if m != nil {
				m.PollFrequency = time.Millisecond
			}
			return m, err
		},
		TuneMachineImage: func(in *machineimage.BuildInputs) {
			in.PollMin, in.PollMax, in.StableStop = 10*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond
		},
	})
	return result{code, out.String(), errb.String()}
}

func (r *machineRig) guestScripts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.scripts...)
}

func machineArgs(arts string, extra ...string) []string {
	return append([]string{"build", "machine-image", "win10-64", "--group", mGroup, "--environment", "staging",
		"--subscription", azuretest.Subscription, "--storage-account-id", mStorage, "--artifacts", arts,
		"--token", "SECRET_TOKEN=" + mSecret}, extra...)
}

// assertMasked fails if secret appears in out other than in the
// ::add-mask:: command that hides it.
func assertMasked(t *testing.T, out, secret string) {
	t.Helper()
	assert.NotContains(t, strings.ReplaceAll(out, "::add-mask::"+secret, ""), secret, "a secret is in the log unmasked")
}

func TestBuildMachineImage(t *testing.T) {
	r := newMachineRig(t)
	r.recordDisk(t)
	before := r.a.IDs()
	arts := t.TempDir()
	env := actionsEnv(t, "push", map[string]any{}, r.rp.head(t))

	res := r.run(t, env, machineArgs(arts, "--record")...)
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)

	out := outputs(t, env["GITHUB_OUTPUT"])
	sha := r.rp.head(t)
	// The disk image's revision is the commit recorded with it: this one.
	assert.Equal(t, "central-us-gecko-t-win10-64-"+sha[:7]+"-39b8154", out["image-name"])
	wantID := azuretest.ResourceID(mGroup, "Microsoft.Compute", "images", out["image-name"])
	assert.True(t, strings.EqualFold(wantID, out["image-id"]), "image-id %s, want %s", out["image-id"], wantID)
	assert.Equal(t, "centralus", out["regions"])
	assert.Equal(t, "false", out["skipped"])
	assert.Empty(t, out["failed-phase"])
	assert.True(t, strings.HasPrefix(out["fingerprint"], "sha256:"), out["fingerprint"])
	assert.Contains(t, res.stdout, "built machine image "+out["image-name"])

	// Only the image is left of what the run made.
	left := r.a.Since(before)
	require.Len(t, left, 1, "%v", left)
	assert.True(t, strings.EqualFold(wantID, left[0]), left[0])

	// The token reached the guest, and the log only in its mask.
	scripts := strings.Join(r.guestScripts(), "\n")
	assert.Contains(t, scripts, "Set-Secret -Value '"+mSecret+"'")
	assert.Contains(t, res.stdout, "::add-mask::"+mSecret)
	assertMasked(t, res.stdout, mSecret)
	assertMasked(t, res.stderr, mSecret)

	// Boot diagnostics were saved at the changes of state.
	files, err := os.ReadDir(arts)
	require.NoError(t, err)
	require.NotEmpty(t, files, "no boot diagnostics were saved")
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	t.Logf("artifacts: %v", names)

	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	t.Logf("step summary:\n%s", summary)
	for _, p := range []string{machineimage.PhasePreflight, machineimage.PhaseDisk, machineimage.PhaseNetwork, machineimage.PhaseVM,
		machineimage.PhaseReseal, machineimage.PhaseBootstrap, machineimage.PhaseGeneralize, machineimage.PhaseCapture, machineimage.PhaseTag} {
		assert.Contains(t, string(summary), "| "+p+" | ")
	}
	assert.Contains(t, string(summary), "| image id | `"+out["image-id"]+"` |")
	assert.Contains(t, string(summary), "| regions replicated | centralus |")
	assertMasked(t, string(summary), mSecret)

	// The record, on the origin's records branch.
	rec := git(t, r.rp.origin, "show", "cib-records:records/staging/azure/machine/win10-64/"+mGroup+".json")
	assert.Contains(t, rec, `"fingerprint": "`+out["fingerprint"]+`"`)
	assert.Contains(t, rec, `"location": "`+out["image-id"]+`"`)
	assert.Contains(t, rec, `"name": "`+out["image-name"]+`"`)
	assert.Contains(t, res.stdout, "recorded records/staging/azure/machine/win10-64/"+mGroup+".json")

	// Again: the image exists, so nothing is built (exit 0).
	env2 := actionsEnv(t, "push", map[string]any{}, sha)
	before = r.a.IDs()
	res = r.run(t, env2, machineArgs(t.TempDir())...)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	out2 := outputs(t, env2["GITHUB_OUTPUT"])
	assert.Equal(t, "true", out2["skipped"])
	assert.Equal(t, out["image-name"], out2["image-name"])
	assert.True(t, strings.EqualFold(out["image-id"], out2["image-id"]), out2["image-id"])
	assert.Contains(t, res.stdout, "exists: skipped")
	assert.Empty(t, r.a.Since(before), "a skipped build created resources")
	summary2, err := os.ReadFile(env2["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary2), "nothing was built")
}

func TestBuildMachineImageQuotaIsRetryable(t *testing.T) {
	r := newMachineRig(t)
	r.recordDisk(t)
	// Standard_DS3_v2 needs 4 vCPUs; 2 are free.
	r.a.SetQuota(mRegion, "standardDSv2Family", 98, 100)
	before := r.a.IDs()
	env := actionsEnv(t, "push", map[string]any{}, r.rp.head(t))
	res := r.run(t, env, machineArgs(t.TempDir())...)
	t.Logf("stderr:\n%s", res.stderr)
	assert.Equal(t, cli.ExitRetryable, res.code)
	assert.Equal(t, 75, cli.ExitRetryable)
	assert.Contains(t, res.stderr, "vCPU quota")
	assert.Empty(t, r.a.Since(before), "resources were created before the quota was checked")
	out := outputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, machineimage.PhasePreflight, out["failed-phase"])
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "**Failed in phase preflight**")
	assert.Contains(t, string(summary), "re-run the job")
	assertMasked(t, res.stdout, mSecret)
	assertMasked(t, res.stderr, mSecret)
}

func TestBuildMachineImageFailsAtAPhaseWithTheSerialLog(t *testing.T) {
	r := newMachineRig(t)
	r.recordDisk(t)
	// The first boot never ends: the reseal wait times out.
	r.a.DefaultGuest = azuretest.Guest{}
	path := filepath.Join(r.rp.dir, "config", "settings.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), "    reseal: 30m\n")
	require.NoError(t, os.WriteFile(path, bytes.Replace(data, []byte("    reseal: 30m\n"), []byte("    reseal: 300ms\n"), 1), 0o644))
	git(t, r.rp.dir, "commit", "-q", "-am", "a short reseal")
	before := r.a.IDs()
	arts := t.TempDir()
	env := actionsEnv(t, "push", map[string]any{}, r.rp.head(t))
	res := r.run(t, env, machineArgs(arts)...)
	t.Logf("stderr:\n%s", res.stderr)
	assert.Equal(t, cli.ExitRetryable, res.code, "a guest that does not reach a state in time is retryable")
	assert.Empty(t, r.a.Since(before), "the run left resources")
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	t.Logf("step summary:\n%s", summary)
	assert.Contains(t, string(summary), "**Failed in phase reseal**")
	assert.Contains(t, string(summary), "| reseal (failed) | ")
	assert.Contains(t, string(summary), "Last lines of the serial log")
	assert.Contains(t, string(summary), "Windows Boot Manager")
	files, err := os.ReadDir(arts)
	require.NoError(t, err)
	assert.NotEmpty(t, files, "no boot diagnostics on failure")
}

func TestBuildMachineImageRefusals(t *testing.T) {
	r := newMachineRig(t)
	before := r.a.IDs()
	env := actionsEnv(t, "push", map[string]any{}, r.rp.head(t))

	t.Run("no disk record", func(t *testing.T) {
		res := r.run(t, env, machineArgs(t.TempDir())...)
		assert.Equal(t, cli.ExitFailure, res.code)
		assert.Contains(t, res.stderr, "key win10-64 has no disk-image record for environment staging on azure")
		assert.Contains(t, res.stderr, "cib build disk-image win10-64 --record")
	})
	r.recordDisk(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown group", []string{"build", "machine-image", "win10-64", "--group", "rg-nowhere", "--environment", "staging",
			"--subscription", azuretest.Subscription, "--storage-account-id", mStorage},
			cli.ExitUsage, `key win10-64 has no azure target in group "rg-nowhere"; its azure groups: rg-central-us-gecko-t, rg-east-us-gecko-t, rg-east-us-2-gecko-t`},
		{"no storage account", []string{"build", "machine-image", "win10-64", "--group", mGroup, "--environment", "staging",
			"--subscription", azuretest.Subscription}, cli.ExitUsage, "pass --storage-account-id"},
		{"no environment", []string{"build", "machine-image", "win10-64", "--group", mGroup}, cli.ExitUsage, "--environment is required"},
		{"no group", []string{"build", "machine-image", "win10-64", "--environment", "staging"}, cli.ExitUsage, "--group is required"},
		{"no key", []string{"build", "machine-image", "--group", mGroup}, cli.ExitUsage, "name the image key"},
		{"unknown key", []string{"build", "machine-image", "win99", "--group", mGroup, "--environment", "staging"}, cli.ExitUsage, `"win99" is not an image key`},
		{"no subscription", []string{"build", "machine-image", "win10-64", "--group", mGroup, "--environment", "staging",
			"--storage-account-id", mStorage}, cli.ExitUsage, "pass --subscription or set AZURE_SUBSCRIPTION_ID"},
		{"other platform", []string{"build", "machine-image", "win10-64", "--group", mGroup, "--environment", "staging", "--platform", "amazon"},
			cli.ExitUsage, "built on azure only"},
		{"bad token", []string{"build", "machine-image", "win10-64", "--group", mGroup, "--token", "novalue"}, cli.ExitUsage, "want NAME=VALUE"},
		{"stale fingerprint", machineArgs(t.TempDir(), "--fingerprint", "sha256:"+strings.Repeat("0", 64)), cli.ExitFailure, "not sha256:0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.run(t, env, tc.args...)
			assert.Equal(t, tc.code, res.code, res.stderr)
			assert.Contains(t, res.stderr, tc.want)
			assertMasked(t, res.stdout, mSecret)
			assertMasked(t, res.stderr, mSecret)
		})
	}
	assert.Empty(t, r.a.Since(before), "a refused build created resources")
}

func TestBuildMachineImageHelp(t *testing.T) {
	res := run(t, ".", map[string]string{}, "build", "machine-image", "--help")
	assert.Equal(t, 0, res.code)
	for _, s := range []string{"--group", "--storage-account-id", "--token", "AZURE_CLIENT_ID", "id-token: write", "75"} {
		assert.Contains(t, res.stdout, s)
	}
}

// TestBuildMachineImageCancelled sends the process SIGINT, as GitHub does
// to a cancelled job, while the build waits for the guest: the run undoes
// what it created and returns well within the 8 seconds GitHub allows.
func TestBuildMachineImageCancelled(t *testing.T) {
	r := newMachineRig(t)
	r.recordDisk(t)
	r.a.DefaultGuest = azuretest.Guest{} // never stops: the reseal wait goes on
	before := r.a.IDs()
	env := actionsEnv(t, "push", map[string]any{}, r.rp.head(t))
	done := make(chan result, 1)
	go func() { done <- r.run(t, env, machineArgs(t.TempDir())...) }()

	// Once the VM exists the build is inside Build, under its
	// signal.NotifyContext, so the signal cannot kill the test process.
	deadline := time.Now().Add(20 * time.Second)
	for !slices.ContainsFunc(r.a.Since(before), func(id string) bool { return strings.Contains(id, "/virtualMachines/") }) {
		require.True(t, time.Now().Before(deadline), "no VM was created")
		time.Sleep(5 * time.Millisecond)
	}
	sent := time.Now()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	var res result
	select {
	case res = <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("the build did not return within 8 s of SIGINT")
	}
	t.Logf("returned %s after SIGINT; stderr:\n%s", time.Since(sent).Round(time.Millisecond), res.stderr)
	assert.Equal(t, cli.ExitFailure, res.code)
	assert.Contains(t, res.stderr, "cancelled")
	assert.Empty(t, r.a.Since(before), "the cancelled run left resources")
}
