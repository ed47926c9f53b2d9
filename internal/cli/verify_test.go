package cli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/verify"
)

// The tests of `cib verify`: the image recorded for pool
// gecko-t/win7-32-gpu-azure (key win7-32-gpu, one target: group
// rg-east-us-gecko-t in East US, size Standard_NV6) verified in an
// in-memory Azure through the real clients of internal/azure.

const (
	vGroup  = "rg-east-us-gecko-t"
	vRegion = "eastus"
	vPool   = "gecko-t/win7-32-gpu-azure"
	vImage  = "win7-32-gpu-abc1234"
)

type verifyRig struct {
	dir     string
	a       *azuretest.Azure
	imageID string
	before  []string

	mu        sync.Mutex
	passwords []string
}

func verifyGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
}

// newVerifyRig makes the repository (the configuration, a records branch
// with the pool's machine image), and an Azure with the target's group,
// its size, and the image, whose guests answer Run Command.
func newVerifyRig(t *testing.T) *verifyRig {
	t.Helper()
	dir, origin := t.TempDir(), t.TempDir()
	verifyGit(t, origin, "init", "-q", "--bare")
	verifyGit(t, dir, "init", "-q", "-b", "main")
	require.NoError(t, os.CopyFS(filepath.Join(dir, "config"), os.DirFS("../../config")))
	verifyGit(t, dir, "add", "config")
	verifyGit(t, dir, "commit", "-q", "-m", "config")
	verifyGit(t, dir, "remote", "add", "origin", origin)

	a := azuretest.New()
	t.Cleanup(a.Close)
	a.OfferSizes(vRegion, azuretest.VMSize{Name: "Standard_NV6", Family: "standardNVFamily", VCPUs: 6})
	a.DefaultGuest = azuretest.Guest{Commands: func(script string) (string, error) {
		if script == verify.Script {
			return verify.Answer + "\r\n", nil
		}
		return "", nil
	}}
	ctx := context.Background()
	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	_, err = groups.CreateOrUpdate(ctx, vGroup, armresources.ResourceGroup{Location: to.Ptr(vRegion)}, nil)
	require.NoError(t, err)
	id, err := a.Put(armcompute.Image{
		ID: to.Ptr(azuretest.ResourceID(vGroup, "Microsoft.Compute", "images", vImage)), Name: to.Ptr(vImage),
		Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(vRegion),
		Properties: &armcompute.ImageProperties{StorageProfile: &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
			OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
			DiskSizeGB: to.Ptr[int32](64),
		}}},
	})
	require.NoError(t, err)
	r := &verifyRig{dir: dir, a: a, imageID: id}

	old := verifyTune
	verifyTune = func(o *verify.Options) {
		o.Poll, o.CleanupTimeout = 5*time.Millisecond, 10*time.Second
		o.Password = func() (string, error) {
			pw, err := verify.Password()
			r.mu.Lock()
			defer r.mu.Unlock()
			r.passwords = append(r.passwords, pw)
			return pw, err
		}
	}
	t.Cleanup(func() { verifyTune = old })
	r.before = a.IDs()
	return r
}

func (r *verifyRig) record(t *testing.T) {
	t.Helper()
	res := r.run(t, nil, "record", "machine-image", "--environment", "staging", "--key", "win7-32-gpu", "--group", vGroup,
		"--image-name", vImage, "--image-location", r.imageID)
	require.Equal(t, 0, res.code, res.stderr)
	verifyGit(t, r.dir, "fetch", "-q", "origin", "+refs/heads/cib-records:refs/remotes/origin/cib-records")
}

func (r *verifyRig) run(t *testing.T, env map[string]string, args ...string) verifyResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Env{
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
	})
	return verifyResult{code, out.String(), errb.String()}
}

// left is what a run left besides the target's network, which verify
// ensures as shared infrastructure.
func (r *verifyRig) left() []string {
	var out []string
	for _, id := range r.a.Since(r.before) {
		l := strings.ToLower(id)
		if strings.Contains(l, "/networksecuritygroups/") || strings.Contains(l, "/virtualnetworks/") {
			continue
		}
		out = append(out, id)
	}
	return out
}

// actionsStep is the environment of an Actions step, its output and
// summary files in a temporary folder.
func actionsStep(t *testing.T) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(dir, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "7",
		"AZURE_SUBSCRIPTION_ID": azuretest.Subscription,
	}
}

type verifyResult struct {
	code           int
	stdout, stderr string
}

// stepOutputs parses a GITHUB_OUTPUT file.
func stepOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(readFile(t, path), "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func (r *verifyRig) assertNoPassword(t *testing.T, texts ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.passwords)
	all := strings.Join(texts, "\n")
	for _, pw := range r.passwords {
		assert.NotContains(t, all, pw, "the administrator password leaked")
	}
}

func verifyArgs(extra ...string) []string {
	return append([]string{"verify", "--environment", "staging", "--pool", vPool}, extra...)
}

func TestVerifyHealthyThenUnhealthy(t *testing.T) {
	r := newVerifyRig(t)
	r.record(t)

	env := actionsStep(t)
	res := r.run(t, env, verifyArgs()...)
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "healthy "+r.imageID+" (eastus): running after ")
	summary := readFile(t, env["GITHUB_STEP_SUMMARY"])
	assert.Contains(t, summary, "### Verify "+vPool+" in staging")
	assert.Contains(t, summary, "| image | region | result | running after | answered after | reason |")
	assert.Contains(t, summary, "| `"+r.imageID+"` | eastus | ✅ healthy |")
	out := stepOutputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, map[string]string{"images": "1", "healthy": "1", "unhealthy": "0"}, out)
	assert.Empty(t, r.left(), "verify left resources behind")
	vmCreated := false
	for _, c := range r.a.Calls() {
		if c.API == "VirtualMachinesClient.BeginCreateOrUpdate" {
			vmCreated = true
			assert.Contains(t, c.Path, "/resourceGroups/"+vGroup+"/")
		}
	}
	assert.True(t, vmCreated)
	r.assertNoPassword(t, res.stdout, res.stderr, summary)

	// The image's VMs now fail to provision.
	r.a.SetImageGuest(r.imageID, azuretest.Guest{FailProvisioning: true})
	env = actionsStep(t)
	res = r.run(t, env, verifyArgs("--timeout", "30s")...)
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, ExitFailure, res.code, res.stderr)
	line := ""
	for _, l := range strings.Split(res.stdout, "\n") {
		if strings.HasPrefix(l, "unhealthy ") {
			line = l
		}
	}
	assert.True(t, strings.HasPrefix(line, "unhealthy "+r.imageID+" (eastus): create VM: "), line)
	assert.Contains(t, line, "VMStartTimedOut")
	assert.Contains(t, res.stderr, "cib verify: 1 of 1 image(s) of "+vPool+" unhealthy")
	summary = readFile(t, env["GITHUB_STEP_SUMMARY"])
	assert.Contains(t, summary, "| `"+r.imageID+"` | eastus | ❌ unhealthy |")
	assert.Contains(t, summary, "<details><summary>Serial log of "+r.imageID)
	assert.Contains(t, summary, "allocated (Standard_NV6)")
	assert.Equal(t, "1", stepOutputs(t, env["GITHUB_OUTPUT"])["unhealthy"])
	assert.Empty(t, r.left(), "verify left resources behind after a failure")
	r.assertNoPassword(t, res.stdout, res.stderr, summary)
}

func TestVerifyDryRunCreatesNothing(t *testing.T) {
	r := newVerifyRig(t)
	r.record(t)
	calls := len(r.a.Calls())
	env := actionsStep(t)
	delete(env, "AZURE_SUBSCRIPTION_ID")
	res := r.run(t, env, verifyArgs("--dry-run", "--size", "Standard_DS2_v2")...)
	require.Equal(t, ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "would verify "+r.imageID+" (eastus): Standard_DS2_v2 in "+vGroup)
	assert.Equal(t, calls, len(r.a.Calls()), "a dry run calls no Azure")
	assert.Contains(t, readFile(t, env["GITHUB_STEP_SUMMARY"]), "(dry run)")
	assert.Equal(t, "1", stepOutputs(t, env["GITHUB_OUTPUT"])["images"])
}

// Throttling says nothing of the image: exit 75, and nothing is left.
func TestVerifyThrottledIsRetryable(t *testing.T) {
	r := newVerifyRig(t)
	r.record(t)
	r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.BeginCreateOrUpdate", Status: http.StatusTooManyRequests, Code: "TooManyRequests"})
	res := r.run(t, actionsStep(t), verifyArgs()...)
	assert.Equal(t, ExitRetryable, res.code, res.stderr)
	assert.Contains(t, res.stdout, "unhealthy "+r.imageID+" (eastus): create VM: ")
	assert.Empty(t, r.left())
}

func TestVerifyRefusals(t *testing.T) {
	r := newVerifyRig(t)
	calls := len(r.a.Calls())
	// No record yet.
	res := r.run(t, actionsStep(t), verifyArgs()...)
	assert.Equal(t, ExitFailure, res.code)
	assert.Contains(t, res.stderr, "no machine image recorded for key win7-32-gpu, group "+vGroup+" in environment staging")

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"verify", "--pool", vPool}, "--environment is required"},
		{[]string{"verify", "--environment", "staging"}, "--pool is required"},
		{verifyArgs("--timeout", "0s"), "--timeout must be positive"},
		{[]string{"verify", "--environment", "nope", "--pool", vPool}, `--environment "nope" is not an environment`},
		{[]string{"verify", "--environment", "staging", "--pool", "nope/nope"}, `--pool "nope/nope" is not a pool`},
		{verifyArgs("--key", "win10-64"), `--pool "` + vPool + `" is not a pool of key win10-64`},
	} {
		res := r.run(t, actionsStep(t), c.args...)
		assert.Equal(t, ExitUsage, res.code, c.args)
		assert.Contains(t, res.stderr, c.msg)
	}
	res = r.run(t, nil, "verify", "--help")
	assert.Equal(t, ExitOK, res.code)
	assert.Contains(t, res.stdout, "Usage: cib verify --environment ENV --pool DOMAIN/VARIANT")
	assert.Contains(t, res.stdout, "--dry-run")
	assert.Len(t, r.a.Calls(), calls, "refusals call no Azure")
}
